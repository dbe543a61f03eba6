"""Builders for a small practice used by the scheduling tests."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.services.core.audit import Actor
from app.services.patients.records import create_patient
from models.audit import ActorKind
from models.patients import PatientCreate, Sex
from models.practice import Practitioner, WorkingHours

PARIS = ZoneInfo("Europe/Paris")
ACTOR = Actor(kind=ActorKind.user, id="1", name="secretaire", address="127.0.0.1")
WEEKDAY_HOURS = [("08:30", "12:30"), ("14:00", "19:00")]


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def add_practitioner(
    db: Session,
    last_name: str = "Martin",
    minutes: int = 20,
    hours: dict[int, list[tuple[str, str]]] | None = None,
) -> Practitioner:
    practitioner = Practitioner(
        first_name="Claire", last_name=last_name, default_duration_minutes=minutes
    )
    db.add(practitioner)
    db.flush()
    for weekday, ranges in (hours or {d: WEEKDAY_HOURS for d in range(5)}).items():
        for start, end in ranges:
            db.add(
                WorkingHours(
                    practitioner_id=practitioner.id,
                    weekday=weekday,
                    start_time=time.fromisoformat(start),
                    end_time=time.fromisoformat(end),
                )
            )
    db.flush()
    return practitioner


def add_patient(db: Session, name: str = "Durand", first: str = "Marie") -> int:
    patient = create_patient(
        db,
        ACTOR,
        PatientCreate(
            birth_name=name, first_name=first, birth_date=date(1980, 1, 2), sex=Sex.female
        ),
    )
    return patient.id or 0
