"""The ``.ics`` attached to appointment messages (RFC 5545, built with ``icalendar``): times,
practitioner and address only, never the reason for the visit."""

from datetime import UTC, datetime

from icalendar import STATUS, Calendar, Event

from models.appointments import Appointment
from models.practice import Practitioner

PRODID = "-//Accueil//Rendez-vous patient//FR"


def event_uid(appointment: Appointment) -> str:
    return f"appointment-{appointment.id}@accueil"


def appointment_ics(
    appointment: Appointment,
    practitioner: Practitioner,
    *,
    practice_name: str,
    address: str,
    summary: str,
    cancelled: bool = False,
    now: datetime | None = None,
) -> bytes:
    """One event (or its cancellation) that calendar apps add or update by its UID; the
    sequence grows with each change of the appointment."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    calendar = Calendar.new(
        prodid=PRODID, method="CANCEL" if cancelled else "PUBLISH", calscale="GREGORIAN"
    )
    event = Event.new(
        uid=event_uid(appointment),
        stamp=stamp,
        start=appointment.starts_at.astimezone(UTC),
        end=appointment.ends_at.astimezone(UTC),
        summary=f"{summary} — {practitioner.display_name}",
        location=address or practice_name,
        status=STATUS.CANCELLED if cancelled else STATUS.CONFIRMED,
        sequence=int(appointment.updated_at.timestamp()) // 60 % 2**31,
    )
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()  # icalendar leaves to_ical() unannotated
    return ical
