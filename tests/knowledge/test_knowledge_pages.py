"""The knowledge pages: an admin uploads, follows the indexing, previews, re-indexes and
deletes documents; all staff search them and read the sources."""

import re

from sqlmodel import select

from models.audit import AuditEvent
from models.jobs import Job, JobStatus
from models.knowledge import KnowledgeDocument
from tests.conftest import csrf_from
from tests.support.jobs_helpers import run_jobs
from tests.support.knowledge_files import FEES, FORMATS, MARKDOWN, make_zip_bomb

HTML = {"accept": "text/html"}


def upload(client, filename: str, content: bytes, token: str | None):
    data = {"csrf_token": token} if token else {}
    return client.post(
        "/admin/connaissances",
        data=data,
        files={"file": (filename, content, "application/octet-stream")},
        headers=HTML,
        follow_redirects=False,
    )


def test_admin_uploads_previews_reindexes_and_deletes(logged_in, db, settings, app) -> None:
    client = logged_in("admin")
    client.headers.pop("x-csrf-token")  # the forms' hidden field is what a browser sends
    page = client.get("/admin/connaissances", headers=HTML)
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and "Aucun document" in page.text
    assert '<a href="/admin/connaissances">' in page.text  # the admin nav link
    token = csrf_from(client, "/admin/connaissances")

    assert upload(client, "livret.md", MARKDOWN, None).status_code == 403  # no CSRF token
    sent = upload(client, "livret.md", MARKDOWN, token)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/admin/connaissances?done=uploaded&n=0"
    listed = client.get(sent.headers["location"], headers=HTML).text
    assert "Document importé : son indexation est en cours" in listed
    job = db.exec(select(Job)).one()
    assert job.status == JobStatus.queued
    # The state is the job's, followed live by a script polling a JSON endpoint.
    assert f'data-job-id="{job.id}" data-job-active="1"' in listed
    assert '<span class="job-label">En attente</span>' in listed
    assert 'aria-live="polite"' in listed and '<script src="/static/job-progress.js"' in listed
    state = client.get(f"/admin/jobs/etat?ids={job.id}", headers={"accept": "application/json"})
    listed_state = state.json()["jobs"][0]
    assert (listed_state["label"], listed_state["active"], listed_state["progress"]) == (
        "En attente",
        True,
        0,
    )
    assert client.get("/static/job-progress.js").status_code == 200

    assert run_jobs(app.state.jobs) == 1
    state = client.get(f"/admin/jobs/etat?ids={job.id}", headers={"accept": "application/json"})
    assert state.json()["jobs"][0]["status"] == "succeeded"
    assert state.json()["jobs"][0]["progress"] == 100
    listed = client.get("/admin/connaissances", headers=HTML).text
    document = db.exec(select(KnowledgeDocument)).one()
    assert f'<a href="/connaissances/{document.id}">Livret du cabinet</a>' in listed
    assert "Indexé" in listed and "data-job-active" not in listed

    preview = client.get(f"/connaissances/{document.id}", headers=HTML)
    assert preview.status_code == 200
    assert re.search(r'<h3>Tarifs</h3>\s*<p id="c2" class="passage">La consultation', preview.text)
    assert f'action="/admin/connaissances/{document.id}/reindex"' in preview.text

    again = upload(client, "copie.md", MARKDOWN, token)
    assert again.status_code == 409 and "déjà dans la base" in again.text

    reindexed = client.post(
        f"/admin/connaissances/{document.id}/reindex",
        data={"csrf_token": token},
        headers=HTML,
        follow_redirects=False,
    )
    assert reindexed.headers["location"] == "/admin/connaissances?done=reindexed&n=0"
    assert run_jobs(app.state.jobs) == 1
    rebuilt = client.post(
        "/admin/connaissances/rebuild", data={"csrf_token": token}, follow_redirects=False
    )
    assert rebuilt.headers["location"] == "/admin/connaissances?done=rebuilt&n=0"
    assert run_jobs(app.state.jobs) == 1
    assert {j.kind: j.status for j in db.exec(select(Job)).all()} == {
        "knowledge.ingest": JobStatus.succeeded,
        "knowledge.rebuild": JobStatus.succeeded,
    }
    deleted = client.post(
        f"/admin/connaissances/{document.id}/delete",
        data={"csrf_token": token},
        headers=HTML,
        follow_redirects=False,
    )
    assert deleted.status_code == 303
    assert "Aucun document" in client.get("/admin/connaissances", headers=HTML).text
    assert not list(settings.knowledge_dir.iterdir())
    actions = [e.action for e in db.exec(select(AuditEvent)).all() if e.action.startswith("know")]
    assert actions == [
        "knowledge.upload",
        "knowledge.index",
        "knowledge.view",
        "knowledge.reindex",
        "knowledge.index",
        "knowledge.rebuild",
        "knowledge.rebuilt",
        "knowledge.delete",
    ]
    assert {
        e.actor_name for e in db.exec(select(AuditEvent)).all() if e.action == "knowledge.delete"
    } == {"admin"}


