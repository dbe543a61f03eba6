"""Access to the MCP tools, generated from what the servers themselves list over MCP: every
tool of every area refuses callers without a valid bearer token and serves a valid one; staff
sessions do not open the MCP endpoints and MCP tokens open no staff route; every tool declares
its effects (MCP annotations) and is known to the agent policy, each role's agent loads exactly
its tools, and the policy and the confirmation step hold in code for every tool a role may not
use or that is not annotated read-only."""

import re
import time
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import Tool
from sqlmodel import Session

from agents.policy import ASSISTANT_TOOLS, TOOLS_BY_ROLE, allowed_tools, needs_confirmation
from agents.scripted_model import ScriptedChatModel, call, say
from agents.secretary import build_secretary_agent, load_tools, open_sessions
from app.config.settings import Settings
from app.main import create_app
from app.services.identity.mcp_clients import create_client, revoke_client
from app.web.route_table import route_table
from mcp_servers.local import LocalServers
from mcp_servers.runtime import VERIFIED_FOR, BearerTokenGuard
from models.users import Role
from prompts import RenderedPrompt, load_prompt
from tests.mcp.served import read_only_names
from tests.support.mcp_helpers import ADMIN, counts, events, post, rpc_call, spy_tool_calls
from tests.support.practice import add_patient, add_practitioner


def _served() -> tuple[dict[str, list[Tool]], dict[str, Any]]:
    """The tools each mounted server lists to a real MCP client, and the app's route table."""
    app = create_app(Settings(_env_file=None, database_url="sqlite://", secret_key="x"))

    async def listing() -> dict[str, list[Tool]]:
        out = {}
        for area, server in app.state.mcp_servers.items():
            async with create_connected_server_and_client_session(server._mcp_server) as client:
                out[area] = (await client.list_tools()).tools
        return out

    tools = anyio.run(listing)
    routes = list(route_table(app))
    app.state.engine.dispose()
    return tools, {"routes": routes}


TOOLS, _TABLE = _served()
ROUTES = _TABLE["routes"]
CASES = [(area, tool) for area, tools in TOOLS.items() for tool in tools]
ALL_TOOLS = frozenset(tool.name for _, tool in CASES)
READS = read_only_names(tool for _, tool in CASES)
WRITES = ALL_TOOLS - READS


def _staff_requests() -> list[tuple[str, str]]:
    out = []
    for entry in ROUTES:
        if not entry.methods or isinstance(entry.guard, str):
            continue
        path = re.sub(r"\{[^}]+\}", "1", entry.path)
        out += [(m, path) for m in sorted(entry.methods - {"HEAD"})]
    return out


STAFF_REQUESTS = _staff_requests()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tokens(db: Session) -> dict[str, str]:
    """A valid client token and a revoked one."""
    _, valid = create_client(db, ADMIN, "Poste accueil")
    revoked, revoked_token = create_client(db, ADMIN, "Ancien poste")
    revoke_client(db, ADMIN, revoked.id or 0)
    db.commit()
    return {"valid": valid, "revoked": revoked_token}


@pytest.fixture
def reached(app, monkeypatch) -> list[tuple[str, str]]:
    """(area, tool) of every call that got past the HTTP layer into a server's tools."""
    return spy_tool_calls(app, monkeypatch)


# -- the HTTP endpoints ------------------------------------------------------------------------


def test_every_mcp_mount_is_bearer_guarded_and_lists_tools() -> None:
    mounts = {e.path: e.guard for e in ROUTES if e.path.startswith("/mcp")}
    assert mounts == {f"/mcp/{area}": "bearer" for area in TOOLS}
    assert all(TOOLS.values())
    assert len(ALL_TOOLS) == len(CASES), "two areas list a tool under the same name"
    assert {"find_slots", "send_preconsultation", "draft_letter"} <= ALL_TOOLS


