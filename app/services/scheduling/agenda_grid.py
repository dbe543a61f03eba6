"""What the agenda's time grid draws for some days: the practitioners' appointments with their
pre-consultation badges, absences and closures (public holidays the practice keeps closed
included), free slots, and the hours the grid spans.

The web layer turns this into the calendar component's JSON (labels in the page's language,
colours, links); every rule about what is shaded, free or flagged lives here.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.services.core.audit import Actor
from app.services.scheduling.agenda import AppointmentView, list_appointments
from app.services.scheduling.public_holidays import closed_holidays
from app.services.scheduling.slots import Slot, SlotQuery, find_slots, working_hours
from models.practice import Absence, PracticeClosure, Practitioner
from models.questionnaires import PreConsultation, PreConsultationStatus

DEFAULT_HOURS = (time(8, 0), time(19, 0))  # when nobody shown has working hours yet
FLAG_STATUSES = (PreConsultationStatus.submitted, PreConsultationStatus.in_progress)
MAX_APPOINTMENTS = 2000  # a week of a large practice, with room to spare
SLOTS_PER_DAY = 100  # per practitioner


@dataclass(frozen=True)
class GridAppointment:
    """One appointment and its pre-consultation badge: the latest pre-consultation's status
    (empty when none was sent) and whether it raised a red flag."""

    view: AppointmentView
    preconsultation: str = ""
    red_flag: bool = False


@dataclass(frozen=True)
class Shading:
    """A shaded span of one practitioner's column: an absence or a closure. ``label`` is the
    absence's or closure's reason, or the holiday's name; empty for the default wording."""

    kind: Literal["absence", "closure"]
    practitioner_id: int
    starts_at: datetime
    ends_at: datetime
    label: str = ""


@dataclass(frozen=True)
class FreeBand:
    """Back-to-back free slots of one practitioner, drawn as one band."""

    practitioner_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class AgendaGrid:
    """Everything the grid shows for ``days``."""

    practitioners: list[Practitioner]
    days: list[date]
    appointments: list[GridAppointment]
    shadings: list[Shading]
    free_slots: list[Slot]  # each bookable slot, for the click that books it
    free_bands: list[FreeBand]
    opens: time  # the earliest opening of the shown practitioners
    closes: time  # the latest closing


def day_span(day: date, days: int, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """From midnight of ``day`` to midnight ``days`` later, in the practice's time zone."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=days), time.min, tzinfo=tz)


def latest_preconsultations(session: Session, ids: list[int]) -> dict[int, PreConsultation]:
    """The latest pre-consultation of each appointment."""
    if not ids:
        return {}
    rows = session.exec(
        select(PreConsultation)
        .where(col(PreConsultation.appointment_id).in_(ids))
        .order_by(col(PreConsultation.created_at), col(PreConsultation.id))
    ).all()
    return {p.appointment_id: p for p in rows}


def grid_hours(session: Session, practitioners: list[Practitioner]) -> tuple[time, time]:
    """From the earliest opening to the latest closing of the given practitioners."""
    ids = [p.id for p in practitioners if p.id is not None]
    ranges = [
        r for by_day in working_hours(session, ids).values() for rs in by_day.values() for r in rs
    ]
    opens = min((r[0] for r in ranges), default=DEFAULT_HOURS[0])
    closes = max((r[1] for r in ranges), default=DEFAULT_HOURS[1])
    return opens, closes


def free_bands(slots: list[Slot]) -> list[FreeBand]:
    """Free slots merged into continuous bands per practitioner."""
    bands: list[FreeBand] = []
    for slot in sorted(slots, key=lambda s: (s.practitioner_id, s.starts_at)):
        last = bands[-1] if bands else None
        if last and last.practitioner_id == slot.practitioner_id and slot.starts_at <= last.ends_at:
            bands[-1] = FreeBand(
                last.practitioner_id, last.starts_at, max(last.ends_at, slot.ends_at)
            )
        else:
            bands.append(FreeBand(slot.practitioner_id, slot.starts_at, slot.ends_at))
    return bands


def _shadings(
    session: Session,
    tz: ZoneInfo,
    ids: list[int],
    days: list[date],
    start: datetime,
    end: datetime,
    language: str,
) -> list[Shading]:
    absences = session.exec(
        select(Absence).where(
            col(Absence.practitioner_id).in_(ids), Absence.starts_at < end, Absence.ends_at > start
        )
    ).all()
    shadings = [
        Shading("absence", a.practitioner_id, a.starts_at, a.ends_at, a.reason or "")
        for a in absences
    ]
    closures = session.exec(
        select(PracticeClosure).where(
            PracticeClosure.starts_at < end, PracticeClosure.ends_at > start
        )
    ).all()
    shadings += [
        Shading("closure", p, c.starts_at, c.ends_at, c.reason or "") for c in closures for p in ids
    ]
    shadings += [
        Shading("closure", p, *day_span(h.day, 1, tz), h.name(language))
        for h in closed_holidays(session, days[0], days[-1])
        for p in ids
    ]
    return shadings


def agenda_grid(
    session: Session,
    actor: Actor,
    tz: ZoneInfo,
    *,
    practitioners: list[Practitioner],
    days: list[date],
    include_cancelled: bool = False,
    language: str = "fr",
) -> AgendaGrid:
    """The grid of ``days`` (consecutive, at least one) for ``practitioners``: appointments
    (audited as one read, like the list view), absences, closures and holidays (named in
    ``language``), free slots, and the hours to show."""
    if not days:
        raise ValueError("agenda_grid needs at least one day")
    start, end = day_span(days[0], len(days), tz)
    ids = [p.id for p in practitioners if p.id is not None]
    views = (
        [
            v
            for v in list_appointments(
                session,
                actor,
                start=start,
                end=end,
                include_cancelled=include_cancelled,
                limit=MAX_APPOINTMENTS,
            )
            if v.practitioner.id in ids
        ]
        if ids
        else []
    )
    pre = latest_preconsultations(session, [v.appointment.id for v in views if v.appointment.id])
    appointments = []
    for v in views:
        p = pre.get(v.appointment.id or 0)
        appointments.append(
            GridAppointment(
                v,
                str(p.status) if p else "",
                bool(p and p.red_flags and p.status in FLAG_STATUSES),
            )
        )
    slots: list[Slot] = []
    for day in days:
        day_start, day_end = day_span(day, 1, tz)
        for pid in ids:
            query = SlotQuery(
                start=day_start, end=day_end, practitioner_id=pid, limit=SLOTS_PER_DAY
            )
            slots += find_slots(session, tz, query)
    opens, closes = grid_hours(session, practitioners)
    return AgendaGrid(
        practitioners=practitioners,
        days=days,
        appointments=appointments,
        shadings=_shadings(session, tz, ids, days, start, end, language) if ids else [],
        free_slots=slots,
        free_bands=free_bands(slots),
        opens=opens,
        closes=closes,
    )
