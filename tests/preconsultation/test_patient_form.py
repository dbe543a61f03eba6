"""The patient form: steps without JavaScript, autosave, enableWhen, red flags, submission."""

from fastapi.testclient import TestClient
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlmodel import Session, select

from models.questionnaires import PreConsultation, PreConsultationStatus
from tests.support.preconsultation import autosave, book, link_csrf, send, session_csrf, verify

HTML = {"accept": "text/html"}


def _start(client: TestClient, db: Session, visit_type: str = "consultation") -> str:
    sent = send(db, book(db, visit_type).appointment_id)
    assert verify(client, sent.path).status_code == 303
    return sent.path


def _post_step(client: TestClient, path: str, number: int, fields: list, nav: str = "next"):
    page = client.get(f"{path}/etape/{number}", headers=HTML)
    data: dict[str, list[str]] = {
        "link_csrf": [link_csrf(page.text)],
        "csrf_token": [session_csrf(page.text)],
        "nav": [nav],
    }
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return client.post(f"{path}/etape/{number}", data=data, headers=HTML, follow_redirects=False)


def _row(db: Session) -> PreConsultation:
    db.expire_all()
    return db.exec(select(PreConsultation)).one()


def test_autosave_then_submit_yields_a_valid_questionnaire_response(
    client: TestClient, db: Session, logged_in
) -> None:
    path = _start(client, db)
    saved = autosave(client, path, {"motif": "Toux depuis 3 jours", "intensite": "4"})
    assert saved.status_code == 200 and saved.json()["saved"] == ["intensite", "motif"]
    saved = autosave(client, path, {"symptomes": ["toux", "fievre"]}, step=2)
    assert "temperature" in saved.json()["enabled"]  # enableWhen answered by the server
    autosave(client, path, {"temperature": "38,4", "moral": "bien"}, step=2)
    row = _row(db)
    assert row.status == PreConsultationStatus.in_progress
    assert row.answers["temperature"] == 38.4 and row.answers["intensite"] == 4

    review = client.get(f"{path}/relecture", headers=HTML)
    assert "Toux depuis 3 jours" in review.text and "38,4" in review.text
    done = client.post(
        f"{path}/envoyer",
        data={"link_csrf": link_csrf(review.text), "csrf_token": session_csrf(review.text)},
        headers=HTML,
        follow_redirects=False,
    )
    assert done.status_code == 303
    thanks = client.get(done.headers["location"], headers=HTML)
    assert "vos réponses ont été envoyées" in thanks.text
    row = _row(db)
    assert row.status == PreConsultationStatus.submitted and row.submitted_at is not None
    response = QuestionnaireResponse.model_validate(row.response)
    assert response.status == "completed"
    linked = {i.linkId for group in response.item for i in group.item}
    assert linked == {"motif", "intensite", "symptomes", "temperature", "moral"}

    staff = logged_in("medecin")
    page = staff.get(f"/agenda/appointments/{row.appointment_id}", headers=HTML)
    assert "Rempli" in page.text and "Toux depuis 3 jours" in page.text


def test_steps_work_without_javascript_with_required_errors(
    client: TestClient, db: Session
) -> None:
    path = _start(client, db)
    missing = _post_step(client, path, 1, [("intensite", "douze")])
    assert missing.status_code == 422
    assert "Il y a un problème" in missing.text
    assert "réponse obligatoire" in missing.text and "nombre entier attendu" in missing.text
    ok = _post_step(client, path, 1, [("motif", "Mal de dos"), ("intensite", "6")])
    assert ok.headers["location"] == f"{path}/etape/2"
    step2 = _post_step(client, path, 2, [("symptomes", "fievre"), ("symptomes", "toux")])
    assert step2.headers["location"] == f"{path}/etape/3"
    back = _post_step(client, path, 3, [("traitements-en-cours", "false")], nav="back")
    assert back.headers["location"] == f"{path}/etape/2"
    page = client.get(f"{path}/etape/2", headers=HTML)
    assert 'value="fievre" checked' in page.text and "étape 2 sur 5" in page.text
    assert _row(db).answers == {
        "motif": "Mal de dos",
        "intensite": 6,
        "symptomes": ["fievre", "toux"],
        "traitements-en-cours": False,
    }
    last = _post_step(client, path, 5, [("autres-informations", "Rien d'autre")])
    assert last.headers["location"] == f"{path}/relecture"