@pytest.mark.parametrize(
    ("area", "tool"), CASES, ids=[f"{area}.{tool.name}" for area, tool in CASES]
)
def test_each_tool_needs_a_valid_token(
    client: TestClient, db: Session, tokens, reached, area: str, tool: Tool
) -> None:
    before = counts(db)
    bad = {
        "no header": None,
        "empty bearer": "Bearer ",
        "unknown token": "Bearer acc_" + "x" * 43,
        "revoked token": f"Bearer {tokens['revoked']}",
        "tampered token": f"Bearer {tokens['valid']}x",
        "token without its prefix": f"Bearer {tokens['valid'].removeprefix('acc_')}",
        "other scheme": f"Basic {tokens['valid']}",
    }
    for label, authorization in bad.items():
        response = post(client, area, rpc_call(tool.name), authorization)
        assert response.status_code == 401, (label, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="accueil-mcp"'
        assert "Jeton MCP manquant ou invalide" in response.json()["error"], label
        assert "result" not in response.json()
    assert reached == []
    assert events(db, "mcp.tool_call") == []
    denied = events(db, "mcp.denied")
    assert len(denied) == len(bad) and {e.record_id for e in denied} == {area}
    assert counts(db) == before

    # The valid token gets through to the tool; without arguments the call fails only on
    # them, with the bare French message (a tool with no required argument answers).
    response = post(client, area, rpc_call(tool.name), f"Bearer {tokens['valid']}")
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert reached == [(area, tool.name)]
    required = tool.inputSchema.get("required", [])
    text = " ".join(c.get("text", "") for c in result["content"])
    assert "Jeton" not in text and "Erreur interne" not in text and "Error" not in text, text
    if required:
        assert result["isError"] and text.startswith("Arguments invalides"), text
        assert any(name in text for name in required), text
    elif not result["isError"]:
        [ok] = events(db, "mcp.tool_call")
        assert (ok.actor_kind, ok.actor_name, ok.record_id) == (
            "mcp_client",
            "Poste accueil",
            tool.name,
        )
    assert counts(db) == before


def test_a_revoked_token_stops_working_once_its_short_cache_expires(
    app, client: TestClient, db: Session, reached
) -> None:
    client_row, token = create_client(db, ADMIN, "Poste consultation")
    db.commit()
    bearer = f"Bearer {token}"
    assert post(client, "agenda", rpc_call("list_practitioners"), bearer).status_code == 200
    guards = [r.app for r in app.routes if isinstance(getattr(r, "app", None), BearerTokenGuard)]
    agenda = next(g for g in guards if g.server == "agenda")
    [(_, expires)] = agenda._verified.values()
    assert expires <= time.monotonic() + VERIFIED_FOR  # trusted a few seconds at most
    revoke_client(db, ADMIN, client_row.id or 0)
    db.commit()
    # another area checks the database at once
    assert post(client, "letters", rpc_call("list_letter_templates"), bearer).status_code == 401
    for key, (actor, _) in list(agenda._verified.items()):
        agenda._verified[key] = (actor, time.monotonic() - 0.1)  # the delay has passed
    refused = post(client, "agenda", rpc_call("list_practitioners"), bearer)
    assert refused.status_code == 401
    assert reached == [("agenda", "list_practitioners")]


def test_staff_sessions_do_not_open_the_mcp_endpoints(logged_in, db: Session, reached) -> None:
    for username in ("secretaire", "medecin", "admin"):
        client = logged_in(username)
        for area, tools in TOOLS.items():
            listing = post(client, area, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert listing.status_code == 401, (username, area)
            for tool in tools:
                assert post(client, area, rpc_call(tool.name)).status_code == 401
    assert reached == [] and events(db, "mcp.tool_call") == []


def test_an_mcp_token_opens_no_staff_route(client: TestClient, tokens) -> None:
    assert len(STAFF_REQUESTS) > 50
    headers = {"authorization": f"Bearer {tokens['valid']}", "accept": "application/json"}
    opened = []
    for method, path in STAFF_REQUESTS:
        response = client.request(method, path, headers=headers, follow_redirects=False)
        if response.status_code not in (401, 403) or "connecter" not in response.json()["detail"]:
            opened.append((method, path, response.status_code))
    assert opened == []


# -- the agent's policy ----------------------------------------------------------------------


def prompt() -> RenderedPrompt:
    return load_prompt("secretary").render(
        practice="Cabinet", user="Marie", today="lundi 15 mars 2027", now="09:10",
        timezone="Europe/Paris",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("area", "tool"), CASES, ids=[f"{area}.{tool.name}" for area, tool in CASES]
)
def test_every_tool_declares_its_effects(area: str, tool: Tool) -> None:
    annotations = tool.annotations
    assert annotations is not None, f"{area}.{tool.name} has no MCP annotations"
    assert isinstance(annotations.readOnlyHint, bool)
    if not annotations.readOnlyHint:  # a write says whether it overwrites and can be repeated
        assert isinstance(annotations.destructiveHint, bool)
        assert isinstance(annotations.idempotentHint, bool)


def test_reads_and_writes_are_the_expected_ones() -> None:
    assert {"find_slots", "get_letter", "search_practice_knowledge"} <= READS
    assert {"book_appointment", "cancel_appointment", "send_preconsultation"} <= WRITES
    assert len(WRITES) == 7


def test_the_policy_knows_exactly_the_served_tools() -> None:
    unknown = ALL_TOOLS - ASSISTANT_TOOLS
    assert not unknown, f"served tools missing from agents/policy.py: {unknown}"
    stale = ASSISTANT_TOOLS - ALL_TOOLS
    assert not stale, f"agents/policy.py names tools nobody serves: {stale}"
    assert set(TOOLS_BY_ROLE) == set(Role), "every role has an explicit tool set"
    for role in Role:
        assert allowed_tools(role) <= ALL_TOOLS


@pytest.mark.anyio
@pytest.mark.parametrize("role", list(Role))
async def test_each_role_loads_exactly_its_allowed_tools(engine, settings, role: Role) -> None:
    servers = LocalServers(engine, settings).for_user(1, role.value)
    tools = await load_tools(servers, allowed_tools(role))
    names = [t.name for t in tools]
    assert sorted(names) == sorted(allowed_tools(role))
    assert len(names) == len(set(names))


FORBIDDEN = [(role, sorted(ALL_TOOLS - allowed_tools(role))) for role in Role]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("role", "forbidden"),
    [(r, f) for r, f in FORBIDDEN if f],
    ids=[r.value for r, f in FORBIDDEN if f],
)
async def test_tools_outside_the_role_are_refused_by_code(
    engine, settings, db: Session, role: Role, forbidden: list[str]
) -> None:
    add_practitioner(db)
    add_patient(db)
    db.commit()
    before = counts(db)
    servers = LocalServers(engine, settings).for_user(1, role.value)
    allowed = allowed_tools(role)
    tools = await load_tools(servers, allowed)  # as the app builds it: a model may still
    # name any tool it has heard of
    control = ["list_practitioners"] if "list_practitioners" in allowed else []
    model = ScriptedChatModel(
        script=[*(call(name) for name in control + forbidden), say("Je ne peux pas.")]
    )
    agent = build_secretary_agent(
        model, tools, prompt=prompt, allowed=allowed, checkpointer=InMemorySaver(),
        max_tool_calls=100,
    )  # fmt: skip
    async with open_sessions(servers):
        result = await agent.ainvoke(
            {"messages": [("user", "tout")]}, {"configurable": {"thread_id": role.value}}
        )
    replies = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.name for m in replies] == control + forbidden
    for reply in replies[len(control) :]:
        assert reply.status == "error" and "non autorisé" in reply.text, reply.text
    assert all(r.status == "success" for r in replies[: len(control)])
    ran = {e.record_id for e in events(db, "mcp.tool_call")}
    assert ran == set(control)  # no forbidden tool reached a server
    assert counts(db) == before


