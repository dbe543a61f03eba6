"""The autosave's database work, counted: its cost per keystroke is a fixed handful of
statements (the load on a practice's database grows with patients typing, not with the
answers' size), and it still reads the red flags of free text on every change."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.requests import Request

from app.web.links.patient_form import CLIENT_GONE, json_body
from app.web.links.patient_form import autosave as autosave_route
from models.audit import AuditEvent
from models.questionnaires import PreConsultation
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

    # The link with its appointment and patient in one statement, the questionnaire's
    # version, then the answers and the audit event: no statement per answer or per rule.
    expected = ["INSERT", "SELECT", "SELECT", "UPDATE"]
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
