"""Setting up the practice: practitioners, weekly hours, absences, closures and visit types.

Every change is written to the audit log with the acting user. Nothing here cancels an
appointment: adding an absence or a closure returns the live appointments it covers, so the
staff can move or cancel them one by one.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, time
from itertools import pairwise
from typing import Any

from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.calendar_names import WEEKDAYS_EN, WEEKDAYS_FR
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.scheduling.agenda import LIVE_STATUSES
from app.services.scheduling.slots import working_hours
from models.appointments import Appointment
from models.practice import (
    Absence,
    PracticeClosure,
    Practitioner,
    VisitType,
    VisitTypeDuration,
    WorkingHours,
)

MIN_DURATION, MAX_DURATION = 5, 240
EARLIEST, LATEST = time(6, 0), time(23, 0)
RPPS_LENGTH = 11
REASON_MAX = 128
CODE_MAX, LABEL_MAX = 64, 128
CODE_PATTERN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")

TimeRange = tuple[time, time]


class InvalidPractitioner(InvalidInput):
    """A practitioner's details were refused; ``details["field"]`` names the field."""


class InvalidRpps(InvalidPractitioner):
    def __init__(self) -> None:
        super().__init__(
            "Le numéro RPPS compte 11 chiffres.",
            "The RPPS number has 11 digits.",
            field="rpps",
        )


class RppsTaken(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Ce numéro RPPS est déjà celui d'un autre praticien.",
            "This RPPS number already belongs to another practitioner.",
            field="rpps",
        )


class InvalidDuration(InvalidInput):
    def __init__(self, field: str) -> None:
        super().__init__(
            f"La durée doit être comprise entre {MIN_DURATION} et {MAX_DURATION} minutes.",
            f"The duration must be between {MIN_DURATION} and {MAX_DURATION} minutes.",
            field=field,
        )


class InvalidHours(InvalidInput):
    """Working hours of one weekday were refused; ``details["weekday"]`` names the day."""


class InvalidPeriod(InvalidInput):
    """An absence or closure period was refused; ``details["field"]`` names the field."""


class InvalidVisitType(InvalidInput):
    """A visit type was refused; ``details["field"]`` names the field."""


class VisitTypeCodeTaken(Conflict):
    def __init__(self, code: str) -> None:
        super().__init__(
            f"Le code « {code} » est déjà utilisé.",
            f"The code '{code}' is already used.",
            field="code",
        )


class PractitionerNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Praticien introuvable.", "Practitioner not found.")


class AbsenceNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Absence introuvable.", "Absence not found.")


class ClosureNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Fermeture introuvable.", "Closure not found.")


class VisitTypeNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Type de visite introuvable.", "Visit type not found.")


@dataclass(frozen=True)
class PractitionerDetails:
    """What an admin types about a practitioner."""

    first_name: str
    last_name: str
    title: str = "Dr"
    specialty: str = "Médecine générale"
    rpps: str | None = None
    default_duration_minutes: int = 20


# --- shared checks -------------------------------------------------------------------------


def _text(
    value: str, field: str, fr: str, en: str, max_length: int, *, required: bool = True
) -> str:
    """Whitespace collapsed; refused when empty (if required) or too long."""
    cleaned = " ".join(value.split())
    if required and not cleaned:
        raise InvalidPractitioner(f"{fr} : champ obligatoire.", f"{en}: required.", field=field)
    if len(cleaned) > max_length:
        raise InvalidPractitioner(
            f"{fr} : {max_length} caractères au plus.",
            f"{en}: {max_length} characters at most.",
            field=field,
        )
    return cleaned


def check_duration(minutes: int, field: str = "duration") -> int:
    if not MIN_DURATION <= minutes <= MAX_DURATION:
        raise InvalidDuration(field)
    return minutes


def check_rpps(value: str | None) -> str | None:
    """An RPPS number: 11 digits (spaces ignored), or None when blank.

    python-stdnum (2.2) has no RPPS or ADELI module, so only the form is checked here.
    """
    if value is None:
        return None
    digits = "".join(value.split())
    if not digits:
        return None
    if len(digits) != RPPS_LENGTH or not digits.isascii() or not digits.isdigit():
        raise InvalidRpps()
    return digits


