"""The per-user token budget of the assistant: what a turn consumes is counted (the model's
own usage, else characters / 4), stored per user, and a spent budget refuses new messages
with a 429 until older turns leave the rolling 24-hour window."""

import re
from datetime import UTC, timedelta

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel, call, say
from agents.usage import TokenMeter, estimate_tokens
from app.services.assistant import token_budget
from app.services.core.errors import TooManyAttempts
from models.assistant_usage import AssistantUsage
from models.audit import AuditEvent
from models.types import utcnow
from models.users import User
from tests.assistant.test_secretary_chat import chat, events
from tests.conftest import PASSWORD
from tests.support.browser import sign_in
from tests.support.practice import PARIS, add_practitioner


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def reported(text: str, input_tokens: int, output_tokens: int, **tool: object) -> AIMessage:
    """A scripted answer carrying the usage a real model (Ollama, llama.cpp) reports."""
    message = call(str(tool.pop("name")), text, **tool) if tool else say(text)
    message.usage_metadata = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    return message


def user(db: Session, username: str) -> User:
    return db.exec(select(User).where(User.username == username)).one()


def rows(db: Session, username: str) -> list[AssistantUsage]:
    db.expire_all()
    query = select(AssistantUsage).where(AssistantUsage.user_id == user(db, username).id)
    return list(db.exec(query.order_by(AssistantUsage.id)))


@pytest.mark.anyio
async def test_the_meter_counts_reported_usage_else_estimates() -> None:
    model = ScriptedChatModel(
        script=[
            reported("ok", 120, 8),
            say("y" * 40),
            call("find_slots", start_date="2027-03-15"),
            httpx.ConnectError("down"),
        ]
    )
    meter = TokenMeter()
    config = {"callbacks": [meter]}
    await model.ainvoke([HumanMessage("x" * 400)], config=config)  # type: ignore[arg-type]
    assert (meter.usage.input_tokens, meter.usage.output_tokens) == (120, 8)
    assert not meter.usage.estimated

    async for _ in model.astream([HumanMessage("x" * 400)], config=config):  # type: ignore[arg-type]
        pass  # streamed, with no usage reported: 400 / 4 in, 40 / 4 out
    assert (meter.usage.input_tokens, meter.usage.output_tokens) == (220, 18)
    assert meter.usage.estimated and meter.usage.calls == 2

    await model.ainvoke([HumanMessage("x" * 3)], config=config)  # type: ignore[arg-type]
    tool_call = len("find_slots") + len('{"start_date": "2027-03-15"}')
    assert meter.usage.input_tokens == 221  # 3 characters round up to one token
    assert meter.usage.output_tokens == 18 + estimate_tokens(tool_call)

    with pytest.raises(httpx.ConnectError):  # a model that is down consumed nothing
        await model.ainvoke([HumanMessage("x" * 400)], config=config)  # type: ignore[arg-type]
    assert meter.usage.calls == 3 and meter.usage.input_tokens == 221


def test_each_turn_is_stored_for_its_user(app, logged_in, staff, db: Session) -> None:
    add_practitioner(db)
    db.commit()
    app.state.assistant.model_override = ScriptedChatModel(
        script=[
            call("list_practitioners"),  # no usage reported: estimated from the characters
            reported("Le Dr Martin consulte.", 2500, 30),
            reported(
                "Je propose l'annulation.", 2600, 40, name="cancel_appointment", appointment_id=1
            ),
            reported("Entendu.", 2700, 5),
        ]
    )
    client = logged_in(staff.secretary)
    conversation = chat(client)
    url = f"/api/secretariat/c/{conversation}"
    events(client.post(f"{url}/messages", json={"message": "Qui consulte ?"}))
    [first] = rows(db, "secretaire")
    assert first.model_calls == 2 and first.estimated
    assert first.input_tokens > 2500 and first.output_tokens > 30  # reported + estimated
    assert first.model and first.occurred_at > utcnow() - timedelta(minutes=1)

    events(client.post(f"{url}/messages", json={"message": "Annule"}))
    decided = events(client.post(f"{url}/decisions", json={"decisions": [{"type": "reject"}]}))
    _, proposal, decision = rows(db, "secretaire")
    assert (proposal.input_tokens, proposal.output_tokens, proposal.estimated) == (2600, 40, False)
    assert (decision.input_tokens, decision.output_tokens) == (2700, 5)  # decisions count too

    budget = client.get(url).json()["budget"]
    used = sum(r.input_tokens + r.output_tokens for r in rows(db, "secretaire"))
    assert budget == {
        "tokens_per_day": app.state.settings.assistant_tokens_per_day,
        "used": used,
        "remaining": app.state.settings.assistant_tokens_per_day - used,
        "frees_at": None,
    }
    page = client.get(f"/secretariat/c/{conversation}")
    remaining = f"{budget['remaining']:,}".replace(",", " ")
    assert f"{remaining} jetons restants" in page.text
    # The turn's last event carries the same line, counted after the turn: the page
    # updates it without a reload.
    assert decided[-1]["type"] == "done"
    assert decided[-1]["budget"]["spent"] is False
    assert f"{remaining} jetons restants" in decided[-1]["budget"]["text"]
    assert rows(db, "medecin") == []  # another user's allowance is untouched


