"""The autosave's database work, counted: its cost per keystroke is a fixed handful of
statements (the load on a practice's database grows with patients typing, not with the
answers' size), and it still reads the red flags of free text on every change."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.requests import Request

from app.web.links.patient_form import CLIENT_GONE, json_body
from app.web.links.patient_form import autosave as autosave_route
from models.audit import AuditEvent
from models.questionnaires import PreConsultation, PreConsultationStatus
from tests.support.preconsultation import book, link_csrf, send, session_csrf, verify


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn, _cursor, statement: str, *_args) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_an_autosave_reads_once_and_writes_the_answers_and_its_audit_event(
    client: TestClient, db: Session
) -> None:
    sent = send(db, book(db).appointment_id)
    assert verify(client, sent.path).status_code == 303
    page = client.get(f"{sent.path}/etape/1", headers={"accept": "text/html"})
    headers = {
        "accept": "application/json",
        "x-link-csrf": link_csrf(page.text),
        "x-csrf-token": session_csrf(page.text),
    }
    engine = client.app.state.engine
    # The first save of a questionnaire version in the process also parses its resource
    # (kept per version): the count is the steady state's, from the second save on.
    texts = [
        "Toux",
        "Toux depuis 3 jours",
        "Douleur thoracique depuis ce matin, je suis essoufflé",
    ]
    counts = []
    for text in texts:
        with statements(engine) as seen:
            saved = client.post(f"{sent.path}/answers", json={"answers": {"motif": text}},
                                headers=headers)  # fmt: skip
        assert saved.status_code == 200, saved.text
        counts.append(sorted(s for s in seen if s in ("SELECT", "INSERT", "UPDATE", "DELETE")))

    # The link with its appointment, its patient and its questionnaire's version in one
    # statement, then the answers and the audit event: no statement per answer or per rule.
    expected = ["INSERT", "SELECT", "UPDATE"]
    assert counts[1:] == [expected, expected]
    # The free-text reading still ran on the changed text: the urgent guidance came back.
    assert saved.json()["urgent"], saved.json()
    db.expire_all()
    row = db.exec(select(PreConsultation)).one()
    assert row.answers["motif"] == texts[-1] and row.red_flags
    answers = db.exec(select(AuditEvent).where(AuditEvent.action == "preconsultation.answer"))
    assert len(answers.all()) == 3


def test_an_autosave_whose_client_left_is_dropped_without_an_error() -> None:
    """A client that disconnects before its body arrives (a closed page, a client timeout
    under load) is no server error: no save, and no traceback in the log."""

    async def gone() -> dict:
        return {"type": "http.disconnect"}

    request = Request(
        {"type": "http", "method": "POST", "path": "/p/x/answers", "headers": []}, gone
    )
    assert asyncio.run(json_body(request)) is CLIENT_GONE
    response = asyncio.run(autosave_route(request, "x", CLIENT_GONE))
    assert response.status_code == 499


def _autosave_headers(client: TestClient, path: str) -> dict[str, str]:
    page = client.get(f"{path}/etape/1", headers={"accept": "text/html"})
    return {
        "accept": "application/json",
        "x-link-csrf": link_csrf(page.text),
        "x-csrf-token": session_csrf(page.text),
    }


def test_an_autosave_writes_the_same_audit_event_as_any_save(
    client: TestClient, db: Session
) -> None:
    """The autosave writes its link and its audit event without ORM objects: the event
    still names the patient, the link, the client's address and the questions saved."""
    booked = book(db)
    sent = send(db, booked.appointment_id)
    assert verify(client, sent.path).status_code == 303
    saved = client.post(
        f"{sent.path}/answers",
        json={"answers": {"motif": "Toux", "intensite": "4", "inconnue": "x"}},
        headers=_autosave_headers(client, sent.path),
    )
    assert saved.status_code == 200 and saved.json()["saved"] == ["intensite", "motif"]
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "preconsultation.answer")).all()
    assert event.patient_id == booked.patient_id
    assert event.record_type == "preconsultation"
    assert event.record_id == str(sent.preconsultation.id)
    assert event.actor_kind == "patient_link" and event.client_address == "testclient"
    assert event.details == {"questions": ["intensite", "motif"]} and event.outcome == "ok"
    assert event.occurred_at is not None


def test_an_autosave_on_a_link_past_its_time_is_refused_marked_expired_and_audited(
    client: TestClient, db: Session
) -> None:
    sent = send(db, book(db).appointment_id)
    assert verify(client, sent.path).status_code == 303
    headers = _autosave_headers(client, sent.path)
    row = db.exec(select(PreConsultation)).one()
    row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db.add(row)
    db.commit()

    refused = client.post(
        f"{sent.path}/answers", json={"answers": {"motif": "Toux"}}, headers=headers
    )
    assert refused.status_code == 410 and refused.json()["problem"] == "expired"
    db.expire_all()
    row = db.exec(select(PreConsultation)).one()
    assert row.status == PreConsultationStatus.expired and "motif" not in row.answers
    denied = db.exec(
        select(AuditEvent).where(AuditEvent.action == "preconsultation.link_denied")
    ).all()
    assert [e.details for e in denied] == [{"problem": "expired"}]
    saves = select(AuditEvent).where(AuditEvent.action == "preconsultation.answer")
    assert db.exec(saves).all() == []
