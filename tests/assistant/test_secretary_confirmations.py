"""What a confirmation runs: a proposed action's time words are pinned to one concrete start
when the card is raised (confirming after midnight books the day the card showed), and an
action the secretary edited before confirming is the one the model and the saved conversation
see afterwards. Real MCP tools, a scripted model, the real agent graph."""

from datetime import datetime

import pytest
import time_machine
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from sqlmodel import Session, select

from agents.policy import allowed_tools
from agents.scripted_model import ScriptedChatModel, call, say
from agents.secretary import build_secretary_agent, load_tools, open_sessions
from agents.turns import pending_actions
from app.services.assistant.action_preview import describe
from mcp_servers.local import LocalServers
from models.appointments import Appointment
from models.users import Role
from prompts import RenderedPrompt, load_prompt
from tests.support.practice import PARIS, add_patient, add_practitioner, paris


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def prompt() -> RenderedPrompt:
    return load_prompt("secretary").render(
        practice="Cabinet", user="Marie", today="lundi 15 mars 2027", now="23:58",
        timezone="Europe/Paris",
    )  # fmt: skip


def booked(db: Session) -> list[datetime]:
    db.expire_all()
    return [a.starts_at.astimezone(PARIS) for a in db.exec(select(Appointment)).all()]


def book_call(messages: list) -> AIMessage:
    return next(
        m
        for m in messages
        if isinstance(m, AIMessage) and any(c["name"] == "book_appointment" for c in m.tool_calls)
    )


@pytest.mark.anyio
async def test_time_words_are_pinned_when_the_card_is_raised(engine, settings, db) -> None:
    doctor = add_practitioner(db, hours={1: [("08:30", "12:30")], 2: [("08:30", "12:30")]})
    patient = add_patient(db, "Durand", "Sophie")
    db.commit()
    servers = LocalServers(engine, settings).for_user(1, "secretaire")
    allowed = allowed_tools(Role.secretary)
    tools = await load_tools(servers, allowed)
    model = ScriptedChatModel(
        script=[
            call("book_appointment", patient_id=patient, practitioner_id=doctor.id,
                 when="demain à 9h"),
            say("Réservé."),
        ]
    )  # fmt: skip
    clock = {"now": paris(2027, 3, 15, 23, 58)}  # Monday, two minutes before midnight
    agent = build_secretary_agent(
        model, tools, prompt=prompt, allowed=allowed, checkpointer=InMemorySaver(),
        clock=lambda: clock["now"], tz=PARIS,
    )  # fmt: skip
    config = {"configurable": {"thread_id": "pin"}}
    with time_machine.travel(clock["now"], tick=False):
        async with open_sessions(servers):
            await agent.ainvoke({"messages": [("user", "RDV demain 9h")]}, config)
    [action] = pending_actions(await agent.aget_state(config))
    assert "when" not in action["args"]
    assert datetime.fromisoformat(action["args"]["start"]) == paris(2027, 3, 16, 9, 0)
    card = dict(describe(db, action["name"], action["args"], PARIS).details)
    assert card["Début"] == "mardi 16 mars 2027 à 09:00"

    # She confirms seven minutes later, on Tuesday: "demain" would now be Wednesday.
    clock["now"] = paris(2027, 3, 16, 0, 5)
    with time_machine.travel(clock["now"], tick=False):
        async with open_sessions(servers):
            await agent.ainvoke(Command(resume={"decisions": [{"type": "approve"}]}), config)
    assert booked(db) == [paris(2027, 3, 16, 9, 0)]


@pytest.mark.anyio
async def test_words_that_name_no_single_time_are_left_to_the_tool(engine, settings, db) -> None:
    doctor = add_practitioner(db)
    patient = add_patient(db, "Durand", "Sophie")
    db.commit()
    servers = LocalServers(engine, settings).for_user(1, "secretaire")
    allowed = allowed_tools(Role.secretary)
    tools = await load_tools(servers, allowed)
    model = ScriptedChatModel(
        script=[
            call("book_appointment", patient_id=patient, practitioner_id=doctor.id,
                 when="mardi matin"),
        ]
    )  # fmt: skip
    agent = build_secretary_agent(
        model, tools, prompt=prompt, allowed=allowed, checkpointer=InMemorySaver(),
        clock=lambda: paris(2027, 3, 15, 10, 0), tz=PARIS,
    )  # fmt: skip
    config = {"configurable": {"thread_id": "window"}}
    async with open_sessions(servers):
        await agent.ainvoke({"messages": [("user", "RDV mardi matin")]}, config)
    [action] = pending_actions(await agent.aget_state(config))
    assert action["args"]["when"] == "mardi matin" and "start" not in action["args"]


@pytest.mark.anyio
async def test_the_model_sees_the_arguments_the_secretary_edited(engine, settings, db) -> None:
    doctor = add_practitioner(db)
    patient = add_patient(db, "Durand", "Sophie")
    db.commit()
    servers = LocalServers(engine, settings).for_user(1, "secretaire")
    allowed = allowed_tools(Role.secretary)
    tools = await load_tools(servers, allowed)
    proposed = paris(2027, 3, 16, 8, 30).isoformat()
    edited = paris(2027, 3, 16, 11, 10).isoformat()
    model = ScriptedChatModel(
        script=[
            call("book_appointment", patient_id=patient, practitioner_id=doctor.id,
                 start=proposed),
            say("Réservé."),
            say("C'est noté."),
        ]
    )  # fmt: skip
    agent = build_secretary_agent(
        model, tools, prompt=prompt, allowed=allowed, checkpointer=InMemorySaver(),
        clock=lambda: paris(2027, 3, 15, 10, 0), tz=PARIS,
    )  # fmt: skip
    config = {"configurable": {"thread_id": "edit"}}
    args = {"patient_id": patient, "practitioner_id": doctor.id, "start": edited}
    decision = {"type": "edit", "edited_action": {"name": "book_appointment", "args": args}}
    with time_machine.travel(paris(2027, 3, 15, 10, 0), tick=False):
        async with open_sessions(servers):
            await agent.ainvoke({"messages": [("user", "RDV mardi")]}, config)
            await agent.ainvoke(Command(resume={"decisions": [decision]}), config)
            await agent.ainvoke({"messages": [("user", "Merci")]}, config)
    assert booked(db) == [paris(2027, 3, 16, 11, 10)]
    # The model's next calls, in this turn and the following one, carry her arguments.
    for seen in model.calls[1:]:
        assert book_call(seen).tool_calls[0]["args"]["start"] == edited
        assert proposed not in str([m.content for m in seen])
    saved = (await agent.aget_state(config)).values["messages"]
    assert book_call(saved).tool_calls[0]["args"]["start"] == edited
