"""The knowledge MCP server through a real MCP client: in memory, over HTTP and over stdio."""

import json
import os
import sys

import httpx
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session
from sqlmodel import Session, select

from app.services.core.audit import Actor
from app.services.identity.mcp_clients import create_client
from app.services.knowledge import library as knowledge
from mcp_servers.knowledge import create_knowledge_server
from mcp_servers.runtime import ToolRuntime
from models.audit import ActorKind, AuditEvent
from tests.support.knowledge_files import BLOOD, FEES, MARKDOWN

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(engine, settings):
    return create_knowledge_server(
        ToolRuntime(engine, settings, Actor(kind=ActorKind.agent, name="test-agent"))
    )


@pytest.fixture
def handbook(db: Session, settings) -> int:
    document = knowledge.ingest(db, Actor.system("test"), settings, "livret.md", MARKDOWN).document
    db.commit()
    return document.id or 0


def answer(result) -> dict:
    assert not result.isError, result.content[0].text
    [content] = result.content
    return json.loads(content.text)


def passages(result) -> list[dict]:
    found = answer(result)
    assert found["answer"] in ("found", "urgent"), found
    return found["passages"]


async def test_the_tool_is_the_contract(server) -> None:
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == ["search_practice_knowledge"]
    tool = tools[0]
    assert tool.description and len(tool.description) < 120
    assert set(tool.inputSchema["properties"]) == {"query", "k"}
    assert tool.inputSchema["required"] == ["query"]


async def test_search_returns_cited_passages(server, handbook, db: Session) -> None:
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        found = passages(
            await client.call_tool(
                "search_practice_knowledge", {"query": "Combien coûte une consultation ?", "k": 2}
            )
        )
        blood = passages(
            await client.call_tool(
                "search_practice_knowledge",
                {"query": "Faut-il venir à jeun pour une prise de sang ?"},
            )
        )
    assert len(found) == 2 and len(blood) == 4
    assert any(FEES in p["text"] for p in found)
    assert blood[0]["text"] == BLOOD and blood[0]["section"] == "Tarifs › Prise de sang"
    for p in found + blood:
        assert p["title"] == "Livret du cabinet"
        assert p["source"].startswith(f"/connaissances/{handbook}#c")
        where = " › ".join(x for x in ("Livret du cabinet", p["section"]) if x)
        number = int(p["source"].rsplit("#c", 1)[1]) + 1
        assert p["citation"] == f"{where}, passage {number}"
    calls = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).all()
    assert [(c.actor_name, c.outcome) for c in calls] == [("test-agent", "ok")] * 2
    searches = db.exec(select(AuditEvent).where(AuditEvent.action == "knowledge.search")).all()
    assert len(searches) == 2 and searches[0].actor_kind == "agent"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"query": "horaires"}, "base de connaissances est vide"),
        ({"query": "x"}, "trop court"),
        ({"query": "horaires", "k": 0}, "k : "),
        ({"query": "horaires", "k": 11}, "k : "),
    ],
)
async def test_bad_calls_give_clear_tool_errors(server, arguments, message) -> None:
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        result = await client.call_tool("search_practice_knowledge", arguments)
    assert result.isError
    assert message in result.content[0].text, result.content[0].text


async def test_urgent_and_unanswered_questions(server, handbook, monkeypatch) -> None:
    from app.services.knowledge import no_answer

    async with create_connected_server_and_client_session(server._mcp_server) as client:
        urgent = answer(
            await client.call_tool(
                "search_practice_knowledge", {"query": "douleur poitrine que faire"}
            )
        )
        # a model that turns every question away: the tool then quotes nothing
        n = len(no_answer.FEATURES)
        refuse_all = no_answer.NoAnswerModel((0.0,) * n, -10.0, (0.0,) * n, (1.0,) * n, 0.5)
        monkeypatch.setattr(
            "app.services.knowledge.retrieval.for_practice", lambda _data_dir: refuse_all
        )
        none = answer(
            await client.call_tool("search_practice_knowledge", {"query": "acupuncture ?"})
        )
        # a model unsure of every question (p = 0.5 between its two thresholds)
        unsure = no_answer.NoAnswerModel((0.0,) * n, 0.0, (0.0,) * n, (1.0,) * n, 0.3, "", 0.7)
        monkeypatch.setattr(
            "app.services.knowledge.retrieval.for_practice", lambda _data_dir: unsure
        )
        doubtful = answer(
            await client.call_tool("search_practice_knowledge", {"query": "horaires du samedi"})
        )
        still_urgent = answer(
            await client.call_tool(
                "search_practice_knowledge", {"query": "douleur poitrine que faire"}
            )
        )
    assert urgent["answer"] == "urgent" and "appelez le 15" in urgent["message"]
    assert urgent["passages"] and urgent["doubtful"] is False
    assert none == {
        "answer": "none",
        "message": "Je ne trouve pas cette information dans les documents du cabinet.",
        "passages": [],
        "doubtful": False,
    }
    # doubtful: the passages are given, with a message that says to check them
    assert doubtful["answer"] == "found" and doubtful["doubtful"] is True
    assert doubtful["passages"] and "vérifiez le passage" in doubtful["message"]
    assert still_urgent["answer"] == "urgent" and still_urgent["doubtful"] is False


async def test_mounted_over_http_behind_bearer_tokens(live_server: str, db, handbook) -> None:
    url = f"{live_server}/mcp/knowledge/"
    assert httpx.post(url, json={}).status_code == 401
    _, token = create_client(db, Actor.system("test"), "Poste accueil")
    db.commit()
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with (
        http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        found = passages(
            await client.call_tool("search_practice_knowledge", {"query": "Horaires du samedi ?"})
        )
    assert found[0]["section"] == "Horaires"
    db.expire_all()
    call = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).one()
    assert (call.actor_kind, call.actor_name) == ("mcp_client", "Poste accueil")


async def test_runs_alone_over_stdio(database_url: str, settings, handbook) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", "from app.cli import main; main()", "mcp", "serve", "knowledge"],
        env={
            **os.environ,
            "ACCUEIL_DATABASE_URL": database_url,
            "ACCUEIL_DATA_DIR": str(settings.data_dir),
            "ACCUEIL_SECRET_KEY": "x" * 32,
        },
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        found = passages(
            await client.call_tool("search_practice_knowledge", {"query": "tarif consultation"})
        )
    assert any(FEES in p["text"] for p in found)
