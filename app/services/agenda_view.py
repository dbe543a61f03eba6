"""Read-only views of the agenda for the staff pages."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from models.appointments import Appointment, AppointmentStatus
from models.patients import Patient
from models.practice import Practitioner


@dataclass(frozen=True)
class DayRow:
    """One appointment of the day with the names needed to show it."""

    appointment: Appointment
    patient: Patient
    practitioner: Practitioner


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Start and end of a local calendar day, as aware datetimes (DST-safe)."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def appointments_of_day(
    session: Session, day: date, tz: ZoneInfo, practitioner_id: int | None = None
) -> list[DayRow]:
    """The day's non-cancelled appointments, in time order."""
    start, end = day_bounds(day, tz)
    query = (
        select(Appointment, Patient, Practitioner)
        .join(Patient, col(Patient.id) == Appointment.patient_id)
        .join(Practitioner, col(Practitioner.id) == Appointment.practitioner_id)
        .where(Appointment.starts_at >= start, Appointment.starts_at < end)
        .where(Appointment.status != AppointmentStatus.cancelled)
        .order_by(col(Appointment.starts_at), col(Practitioner.last_name))
    )
    if practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == practitioner_id)
    return [DayRow(a, p, pr) for a, p, pr in session.exec(query).all()]


def appointments_of_patient(session: Session, patient_id: int, limit: int = 50) -> list[DayRow]:
    """A patient's appointments, newest first."""
    query = (
        select(Appointment, Patient, Practitioner)
        .join(Patient, col(Patient.id) == Appointment.patient_id)
        .join(Practitioner, col(Practitioner.id) == Appointment.practitioner_id)
        .where(Appointment.patient_id == patient_id)
        .order_by(col(Appointment.starts_at).desc())
        .limit(limit)
    )
    return [DayRow(a, p, pr) for a, p, pr in session.exec(query).all()]
