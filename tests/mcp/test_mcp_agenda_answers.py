"""The agenda tools an outside client needs: why nothing is free, and visit types by name."""

from datetime import date, datetime, timedelta

import pytest
from mcp.shared.memory import create_connected_server_and_client_session
from sqlmodel import Session, select

from app.services.core.audit import Actor
from app.services.scheduling.public_holidays import public_holidays
from mcp_servers.agenda import create_agenda_server
from mcp_servers.runtime import ToolRuntime
from models.appointments import Appointment
from models.audit import ActorKind
from models.practice import VisitType
from tests.support.mcp_helpers import payload
from tests.support.practice import PARIS, add_patient, add_practitioner

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    practitioner = add_practitioner(db)
    patient = add_patient(db, "Durand", "Marie")
    db.add(VisitType(code="vaccination", label="Vaccination", duration_minutes=10))
    db.add(VisitType(code="bilan-sante", label="Bilan de santé", duration_minutes=40))
    db.commit()
    return {"practitioner": practitioner.id or 0, "patient": patient}


@pytest.fixture
def server(engine, settings):
    actor = Actor(kind=ActorKind.agent, name="test-agent")
    return create_agenda_server(ToolRuntime(engine, settings, actor))


def next_weekday(weekday: int) -> date:
    """The next such weekday whose week-end and Monday are no public holidays."""
    today = datetime.now(PARIS).date()
    day = today + timedelta(days=(weekday - today.weekday()) % 7 or 7)
    while public_holidays(day - timedelta(days=2), day + timedelta(days=2), region=""):
        day += timedelta(days=7)
    return day


async def test_an_empty_search_says_why_and_gives_the_next_free_slot(server, practice) -> None:
    sunday = next_weekday(6)
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        answer = payload(
            await client.call_tool(
                "find_slots", {"start_date": sunday.isoformat(), "end_date": sunday.isoformat()}
            )
        )
        assert answer["reason"] == "closed_day"
        monday = sunday + timedelta(days=1)
        assert answer["next_free"]["start"].startswith(f"{monday.isoformat()}T08:30")
        assert answer["message"].startswith("Le cabinet est fermé")
        assert "Prochain créneau libre : lundi" in answer["message"]
        past = payload(await client.call_tool("find_slots", {"start_date": "2020-01-06"}))
        assert past["reason"] == "past" and past["next_free"] is not None


async def test_visit_type_by_label_or_code_sets_the_duration(server, practice, db) -> None:
    monday = next_weekday(0)
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        slots = payload(
            await client.call_tool(
                "find_slots",
                {"start_date": monday.isoformat(), "visit_type": "BILAN DE SANTE", "limit": 2},
            )
        )
        assert [s["label"][-5:] for s in slots] == ["08:30", "09:10"]
        booked = payload(
            await client.call_tool(
                "book_appointment",
                {
                    "patient_id": practice["patient"],
                    "practitioner_id": practice["practitioner"],
                    "start": f"{monday.isoformat()}T10:00",
                    "visit_type": "vaccination",
                },
            )
        )
        assert booked["end"].endswith("10:10+01:00") or booked["end"].endswith("10:10+02:00")
        [stored] = db.exec(select(Appointment)).all()
        assert stored.visit_type == "vaccination"
        unknown = await client.call_tool(
            "find_slots", {"start_date": monday.isoformat(), "visit_type": "radiographie"}
        )
        assert unknown.isError
        text = unknown.content[0].text
        assert "Type de visite inconnu : « radiographie »" in text
        assert "Bilan de santé (bilan-sante)" in text and "Vaccination (vaccination)" in text
