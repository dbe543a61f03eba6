"""The secretary assistant end to end with a scripted model: HTTP → agent → MCP → database,
with confirmation before every write, edits, refusals, tool errors, a model that is down and
conversations that survive a restart."""

import json
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import BaseMessage, ToolMessage
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel, call, say
from app.main import create_app
from app.services.assistant import token_budget
from app.services.assistant.turns import AssistantTurns
from app.services.core.audit import Actor
from models.appointments import Appointment, AppointmentStatus
from models.audit import ActorKind, AuditEvent
from models.conversations import Conversation
from models.users import User
from tests.conftest import PASSWORD, login
from tests.support.practice import PARIS, add_patient, add_practitioner


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    practitioner = add_practitioner(db)
    patient = add_patient(db, "Durand", "Sophie")
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient}


def next_monday() -> date:
    today = datetime.now(PARIS).date()
    return today + timedelta(days=7 - today.weekday())


def events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def last_tool_json(messages: list[BaseMessage]) -> Any:
    tool = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
    return json.loads(tool.text)


def first_slot(messages: list[BaseMessage]) -> str:
    """The start of the first slot in the latest find_slots result (one slot per block)."""
    tool = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
    blocks = tool.content if isinstance(tool.content, list) else [tool.content]
    texts = [b["text"] if isinstance(b, dict) else b for b in blocks]
    data = json.loads(texts[0])
    return (data[0] if isinstance(data, list) else data)["start"]


def booking_script(practice: dict[str, int], *, then: list[Any]) -> ScriptedChatModel:
    monday = next_monday().isoformat()
    return ScriptedChatModel(
        script=[
            call("find_patients", "Je cherche la patiente.", query="Durand"),
            call("find_slots", start_date=monday, practitioner_id=practice["practitioner"]),
            lambda messages: call(
                "book_appointment",
                patient_id=practice["patient"],
                practitioner_id=practice["practitioner"],
                start=first_slot(messages),
            ),
            *then,
        ]
    )


def chat(client: TestClient) -> int:
    response = client.get("/secretariat", follow_redirects=False)
    assert response.status_code == 303
    return int(response.headers["location"].rsplit("/", 1)[1])


def appointments(db: Session) -> list[Appointment]:
    db.expire_all()
    return list(db.exec(select(Appointment).where(Appointment.status == AppointmentStatus.booked)))


def test_books_only_after_confirmation(app, logged_in, staff, practice, db: Session) -> None:
    client = logged_in(staff.secretary)
    app.state.assistant.model_override = booking_script(
        practice, then=[say("C'est réservé lundi à 08:30.")]
    )
    conversation = chat(client)
    sent = events(
        client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "RDV Durand"})
    )
    kinds = [e["type"] for e in sent]
    assert kinds[-2:] == ["confirm", "done"]
    assert "token" in kinds and kinds.count("tool") == 2
    assert sent[-2]["actions"][0]["name"] == "book_appointment"
    assert appointments(db) == []  # proposed, not done

    state = client.get(f"/api/secretariat/c/{conversation}").json()
    card = state["pending"][0]
    assert card["title"] == "Réserver un rendez-vous"
    details = dict(map(tuple, card["details"]))
    assert details["Patient"].startswith("Durand Sophie")
    assert details["Début"].startswith("lundi ") and details["Début"].endswith("à 08:30")

    # A new message is refused while the proposal waits.
    busy = client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "Et ?"})
    assert busy.status_code == 409

    done = events(
        client.post(
            f"/api/secretariat/c/{conversation}/decisions",
            json={"decisions": [{"type": "approve"}]},
        )
    )
    assert [e["type"] for e in done][-2:] == ["answer", "done"]
    assert done[-2]["text"] == "C'est réservé lundi à 08:30."
    assert "book_appointment" in done[-2]["sources"]
    booked = appointments(db)
    assert len(booked) == 1
    start = booked[0].starts_at.astimezone(PARIS)
    assert (start.date(), start.hour, start.minute) == (next_monday(), 8, 30)
    assert booked[0].patient_id == practice["patient"]

    actions = [e.action for e in db.exec(select(AuditEvent)).all()]
    assert "assistant.approve" in actions
    agent_calls = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "mcp.tool_call", AuditEvent.record_id == "book_appointment"
        )
    ).all()
    assert [(e.actor_kind, e.actor_name) for e in agent_calls] == [
        ("agent", "assistant (secretaire)")
    ]
    page = client.get(f"/secretariat/c/{conversation}")
    assert page.status_code == 200
    assert "RDV Durand" in page.text and "réservé lundi" in page.text
    title = db.get(Conversation, conversation)
    assert title is not None and title.title == "RDV Durand"


