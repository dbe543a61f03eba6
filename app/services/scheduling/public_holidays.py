"""French public holidays: closed out of the box, unless an admin opened one exceptionally.

The days come from the maintained ``holidays`` library (moving feasts such as Easter Monday,
Ascension and Whit Monday included), for mainland France or the region set in
``ACCUEIL_HOLIDAYS_SUBDIVISION`` (Alsace-Moselle adds Good Friday and 26 December; the
overseas departments add their abolition-of-slavery day). Only the exceptions are stored.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from sqlmodel import Session, col, select

from app.config.settings import get_settings
from app.services.core import audit
from app.services.core.errors import InvalidInput, NotFound
from models.practice import HolidayOpening

REASON_MAX = 128


@dataclass(frozen=True)
class PublicHoliday:
    """One public holiday, named in French and English, and whether the practice opens."""

    day: date
    name_fr: str
    name_en: str
    opened: bool = False

    def name(self, language: str = "fr") -> str:
        return self.name_en if language == "en" else self.name_fr


def holiday_region(region: str | None = None) -> str:
    """The subdivision to use: the one given, else the installation's setting.

    Read from the process-wide settings rather than threaded through every slot search: the
    region is a fact about the installation, like its time zone's holidays, not a choice made
    per request.
    """
    return get_settings().holidays_subdivision if region is None else region


@lru_cache(maxsize=64)
def _calendar(years: tuple[int, ...], region: str, language: str) -> holidays.HolidayBase:
    """Cached: a slot search asks for the same years many times, and they never change."""
    return holidays.country_holidays("FR", subdiv=region or None, years=years, language=language)


def public_holidays(first: date, last: date, region: str | None = None) -> list[PublicHoliday]:
    """The public holidays from ``first`` to ``last`` included, in date order."""
    if last < first:
        return []
    years = tuple(range(first.year, last.year + 1))
    where = holiday_region(region)
    french, english = _calendar(years, where, "fr"), _calendar(years, where, "en_US")
    return [
        PublicHoliday(day, str(name), str(english.get(day, name)))
        for day, name in sorted(french.items())
        if first <= day <= last
    ]


def opened_days(session: Session, first: date, last: date) -> set[date]:
    rows = session.exec(
        select(HolidayOpening).where(
            col(HolidayOpening.day) >= first, col(HolidayOpening.day) <= last
        )
    ).all()
    return {row.day for row in rows}


def list_holidays(
    session: Session, first: date, last: date, region: str | None = None
) -> list[PublicHoliday]:
    """The holidays of a period, each marked opened or not (for the closures page)."""
    opened = opened_days(session, first, last)
    return [
        PublicHoliday(h.day, h.name_fr, h.name_en, h.day in opened)
        for h in public_holidays(first, last, region)
    ]


def closed_holidays(
    session: Session, first: date, last: date, region: str | None = None
) -> list[PublicHoliday]:
    """The holidays of a period on which the practice is closed (not opened exceptionally)."""
    return [h for h in list_holidays(session, first, last, region) if not h.opened]


def holiday_intervals(
    session: Session, tz: ZoneInfo, start: datetime, end: datetime, region: str | None = None
) -> list[tuple[datetime, datetime]]:
    """The closed holidays overlapping [start, end), as UTC instants of whole local days."""
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [
        (
            datetime.combine(h.day, time.min, tzinfo=tz).astimezone(UTC),
            datetime.combine(h.day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC),
        )
        for h in closed_holidays(session, first, last, region)
    ]


def _holiday(day: date, region: str | None) -> PublicHoliday:
    found = public_holidays(day, day, region)
    if not found:
        raise InvalidInput(
            f"Le {day:%d/%m/%Y} n'est pas un jour férié.",
            f"{day:%Y-%m-%d} is not a public holiday.",
            field="day",
        )
    return found[0]


def open_holiday(
    session: Session,
    actor: audit.Actor,
    day: date,
    reason: str = "",
    *,
    region: str | None = None,
) -> HolidayOpening:
    """Open the practice on one public holiday (idempotent); audited."""
    holiday = _holiday(day, region)
    cleaned = " ".join(reason.split())
    if len(cleaned) > REASON_MAX:
        raise InvalidInput(
            f"Motif : {REASON_MAX} caractères au plus.",
            f"Reason: {REASON_MAX} characters at most.",
            field="reason",
        )
    existing = session.exec(select(HolidayOpening).where(HolidayOpening.day == day)).first()
    if existing is not None:
        return existing
    opening = HolidayOpening(day=day, reason=cleaned)
    session.add(opening)
    session.flush()
    audit.record(
        session,
        actor,
        "holiday.open",
        record_type="holiday_opening",
        record_id=opening.id,
        details={"day": day.isoformat(), "holiday": holiday.name_fr, "reason": cleaned},
    )
    return opening


def close_holiday(session: Session, actor: audit.Actor, day: date) -> None:
    """Undo an exceptional opening: the holiday is closed again; audited."""
    opening = session.exec(select(HolidayOpening).where(HolidayOpening.day == day)).first()
    if opening is None:
        raise NotFound("Ce jour férié n'était pas ouvert.", "This public holiday was not opened.")
    session.delete(opening)
    session.flush()
    audit.record(
        session,
        actor,
        "holiday.close",
        record_type="holiday_opening",
        record_id=opening.id,
        details={"day": day.isoformat()},
    )


def list_openings(session: Session) -> list[HolidayOpening]:
    return list(session.exec(select(HolidayOpening).order_by(col(HolidayOpening.day))).all())
