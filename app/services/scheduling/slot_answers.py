"""A slot search that says why, when nothing is free, and where the next free slot is.

An empty list leaves the secretary (or an agent) guessing: a Sunday, a holiday, an absence
and a full week all need a different next step. The reason is worked out day by day, for
the days the search covered, and the one that blocked the most promising day is reported.
"""

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.services.core.calendar_names import WEEKDAYS_EN, WEEKDAYS_FR
from app.services.scheduling.public_holidays import closed_holidays
from app.services.scheduling.slots import (
    Interval,
    Slot,
    SlotQuery,
    absence_intervals,
    active_practitioners,
    closure_intervals,
    find_slots,
    local_instant,
    to_utc,
    working_hours,
)
from models.appointments import PartOfDay

NEXT_FREE_HORIZON = timedelta(days=92)


class EmptyReason(IntEnum):
    """Why nothing is free, from the least to the most specific (the highest one wins)."""

    past = 0
    closed_day = 1
    holiday = 2
    absence = 3
    outside_hours = 4
    fully_booked = 5

    @property
    def code(self) -> str:
        return self.name


MESSAGES: dict[EmptyReason, tuple[str, str]] = {
    EmptyReason.past: ("La période demandée est passée.", "The requested period is over."),
    EmptyReason.closed_day: (
        "Le cabinet est fermé ces jours-là (pas de consultation).",
        "The practice is closed on those days (no consultation).",
    ),
    EmptyReason.holiday: ("Jour férié : le cabinet est fermé.", "Public holiday: closed."),
    EmptyReason.absence: (
        "Le praticien est absent sur cette période.",
        "The practitioner is away during this period.",
    ),
    EmptyReason.outside_hours: (
        "En dehors des horaires de consultation.",
        "Outside consultation hours.",
    ),
    EmptyReason.fully_booked: (
        "Tout est complet sur cette période.",
        "Fully booked during this period.",
    ),
}


@dataclass(frozen=True)
class SlotAnswer:
    """Free slots, or the reason there are none and the next free slot after the range."""

    slots: list[Slot]
    reason: EmptyReason | None = None
    next_free: Slot | None = None
    holiday_name: str = ""

    def message(self, tz: ZoneInfo, language: str = "fr") -> str:
        """One sentence for the user ("" when slots were found)."""
        if self.reason is None:
            return ""
        fr, en = MESSAGES[self.reason]
        if self.reason == EmptyReason.holiday and self.holiday_name:
            fr = f"Jour férié ({self.holiday_name}) : le cabinet est fermé."
            en = f"Public holiday ({self.holiday_name}): the practice is closed."
        if self.next_free is not None:
            local = self.next_free.starts_at.astimezone(tz)
            day_fr, day_en = WEEKDAYS_FR[local.weekday()], WEEKDAYS_EN[local.weekday()]
            fr += f" Prochain créneau libre : {day_fr} {local:%d/%m/%Y à %H:%M}."
            en += f" Next free slot: {day_en} {local:%Y-%m-%d at %H:%M}."
        else:
            fr += " Aucun créneau libre dans les trois mois qui suivent."
            en += " No free slot in the following three months."
        return en if language == "en" else fr


def _covers(busy: list[Interval], start: datetime, end: datetime) -> bool:
    """Whether the sorted intervals cover [start, end) entirely."""
    cursor = start
    for b_start, b_end in busy:
        if b_start > cursor:
            return False
        cursor = max(cursor, b_end)
        if cursor >= end:
            return True
    return cursor >= end


def _part_bounds(day: date, tz: ZoneInfo, part: PartOfDay) -> tuple[datetime, datetime]:
    noon = local_instant(day, time(13, 0), tz)
    first, last = (
        local_instant(day, time.min, tz),
        local_instant(day + timedelta(days=1), time.min, tz),
    )
    if part == PartOfDay.morning:
        return first, noon
    if part == PartOfDay.afternoon:
        return noon, last
    return first, last


def _day_reason(
    session: Session,
    tz: ZoneInfo,
    day: date,
    ids: list[int],
    hours: dict[int, dict[int, list[tuple[time, time]]]],
    holidays: set[date],
    window: tuple[datetime, datetime],
    part: PartOfDay,
) -> EmptyReason:
    if day in holidays:
        return EmptyReason.holiday
    start_of_day, end_of_day = (
        local_instant(day, time.min, tz),
        local_instant(day + timedelta(days=1), time.min, tz),
    )
    closed = closure_intervals(session, tz, start_of_day, end_of_day)
    away = absence_intervals(session, ids, start_of_day, end_of_day)
    part_start, part_end = _part_bounds(day, tz, part)
    best = EmptyReason.closed_day
    for pid in ids:
        ranges = [
            (local_instant(day, s, tz), local_instant(day, e, tz))
            for s, e in hours[pid][day.weekday()]
        ]
        if not ranges or all(_covers(closed, s, e) for s, e in ranges):
            continue  # closed_day: no consultation, or a practice closure
        if all(_covers(sorted(closed + away[pid]), s, e) for s, e in ranges):
            best = max(best, EmptyReason.absence)
            continue
        lo, hi = max(window[0], part_start), min(window[1], part_end)
        if not any(s < hi and lo < e for s, e in ranges):
            best = max(best, EmptyReason.outside_hours)
            continue
        best = EmptyReason.fully_booked
    return best


def explain_empty(
    session: Session, tz: ZoneInfo, query: SlotQuery, *, now: datetime
) -> tuple[EmptyReason, str]:
    """Why a valid query found nothing, and the holiday's name when that is the reason."""
    start, end = to_utc(query.start), to_utc(query.end)
    not_before = max(start, now)
    if end <= not_before:
        return EmptyReason.past, ""
    practitioners = active_practitioners(session, query.practitioner_id)
    ids = [p.id for p in practitioners if p.id is not None]
    hours = working_hours(session, ids)
    first = not_before.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    holidays = {h.day: h.name_fr for h in closed_holidays(session, first, last)}
    best, name = EmptyReason.closed_day, ""
    day = first
    while day <= last:
        if query.weekdays is None or day.weekday() in query.weekdays:
            reason = _day_reason(
                session, tz, day, ids, hours, set(holidays), (not_before, end), query.part_of_day
            )
            if reason > best or (reason == best == EmptyReason.holiday and not name):
                best, name = reason, holidays.get(day, "")
        day += timedelta(days=1)
    return best, name if best == EmptyReason.holiday else ""


def search_slots(
    session: Session, tz: ZoneInfo, query: SlotQuery, *, now: datetime | None = None
) -> SlotAnswer:
    """``find_slots``, plus the reason and the next free slot when nothing is free."""
    moment = to_utc(now or datetime.now(UTC))
    slots = find_slots(session, tz, query, now=moment)
    if slots:
        return SlotAnswer(slots)
    reason, holiday_name = explain_empty(session, tz, query, now=moment)
    after = max(to_utc(query.end), moment)
    following = find_slots(
        session,
        tz,
        replace(query, start=after, end=after + NEXT_FREE_HORIZON, limit=1),
        now=moment,
    )
    return SlotAnswer([], reason, following[0] if following else None, holiday_name)
