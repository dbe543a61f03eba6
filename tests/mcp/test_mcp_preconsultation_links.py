"""send_preconsultation: the patient's language (kept on the record) and the full link."""

import json

import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from sqlmodel import Session, select

from app.config.settings import Settings
from app.services.core.audit import Actor
from mcp_servers.questionnaires import create_questionnaires_server
from mcp_servers.runtime import ToolRuntime
from models.audit import ActorKind, AuditEvent
from models.patients import Patient
from tests.support.preconsultation import book

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server(engine, settings: Settings):
    public = settings.model_copy(update={"public_url": "https://cabinet.example.fr/"})
    return create_questionnaires_server(
        ToolRuntime(engine, public, Actor(kind=ActorKind.agent, name="test-agent"))
    )


def _payload(result) -> dict:
    assert not result.isError, result.content[0].text
    return json.loads(result.content[0].text)


async def test_the_link_is_full_and_in_the_patients_language(server, db: Session) -> None:
    booked = book(db, visit_type="vaccination")
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        french = _payload(
            await client.call_tool(
                "send_preconsultation", {"appointment_id": booked.appointment_id}
            )
        )
        assert french["language"] == "fr"
        assert french["link"] == f"https://cabinet.example.fr{french['path']}"
        english = _payload(
            await client.call_tool(
                "send_preconsultation", {"appointment_id": booked.appointment_id, "language": "en"}
            )
        )
        assert english["language"] == "en"
        assert english["link"] == f"https://cabinet.example.fr{english['path']}?lang=en"
        db.expire_all()
        patient = db.exec(select(Patient)).one()
        assert patient.language == "en"  # kept: the next link is in English by default
        again = _payload(
            await client.call_tool(
                "send_preconsultation", {"appointment_id": booked.appointment_id}
            )
        )
        assert again["language"] == "en" and again["link"].endswith("?lang=en")
        wrong = await client.call_tool(
            "send_preconsultation", {"appointment_id": booked.appointment_id, "language": "de"}
        )
        assert wrong.isError
    updates = db.exec(select(AuditEvent).where(AuditEvent.action == "patient.update")).all()
    assert len(updates) == 1 and updates[0].details == {"fields": ["language"]}