def test_forms_and_autosave_need_the_link_token(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    page = client.get(f"{path}/etape/1", headers=HTML)
    forged = client.post(
        f"{path}/etape/1",
        data={"motif": "x", "csrf_token": session_csrf(page.text), "link_csrf": "forged"},
        headers=HTML,
    )
    assert forged.status_code == 403
    no_header = client.post(
        f"{path}/answers",
        json={"answers": {"motif": "x"}},
        headers={"x-csrf-token": session_csrf(page.text)},
    )
    assert no_header.status_code == 403
    assert _row(db).answers == {}


def test_invalid_answers_are_reported_and_valid_ones_kept(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    result = autosave(client, path, {"motif": "Toux", "intensite": "beaucoup", "zzz": "1"})
    body = result.json()
    assert result.status_code == 200 and body["saved"] == ["motif"]
    assert set(body["errors"]) == {"intensite", "zzz"}
    assert _row(db).answers == {"motif": "Toux"}


def test_urgent_red_flag_shows_guidance_and_marks_the_appointment(
    client: TestClient, db: Session, logged_in
) -> None:
    path = _start(client, db)
    saved = autosave(client, path, {"symptomes": ["douleur-thoracique", "essoufflement"]}, step=2)
    assert any("appelez le 15" in text for text in saved.json()["urgent"])
    page = client.get(f"{path}/etape/2", headers=HTML)
    assert 'id="urgent"' in page.text and "appelez le 15" in page.text
    row = _row(db)
    assert [f["rule"] for f in row.red_flags] == ["douleur-thoracique-dyspnee"]
    staff = logged_in("secretaire")
    detail = staff.get(f"/agenda/appointments/{row.appointment_id}", headers=HTML)
    assert "flag-urgence" in detail.text and "Douleur thoracique avec essoufflement" in detail.text


def test_disabled_answers_are_not_kept_in_the_response(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    autosave(client, path, {"motif": "Fièvre"})
    autosave(client, path, {"symptomes": ["fievre"], "temperature": "40,5 °C"}, step=2)
    assert [f["rule"] for f in _row(db).red_flags] == ["fievre-elevee"]
    autosave(client, path, {"symptomes": ["toux"]}, step=2)
    assert _row(db).red_flags == []  # the question is disabled: its answer no longer counts
    review = client.get(f"{path}/relecture", headers=HTML)
    client.post(
        f"{path}/envoyer",
        data={"link_csrf": link_csrf(review.text), "csrf_token": session_csrf(review.text)},
        headers=HTML,
    )
    assert "temperature" not in str(_row(db).response)


def test_submit_with_required_missing_goes_back_to_review(client: TestClient, db: Session) -> None:
    path = _start(client, db)
    review = client.get(f"{path}/relecture", headers=HTML)
    assert "réponse obligatoire" in review.text
    refused = client.post(
        f"{path}/envoyer",
        data={"link_csrf": link_csrf(review.text), "csrf_token": session_csrf(review.text)},
        headers=HTML,
        follow_redirects=False,
    )
    assert refused.headers["location"] == f"{path}/relecture"
    assert _row(db).status == PreConsultationStatus.opened


def test_english_version_of_the_same_questionnaire(client: TestClient, db: Session) -> None:
    path = _start(client, db, "vaccination")
    client.cookies.set("accueil_lang", "en")
    page = client.get(f"{path}/etape/1", headers=HTML)
    assert '<html lang="en">' in page.text and "Which vaccine(s) are planned?" in page.text
    _post_step(client, path, 1, [("vaccins", "rro")])
    _post_step(client, path, 3, [("grossesse", "possible"), ("immunodepression", "true")])
    review = client.get(f"{path}/relecture", headers=HTML)
    assert "Measles, mumps, rubella (MMR)" in review.text
    assert 'id="urgent"' in review.text and "hidden" in review.text.split('id="urgent"')[1][:40]
    assert {f["rule"] for f in _row(db).red_flags} == {
        "grossesse-vaccin-vivant",
        "immunodepression",
        "immunodepression-vaccin-vivant",
    }
