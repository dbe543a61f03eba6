"""Booking, moving and cancelling appointments; double booking is refused by the database too."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.notifications import planning as notifications
from app.services.scheduling.slots import (
    Slot,
    SlotQuery,
    active_practitioners,
    appointment_intervals,
    find_slots,
    fits_working_hours,
    hold_intervals,
    resolve_duration,
    to_utc,
    unavailable_intervals,
)
from models.appointments import Appointment, AppointmentSource, AppointmentStatus
from models.patients import Patient
from models.practice import Practitioner
from models.types import utcnow

LIVE_STATUSES = (AppointmentStatus.booked, AppointmentStatus.confirmed)


class SlotTaken(Conflict):
    """The slot is not free; ``alternatives`` are the nearest free ones."""

    def __init__(
        self,
        alternatives: list[Slot],
        tz: ZoneInfo,
        fr: str = "Créneau déjà pris.",
        en: str = "Slot already taken.",
    ) -> None:
        listed = ", ".join(s.starts_at.astimezone(tz).strftime("%d/%m %H:%M") for s in alternatives)
        if listed:
            fr += f" Créneaux proches : {listed}."
            en += f" Nearby slots: {listed}."
        else:
            fr += " Aucun créneau libre ce jour-là ni le lendemain."
            en += " No free slot that day or the next."
        super().__init__(fr, en, alternatives=alternatives)
        self.alternatives = alternatives


@dataclass(frozen=True)
class AppointmentView:
    """An appointment with the names needed to show it."""

    appointment: Appointment
    patient: Patient
    practitioner: Practitioner


def nearby_slots(
    session: Session,
    tz: ZoneInfo,
    practitioner_id: int,
    around: datetime,
    minutes: int,
    limit: int = 3,
    now: datetime | None = None,
) -> list[Slot]:
    """Free slots from the requested time to the end of the next day."""
    local = around.astimezone(tz)
    end = datetime.combine(local.date() + timedelta(days=2), datetime.min.time(), tzinfo=tz)
    return find_slots(
        session,
        tz,
        SlotQuery(
            start=around,
            end=end,
            practitioner_id=practitioner_id,
            duration_minutes=minutes,
            limit=limit,
        ),
        now=now,
    )


def _overlap_error(exc: Exception) -> bool:
    return "appointment_overlap" in str(getattr(exc, "orig", exc))


def _check_slot(
    session: Session,
    tz: ZoneInfo,
    practitioner: Practitioner,
    starts_at: datetime,
    ends_at: datetime,
    *,
    now: datetime,
    ignore_appointment_id: int | None = None,
    hold_id: int | None = None,
) -> None:
    if starts_at < now:
        raise InvalidInput("Ce créneau est déjà passé.", "This slot is in the past.")
    if not fits_working_hours(session, practitioner.id or 0, starts_at, ends_at, tz):
        raise InvalidInput(
            f"En dehors des horaires de consultation de {practitioner.display_name}.",
            f"Outside {practitioner.display_name}'s consultation hours.",
        )
    pid = practitioner.id or 0
    minutes = int((ends_at - starts_at).total_seconds() // 60)
    # Absences, closures and holidays first, the appointments last: a rival booking that
    # commits between two reads must be reported as "taken", never as "away or closed".
    if unavailable_intervals(session, tz, [pid], starts_at, ends_at)[pid]:
        raise SlotTaken(
            nearby_slots(session, tz, pid, starts_at, minutes, now=now),
            tz,
            f"{practitioner.display_name} est absent(e) ou le cabinet est fermé à ce moment.",
            f"{practitioner.display_name} is away or the practice is closed then.",
        )
    # A slot held by a patient on the online booking page is taken for everyone else.
    held = hold_intervals(session, [pid], starts_at, ends_at, now=now, ignore_hold_id=hold_id)
    taken = appointment_intervals(
        session, [pid], starts_at, ends_at, ignore_appointment_id=ignore_appointment_id
    )[pid]
    if taken or held[pid]:
        raise SlotTaken(nearby_slots(session, tz, pid, starts_at, minutes, now=now), tz)


def _practitioner(session: Session, practitioner_id: int) -> Practitioner:
    return active_practitioners(session, practitioner_id)[0]


def _patient(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    return patient


# How long a booking that lost its transaction looks for the booking that beat it (seconds
# between looks): the winner of a race commits within milliseconds, even under load.
RACE_LOOKS = (0.0, 0.05, 0.15, 0.3, 0.5, 1.0)


def _taken_meanwhile(
    session: Session, pid: int, start: datetime, end: datetime, own_id: int | None
) -> bool:
    """Whether another booking holds [start, end) of ``pid`` once its transaction is done."""
    for pause in RACE_LOOKS:
        time.sleep(pause)
        if appointment_intervals(session, [pid], start, end, ignore_appointment_id=own_id)[pid]:
            return True
        session.rollback()  # the next look sees what has been committed since
    return False


def _save(session: Session, tz: ZoneInfo, appointment: Appointment, now: datetime) -> None:
    """Flush the change; a concurrent booking of the same time is turned into SlotTaken.

    A loser may also meet SQLite's lock (its read snapshot is older than the winner's
    commit): it then looks again, and a slot now taken is reported as taken, like any loser.
    """
    session.add(appointment)
    pid, start, end = appointment.practitioner_id, appointment.starts_at, appointment.ends_at
    own_id = appointment.id
    minutes = int((end - start).total_seconds() // 60)
    try:
        session.flush()
    except IntegrityError as exc:
        if not _overlap_error(exc):
            raise
        session.rollback()
        raise SlotTaken(nearby_slots(session, tz, pid, start, minutes, now=now), tz) from exc
    except OperationalError as exc:
        # SQLite gave up waiting for the write lock, or PostgreSQL chose this booking as the
        # victim of a deadlock between concurrent bookings of one slot (their overlap checks
        # wait on each other): the other one is committing the slot now.
        session.rollback()
        if _taken_meanwhile(session, pid, start, end, own_id):
            raise SlotTaken(nearby_slots(session, tz, pid, start, minutes, now=now), tz) from exc
        raise Conflict(
            "Le cabinet est très sollicité : réessayez dans un instant.",
            "The system is busy: try again in a moment.",
        ) from exc


def book_appointment(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    *,
    patient_id: int,
    practitioner_id: int,
    starts_at: datetime,
    duration_minutes: int | None = None,
    visit_type: str | None = None,
    reason: str = "",
    source: AppointmentSource = AppointmentSource.secretary,
    created_by_id: int | None = None,
    now: datetime | None = None,
    hold_id: int | None = None,
) -> Appointment:
    """Book a free slot inside the practitioner's hours; never two patients at once. A slot
    held on the online booking page is free only for its holder (``hold_id``)."""
    now = to_utc(now or datetime.now(UTC))
    start = to_utc(starts_at)
    patient = _patient(session, patient_id)
    practitioner = _practitioner(session, practitioner_id)
    minutes = resolve_duration(session, practitioner, visit_type, duration_minutes)
    end = start + timedelta(minutes=minutes)
    _check_slot(session, tz, practitioner, start, end, now=now, hold_id=hold_id)
    appointment = Appointment(
        practitioner_id=practitioner_id,
        patient_id=patient.id or 0,
        starts_at=start,
        ends_at=end,
        reason=reason.strip()[:200],
        visit_type=visit_type or "consultation",
        source=source,
        created_by_id=created_by_id,
    )
    _save(session, tz, appointment, now)
    audit.record(
        session,
        actor,
        "appointment.book",
        record_type="appointment",
        record_id=appointment.id,
        patient_id=patient.id,
        details={
            "practitioner_id": practitioner_id,
            "starts_at": start.isoformat(),
            "minutes": minutes,
        },
    )
    notifications.appointment_booked(session, appointment, tz, now=now)  # confirmation, reminders
    return appointment


def _live_appointment(session: Session, appointment_id: int) -> Appointment:
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("Rendez-vous introuvable.", "Appointment not found.")
    if appointment.status not in LIVE_STATUSES:
        raise InvalidInput(
            "Ce rendez-vous est annulé ou déjà passé : il ne peut plus changer.",
            "This appointment is cancelled or over: it can no longer change.",
        )
    return appointment


def move_appointment(
    session: Session,
    actor: audit.Actor,
    tz: ZoneInfo,
    appointment_id: int,
    *,
    starts_at: datetime,
    practitioner_id: int | None = None,
    duration_minutes: int | None = None,
    now: datetime | None = None,
) -> tuple[Appointment, Slot]:
    """Move to a new free time (or practitioner); returns the appointment and the freed slot."""
    now = to_utc(now or datetime.now(UTC))
    appointment = _live_appointment(session, appointment_id)
    freed = Slot(appointment.practitioner_id, appointment.starts_at, appointment.ends_at)
    target = _practitioner(session, practitioner_id or appointment.practitioner_id)
    minutes = duration_minutes or int(
        (appointment.ends_at - appointment.starts_at).total_seconds() // 60
    )
    minutes = resolve_duration(session, target, None, minutes)
    start = to_utc(starts_at)
    end = start + timedelta(minutes=minutes)
    if (target.id, start, end) == (appointment.practitioner_id, freed.starts_at, freed.ends_at):
        raise InvalidInput("Le rendez-vous est déjà à cette heure.", "Already at that time.")
    _check_slot(session, tz, target, start, end, now=now, ignore_appointment_id=appointment.id)
    appointment.practitioner_id = target.id or 0
    appointment.starts_at, appointment.ends_at = start, end
    appointment.updated_at = utcnow()
    _save(session, tz, appointment, now)
    audit.record(
        session,
        actor,
        "appointment.move",
        record_type="appointment",
        record_id=appointment.id,
        patient_id=appointment.patient_id,
        details={
            "from": freed.starts_at.isoformat(),
            "to": start.isoformat(),
            "practitioner_id": appointment.practitioner_id,
        },
    )
    return appointment, freed


def cancel_appointment(
    session: Session,
    actor: audit.Actor,
    appointment_id: int,
    *,
    reason: str = "",
) -> tuple[Appointment, Slot]:
    """Cancel; returns the appointment and the freed slot (for the waiting list)."""
    appointment = _live_appointment(session, appointment_id)
    appointment.status = AppointmentStatus.cancelled
    appointment.cancelled_at = utcnow()
    appointment.cancel_reason = reason.strip()[:200]
    appointment.updated_at = utcnow()
    session.add(appointment)
    session.flush()
    audit.record(
        session,
        actor,
        "appointment.cancel",
        record_type="appointment",
        record_id=appointment.id,
        patient_id=appointment.patient_id,
    )
    return appointment, Slot(
        appointment.practitioner_id, appointment.starts_at, appointment.ends_at
    )


def set_attendance(
    session: Session, actor: audit.Actor, appointment_id: int, *, honoured: bool
) -> Appointment:
    """Mark a started appointment as honoured or missed (no-show)."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("Rendez-vous introuvable.", "Appointment not found.")
    if appointment.status == AppointmentStatus.cancelled:
        raise InvalidInput("Ce rendez-vous est annulé.", "This appointment is cancelled.")
    if appointment.starts_at > utcnow():
        raise InvalidInput(
            "Ce rendez-vous n'a pas encore commencé.", "This appointment has not started yet."
        )
    appointment.status = AppointmentStatus.honoured if honoured else AppointmentStatus.missed
    appointment.updated_at = utcnow()
    session.add(appointment)
    audit.record(
        session,
        actor,
        "appointment.attendance",
        record_type="appointment",
        record_id=appointment.id,
        patient_id=appointment.patient_id,
        details={"status": str(appointment.status)},
    )
    return appointment


