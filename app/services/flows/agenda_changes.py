"""Agenda changes that free a slot (cancel, move), each followed by the waiting-list offer."""

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.services.core import audit
from app.services.notifications import planning as notifications
from app.services.scheduling import self_service
from app.services.scheduling.agenda import cancel_appointment, move_appointment
from app.services.scheduling.waiting_list import offer_freed_slot
from models.appointments import Appointment, WaitingOffer


def cancel(
    session: Session, actor: audit.Actor, tz: ZoneInfo, appointment_id: int, *, reason: str = ""
) -> tuple[Appointment, WaitingOffer | None]:
    """Cancel an appointment and offer its time to the first matching waiting patient."""
    appointment, freed = cancel_appointment(session, actor, appointment_id, reason=reason)
    notifications.appointment_cancelled(session, appointment, tz)  # tell the patient
    offer = offer_freed_slot(session, actor, tz, freed, freed_by_appointment_id=appointment.id)
    return appointment, offer


def move(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    appointment_id: int,
    *,
    starts_at: datetime,
    practitioner_id: int | None = None,
    duration_minutes: int | None = None,
) -> tuple[Appointment, WaitingOffer | None]:
    """Move an appointment and offer the time it leaves to the waiting list."""
    appointment, freed = move_appointment(
        session,
        actor,
        tz,
        appointment_id,
        starts_at=starts_at,
        practitioner_id=practitioner_id,
        duration_minutes=duration_minutes,
    )
    notifications.appointment_moved(session, appointment, freed.starts_at, tz)  # tell the patient
    offer = offer_freed_slot(session, actor, tz, freed, freed_by_appointment_id=appointment.id)
    return appointment, offer


def cancel_from_patient_link(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    access: self_service.LinkAccess,
    *,
    now: datetime | None = None,
) -> tuple[Appointment, WaitingOffer | None]:
    """The patient cancels through the self-service link, before the cut-off: the slot is
    freed and offered to the waiting list, and the link cannot be used again."""
    moment = self_service.check_cancellable(session, access, now=now)
    assert access.appointment is not None and access.link is not None
    cancelled, offer = cancel(
        session, actor, tz, access.appointment.id or 0, reason="Annulé par le patient (lien)"
    )
    self_service.mark_used(session, access.link, moment)
    return cancelled, offer
