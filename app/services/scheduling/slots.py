"""Free-slot search: working hours minus appointments, absences, closures and public
holidays, DST-safe.

All arithmetic is done on UTC instants; local calendar days and working hours are turned
into instants with the practice's time zone, so a slot is right on both sides of a
daylight-saving change.
"""

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.services.core.errors import InvalidInput, NotFound
from app.services.scheduling.public_holidays import holiday_intervals
from models.appointments import Appointment, AppointmentStatus, PartOfDay
from models.online_booking import SlotHold
from models.practice import (
    Absence,
    PracticeClosure,
    Practitioner,
    VisitType,
    VisitTypeDuration,
    WorkingHours,
)

# Slots starting before 13:00 are "le matin" (French practices often consult until 12:30+).
NOON = time(13, 0)
MAX_WINDOW = timedelta(days=366)
MAX_CHUNK_DAYS = 8
MAX_APPOINTMENT = timedelta(minutes=240)  # the longest duration resolve_duration allows

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Slot:
    """A free slot for one practitioner, as UTC instants."""

    practitioner_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class SlotQuery:
    """What the secretary (or an agent) is looking for."""

    start: datetime
    end: datetime
    practitioner_id: int | None = None
    duration_minutes: int | None = None
    visit_type: str | None = None
    part_of_day: PartOfDay = PartOfDay.any
    weekdays: frozenset[int] | None = None
    limit: int = 10


def to_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput("Date et heure sans fuseau horaire.", "Date and time without a zone.")
    return moment.astimezone(UTC)


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time on a local day."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def resolve_duration(
    session: Session,
    practitioner: Practitioner,
    visit_type: str | None = None,
    minutes: int | None = None,
) -> int:
    """Explicit minutes, else the practitioner's duration for the visit type, else the visit
    type's, else the practitioner's default."""
    if minutes is not None:
        if not 5 <= minutes <= 240:
            raise InvalidInput(
                "La durée doit être comprise entre 5 et 240 minutes.",
                "The duration must be between 5 and 240 minutes.",
            )
        return minutes
    if visit_type:
        kind = session.exec(select(VisitType).where(VisitType.code == visit_type)).first()
        if kind is None or not kind.is_active:
            raise InvalidInput(
                f"Type de visite inconnu ou désactivé : {visit_type}.",
                f"Unknown or deactivated visit type: {visit_type}.",
            )
        override = session.exec(
            select(VisitTypeDuration).where(
                VisitTypeDuration.practitioner_id == practitioner.id,
                VisitTypeDuration.visit_type_id == kind.id,
            )
        ).first()
        if override is not None:
            return override.duration_minutes
        if kind.duration_minutes:
            return kind.duration_minutes
    return practitioner.default_duration_minutes


def active_practitioners(
    session: Session, practitioner_id: int | None = None
) -> list[Practitioner]:
    query = select(Practitioner).where(col(Practitioner.is_active).is_(True))
    if practitioner_id is not None:
        query = query.where(Practitioner.id == practitioner_id)
    found = list(session.exec(query.order_by(col(Practitioner.id))).all())
    if practitioner_id is not None and not found:
        raise NotFound("Praticien introuvable.", "Practitioner not found.")
    return found


def working_hours(
    session: Session, practitioner_ids: Sequence[int]
) -> dict[int, dict[int, list[tuple[time, time]]]]:
    """practitioner id -> weekday -> sorted (start, end) local ranges."""
    hours: dict[int, dict[int, list[tuple[time, time]]]] = defaultdict(lambda: defaultdict(list))
    rows = session.exec(
        select(
            col(WorkingHours.practitioner_id),
            col(WorkingHours.weekday),
            col(WorkingHours.start_time),
            col(WorkingHours.end_time),
        ).where(col(WorkingHours.practitioner_id).in_(practitioner_ids))
    ).all()
    for pid, weekday, start_time, end_time in rows:
        hours[pid][weekday].append((start_time, end_time))
    for by_day in hours.values():
        for ranges in by_day.values():
            ranges.sort()
    return hours


def closure_intervals(
    session: Session, tz: ZoneInfo, start: datetime, end: datetime
) -> list[Interval]:
    """Practice closures and closed public holidays overlapping [start, end), sorted."""
    closures: list[Interval] = [
        (s, e)
        for s, e in session.exec(
            select(PracticeClosure.starts_at, PracticeClosure.ends_at).where(
                PracticeClosure.starts_at < end, PracticeClosure.ends_at > start
            )
        ).all()
    ]
    closures.extend(holiday_intervals(session, tz, start, end))
    return sorted(closures)