def test_physicians_may_use_every_tool_and_admins_none() -> None:
    assert allowed_tools(Role.physician) == ALL_TOOLS
    assert allowed_tools(Role.admin) == frozenset()


@pytest.mark.anyio
@pytest.mark.parametrize("role", [r for r in Role if allowed_tools(r) & WRITES])
async def test_every_write_tool_of_a_role_waits_for_confirmation(
    engine, settings, db: Session, role: Role
) -> None:
    servers = LocalServers(engine, settings).for_user(1, role.value)
    allowed = allowed_tools(role)
    tools = await load_tools(servers, allowed)
    # The policy's confirmation set is exactly the tools not annotated read-only.
    assert {t.name for t in tools if needs_confirmation(t)} == allowed & WRITES
    for name in sorted(allowed & WRITES):
        model = ScriptedChatModel(script=[call(name, patient_id=1), say("Fait.")])
        agent = build_secretary_agent(
            model, tools, prompt=prompt, allowed=allowed, checkpointer=InMemorySaver()
        )
        async with open_sessions(servers):
            result = await agent.ainvoke(
                {"messages": [("user", name)]}, {"configurable": {"thread_id": name}}
            )
        [interrupt] = result["__interrupt__"]
        [request] = interrupt.value["action_requests"]
        assert request["name"] == name
        assert not any(isinstance(m, ToolMessage) for m in result["messages"])
    assert events(db, "mcp.tool_call") == []