def test_a_spent_budget_refuses_new_messages_until_the_window_rolls(
    app, logged_in, staff, db: Session
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"assistant_tokens_per_day": 1000})
    app.state.assistant.model_override = ScriptedChatModel(
        script=[
            reported("Je propose.", 900, 200, name="cancel_appointment", appointment_id=1),
            reported("Refus noté.", 100, 5),
            say("Bonjour docteur."),
        ]
    )
    client = logged_in(staff.secretary)
    conversation = chat(client)
    url = f"/api/secretariat/c/{conversation}"
    # A turn that begins under the budget finishes, even past it.
    first = events(client.post(f"{url}/messages", json={"message": "Annule le rendez-vous 1"}))
    assert first[-2]["type"] == "confirm"

    refused = client.post(f"{url}/messages", json={"message": "Et le suivant ?"})
    assert refused.status_code == 429
    detail = refused.json()["detail"]
    assert "Budget quotidien de l'assistant épuisé" in detail and "conservé" in detail
    frees_at = (rows(db, "secretaire")[0].occurred_at + timedelta(days=1)).astimezone(PARIS)
    assert re.search(rf"vers {frees_at:%H:%M}\.$", detail), detail
    english = client.post(f"{url}/messages?lang=en", json={"message": "And?"})
    assert english.status_code == 429
    assert "daily budget for your account is spent" in english.json()["detail"]
    assert client.post(f"{url}/retry").status_code == 429
    # Refused before anything was kept: the text stays in the page's input, not the thread.
    state = client.get(url).json()
    assert [m["text"] for m in state["messages"] if m["kind"] == "user"] == [
        "Annule le rendez-vous 1"
    ]
    assert state["budget"]["remaining"] == 0
    assert state["budget"]["frees_at"] == (frees_at.astimezone(UTC)).isoformat()
    messages = db.exec(select(AuditEvent).where(AuditEvent.action == "assistant.message")).all()
    assert len(messages) == 1
    page = client.get(f"/secretariat/c/{conversation}")
    assert "épuisé pour votre compte" in page.text

    # The waiting proposal can still be decided: a spent budget never strands an action.
    decided = events(client.post(f"{url}/decisions", json={"decisions": [{"type": "reject"}]}))
    assert decided[-2]["text"] == "Refus noté."

    # Another user has their own budget.
    other = logged_in(staff.physician)
    mine = chat(other)
    hello = events(other.post(f"/api/secretariat/c/{mine}/messages", json={"message": "Bonjour"}))
    assert hello[-2]["text"] == "Bonjour docteur."


def test_the_budget_window_rolls_and_is_per_user(db: Session, staff) -> None:
    secretary, physician = user(db, "secretaire"), user(db, "medecin")
    now = utcnow()

    def spend(who: User, hours_ago: float, tokens: int) -> None:
        token_budget.record(
            db, who, input_tokens=tokens - 10, output_tokens=10, model_calls=1, estimated=False,
            model="test", now=now - timedelta(hours=hours_ago),
        )  # fmt: skip

    spend(secretary, 30, 5000)  # outside the window: forgotten
    spend(secretary, 20, 300)
    spend(secretary, 10, 400)
    spend(secretary, 1, 300)
    spend(physician, 2, 900)
    db.commit()

    assert token_budget.used(db, secretary, now=now) == 1000
    assert token_budget.used(db, physician, now=now) == 900
    spent = token_budget.budget(db, secretary, per_day=1000, now=now)
    assert spent.spent and spent.remaining == 0
    # The oldest turn in the window (20 h ago) leaving it brings the use under the limit.
    assert spent.frees_at == now - timedelta(hours=20) + timedelta(days=1)
    with pytest.raises(TooManyAttempts) as refused:
        token_budget.check(db, secretary, per_day=1000, tz=PARIS, now=now)
    local = spent.frees_at.astimezone(PARIS)
    assert f"vers {local:%H:%M}" in refused.value.fr and f"around {local:%H:%M}" in refused.value.en
    token_budget.check(db, physician, per_day=1000, tz=PARIS, now=now)  # not spent

    later = now + timedelta(hours=4, minutes=1)
    assert token_budget.used(db, secretary, now=later) == 700
    assert token_budget.check(db, secretary, per_day=1000, now=later).remaining == 300
    # Two turns must leave when the last one alone would not do.
    tight = token_budget.budget(db, secretary, per_day=500, now=now)
    assert tight.frees_at == now - timedelta(hours=10) + timedelta(days=1)


@pytest.mark.browser
def test_the_page_keeps_the_text_when_the_budget_is_spent(
    app, browser_page, db: Session, staff
) -> None:
    secretary = user(db, "secretaire")
    token_budget.record(
        db, secretary, input_tokens=app.state.settings.assistant_tokens_per_day, output_tokens=0,
        model_calls=1, estimated=False, model="test",
    )  # fmt: skip
    db.commit()
    app.state.assistant.model_override = ScriptedChatModel(script=[])
    page = browser_page
    sign_in(page, "/secretariat", "secretaire", PASSWORD, landing="**/secretariat/c/*")
    box = page.get_by_label("Votre demande")
    box.fill("Un rendez-vous pour Mme Durand")
    box.press("Enter")
    alert = page.locator("#chat-error")
    alert.wait_for()
    assert "Budget quotidien" in alert.inner_text()
    assert box.input_value() == "Un rendez-vous pour Mme Durand"
    assert page.off_box.urls == []
