"""50 MCP clients book one slot at once over streamable HTTP: one appointment, and every
loser is told "Créneau déjà pris" with alternatives."""

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from app.services.core.audit import Actor
from app.services.identity.mcp_clients import create_client
from app.services.scheduling.public_holidays import public_holidays
from models.appointments import Appointment
from tests.support.mcp_helpers import mcp_session
from tests.support.practice import PARIS, add_patient, add_practitioner

pytestmark = pytest.mark.anyio
CLIENTS = 50


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_fifty_concurrent_bookings_of_one_slot(live_server: str, db: Session) -> None:
    practitioner = add_practitioner(db)
    patients = [add_patient(db, f"Patient{i}", "Test") for i in range(CLIENTS)]
    _, token = create_client(db, Actor.system("test"), "Cabinet — course")
    db.commit()
    today = datetime.now(PARIS).date()
    monday = today + timedelta(days=7 - today.weekday() + 14)
    while public_holidays(monday, monday, region=""):  # Easter or Whit Monday
        monday += timedelta(days=7)
    start = f"{monday.isoformat()}T10:00"
    url = f"{live_server}/mcp/agenda/"

    async def attempt(patient_id: int) -> tuple[bool, str]:
        async with mcp_session(url, token) as client:
            result = await client.call_tool(
                "book_appointment",
                {"patient_id": patient_id, "practitioner_id": practitioner.id, "start": start},
            )
            return result.isError, result.content[0].text

    outcomes = await asyncio.gather(*(attempt(p) for p in patients))
    assert sum(not failed for failed, _ in outcomes) == 1, outcomes
    losers = [text for failed, text in outcomes if failed]
    assert all(text.startswith("Créneau déjà pris. Créneaux proches :") for text in losers), [
        t for t in losers if not t.startswith("Créneau déjà pris")
    ]
    db.expire_all()
    assert len(db.exec(select(Appointment)).all()) == 1
