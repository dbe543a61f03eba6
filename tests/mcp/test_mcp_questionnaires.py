"""The questionnaires MCP server through a real in-memory MCP client."""

import json

import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from sqlmodel import Session, select

from app.services.core.audit import Actor
from mcp_servers.mount import SERVERS
from mcp_servers.questionnaires import create_questionnaires_server
from mcp_servers.runtime import ToolRuntime
from models.audit import ActorKind, AuditEvent
from models.questionnaires import PreConsultation
from tests.support.preconsultation import book

pytestmark = pytest.mark.anyio
TOOLS = {
    "list_questionnaires",
    "send_preconsultation",
    "preconsultation_status",
    "get_preconsultation_summary",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(engine, settings):
    return create_questionnaires_server(
        ToolRuntime(engine, settings, Actor(kind=ActorKind.agent, name="test-agent"))
    )


def _payload(result):
    assert not result.isError, result.content[0].text
    if len(result.content) == 1:
        return json.loads(result.content[0].text)
    return [json.loads(c.text) for c in result.content]


async def test_tools_are_the_contract_and_registered(server) -> None:
    assert SERVERS["questionnaires"] is create_questionnaires_server
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) < 120
        assert "title" not in json.dumps(tool.inputSchema)


async def test_send_and_follow_a_preconsultation(server, db: Session) -> None:
    booked = book(db, visit_type="vaccination")
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        listed = _payload(await client.call_tool("list_questionnaires", {}))
        assert {q["slug"] for q in listed} >= {"vaccination", "consultation-generale"}
        none = _payload(
            await client.call_tool(
                "preconsultation_status", {"appointment_id": booked.appointment_id}
            )
        )
        assert none["status"] == "none"
        link = _payload(
            await client.call_tool(
                "send_preconsultation", {"appointment_id": booked.appointment_id, "days": 3}
            )
        )
        assert link["questionnaire"] == "vaccination" and link["path"].startswith("/p/")
        status = _payload(
            await client.call_tool(
                "preconsultation_status", {"appointment_id": booked.appointment_id}
            )
        )
        assert status["status"] == "sent" and status["flags"] == []
        missing = await client.call_tool("send_preconsultation", {"appointment_id": 999})
        assert missing.isError and "Rendez-vous introuvable" in missing.content[0].text
    row = db.exec(select(PreConsultation)).one()
    assert row.token_hash != link["path"][3:]
    calls = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).all()
    assert len(calls) == 5 and {e.actor_kind for e in calls} == {ActorKind.agent}
    sends = db.exec(select(AuditEvent).where(AuditEvent.action == "preconsultation.send")).all()
    assert sends[0].actor_name == "test-agent"
