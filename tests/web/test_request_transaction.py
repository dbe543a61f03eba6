"""A request's transaction is committed before its response leaves: a client that follows a
redirect reads what it just wrote, and a commit that fails is an error, never a false success."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from models.patients import Patient
from tests.conftest import login

PATIENT = {"birth_name": "Lenoir", "first_name": "Agathe", "birth_date": "1971-03-09", "sex": "F"}


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every commit of any session, in order with the ASGI messages the app sends."""
    seen: list[str] = []
    original = Session.commit

    def commit(self: Session) -> None:
        original(self)
        seen.append("commit")

    monkeypatch.setattr(Session, "commit", commit)
    yield seen


def recording(app: Any, seen: list[str]) -> Any:
    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        async def record(message: dict) -> None:
            seen.append(message["type"])
            await send(message)

        await app(scope, receive, record)

    return wrapped


def test_the_commit_happens_before_the_response_starts(
    client: TestClient, app, staff, events: list[str]
) -> None:
    spy = TestClient(recording(app, events), base_url="http://testserver")
    assert login(spy, "secretaire").status_code == 303
    token = spy.get("/api/csrf").json()["csrf_token"]
    events.clear()
    created = spy.post("/api/patients", json=PATIENT, headers={"x-csrf-token": token})
    assert created.status_code == 201, created.text
    assert "commit" in events
    assert events.index("commit") < events.index("http.response.start")


def test_a_failed_commit_is_an_error_in_french_and_saves_nothing(
    logged_in, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = logged_in("secretaire")
    original = Session.commit
    calls: list[int] = []

    def failing_commit(self: Session) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("COMMIT", {}, Exception("database is locked"))
        original(self)

    monkeypatch.setattr(Session, "commit", failing_commit)
    answer = client.post("/api/patients", json=PATIENT)
    monkeypatch.setattr(Session, "commit", original)

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert "n'a pas été enregistrée" in answer.json()["detail"]
    db.expire_all()
    assert db.exec(select(Patient).where(Patient.birth_name == "Lenoir")).all() == []
    # The same request, once the database answers again, is saved.
    again = client.post("/api/patients", json=PATIENT)
    assert again.status_code == 201, again.text
    assert len(db.exec(select(Patient).where(Patient.birth_name == "Lenoir")).all()) == 1
