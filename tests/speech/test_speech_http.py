"""Speech over HTTP: staff transcriptions (JSON and NDJSON progress), clear 4xx refusals in
French, role and CSRF checks, audit without content, and the patient's voice answer under the
pre-consultation link (identity check, link token, the form's language)."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.config.settings import Settings
from models.audit import ActorKind, AuditEvent
from tests.support.preconsultation import book, link_csrf, send, session_csrf, verify
from tests.support.speech import (
    ENGLISH_WORDS,
    FRENCH_WORDS,
    clips,  # noqa: F401  (fixture)
    heard,
    speech_model_dir,  # noqa: F401  (fixture)
    with_model,
)

pytestmark = pytest.mark.slow  # runs the whisper model

URL = "/api/speech/transcriptions"
HTML = {"accept": "text/html"}


@pytest.fixture
def settings(settings: Settings, speech_model_dir: Path) -> Settings:  # noqa: F811
    """The test settings with the bundled model from a local path, and small limits."""
    return with_model(settings, speech_model_dir, speech_max_seconds=60, speech_max_upload_mb=2)


def upload(client: TestClient, data: bytes, *, url: str = URL, headers=None, **fields):
    return client.post(
        url,
        files={"file": ("enregistrement.wav", data, "audio/wav")},
        data=fields,
        headers={"accept": "application/json", **(headers or {})},
    )


def speech_events(db: Session) -> list[AuditEvent]:
    db.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == "speech.transcribe")
    return list(db.exec(query).all())


def test_a_secretary_dictates_and_gets_the_text(logged_in, db: Session, clips) -> None:  # noqa: F811
    client = logged_in("secretaire")
    response = upload(client, clips["fr"].read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(heard(body["text"], FRENCH_WORDS)) >= 2, body
    assert body["language"] == "fr" and 4 < body["duration_seconds"] < 6 and body["heard"]

    english = upload(client, clips["en"].read_bytes(), language="en").json()
    assert heard(english["text"], ENGLISH_WORDS) and english["language"] == "en"

    events = speech_events(db)
    assert len(events) == 2 and events[0].actor_name == "secretaire"
    assert events[0].details["purpose"] == "dictation" and events[0].details["language"] == "fr"
    assert "docteur" not in json.dumps([e.details for e in events]).lower()  # never the content


def test_the_progress_stream_rises_then_gives_the_text(logged_in, clips) -> None:  # noqa: F811
    client = logged_in("medecin")
    response = upload(
        client, clips["long"].read_bytes(), headers={"accept": "application/x-ndjson"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    *steps, final = lines
    values = [line["progress"] for line in steps]
    assert len(steps) >= 2 and values == sorted(values) and values[-1] <= 1
    assert final["done"] is True and final["progress"] == 1.0
    assert "docteur" in final["text"].lower() and final["language"] == "fr"


def test_bad_audio_gets_a_clear_4xx_in_french(logged_in, clips) -> None:  # noqa: F811
    client = logged_in("secretaire")
    cases = [
        (b"", 422, "vide"),
        (b"Ceci est un courrier, pas un son." * 30, 415, "pas un enregistrement audio"),
        (b"\0" * (2 * 1024 * 1024 + 10), 413, "trop volumineux"),
    ]
    for data, status, words in cases:
        response = upload(client, data)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
    missing = client.post(URL, data={"language": "fr"}, headers={"accept": "application/json"})
    assert missing.status_code == 422 and "vide" in missing.json()["detail"]
    english = upload(client, b"", url=f"{URL}?lang=en")
    assert "empty" in english.json()["detail"]


def test_a_recording_over_the_limit_is_refused(logged_in, settings, clips) -> None:  # noqa: F811
    client = logged_in("secretaire")
    client.app.state.settings = settings.model_copy(update={"speech_max_seconds": 3})
    response = upload(client, clips["fr"].read_bytes())
    assert response.status_code == 413
    assert (
        "trop long" in response.json()["detail"] and "maximum est 3 s" in response.json()["detail"]
    )


def test_only_secretaries_and_physicians_may_transcribe(
    client: TestClient,
    logged_in,
    clips,  # noqa: F811
) -> None:
    data = clips["en"].read_bytes()
    anonymous = upload(client, data)
    assert anonymous.status_code == 401 and "connecter" in anonymous.json()["detail"]
    admin = logged_in("admin")
    refused = upload(admin, data)
    assert refused.status_code == 403 and "accès" in refused.json()["detail"]
    secretary = logged_in("secretaire")
    secretary.headers.pop("x-csrf-token")
    assert upload(secretary, data).status_code == 403  # no CSRF token


def _patient(client: TestClient, db: Session, *, verified: bool = True) -> tuple[str, dict]:
    sent = send(db, book(db).appointment_id)
    if verified:
        assert verify(client, sent.path).status_code == 303
        page = client.get(f"{sent.path}/etape/1", headers=HTML)
    else:
        page = client.get(sent.path, headers=HTML)
    headers = {"x-link-csrf": link_csrf(page.text), "x-csrf-token": session_csrf(page.text)}
    return sent.path, headers


def test_a_patient_answers_by_voice_in_the_form_language(
    client: TestClient,
    db: Session,
    clips,  # noqa: F811
) -> None:
    path, headers = _patient(client, db)
    step = client.get(f"{path}/etape/1", headers=HTML).text
    assert f'data-voice-url="{path}/voix"' in step and 'data-voice-target="motif"' in step
    assert '<script src="/static/js/voice.js" defer>' in step and 'id="voice-i18n"' in step

    response = upload(client, clips["fr"].read_bytes(), url=f"{path}/voix", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "fr"
    assert len(heard(response.json()["text"], FRENCH_WORDS)) >= 2

    client.cookies.set("accueil_lang", "en")  # the English version of the questionnaire
    english = upload(client, clips["en"].read_bytes(), url=f"{path}/voix", headers=headers)
    assert english.json()["language"] == "en" and heard(english.json()["text"], ENGLISH_WORDS)

    (event, *_) = speech_events(db)
    assert event.actor_kind == ActorKind.patient_link and event.record_type == "preconsultation"
    assert event.patient_id is not None and event.details["purpose"] == "patient_answer"

    wrong = upload(
        client,
        clips["fr"].read_bytes(),
        url=f"{path}/voix",
        headers={**headers, "x-link-csrf": "x"},
    )
    assert wrong.status_code == 403


def test_a_patient_link_without_identity_check_is_refused(
    client: TestClient,
    db: Session,
    clips,  # noqa: F811
) -> None:
    path, headers = _patient(client, db, verified=False)
    response = upload(client, clips["fr"].read_bytes(), url=f"{path}/voix", headers=headers)
    assert response.status_code == 401 and "identité" in response.json()["detail"]
    unknown = upload(client, clips["fr"].read_bytes(), url="/p/not-a-token/voix", headers=headers)
    assert unknown.status_code == 404
    assert speech_events(db) == []


def test_the_voice_script_is_served_from_the_box(client: TestClient) -> None:
    script = client.get("/static/js/voice.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "data-voice-target" in script.text and "http" not in script.text.split("*/", 1)[1]
    assert client.get("/static/voice.css").status_code == 200
