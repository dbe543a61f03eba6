"""What a tool declares about its effects (its MCP annotations) is what both the agent's
confirmation step and the read-only HTTP scopes obey, deny by default: a tool registered
without annotations, or without ``readOnlyHint=True``, waits for the user and is refused to a
read-only client. And each read of patient data through a tool writes one read event."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from mcp.server.fastmcp import FastMCP
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import ToolAnnotations
from sqlmodel import Session, select

from agents.policy import ASSISTANT_TOOLS, needs_confirmation
from agents.scripted_model import ScriptedChatModel, call, say
from agents.secretary import build_secretary_agent, load_tools, open_sessions
from app.services.core.audit import Actor
from app.services.identity.mcp_clients import create_client
from mcp_servers.local import LocalServers
from mcp_servers.mount import SERVERS
from mcp_servers.runtime import ToolRuntime
from models.audit import ActorKind, AuditEvent
from models.documents import DocumentKind, GeneratedDocument
from prompts import RenderedPrompt
from tests.mcp.served import listed_tools, read_only_names
from tests.support.mcp_helpers import ADMIN, MCP_HEADERS, events, payload, post, rpc_call
from tests.support.preconsultation import book, send

# Added to a real server the way a hurried developer would: some without any annotations,
# one with annotations that do not say it is read-only, one honestly read-only.
UNDECLARED = ("purge_agenda", "export_patients")
VAGUE = "tidy_agenda"
DECLARED_READ = "count_patients"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def add_extra_tools(server: FastMCP, ran: list[str]) -> None:
    """The four extra tools; each records its name in ``ran`` when it runs."""

    def tool(name: str):  # a fresh function per tool: FastMCP keeps the function it is given
        def run() -> str:
            ran.append(name)
            return "fait"

        return run

    for name in UNDECLARED:
        server.add_tool(tool(name), name=name, description="Outil sans annotations.")
    server.add_tool(
        tool(VAGUE), name=VAGUE, description="Outil mal annoté.", annotations=ToolAnnotations()
    )
    server.add_tool(
        tool(DECLARED_READ),
        name=DECLARED_READ,
        description="Outil en lecture seule.",
        annotations=ToolAnnotations(readOnlyHint=True),
    )


def neutral_prompt() -> RenderedPrompt:
    return RenderedPrompt("neutre", 1, "Tu es un assistant. Tu peux utiliser tous les outils.")


# -- the agent's confirmation step ------------------------------------------------------------


@pytest.mark.anyio
async def test_the_confirmation_set_is_every_tool_not_annotated_read_only(engine, settings) -> None:
    servers = LocalServers(engine, settings).for_user(1, "medecin")
    listed = [t for tools in (await listed_tools(servers)).values() for t in tools]
    served = frozenset(t.name for t in listed)
    loaded = await load_tools(servers, ASSISTANT_TOOLS)
    assert {t.name for t in loaded} == served
    gated = {t.name for t in loaded if needs_confirmation(t)}
    assert gated == served - read_only_names(listed)
    assert "book_appointment" in gated and "find_slots" not in gated


@pytest.mark.anyio
async def test_a_tool_without_a_read_only_annotation_waits_for_the_user(
    engine, settings, db: Session
) -> None:
    servers = LocalServers(engine, settings).for_user(1, "medecin")
    ran: list[str] = []
    add_extra_tools(servers["agenda"], ran)
    extra = frozenset({*UNDECLARED, VAGUE, DECLARED_READ})
    tools = {t.name: t for t in await load_tools(servers, extra)}
    assert set(tools) == extra  # loaded through langchain-mcp-adapters, over MCP
    for name in (*UNDECLARED, VAGUE):
        assert needs_confirmation(tools[name]), name
    assert not needs_confirmation(tools[DECLARED_READ])

    for name in (*UNDECLARED, VAGUE):
        model = ScriptedChatModel(script=[call(name), say("Fait.")])
        agent = build_secretary_agent(
            model,
            list(tools.values()),
            prompt=neutral_prompt,
            allowed=extra,
            checkpointer=InMemorySaver(),
        )
        async with open_sessions(servers):
            result = await agent.ainvoke(
                {"messages": [("user", "vas-y")]}, {"configurable": {"thread_id": name}}
            )
        [interrupt] = result["__interrupt__"]
        assert [r["name"] for r in interrupt.value["action_requests"]] == [name]
        assert not any(isinstance(m, ToolMessage) for m in result["messages"])
    assert ran == []

    model = ScriptedChatModel(script=[call(DECLARED_READ), say("Compté.")])
    agent = build_secretary_agent(
        model, list(tools.values()), prompt=neutral_prompt, allowed=extra,
        checkpointer=InMemorySaver(),
    )  # fmt: skip
    async with open_sessions(servers):
        result = await agent.ainvoke(
            {"messages": [("user", "combien ?")]}, {"configurable": {"thread_id": "read"}}
        )
    assert "__interrupt__" not in result
    assert ran == [DECLARED_READ]


# -- the read-only scope over HTTP --------------------------------------------------------------


def test_a_read_only_client_is_refused_a_tool_without_a_read_only_annotation(
    app, client: TestClient, db: Session
) -> None:
    ran: list[str] = []
    add_extra_tools(app.state.mcp_servers["agenda"], ran)
    _, reader = create_client(db, ADMIN, "Lecture", areas=["agenda"], can_write=False)
    _, writer = create_client(db, ADMIN, "Poste accueil", areas=["agenda"])
    db.commit()

    def listed(token: str) -> set[str]:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        response = client.post(
            "/mcp/agenda/", json=body, headers={**MCP_HEADERS, "authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return {t["name"] for t in response.json()["result"]["tools"]}

    assert {*UNDECLARED, VAGUE, DECLARED_READ} <= listed(writer)  # served, not hidden
    seen = listed(reader)
    assert DECLARED_READ in seen and "find_slots" in seen
    assert not seen & {*UNDECLARED, VAGUE, "book_appointment"}

    for name in (*UNDECLARED, VAGUE, "a_tool_nobody_serves"):
        response = post(client, "agenda", rpc_call(name), f"Bearer {reader}")
        result = response.json()["result"]
        assert result["isError"], name
        assert f"lecture seule : l'outil « {name} »" in result["content"][0]["text"]
    assert ran == []
    denied = events(db, "mcp.denied")
    assert [e.record_id for e in denied] == [*UNDECLARED, VAGUE, "a_tool_nobody_serves"]
    assert all(e.details == {"reason": "read_only"} for e in denied)

    response = post(client, "agenda", rpc_call(DECLARED_READ), f"Bearer {reader}")
    assert not response.json()["result"]["isError"]
    assert ran == [DECLARED_READ]


# -- one read, one read event ----------------------------------------------------------------


def documents_for(db: Session) -> dict[str, Any]:
    """A booked appointment with a pre-consultation, its summary and a letter."""
    booked = book(db)
    preconsultation = send(db, booked.appointment_id).preconsultation
    made = {"model": "m", "prompt_id": "p", "prompt_version": "1", "prompt_hash": "h"}
    summary = GeneratedDocument(
        kind=DocumentKind.summary,
        patient_id=booked.patient_id,
        appointment_id=booked.appointment_id,
        preconsultation_id=preconsultation.id,
        text="Toux depuis 3 jours.",
        **made,
    )
    letter = GeneratedDocument(
        kind=DocumentKind.letter, patient_id=booked.patient_id, template="certificat", **made
    )
    db.add(summary)
    db.add(letter)
    db.commit()
    return {
        "appointment": booked.appointment_id,
        "patient": booked.patient_id,
        "preconsultation": preconsultation.id,
        "summary": summary.id,
        "letter": letter.id,
    }


READS = [
    ("letters", "get_letter", "letter", "letter.read", "generated_document", "letter"),
    (
        "questionnaires",
        "get_preconsultation_summary",
        "appointment",
        "summary.read",
        "generated_document",
        "summary",
    ),
    (
        "questionnaires",
        "preconsultation_status",
        "appointment",
        "preconsultation.read",
        "preconsultation",
        "preconsultation",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("area", "tool", "argument", "action", "record_type", "record"),
    READS,
    ids=[r[1] for r in READS],
)
async def test_one_read_through_a_tool_writes_one_read_event(
    engine, settings, db: Session, area, tool, argument, action, record_type, record
) -> None:
    ids = documents_for(db)
    actor = Actor(kind=ActorKind.agent, id="1", name="assistant (medecin)")
    server = SERVERS[area](ToolRuntime(engine, settings, actor))
    db.expire_all()
    first = max(e.id or 0 for e in db.exec(select(AuditEvent)).all())
    name = {"letter": "letter_id", "appointment": "appointment_id"}[argument]
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        payload(await client.call_tool(tool, {name: ids[argument]}))
    db.expire_all()
    written = db.exec(select(AuditEvent).where(AuditEvent.id > first)).all()
    assert sorted((e.action, e.record_type, e.record_id) for e in written) == sorted(
        [(action, record_type, str(ids[record])), ("mcp.tool_call", "mcp_tool", tool)]
    )
    [read] = [e for e in written if e.action == action]
    assert (read.patient_id, read.actor_name) == (ids["patient"], "assistant (medecin)")