def absence_intervals(
    session: Session, practitioner_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[Interval]]:
    """Practitioners' absences overlapping [start, end), sorted."""
    busy: dict[int, list[Interval]] = {pid: [] for pid in practitioner_ids}
    absences = select(Absence.practitioner_id, Absence.starts_at, Absence.ends_at).where(
        col(Absence.practitioner_id).in_(practitioner_ids),
        Absence.starts_at < end,
        Absence.ends_at > start,
    )
    for pid, s, e in session.exec(absences).all():
        busy[pid].append((s, e))
    for intervals in busy.values():
        intervals.sort()
    return busy


def unavailable_intervals(
    session: Session,
    tz: ZoneInfo,
    practitioner_ids: Sequence[int],
    start: datetime,
    end: datetime,
) -> dict[int, list[Interval]]:
    """Absences, practice closures and closed public holidays overlapping [start, end).

    Kept apart from appointments: these do not change while two people race for one slot, so
    a booking checks them first and the appointments last (see ``agenda._check_slot``).
    """
    closures = closure_intervals(session, tz, start, end)
    busy = absence_intervals(session, practitioner_ids, start, end)
    for intervals in busy.values():
        intervals.extend(closures)
        intervals.sort()
    return busy


def appointment_intervals(
    session: Session,
    practitioner_ids: Sequence[int],
    start: datetime,
    end: datetime,
    *,
    ignore_appointment_id: int | None = None,
) -> dict[int, list[Interval]]:
    """Live appointments overlapping [start, end), per practitioner, sorted."""
    busy: dict[int, list[Interval]] = {pid: [] for pid in practitioner_ids}
    appointments = select(
        Appointment.practitioner_id, Appointment.starts_at, Appointment.ends_at
    ).where(
        col(Appointment.practitioner_id).in_(practitioner_ids),
        Appointment.status != AppointmentStatus.cancelled,
        Appointment.starts_at < end,
        # Bounded on both sides so the (practitioner, start) index serves the query.
        Appointment.starts_at > start - MAX_APPOINTMENT,
        Appointment.ends_at > start,
    )
    if ignore_appointment_id is not None:
        appointments = appointments.where(Appointment.id != ignore_appointment_id)
    for pid, s, e in session.exec(appointments).all():
        busy[pid].append((s, e))
    for intervals in busy.values():
        intervals.sort()
    return busy


def hold_intervals(
    session: Session,
    practitioner_ids: Sequence[int],
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    ignore_hold_id: int | None = None,
) -> dict[int, list[Interval]]:
    """Slots held by patients on the online booking page (live and not yet expired)."""
    busy: dict[int, list[Interval]] = {pid: [] for pid in practitioner_ids}
    holds = select(SlotHold.practitioner_id, SlotHold.starts_at, SlotHold.ends_at).where(
        col(SlotHold.practitioner_id).in_(practitioner_ids),
        col(SlotHold.released_at).is_(None),
        SlotHold.expires_at > now,
        SlotHold.starts_at < end,
        SlotHold.starts_at > start - MAX_APPOINTMENT,
        SlotHold.ends_at > start,
    )
    if ignore_hold_id is not None:
        holds = holds.where(SlotHold.id != ignore_hold_id)
    for pid, s, e in session.exec(holds).all():
        busy[pid].append((s, e))
    for intervals in busy.values():
        intervals.sort()
    return busy


def busy_intervals(
    session: Session,
    tz: ZoneInfo,
    practitioner_ids: Sequence[int],
    start: datetime,
    end: datetime,
    *,
    ignore_appointment_id: int | None = None,
    now: datetime | None = None,
) -> dict[int, list[Interval]]:
    """Live appointments, slots held online, absences, practice closures and closed holidays
    in [start, end)."""
    busy = unavailable_intervals(session, tz, practitioner_ids, start, end)
    booked = appointment_intervals(
        session, practitioner_ids, start, end, ignore_appointment_id=ignore_appointment_id
    )
    held = hold_intervals(
        session, practitioner_ids, start, end, now=to_utc(now or datetime.now(UTC))
    )
    for pid, intervals in busy.items():
        intervals.extend(booked[pid])
        intervals.extend(held[pid])
        intervals.sort()
    return busy


def _gaps(range_start: datetime, range_end: datetime, busy: list[Interval]) -> Iterator[Interval]:
    """The free parts of one working range."""
    cursor = range_start
    for b_start, b_end in busy:
        if b_end <= cursor:
            continue
        if b_start >= range_end:
            break
        if b_start > cursor:
            yield cursor, b_start
        cursor = max(cursor, b_end)
        if cursor >= range_end:
            return
    if cursor < range_end:
        yield cursor, range_end


