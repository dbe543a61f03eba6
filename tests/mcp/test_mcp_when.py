"""The agenda tools take the secretary's own words (`when`), resolved on the server."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from sqlmodel import Session

from app.services.assistant.action_preview import describe, long_date
from app.services.core.audit import Actor
from mcp_servers.agenda import create_agenda_server
from mcp_servers.runtime import ToolRuntime
from models.appointments import Appointment
from models.audit import ActorKind
from tests.support.mcp_helpers import payload
from tests.support.practice import PARIS, add_patient, add_practitioner

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    practitioner = add_practitioner(db)  # Monday to Friday, 08:30-12:30 and 14:00-19:00
    patient = add_patient(db, "Durand", "Marie")
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient}


@pytest.fixture
def server(engine, settings):
    actor = Actor(kind=ActorKind.agent, name="test-agent")
    return create_agenda_server(ToolRuntime(engine, settings, actor))


def next_monday() -> date:
    """What "lundi" means: the next Monday after today."""
    today = datetime.now(PARIS).date()
    return today + timedelta(days=7 - today.weekday())


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


async def test_find_slots_reads_the_secretary_s_words(server, practice) -> None:
    monday = next_monday()
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        afternoon = _as_list(
            payload(await client.call_tool("find_slots", {"when": "lundi après-midi", "limit": 3}))
        )
        early = _as_list(
            payload(await client.call_tool("find_slots", {"when": "lundi avant 9h", "limit": 5}))
        )
        late_morning = _as_list(
            payload(
                await client.call_tool(
                    "find_slots", {"when": "lundi en fin de matinée", "limit": 9}
                )
            )
        )
    assert [s["start"][:16] for s in afternoon] == [
        f"{monday.isoformat()}T14:00",
        f"{monday.isoformat()}T14:20",
        f"{monday.isoformat()}T14:40",
    ]
    assert [s["start"][11:16] for s in early] == ["08:30", "08:50"]
    # 20-minute slots from 08:30; the window bounds a slot's start, so 11:50 (to 12:10) is in.
    assert [s["start"][11:16] for s in late_morning] == ["11:10", "11:30", "11:50"]


async def test_book_and_move_take_one_day_and_time_in_words(server, practice, db: Session) -> None:
    monday = next_monday()
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        booked = payload(
            await client.call_tool(
                "book_appointment",
                {
                    "patient_id": practice["patient"],
                    "practitioner_id": practice["practitioner"],
                    "when": "lundi à 14h20",
                },
            )
        )
        moved = payload(
            await client.call_tool(
                "move_appointment", {"appointment_id": booked["id"], "when": "mardi 9h"}
            )
        )
        vague = await client.call_tool(
            "move_appointment", {"appointment_id": booked["id"], "when": "mardi matin"}
        )
        nonsense = await client.call_tool("find_slots", {"when": "bonjour"})
        nothing = await client.call_tool("find_slots", {})
    assert booked["start"].startswith(f"{monday.isoformat()}T14:20")
    tuesday = monday + timedelta(days=1)
    assert moved["start"].startswith(f"{tuesday.isoformat()}T09:00")
    db.expire_all()
    stored = db.get(Appointment, booked["id"])
    local = stored.starts_at.replace(tzinfo=stored.starts_at.tzinfo or UTC).astimezone(PARIS)
    assert (local.date(), local.time()) == (tuesday, time(9))
    assert vague.isError and "ne désigne pas un jour et une heure précis" in vague.content[0].text
    assert nonsense.isError and "Je ne comprends pas « bonjour »" in nonsense.content[0].text
    assert nothing.isError and "start_date ou when" in nothing.content[0].text


async def test_the_confirmation_card_shows_the_time_the_words_name(db: Session, practice) -> None:
    args = {"patient_id": practice["patient"], "when": "lundi à 14h20"}
    card = describe(db, "book_appointment", args, PARIS)
    assert ("Horaire", f"{long_date(next_monday())} à 14:20 (« lundi à 14h20 »)") in card.details
    vague = describe(db, "move_appointment", {"appointment_id": 1, "when": "lundi"}, PARIS)
    assert ("Horaire", "lundi") in vague.details
