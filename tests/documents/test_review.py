"""Physician review of summaries: citations beside the answers, sentence edits, approval,
rejection and rating kept as versions and audit events, and the physician-only rule."""

import json
from datetime import datetime, time, timedelta

import pytest
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel
from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.documents import review
from app.services.documents.generated import PhysicianOnly
from models.appointments import Appointment
from models.audit import ActorKind, AuditEvent
from models.documents import DocumentVersion, GeneratedDocument, ReviewStatus
from models.questionnaires import PreConsultation
from models.users import User
from tests.support.review_helpers import narrative_at, scripted_model, sentence_html, summarized

HTML = {"accept": "text/html"}


@pytest.fixture
def model(monkeypatch) -> ScriptedChatModel:
    return scripted_model(monkeypatch)


def versions(db: Session, document_id: int) -> list[DocumentVersion]:
    return list(
        db.exec(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == document_id)
            .order_by(DocumentVersion.number)
        ).all()
    )


def events(db: Session, action: str) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_citations_render_beside_the_answers_they_point_to(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    document = summarized(db, job_queue, model)
    page = logged_in(staff.physician).get(f"/medecin/documents/{document.id}", headers=HTML)
    assert page.status_code == 200, page.text
    html = page.text
    n = narrative_at(document)  # the structured summary comes first
    assert n >= 2 and "Motif : « Toux depuis 3 jours »" in sentence_html(html, "s-0-0")
    # Each sentence names the answers it rests on, as data for the script and as links.
    fever = sentence_html(html, f"s-{n}-1")
    assert 'data-sources="temperature symptomes"' in fever
    assert 'href="#a-temperature"' in fever and 'href="#a-symptomes"' in fever
    assert "unsupported" not in fever
    first = sentence_html(html, f"s-{n}-0")
    assert 'data-sources="motif"' in first and 'href="#a-motif"' in first
    # The cited answers are on the page with those anchors, question and answer.
    assert 'id="a-temperature" class="answer" data-link-id="temperature"' in html
    assert "38.4" in html or "38,4" in html
    assert 'id="a-motif"' in html and "Toux depuis 3 jours" in html
    # The invented source was dropped: the sentence is marked, and says so without colour.
    invented = sentence_html(html, f"s-{n + 1}-0")
    assert 'class="sentence unsupported"' in invented and 'data-sources=""' in invented
    assert "aucune réponse ne fonde cette phrase" in invented
    assert "1 phrase(s) sans réponse" in html
    assert '<script src="/static/review.js" defer></script>' in html
    # Provenance panel.
    assert "scripted (test)" in html and "preconsultation_summary v1" in html
    assert document.prompt_hash[:12] in html and "<code>motif</code>" in html
    assert events(db, "summary.read") and events(db, "preconsultation.read")


def test_edit_approve_and_rate_keep_versions_and_audit_events(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    document = summarized(db, job_queue, model)
    client = logged_in(staff.physician)
    physician = db.exec(select(User).where(User.username == "medecin")).one()
    new_text = "Fièvre à 38,4 °C depuis hier soir, toux sèche."
    n = narrative_at(document)
    edited = client.post(
        f"/medecin/documents/{document.id}/phrases/{n}/1",
        data={"text": new_text},
        headers=HTML,
        follow_redirects=False,
    )
    assert edited.status_code == 303
    assert edited.headers["location"].endswith(f"?fait=edited#s-{n}-1")
    db.expire_all()
    row = db.get(GeneratedDocument, document.id)
    assert row is not None and new_text in row.text and "Fièvre à 38,4 °C." not in row.text
    sentence = row.content["sections"][n]["sentences"][1]
    assert sentence == {"text": new_text, "sources": ["temperature", "symptomes"], "edited": True}

    approved = client.post(f"/medecin/documents/{document.id}/approuver", follow_redirects=False)
    assert approved.status_code == 303
    rated = client.post(
        f"/medecin/documents/{document.id}/note",
        data={"rating": "4", "comment": "Utile"},
        follow_redirects=False,
    )
    assert rated.status_code == 303
    db.expire_all()
    row = db.get(GeneratedDocument, document.id)
    assert row is not None and row.status == ReviewStatus.approved
    assert row.reviewer_id == physician.id and row.reviewed_at is not None
    assert (row.rating, row.review_comment) == (4, "Utile")
    history = versions(db, document.id or 0)
    assert [(v.number, v.change, v.author_id) for v in history] == [
        (1, "generated", None),
        (2, "edited", physician.id),
        (3, "approved", physician.id),
        (4, "rated:4", physician.id),
    ]
    assert "Fièvre à 38,4 °C." in history[0].text and new_text in history[1].text
    assert history[2].text == row.text  # the approved text is what the record keeps

    for action in ("document.edit", "document.approve", "document.rate"):
        [event] = events(db, action)
        assert event.record_id == str(document.id) and event.patient_id == row.patient_id
        assert event.actor_name == "medecin"
        assert new_text not in json.dumps(event.details, ensure_ascii=False)  # names, not content

    # An approved document is final.
    again = client.post(
        f"/medecin/documents/{document.id}/phrases/0/0",
        data={"text": "Autre"},
        headers={"accept": "application/json"},
    )
    assert again.status_code == 409 and "déjà approuvé" in again.json()["detail"]
    page = client.get(f"/medecin/documents/{document.id}", headers=HTML)
    assert "Modifier" not in page.text and "Approuvé" in page.text
    assert "Rédiger un courrier à partir de ce résumé" in page.text
    assert "v4" in page.text and "notée (4/5)" in page.text


def test_reject_needs_a_reason_and_is_final(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    document = summarized(db, job_queue, model)
    client = logged_in(staff.physician)
    json_accept = {"accept": "application/json"}
    empty = client.post(f"/medecin/documents/{document.id}/rejeter", data={}, headers=json_accept)
    assert empty.status_code == 422 and "raison" in empty.json()["detail"]
    rejected = client.post(
        f"/medecin/documents/{document.id}/rejeter",
        data={"reason": "Hallucination sur les traitements"},
        follow_redirects=False,
    )
    assert rejected.status_code == 303
    db.expire_all()
    row = db.get(GeneratedDocument, document.id)
    assert row is not None and row.status == ReviewStatus.rejected
    assert row.rejection_reason == "Hallucination sur les traitements"
    assert [v.change for v in versions(db, document.id or 0)] == ["generated", "rejected"]
    [event] = events(db, "document.reject")
    assert "Hallucination" not in json.dumps(event.details)
    late = client.post(f"/medecin/documents/{document.id}/approuver", headers=json_accept)
    assert late.status_code == 409
    bad = client.post(
        f"/medecin/documents/{document.id}/note", data={"rating": "9"}, headers=json_accept
    )
    assert bad.status_code == 422


def test_only_physicians_review(db: Session, job_queue, model, logged_in, staff, settings) -> None:
    document = summarized(db, job_queue, model)
    for username in (staff.secretary, staff.admin):
        client = logged_in(username)
        for path in ("approuver", "rejeter", "note", "phrases/0/0"):
            response = client.post(
                f"/medecin/documents/{document.id}/{path}",
                data={"reason": "x", "rating": "3", "text": "x"},
                headers={"accept": "application/json"},
            )
            assert response.status_code == 403, (username, path)
        assert client.get(f"/medecin/documents/{document.id}").status_code == 403
    # The rule lives in the service too, whatever calls it.
    secretary = db.exec(select(User).where(User.username == "secretaire")).one()
    actor = Actor(kind=ActorKind.user, id=str(secretary.id), name="secretaire")
    with pytest.raises(PhysicianOnly) as refused:
        review.approve(db, actor, secretary, settings, document.id or 0)
    assert refused.value.status_code == 403
    with pytest.raises(PhysicianOnly):
        review.edit_sentence(db, actor, secretary, document.id or 0, section=0, index=0, text="x")
    with pytest.raises(PhysicianOnly):
        review.rate(db, actor, secretary, document.id or 0, rating=2)
    db.rollback()
    assert db.get(GeneratedDocument, document.id).status == ReviewStatus.draft


def test_bad_sentence_addresses_are_not_found(
    db: Session, job_queue, model, logged_in, staff
) -> None:
    document = summarized(db, job_queue, model)
    client = logged_in(staff.physician)
    for path in ("phrases/9/0", "phrases/0/9", "phrases/-1/0"):
        response = client.post(
            f"/medecin/documents/{document.id}/{path}",
            data={"text": "x"},
            headers={"accept": "application/json"},
        )
        assert response.status_code == 404, path
    assert client.get("/medecin/documents/999999").status_code == 404


def test_dashboard_puts_red_flags_first_then_drafts_and_approvals(
    db: Session, job_queue, model, logged_in, staff, settings: Settings
) -> None:
    document = summarized(db, job_queue, model)
    flagged = db.get(Appointment, document.appointment_id)
    assert flagged is not None
    today = datetime.now(settings.tz).date()
    flagged.starts_at = datetime.combine(today, time(11, 0), tzinfo=settings.tz)
    flagged.ends_at = flagged.starts_at + timedelta(minutes=20)
    calm = Appointment(
        practitioner_id=flagged.practitioner_id,
        patient_id=flagged.patient_id,
        starts_at=datetime.combine(today, time(8, 30), tzinfo=settings.tz),
        ends_at=datetime.combine(today, time(8, 50), tzinfo=settings.tz),
        reason="Contrôle tension",
    )
    db.add(flagged)
    db.add(calm)
    p = db.exec(select(PreConsultation)).one()
    p.red_flags = [
        {
            "rule": "douleur-thoracique",
            "severity": "urgence",
            "staff": {"fr": "Douleur thoracique signalée", "en": "Chest pain reported"},
        }
    ]
    db.add(p)
    db.commit()
    client = logged_in(staff.physician)
    page = client.get("/medecin", headers=HTML).text
    assert page.index("Douleur thoracique signalée") < page.index("Contrôle tension")
    assert 'class="row-urgent"' in page
    assert f'href="/medecin/documents/{document.id}"' in page
    drafts = page.split('id="drafts-title"')[1].split('id="approved-title"')[0]
    assert "Résumé de pré-consultation" in drafts
    client.post(f"/medecin/documents/{document.id}/approuver")
    page = client.get("/medecin", headers=HTML).text
    drafts, approvals = page.split('id="drafts-title"')[1].split('id="approved-title"')
    assert "Aucun brouillon en attente" in drafts and "approuvé le" in approvals
    assert events(db, "document.list")