def get_appointment(session: Session, actor: audit.Actor, appointment_id: int) -> AppointmentView:
    row = session.exec(
        select(Appointment, Patient, Practitioner)
        .join(Patient, col(Patient.id) == Appointment.patient_id)
        .join(Practitioner, col(Practitioner.id) == Appointment.practitioner_id)
        .where(Appointment.id == appointment_id)
    ).first()
    if row is None:
        raise NotFound("Rendez-vous introuvable.", "Appointment not found.")
    audit.record(
        session,
        actor,
        "appointment.read",
        record_type="appointment",
        record_id=appointment_id,
        patient_id=row[1].id,
    )
    return AppointmentView(*row)


def list_appointments(
    session: Session,
    actor: audit.Actor,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    practitioner_id: int | None = None,
    patient_id: int | None = None,
    include_cancelled: bool = False,
    newest_first: bool = False,
    limit: int = 500,
) -> list[AppointmentView]:
    """Appointments starting in [start, end) (either open), in time order, audited as one
    read that names every appointment shown."""
    order = col(Appointment.starts_at).desc() if newest_first else col(Appointment.starts_at)
    query = (
        select(Appointment, Patient, Practitioner)
        .join(Patient, col(Patient.id) == Appointment.patient_id)
        .join(Practitioner, col(Practitioner.id) == Appointment.practitioner_id)
        .order_by(order, col(Appointment.practitioner_id))
        .limit(limit)
    )
    if start is not None:
        query = query.where(Appointment.starts_at >= to_utc(start))
    if end is not None:
        query = query.where(Appointment.starts_at < to_utc(end))
    if practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == practitioner_id)
    if patient_id is not None:
        query = query.where(Appointment.patient_id == patient_id)
    if not include_cancelled:
        query = query.where(Appointment.status != AppointmentStatus.cancelled)
    rows = [AppointmentView(*row) for row in session.exec(query).all()]
    if rows:
        audit.record(
            session,
            actor,
            "appointment.list",
            record_type="appointment",
            patient_id=patient_id,
            details={"appointment_ids": [r.appointment.id for r in rows]},
        )
    return rows