def test_refusing_changes_nothing(app, logged_in, staff, practice, db: Session) -> None:
    client = logged_in(staff.secretary)
    model = booking_script(practice, then=[say("Entendu, je ne réserve pas.")])
    app.state.assistant.model_override = model
    conversation = chat(client)
    events(client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "RDV"}))
    done = events(
        client.post(
            f"/api/secretariat/c/{conversation}/decisions",
            json={"decisions": [{"type": "reject", "message": "Pas ce créneau"}]},
        )
    )
    assert done[-2]["text"] == "Entendu, je ne réserve pas."
    assert appointments(db) == []
    # The model was told the action did not run, with the secretary's reason.
    rejection = [m for m in model.calls[-1] if isinstance(m, ToolMessage)][-1]
    assert "Pas ce créneau" in rejection.text
    assert client.get(f"/api/secretariat/c/{conversation}").json()["pending"] == []


def test_edited_arguments_are_the_ones_executed(
    app, logged_in, staff, practice, db: Session
) -> None:
    client = logged_in(staff.secretary)
    app.state.assistant.model_override = booking_script(practice, then=[say("Réservé.")])
    conversation = chat(client)
    events(client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "RDV"}))
    later = datetime.combine(next_monday(), datetime.min.time()).replace(hour=15)
    events(
        client.post(
            f"/api/secretariat/c/{conversation}/decisions",
            json={"decisions": [{"type": "edit", "args": {"start": later.isoformat()}}]},
        )
    )
    booked = appointments(db)
    assert len(booked) == 1
    assert booked[0].starts_at.astimezone(PARIS).hour == 15
    assert "assistant.edit" in [e.action for e in db.exec(select(AuditEvent)).all()]


def test_a_tool_error_goes_back_to_the_model_and_the_turn_recovers(
    app, logged_in, staff, practice, db: Session
) -> None:
    client = logged_in(staff.secretary)
    sunday = datetime.combine(next_monday() - timedelta(days=1), datetime.min.time())
    seen: list[str] = []

    def after_error(messages: list[BaseMessage]):
        tool = [m for m in messages if isinstance(m, ToolMessage)][-1]
        seen.append(tool.status)
        return say("Ce créneau n'est pas possible ; je cherche un autre horaire.")

    app.state.assistant.model_override = ScriptedChatModel(
        script=[
            call(
                "book_appointment",
                patient_id=practice["patient"],
                practitioner_id=practice["practitioner"],
                start=sunday.replace(hour=10).isoformat(),
            ),
            after_error,
        ]
    )
    conversation = chat(client)
    events(client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "RDV"}))
    done = events(
        client.post(
            f"/api/secretariat/c/{conversation}/decisions",
            json={"decisions": [{"type": "approve"}]},
        )
    )
    tool = next(e for e in done if e["type"] == "tool")
    assert tool["status"] == "error" and tool["summary"]
    assert seen == ["error"]
    assert done[-2]["type"] == "answer" and "autre horaire" in done[-2]["text"]
    assert appointments(db) == []


