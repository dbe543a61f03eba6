"""A VTIMEZONE built from the zoneinfo database's own transitions.

Why not ``icalendar.Timezone.from_tzid``: in icalendar 7.3.0 it dates the spring change at
the wall-clock time *after* the jump (03:00 in Paris) where RFC 5545 wants the local time
*before* it, in the observance's TZOFFSETFROM (02:00); calendar apps that read the VTIMEZONE
then put events of that night an hour off. Here each transition is found on the UTC axis
(where it is unambiguous) and written as RFC 5545 says: ``DTSTART`` = the UTC instant of the
change plus the offset in force until then.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

_STEP = timedelta(hours=6)  # zoneinfo's zones never change twice within six hours
_PRECISION = timedelta(seconds=1)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


def transitions(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The UTC instants in [start, end) at which the zone's offset or name changes."""
    found: list[datetime] = []
    low = start
    while low < end:
        high = min(low + _STEP, end)
        before, after = low.astimezone(zone), high.astimezone(zone)
        if (before.utcoffset(), before.tzname()) != (after.utcoffset(), after.tzname()):
            left, right = low, high  # the change lies in (left, right]
            while right - left > _PRECISION:
                middle = left + (right - left) / 2
                probe = middle.astimezone(zone)
                if (probe.utcoffset(), probe.tzname()) == (before.utcoffset(), before.tzname()):
                    left = middle
                else:
                    right = middle
            found.append(right.replace(microsecond=0))
        low = high
    return found


def _observance(
    zone: ZoneInfo, instant: datetime, offset_from: timedelta
) -> TimezoneStandard | TimezoneDaylight:
    local = instant.astimezone(zone)
    observance = TimezoneDaylight() if local.dst() else TimezoneStandard()
    observance.add("TZNAME", local.tzname() or zone.key)
    observance.add("TZOFFSETFROM", offset_from)
    observance.add("TZOFFSETTO", local.utcoffset() or timedelta(0))
    # RFC 5545: the onset in the local time in force *before* it (TZOFFSETFROM).
    observance.add("DTSTART", (instant + offset_from).replace(tzinfo=None))
    return observance


def vtimezone(tzid: str, first_date: date, last_date: date) -> Timezone:
    """The VTIMEZONE of ``tzid`` valid from ``first_date`` to ``last_date``: the observance in
    force at the start, then one per transition in between."""
    zone = ZoneInfo(tzid)
    start = datetime.combine(first_date, time(0), zone).astimezone(UTC)
    end = datetime.combine(last_date, time(0), zone).astimezone(UTC)
    component = Timezone()
    component.add("TZID", tzid)
    component.add_component(_observance(zone, start, _offset(zone, start)))
    for instant in transitions(zone, start, end):
        offset_from = _offset(zone, instant - _PRECISION)
        component.add_component(_observance(zone, instant, offset_from))
    return component
