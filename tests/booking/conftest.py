"""A small practice open to online booking: two practitioners, two visit types (one with its
own questionnaire), email notifications on, and the rules saved by an admin."""

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from app.services.booking import rules as booking_rules
from app.services.booking.public_slots import public_slots
from app.services.scheduling.slots import Slot
from models.practice import VisitType
from tests.support.notification_helpers import ADMIN, enable
from tests.support.practice import PARIS, add_practitioner

EVERY_DAY = {d: [("08:00", "12:00"), ("13:00", "19:00")] for d in range(7)}


@dataclass
class Practice:
    practitioner_ids: list[int]
    rules: booking_rules.RulesInput


def open_booking(db: Session, **changes: object) -> Practice:
    martin = add_practitioner(db, "Martin", hours=EVERY_DAY)
    bernard = add_practitioner(db, "Bernard", hours=EVERY_DAY)
    db.add(VisitType(code="consultation", label="Consultation", duration_minutes=20))
    db.add(VisitType(code="vaccination", label="Vaccination", duration_minutes=10))
    db.flush()
    values: dict[str, object] = {
        "enabled": True,
        "allow_new_patients": True,
        "min_notice_hours": 0,
        "horizon_days": 30,
        "max_future_bookings": 2,
        "hold_minutes": 5,
        "visit_types": ["consultation", "vaccination"],
        "practitioner_ids": [martin.id, bernard.id],
    }
    values.update(changes)
    data = booking_rules.RulesInput(**values)  # type: ignore[arg-type]
    booking_rules.save(db, ADMIN, data)
    enable(db)
    return Practice([martin.id or 0, bernard.id or 0], data)


@pytest.fixture
def practice(db: Session) -> Practice:
    return open_booking(db)


def first_slot(
    db: Session, practitioner_id: int | None = None, visit: str = "consultation"
) -> Slot:
    rules = booking_rules.current(db)
    found = public_slots(
        db, PARIS, rules, practitioner_id=practitioner_id, visit_type=visit, now=datetime.now(UTC)
    )
    assert found, "the test practice has free slots"
    # Not the very first (it may be minutes away): one a couple of hours ahead at least.
    later = [s for s in found if (s.starts_at - datetime.now(UTC)).total_seconds() > 7200]
    return (later or found)[0]


@pytest.fixture
def settings(database_url: str, tmp_path, smtp_server):  # type: ignore[no-untyped-def]
    """The app's settings with SMTP pointing at the loopback server of the test."""
    from tests.support.notification_helpers import mail_settings

    chosen = mail_settings(database_url, tmp_path / "data", smtp_server.port)
    # The test client stands for a proxy: X-Forwarded-For names each test "address".
    return chosen.model_copy(update={"trusted_proxies": ("testclient",)})


def code_from(mailbox, address: str) -> str:  # type: ignore[no-untyped-def]
    """The last one-time code mailed to an address."""
    import re

    from tests.support.notification_helpers import body

    messages = [m for m in mailbox.to(address) if "code" in str(m["Subject"]).lower()]
    assert messages, f"no code mailed to {address}"
    found = re.search(r"\b(\d{6})\b", body(messages[-1]))
    assert found
    return found.group(1)