def test_model_down_keeps_the_message_and_retry_goes_on(
    app, logged_in, staff, practice, db: Session
) -> None:
    client = logged_in(staff.secretary)
    app.state.assistant.model_override = ScriptedChatModel(
        script=[httpx.ConnectError("connection refused"), say("Bonjour, que puis-je faire ?")]
    )
    conversation = chat(client)
    failed = events(
        client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "Bonjour"})
    )
    error = failed[-1]
    assert error["type"] == "error" and error["retry"] == "resume"
    assert "conservé" in error["message"]
    kept = client.get(f"/api/secretariat/c/{conversation}").json()["messages"]
    assert [m["text"] for m in kept if m["kind"] == "user"] == ["Bonjour"]

    again = events(client.post(f"/api/secretariat/c/{conversation}/retry"))
    assert again[-2] == {"type": "answer", "text": "Bonjour, que puis-je faire ?", "sources": []}
    history = client.get(f"/api/secretariat/c/{conversation}").json()["messages"]
    assert [m["kind"] for m in history] == ["user", "assistant"]


def test_conversation_is_released_before_the_closing_event(app, client, staff, db) -> None:
    """A page acts on the closing event at once (retry, confirm, next message): by then the
    turn must no longer hold the conversation, or the page gets "already running" (409)."""
    assistant = app.state.assistant
    assistant.model_override = ScriptedChatModel(
        script=[httpx.ConnectError("connection refused"), say("Bonjour !")]
    )
    user = db.exec(select(User).where(User.username == staff.secretary)).one()

    async def act_on_closing_events() -> list[str]:
        seen: list[str] = []
        for message in ("Bonjour", "Encore"):
            await assistant.begin(user, "released-thread")
            async for event in assistant.turn(user, "released-thread", message=message):
                if event.type in ("error", "done"):
                    seen.append(event.type)
                    # The generator is paused here, as when the page has just read the line.
                    await assistant.begin(user, "released-thread")  # no TurnInProgress
                    assistant._busy.pop("released-thread", None)
        return seen

    assert client.portal.call(act_on_closing_events) == ["error", "done"]


def test_closing_events_wait_for_the_usage_and_the_conversation(
    app, logged_in, staff, db: Session
) -> None:
    """The page reloads or lists conversations on the closing events: by then the turn's
    tokens are counted and the conversation carries its title and model."""
    client = logged_in(staff.secretary)
    conversation_id = chat(client)
    user = db.exec(select(User).where(User.username == staff.secretary)).one()
    actor = Actor(kind=ActorKind.user, id=str(user.id), name=user.username)
    app.state.assistant.model_override = ScriptedChatModel(script=[say("Bonjour !")])
    engine = app.state.engine
    turns = AssistantTurns(app.state.assistant, lambda: Session(engine), app.state.settings)

    async def closing_events_as_seen() -> list[tuple[str, int, str]]:
        turn = await turns.begin_message(user, actor, conversation_id, "Bonjour le cabinet")
        seen = []
        async for event in turns.events(turn, lambda budget: budget.used):
            if event.type in ("answer", "done"):
                with Session(engine) as session:  # what a page reading now would find
                    used = token_budget.used(session, user)
                    conversation = session.get(Conversation, conversation_id)
                    assert conversation is not None
                    seen.append((event.type, used, conversation.title))
                    if event.type == "done":
                        assert event.data["budget"] == used
        return seen

    seen = client.portal.call(closing_events_as_seen)
    assert [(kind, title) for kind, _, title in seen] == [
        ("answer", "Bonjour le cabinet"),
        ("done", "Bonjour le cabinet"),
    ]
    assert all(used > 0 for _, used, _ in seen)


def test_a_turn_whose_audit_fails_never_holds_the_conversation(
    app, logged_in, staff, db: Session
) -> None:
    """If the message cannot be audited, the turn does not start and the conversation is
    free at once (not busy until it goes stale)."""
    client = logged_in(staff.secretary)
    conversation_id = chat(client)
    thread_id = db.get(Conversation, conversation_id).thread_id
    user = db.exec(select(User).where(User.username == staff.secretary)).one()
    actor = Actor(kind=ActorKind.user, id=str(user.id), name=user.username)
    assistant = app.state.assistant
    opened: list[Session] = []

    def sessions() -> Session:
        if opened:  # the checks' session works; the audit's does not
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        opened.append(Session(app.state.engine))
        return opened[-1]

    turns = AssistantTurns(assistant, sessions, app.state.settings)

    async def begin_then_begin_again() -> None:
        with pytest.raises(OperationalError):
            await turns.begin_message(user, actor, conversation_id, "Bonjour")
        await assistant.begin(user, thread_id)  # no TurnInProgress
        assistant.release(thread_id)

    client.portal.call(begin_then_begin_again)
    assert len(opened) == 1