def _part_of_day_ok(starts_at: datetime, tz: ZoneInfo, part: PartOfDay) -> bool:
    if part == PartOfDay.any:
        return True
    is_morning = starts_at.astimezone(tz).time() < NOON
    return is_morning if part == PartOfDay.morning else not is_morning


def day_slots(
    practitioner_id: int,
    day: date,
    ranges: list[tuple[time, time]],
    busy: list[Interval],
    tz: ZoneInfo,
    step: timedelta,
    not_before: datetime,
) -> Iterator[Slot]:
    """Free slots of one practitioner on one local day, on a grid from each free gap."""
    for start_time, end_time in ranges:
        range_start = local_instant(day, start_time, tz)
        range_end = local_instant(day, end_time, tz)
        for gap_start, gap_end in _gaps(range_start, range_end, busy):
            cursor = gap_start
            while cursor + step <= gap_end:
                if cursor >= not_before:
                    yield Slot(practitioner_id, cursor, cursor + step)
                cursor += step


def _slots_of_day(
    day: date,
    ids: list[int],
    hours: dict[int, dict[int, list[tuple[time, time]]]],
    busy: dict[int, list[Interval]],
    steps: dict[int, timedelta],
    tz: ZoneInfo,
    not_before: datetime,
    start: datetime,
    end: datetime,
    part: PartOfDay,
) -> list[Slot]:
    """Every practitioner's free slots of one local day, in time order."""
    out = [
        slot
        for pid in ids
        for slot in day_slots(
            pid, day, hours[pid][day.weekday()], busy[pid], tz, steps[pid], not_before
        )
        if start <= slot.starts_at
        and slot.ends_at <= end
        and _part_of_day_ok(slot.starts_at, tz, part)
    ]
    out.sort(key=lambda s: (s.starts_at, s.practitioner_id))
    return out


def find_slots(
    session: Session, tz: ZoneInfo, query: SlotQuery, *, now: datetime | None = None
) -> list[Slot]:
    """The first free slots matching the query, earliest first (never in the past)."""
    start, end = to_utc(query.start), to_utc(query.end)
    if end <= start:
        raise InvalidInput(
            "La fin de la période doit suivre son début.", "The period must end after it starts."
        )
    if end - start > MAX_WINDOW:
        raise InvalidInput("Cherchez sur un an au plus.", "Search over one year at most.")
    if not 1 <= query.limit <= 100:
        raise InvalidInput("Entre 1 et 100 créneaux.", "Between 1 and 100 slots.")
    not_before = max(start, to_utc(now or datetime.now(UTC)))
    practitioners = active_practitioners(session, query.practitioner_id)
    if not practitioners:
        return []
    ids = [p.id for p in practitioners if p.id is not None]
    hours = working_hours(session, ids)
    steps: dict[int, timedelta] = {
        p.id or 0: timedelta(
            minutes=resolve_duration(session, p, query.visit_type, query.duration_minutes)
        )
        for p in practitioners
    }
    found: list[Slot] = []
    day = start.astimezone(tz).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    span = 1  # days read per query: small first (the answer is usually near), then larger
    while day <= last_day and len(found) < query.limit:
        chunk_last = min(day + timedelta(days=span - 1), last_day)
        busy = busy_intervals(
            session,
            tz,
            ids,
            local_instant(day, time.min, tz),
            local_instant(chunk_last + timedelta(days=1), time.min, tz),
            now=now,
        )
        while day <= chunk_last and len(found) < query.limit:
            if query.weekdays is None or day.weekday() in query.weekdays:
                found.extend(
                    _slots_of_day(
                        day, ids, hours, busy, steps, tz, not_before, start, end, query.part_of_day
                    )
                )
            day += timedelta(days=1)
        span = min(span * 2, MAX_CHUNK_DAYS)
    return found[: query.limit]


def fits_working_hours(
    session: Session, practitioner_id: int, starts_at: datetime, ends_at: datetime, tz: ZoneInfo
) -> bool:
    """Whether [starts_at, ends_at) lies inside one of the practitioner's working ranges."""
    local_start = starts_at.astimezone(tz)
    ranges = working_hours(session, [practitioner_id])[practitioner_id][local_start.weekday()]
    day = local_start.date()
    return any(
        local_instant(day, s, tz) <= starts_at and ends_at <= local_instant(day, e, tz)
        for s, e in ranges
    )