def test_bad_uploads_show_a_french_error_and_store_nothing(logged_in, db, settings) -> None:
    client = logged_in("admin")
    for filename, content, status, message in (
        ("piege.docx", make_zip_bomb(), 422, "anormalement volumineux"),
        ("faux.pdf", b"pas un pdf", 422, "ne correspond pas à un document PDF"),
        ("outil.exe", b"MZ", 422, "Format non pris en charge"),
    ):
        response = upload(client, filename, content, client.headers["x-csrf-token"])
        assert response.status_code == status, response.text
        assert message in response.text
        assert 'role="alert"' in response.text
    assert db.exec(select(KnowledgeDocument)).all() == []
    assert not settings.knowledge_dir.exists() or not list(settings.knowledge_dir.iterdir())


def test_oversized_uploads_are_refused(logged_in, settings, app) -> None:
    app.state.settings = settings.model_copy(update={"knowledge_max_upload_mb": 1})
    client = logged_in("admin")
    response = upload(client, "gros.txt", b"a" * (1024 * 1024 + 10), client.headers["x-csrf-token"])
    assert response.status_code == 413 and "1 Mo au plus" in response.text


def test_staff_search_and_read_the_sources(logged_in, db, app) -> None:
    admin = logged_in("admin")
    upload(admin, "fiche.pdf", FORMATS["fiche.pdf"], admin.headers["x-csrf-token"])
    run_jobs(app.state.jobs)
    document = db.exec(select(KnowledgeDocument)).one()
    client = logged_in("secretaire")
    home = client.get("/", headers=HTML).text
    assert '<a href="/connaissances">Connaissances</a>' in home
    empty = client.get("/connaissances", headers=HTML)
    assert empty.status_code == 200 and "Posez la question" in empty.text
    found = client.get(
        "/connaissances", params={"q": "Combien coûte la consultation ?"}, headers=HTML
    )
    assert found.status_code == 200
    assert FEES in found.text
    assert f'href="/connaissances/{document.id}#c1"' in found.text
    source = client.get(f"/connaissances/{document.id}", headers=HTML)
    assert source.status_code == 200 and FEES in source.text
    assert "/reindex" not in source.text  # management stays with the admin
    short = client.get("/connaissances", params={"q": "?"}, headers=HTML)
    assert short.status_code == 422 and "Question trop courte" in short.text
    assert client.get("/connaissances/999", headers=HTML).status_code == 404


def test_a_failed_indexing_shows_on_the_page_with_a_retry(logged_in, db, app) -> None:
    client = logged_in("admin")
    token = client.headers["x-csrf-token"]
    upload(client, "casse.pdf", b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n", token)
    run_jobs(app.state.jobs)
    job = db.exec(select(Job)).one()
    page = client.get("/admin/connaissances", headers=HTML).text
    assert '<span class="job-label">Échec</span>' in page and "illisible" in page
    assert f'action="/admin/jobs/{job.id}/retry"' in page
    retried = client.post(
        f"/admin/jobs/{job.id}/retry",
        data={"csrf_token": token, "back": "/admin/connaissances"},
        headers=HTML,
        follow_redirects=False,
    )
    assert retried.headers["location"] == "/admin/connaissances?done=retried"
    assert "Indexation relancée." in client.get(retried.headers["location"], headers=HTML).text
    db.refresh(job)
    assert job.status == JobStatus.queued and job.attempts == 0


def test_a_doubtful_search_shows_its_passages_with_a_warning(
    logged_in, db, app, monkeypatch
) -> None:
    """On the topic, maybe not the fact asked: the page shows the passages under a warning
    to check them, and the audit trail records the doubt (not the question)."""
    from app.services.knowledge import no_answer

    admin = logged_in("admin")
    upload(admin, "fiche.pdf", FORMATS["fiche.pdf"], admin.headers["x-csrf-token"])
    run_jobs(app.state.jobs)
    client = logged_in("secretaire")
    question = {"q": "Combien coûte la consultation ?"}
    sure = client.get("/connaissances", params=question, headers=HTML).text
    assert 'data-answer="doubtful"' not in sure and FEES in sure
    n = len(no_answer.FEATURES)  # p = 0.5, between the two thresholds: doubtful
    unsure = no_answer.NoAnswerModel((0.0,) * n, 0.0, (0.0,) * n, (1.0,) * n, 0.3, "", 0.7)
    monkeypatch.setattr("app.services.knowledge.retrieval.for_practice", lambda _dir: unsure)
    doubtful = client.get("/connaissances", params=question, headers=HTML).text
    assert 'data-answer="doubtful"' in doubtful and FEES in doubtful
    assert "vérifiez le passage avant de répondre" in doubtful
    english = client.get("/connaissances", params={**question, "lang": "en"}, headers=HTML).text
    assert "check the passage before answering" in english
    searches = db.exec(
        select(AuditEvent).where(AuditEvent.action == "knowledge.search").order_by(AuditEvent.id)
    ).all()
    assert [e.details["doubtful"] for e in searches] == [False, True, True]
    assert all("consultation" not in str(e.details) for e in searches)
