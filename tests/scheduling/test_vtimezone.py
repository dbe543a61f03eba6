"""The feed's VTIMEZONE, read back by an independent parser (python-dateutil's ``tzical``):
every hour of the feed's window gets zoneinfo's offset, the spring change included."""

import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import tz
from icalendar import Calendar
from sqlmodel import Session

from app.config.settings import Settings
from app.services.scheduling import calendar_feed
from app.services.scheduling.vtimezone import vtimezone
from tests.support.practice import ACTOR, add_practitioner


def _parsed(ical: bytes, tzid: str) -> tz.tzical:
    """dateutil's reading of the VTIMEZONE alone (it reads no other component)."""
    calendar = Calendar.from_ical(ical)
    (component,) = calendar.walk("VTIMEZONE")
    parsed = tz.tzical(io.StringIO(component.to_ical().decode()))
    assert parsed.keys() == [tzid]
    return parsed.get(tzid)


def _same_offsets_hourly(parsed: tz.tzical, tzid: str, start: datetime, end: datetime) -> None:
    """Each wall-clock hour, read as a calendar app reads an event's local time with TZID,
    has zoneinfo's offset (the hour skipped and the hour repeated at a change excepted: their
    reading is a convention; dateutil's conversion from UTC is not used, its guess is wrong
    for zones whose first observance is summer time)."""
    zone = ZoneInfo(tzid)
    instant = start
    while instant < end:
        wall = instant.astimezone(zone).replace(tzinfo=None)
        local = wall.replace(tzinfo=zone)
        ambiguous = local.utcoffset() != local.replace(fold=1).utcoffset()
        if not ambiguous:
            assert wall.replace(tzinfo=parsed).utcoffset() == local.utcoffset(), wall
        instant += timedelta(hours=1)


def test_the_feed_dates_the_spring_change_at_two_in_the_morning(
    db: Session, settings: Settings
) -> None:
    practitioner = add_practitioner(db)
    _, token = calendar_feed.create_feed(
        db, ACTOR, practitioner.id or 0, include_patient_names=False, created_by_id=None
    )
    db.commit()
    now = datetime(2026, 1, 22, 12, tzinfo=UTC)
    body = calendar_feed.render_feed(db, token, settings, now=now)
    assert b"DTSTART:20260329T020000" in body  # 02:00 CET, the local time before the jump
    assert b"DTSTART:20260329T030000" not in body
    parsed = _parsed(body, "Europe/Paris")
    _same_offsets_hourly(
        parsed, "Europe/Paris", now - calendar_feed.WINDOW_PAST, now + calendar_feed.WINDOW_AHEAD
    )
    # The local times around the change, as a calendar app reads an event's TZID time.
    assert datetime(2026, 3, 29, 1, 59, tzinfo=parsed).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 3, 29, 3, 0, tzinfo=parsed).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    "tzid", ["Europe/Paris", "America/New_York", "Australia/Sydney", "Indian/Reunion"]
)
def test_a_whole_year_matches_zoneinfo(tzid: str) -> None:
    first, last = date(2026, 1, 1), date(2027, 1, 1)
    component = vtimezone(tzid, first, last)
    calendar = Calendar()
    calendar.add_component(component)
    parsed = _parsed(calendar.to_ical(), tzid)
    start = datetime(2026, 1, 2, tzinfo=UTC)
    _same_offsets_hourly(parsed, tzid, start, datetime(2026, 12, 31, tzinfo=UTC))