def _reason(reason: str) -> str:
    cleaned = " ".join(reason.split())
    if len(cleaned) > REASON_MAX:
        raise InvalidPeriod(
            f"Motif : {REASON_MAX} caractères au plus.",
            f"Reason: {REASON_MAX} characters at most.",
            field="reason",
        )
    return cleaned


def _period(starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    """Aware start and end as UTC, the end after the start."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidPeriod(
            "Date et heure sans fuseau horaire.", "Date and time without a zone.", field=""
        )
    start, end = starts_at.astimezone(UTC), ends_at.astimezone(UTC)
    if start >= end:
        raise InvalidPeriod(
            "La fin doit suivre le début.", "The end must come after the start.", field="end_date"
        )
    return start, end


def live_appointments_between(
    session: Session, start: datetime, end: datetime | None, practitioner_id: int | None = None
) -> list[Appointment]:
    """Booked or confirmed appointments overlapping [start, end) (no end: from start on)."""
    query = select(Appointment).where(
        col(Appointment.status).in_(LIVE_STATUSES), Appointment.ends_at > start
    )
    if end is not None:
        query = query.where(Appointment.starts_at < end)
    if practitioner_id is not None:
        query = query.where(Appointment.practitioner_id == practitioner_id)
    order = (col(Appointment.starts_at), col(Appointment.practitioner_id))
    return list(session.exec(query.order_by(*order)).all())


# --- practitioners -------------------------------------------------------------------------


def list_practitioners(session: Session) -> list[Practitioner]:
    """Every practitioner, active ones first, by name."""
    query = select(Practitioner).order_by(
        col(Practitioner.is_active).desc(),
        col(Practitioner.last_name),
        col(Practitioner.first_name),
        col(Practitioner.id),
    )
    return list(session.exec(query).all())


def get_practitioner(session: Session, practitioner_id: int) -> Practitioner:
    practitioner = session.get(Practitioner, practitioner_id)
    if practitioner is None:
        raise PractitionerNotFound()
    return practitioner


def _checked_details(
    session: Session, details: PractitionerDetails, practitioner_id: int | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "title": _text(details.title, "title", "Titre", "Title", 16, required=False),
        "first_name": _text(details.first_name, "first_name", "Prénom", "First name", 64),
        "last_name": _text(details.last_name, "last_name", "Nom", "Last name", 64),
        "specialty": _text(details.specialty, "specialty", "Spécialité", "Specialty", 64),
        "rpps": check_rpps(details.rpps),
        "default_duration_minutes": check_duration(
            details.default_duration_minutes, "default_duration_minutes"
        ),
    }
    if values["rpps"] is not None:
        holder = session.exec(
            select(Practitioner.id).where(Practitioner.rpps == values["rpps"])
        ).first()
        if holder is not None and holder != practitioner_id:
            raise RppsTaken()
    return values


def create_practitioner(
    session: Session, actor: audit.Actor, details: PractitionerDetails
) -> Practitioner:
    """A new, active practitioner with no working hours yet."""
    practitioner = Practitioner(**_checked_details(session, details, None))
    session.add(practitioner)
    session.flush()
    audit.record(
        session, actor, "practitioner.create", record_type="practitioner", record_id=practitioner.id
    )
    return practitioner


def update_practitioner(
    session: Session, actor: audit.Actor, practitioner_id: int, details: PractitionerDetails
) -> Practitioner:
    practitioner = get_practitioner(session, practitioner_id)
    values = _checked_details(session, details, practitioner_id)
    changed = [name for name, value in values.items() if getattr(practitioner, name) != value]
    if changed:
        for name in changed:
            setattr(practitioner, name, values[name])
        session.add(practitioner)
        session.flush()
        audit.record(
            session,
            actor,
            "practitioner.update",
            record_type="practitioner",
            record_id=practitioner_id,
            details={"changed": changed},
        )
    return practitioner


def practitioner_details(practitioner: Practitioner) -> PractitionerDetails:
    """The editable details of a stored practitioner."""
    return PractitionerDetails(
        **{f.name: getattr(practitioner, f.name) for f in fields(PractitionerDetails)}
    )


def deactivate_practitioner(
    session: Session, actor: audit.Actor, practitioner_id: int, *, now: datetime | None = None
) -> tuple[Practitioner, list[Appointment]]:
    """No more slots or bookings for this practitioner; returns the future live appointments,
    which are kept (to be moved or cancelled by the staff)."""
    practitioner = get_practitioner(session, practitioner_id)
    if practitioner.is_active:
        practitioner.is_active = False
        session.add(practitioner)
        audit.record(
            session,
            actor,
            "practitioner.deactivate",
            record_type="practitioner",
            record_id=practitioner_id,
        )
    upcoming = live_appointments_between(session, now or datetime.now(UTC), None, practitioner_id)
    return practitioner, upcoming


def reactivate_practitioner(
    session: Session, actor: audit.Actor, practitioner_id: int
) -> Practitioner:
    practitioner = get_practitioner(session, practitioner_id)
    if not practitioner.is_active:
        practitioner.is_active = True
        session.add(practitioner)
        audit.record(
            session,
            actor,
            "practitioner.reactivate",
            record_type="practitioner",
            record_id=practitioner_id,
        )
    return practitioner


# --- weekly working hours ------------------------------------------------------------------


def _hhmm(moment: time) -> str:
    return moment.strftime("%H:%M")


def _ranges_text(ranges: Sequence[TimeRange]) -> list[str]:
    return [f"{_hhmm(start)}-{_hhmm(end)}" for start, end in ranges]


def check_day_hours(weekday: int, ranges: Sequence[TimeRange]) -> list[TimeRange]:
    """One weekday's ranges, sorted: each starts before it ends, within 06:00-23:00, and
    none overlaps another (a range may start when the previous one ends)."""
    if not 0 <= weekday <= 6:
        raise InvalidHours("Jour de la semaine invalide.", "Invalid weekday.", weekday=weekday)
    day_fr, day_en = WEEKDAYS_FR[weekday].capitalize(), WEEKDAYS_EN[weekday]
    ordered = sorted(ranges)
    for start, end in ordered:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise InvalidHours(
                f"{day_fr} : heures locales attendues.",
                f"{day_en}: local times expected.",
                weekday=weekday,
            )
        if start.second or start.microsecond or end.second or end.microsecond:
            raise InvalidHours(
                f"{day_fr} : heures à la minute (HH:MM).",
                f"{day_en}: times to the minute (HH:MM).",
                weekday=weekday,
            )
        if start >= end:
            raise InvalidHours(
                f"{day_fr} : la plage {_hhmm(start)}–{_hhmm(end)} doit commencer avant de finir.",
                f"{day_en}: the range {_hhmm(start)}–{_hhmm(end)} must start before it ends.",
                weekday=weekday,
            )
        if start < EARLIEST or end > LATEST:
            raise InvalidHours(
                f"{day_fr} : les horaires doivent être compris entre {_hhmm(EARLIEST)} "
                f"et {_hhmm(LATEST)}.",
                f"{day_en}: hours must lie between {_hhmm(EARLIEST)} and {_hhmm(LATEST)}.",
                weekday=weekday,
            )
    for (start1, end1), (start2, end2) in pairwise(ordered):
        if start2 < end1:
            first, second = f"{_hhmm(start1)}–{_hhmm(end1)}", f"{_hhmm(start2)}–{_hhmm(end2)}"
            raise InvalidHours(
                f"{day_fr} : les plages {first} et {second} se chevauchent.",
                f"{day_en}: the ranges {first} and {second} overlap.",
                weekday=weekday,
            )
    return ordered


def weekly_hours(session: Session, practitioner_id: int) -> dict[int, list[TimeRange]]:
    """Weekday (0 = Monday) -> sorted local ranges, every day present."""
    get_practitioner(session, practitioner_id)
    by_day = working_hours(session, [practitioner_id]).get(practitioner_id, {})
    return {day: list(by_day.get(day, [])) for day in range(7)}


def set_week_hours(
    session: Session,
    actor: audit.Actor,
    practitioner_id: int,
    week: Mapping[int, Sequence[TimeRange]],
) -> dict[int, list[TimeRange]]:
    """Replace all ranges of each weekday given (other days are left alone).

    Every day is checked before anything is written; one audit event per day that changed.
    """
    checked = {day: check_day_hours(day, ranges) for day, ranges in week.items()}
    current = weekly_hours(session, practitioner_id)
    for day, ranges in sorted(checked.items()):
        if ranges == current[day]:
            continue
        rows = session.exec(
            select(WorkingHours).where(
                WorkingHours.practitioner_id == practitioner_id, WorkingHours.weekday == day
            )
        ).all()
        for row in rows:
            session.delete(row)
        session.flush()  # deletes first: a new range may reuse a start time
        session.add_all(
            WorkingHours(practitioner_id=practitioner_id, weekday=day, start_time=s, end_time=e)
            for s, e in ranges
        )
        session.flush()
        audit.record(
            session,
            actor,
            "working_hours.set",
            record_type="practitioner",
            record_id=practitioner_id,
            details={
                "weekday": day,
                "before": _ranges_text(current[day]),
                "after": _ranges_text(ranges),
            },
        )
    return weekly_hours(session, practitioner_id)


def set_day_hours(
    session: Session,
    actor: audit.Actor,
    practitioner_id: int,
    weekday: int,
    ranges: Sequence[TimeRange],
) -> list[TimeRange]:
    """Replace all ranges of one weekday (an empty list: no consultation that day)."""
    return set_week_hours(session, actor, practitioner_id, {weekday: ranges})[weekday]


# --- absences and closures -----------------------------------------------------------------


def list_absences(
    session: Session, practitioner_id: int, *, ending_after: datetime | None = None
) -> list[Absence]:
    """A practitioner's absences in time order (only those ending after a moment, if given)."""
    query = select(Absence).where(Absence.practitioner_id == practitioner_id)
    if ending_after is not None:
        query = query.where(Absence.ends_at > ending_after)
    return list(session.exec(query.order_by(col(Absence.starts_at), col(Absence.id))).all())


def get_absence(session: Session, absence_id: int, practitioner_id: int | None = None) -> Absence:
    absence = session.get(Absence, absence_id)
    if absence is None or practitioner_id not in (None, absence.practitioner_id):
        raise AbsenceNotFound()
    return absence


def absence_appointments(session: Session, absence: Absence) -> list[Appointment]:
    """The live appointments an absence covers (kept: the staff decide what to do)."""
    return live_appointments_between(
        session, absence.starts_at, absence.ends_at, absence.practitioner_id
    )


def add_absence(
    session: Session,
    actor: audit.Actor,
    practitioner_id: int,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
) -> tuple[Absence, list[Appointment]]:
    """Record an absence; returns it with the live appointments it covers (not cancelled)."""
    get_practitioner(session, practitioner_id)
    start, end = _period(starts_at, ends_at)
    absence = Absence(
        practitioner_id=practitioner_id, starts_at=start, ends_at=end, reason=_reason(reason)
    )
    session.add(absence)
    session.flush()
    covered = absence_appointments(session, absence)
    audit.record(
        session,
        actor,
        "absence.create",
        record_type="absence",
        record_id=absence.id,
        details={
            "practitioner_id": practitioner_id,
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
            "appointments_kept": [a.id for a in covered],
        },
    )
    return absence, covered


def delete_absence(
    session: Session, actor: audit.Actor, absence_id: int, *, practitioner_id: int | None = None
) -> Absence:
    """Remove an absence (of that practitioner, when one is named)."""
    absence = get_absence(session, absence_id, practitioner_id)
    session.delete(absence)
    session.flush()
    audit.record(
        session,
        actor,
        "absence.delete",
        record_type="absence",
        record_id=absence_id,
        details={
            "practitioner_id": absence.practitioner_id,
            "starts_at": absence.starts_at.isoformat(),
            "ends_at": absence.ends_at.isoformat(),
        },
    )
    return absence


def list_closures(
    session: Session, *, ending_after: datetime | None = None
) -> list[PracticeClosure]:
    query = select(PracticeClosure)
    if ending_after is not None:
        query = query.where(PracticeClosure.ends_at > ending_after)
    order = (col(PracticeClosure.starts_at), col(PracticeClosure.id))
    return list(session.exec(query.order_by(*order)).all())


def get_closure(session: Session, closure_id: int) -> PracticeClosure:
    closure = session.get(PracticeClosure, closure_id)
    if closure is None:
        raise ClosureNotFound()
    return closure


def closure_appointments(session: Session, closure: PracticeClosure) -> list[Appointment]:
    """The live appointments of every practitioner that a closure covers."""
    return live_appointments_between(session, closure.starts_at, closure.ends_at)


def add_closure(
    session: Session, actor: audit.Actor, starts_at: datetime, ends_at: datetime, reason: str = ""
) -> tuple[PracticeClosure, list[Appointment]]:
    """Close the practice for a period; returns the live appointments it covers (kept)."""
    start, end = _period(starts_at, ends_at)
    closure = PracticeClosure(starts_at=start, ends_at=end, reason=_reason(reason))
    session.add(closure)
    session.flush()
    covered = closure_appointments(session, closure)
    audit.record(
        session,
        actor,
        "closure.create",
        record_type="practice_closure",
        record_id=closure.id,
        details={
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
            "appointments_kept": [a.id for a in covered],
        },
    )
    return closure, covered


def delete_closure(session: Session, actor: audit.Actor, closure_id: int) -> PracticeClosure:
    closure = get_closure(session, closure_id)
    session.delete(closure)
    session.flush()
    audit.record(
        session,
        actor,
        "closure.delete",
        record_type="practice_closure",
        record_id=closure_id,
        details={
            "starts_at": closure.starts_at.isoformat(),
            "ends_at": closure.ends_at.isoformat(),
        },
    )
    return closure


# --- visit types ---------------------------------------------------------------------------


def list_visit_types(session: Session, *, active_only: bool = False) -> list[VisitType]:
    """Visit types by label (active ones only, if asked)."""
    query = select(VisitType)
    if active_only:
        query = query.where(col(VisitType.is_active).is_(True))
    return list(session.exec(query.order_by(col(VisitType.label), col(VisitType.id))).all())


def get_visit_type(session: Session, visit_type_id: int) -> VisitType:
    kind = session.get(VisitType, visit_type_id)
    if kind is None:
        raise VisitTypeNotFound()
    return kind


def _label(label: str) -> str:
    cleaned = " ".join(label.split())
    if not cleaned or len(cleaned) > LABEL_MAX:
        raise InvalidVisitType(
            f"Libellé obligatoire, {LABEL_MAX} caractères au plus.",
            f"Label required, {LABEL_MAX} characters at most.",
            field="label",
        )
    return cleaned


def _visit_duration(minutes: int | None) -> int | None:
    return None if minutes is None else check_duration(minutes, "duration_minutes")


def create_visit_type(
    session: Session,
    actor: audit.Actor,
    code: str,
    label: str,
    duration_minutes: int | None = None,
) -> VisitType:
    """A new active visit type; its code (used by bookings and tools) never changes after."""
    code = code.strip().lower()
    if not CODE_PATTERN.fullmatch(code) or len(code) > CODE_MAX:
        raise InvalidVisitType(
            "Code : lettres minuscules sans accent, chiffres, tirets (par ex. « vaccination »).",
            "Code: lowercase letters without accents, digits, hyphens (e.g. 'vaccination').",
            field="code",
        )
    kind = VisitType(
        code=code, label=_label(label), duration_minutes=_visit_duration(duration_minutes)
    )
    if session.exec(select(VisitType.id).where(VisitType.code == code)).first() is not None:
        raise VisitTypeCodeTaken(code)
    session.add(kind)
    session.flush()
    audit.record(
        session,
        actor,
        "visit_type.create",
        record_type="visit_type",
        record_id=kind.id,
        details={"code": code},
    )
    return kind


def update_visit_type(
    session: Session,
    actor: audit.Actor,
    visit_type_id: int,
    *,
    label: str,
    duration_minutes: int | None,
) -> VisitType:
    """Change a visit type's label and default duration (None: the practitioner's)."""
    kind = get_visit_type(session, visit_type_id)
    values = {"label": _label(label), "duration_minutes": _visit_duration(duration_minutes)}
    changed = [name for name, value in values.items() if getattr(kind, name) != value]
    if changed:
        for name in changed:
            setattr(kind, name, values[name])
        session.add(kind)
        session.flush()
        audit.record(
            session,
            actor,
            "visit_type.update",
            record_type="visit_type",
            record_id=visit_type_id,
            details={"changed": changed},
        )
    return kind


def set_visit_type_active(
    session: Session, actor: audit.Actor, visit_type_id: int, active: bool
) -> VisitType:
    """Deactivate (no longer offered when booking) or reactivate a visit type."""
    kind = get_visit_type(session, visit_type_id)
    if kind.is_active != active:
        kind.is_active = active
        session.add(kind)
        audit.record(
            session,
            actor,
            "visit_type.reactivate" if active else "visit_type.deactivate",
            record_type="visit_type",
            record_id=visit_type_id,
        )
    return kind


def deactivate_visit_type(session: Session, actor: audit.Actor, visit_type_id: int) -> VisitType:
    return set_visit_type_active(session, actor, visit_type_id, False)


def practitioner_visit_durations(session: Session, practitioner_id: int) -> dict[int, int]:
    """Visit type id -> this practitioner's own duration, where one is set."""
    rows = session.exec(
        select(VisitTypeDuration.visit_type_id, VisitTypeDuration.duration_minutes).where(
            VisitTypeDuration.practitioner_id == practitioner_id
        )
    ).all()
    return dict(rows)


def _apply_visit_duration(
    session: Session,
    actor: audit.Actor,
    practitioner_id: int,
    visit_type_id: int,
    minutes: int | None,
) -> VisitTypeDuration | None:
    row = session.exec(
        select(VisitTypeDuration).where(
            VisitTypeDuration.practitioner_id == practitioner_id,
            VisitTypeDuration.visit_type_id == visit_type_id,
        )
    ).first()
    before = None if row is None else row.duration_minutes
    if before == minutes:
        return row
    if minutes is None:
        if row is not None:
            session.delete(row)
        row = None
    elif row is None:
        row = VisitTypeDuration(
            practitioner_id=practitioner_id, visit_type_id=visit_type_id, duration_minutes=minutes
        )
        session.add(row)
    else:
        row.duration_minutes = minutes
        session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "visit_type_duration.set" if minutes is not None else "visit_type_duration.clear",
        record_type="practitioner",
        record_id=practitioner_id,
        details={"visit_type_id": visit_type_id, "before": before, "after": minutes},
    )
    return row


def set_visit_type_durations(
    session: Session,
    actor: audit.Actor,
    practitioner_id: int,
    durations: Mapping[int, int | None],
) -> dict[int, int]:
    """Set (minutes) or clear (None) a practitioner's own duration for several visit types;
    all are checked before anything is written."""
    get_practitioner(session, practitioner_id)
    for visit_type_id, minutes in durations.items():
        get_visit_type(session, visit_type_id)
        if minutes is not None:
            check_duration(minutes, f"vt_{visit_type_id}")
    for visit_type_id, minutes in sorted(durations.items()):
        _apply_visit_duration(session, actor, practitioner_id, visit_type_id, minutes)
    return practitioner_visit_durations(session, practitioner_id)


def set_visit_type_duration(
    session: Session,
    actor: audit.Actor,
    practitioner_id: int,
    visit_type_id: int,
    minutes: int | None,
) -> VisitTypeDuration | None:
    """A practitioner's own duration for one visit type (None clears it)."""
    set_visit_type_durations(session, actor, practitioner_id, {visit_type_id: minutes})
    return session.exec(
        select(VisitTypeDuration).where(
            VisitTypeDuration.practitioner_id == practitioner_id,
            VisitTypeDuration.visit_type_id == visit_type_id,
        )
    ).first()