def test_conversation_survives_a_restart(settings, staff, practice, db: Session) -> None:
    first = create_app(settings)
    with TestClient(first) as client:
        login(client, staff.secretary, PASSWORD)
        client.headers["x-csrf-token"] = client.get("/api/csrf").json()["csrf_token"]
        first.state.assistant.model_override = booking_script(practice, then=[])
        conversation = chat(client)
        events(client.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "RDV"}))
    first.state.engine.dispose()

    second = create_app(settings)
    with TestClient(second) as client:
        login(client, staff.secretary, PASSWORD)
        client.headers["x-csrf-token"] = client.get("/api/csrf").json()["csrf_token"]
        second.state.assistant.model_override = ScriptedChatModel(script=[say("Réservé.")])
        state = client.get(f"/api/secretariat/c/{conversation}").json()
        assert [p["name"] for p in state["pending"]] == ["book_appointment"]
        assert state["messages"][0]["kind"] == "user"
        events(
            client.post(
                f"/api/secretariat/c/{conversation}/decisions",
                json={"decisions": [{"type": "approve"}]},
            )
        )
    second.state.engine.dispose()
    assert len(appointments(db)) == 1


def test_conversations_are_private_and_staff_only(app, logged_in, staff, db: Session) -> None:
    client = logged_in(staff.secretary)
    conversation = chat(client)
    other = logged_in(staff.physician)
    assert other.get(f"/api/secretariat/c/{conversation}").status_code == 404
    assert (
        other.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "x"}).status_code
        == 404
    )
    admin = logged_in(staff.admin)
    assert admin.get("/secretariat").status_code == 403
    secretary = logged_in(staff.secretary)
    empty = secretary.post(f"/api/secretariat/c/{conversation}/messages", json={"message": "  "})
    assert empty.status_code == 422
    assert "detail" in empty.json()
    no_decision = secretary.post(
        f"/api/secretariat/c/{conversation}/decisions", json={"decisions": [{"type": "approve"}]}
    )
    assert no_decision.status_code == 409


def test_new_conversation_and_page(app, logged_in, staff, db: Session) -> None:
    client = logged_in(staff.secretary)
    first = chat(client)
    created = client.post("/secretariat/conversations", follow_redirects=False)
    assert created.status_code == 303
    second = int(created.headers["location"].rsplit("/", 1)[1])
    assert second != first
    page = client.get(f"/secretariat/c/{second}")
    assert page.status_code == 200
    assert 'role="log"' in page.text and "/static/secretariat.js" in page.text
    # No Ollama answers here: the page says the rules assistant is in use and what it can do.
    assert "Assistant à règles" in page.text and "avis médical" in page.text


def test_messages_per_user_are_limited(app, logged_in, staff, db: Session) -> None:
    app.state.settings = app.state.settings.model_copy(update={"assistant_messages_per_minute": 2})
    client = logged_in(staff.secretary)
    app.state.assistant.model_override = ScriptedChatModel(
        script=[say("Un."), say("Deux."), say("Trois.")]
    )
    conversation = chat(client)
    url = f"/api/secretariat/c/{conversation}/messages"
    assert events(client.post(url, json={"message": "un"}))[-2]["text"] == "Un."
    assert events(client.post(url, json={"message": "deux"}))[-2]["text"] == "Deux."
    refused = client.post(url, json={"message": "trois"})
    assert refused.status_code == 429
    assert "attendez une minute" in refused.json()["detail"]
    # Another user has their own allowance.
    other = logged_in(staff.physician)
    mine = chat(other)
    answered = events(other.post(f"/api/secretariat/c/{mine}/messages", json={"message": "x"}))
    assert answered[-2]["text"] == "Trois."
