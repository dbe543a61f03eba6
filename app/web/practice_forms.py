"""Reading and showing the practice set-up forms: periods, weekly hours, durations, errors."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.services.core.errors import DomainError
from app.services.scheduling.practice_setup import TimeRange
from app.web.forms import FormCheck
from app.web.i18n import translate

PERIOD_FIELDS = ("start_date", "start_time", "end_date", "end_time", "reason")
HOURS_COLUMNS = 3


def domain_errors(check: FormCheck, exc: DomainError) -> list[dict[str, str]]:
    """A service error as one form error, on the field the service named (if any)."""
    field = exc.details.get("field") or ""
    return [{"field": str(field), "message": exc.message(check.language)}]


def optional_minutes(check: FormCheck, name: str) -> int | None:
    """A duration field that may be left blank (range checked by the service)."""
    return check.integer(name) if check.values.get(name) else None


def period_from_form(check: FormCheck, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """Dates with optional times, in the practice's time zone.

    No start time: from the start of the day. No end date: the start date. No end time:
    until the end of the end date (so "du 10 au 12" includes the 12th).
    """
    start_day = check.day("start_date")
    start_at = check.clock("start_time") if check.values.get("start_time") else time.min
    end_day: date | None = check.day("end_date") if check.values.get("end_date") else start_day
    end_at = check.clock("end_time") if check.values.get("end_time") else None
    if start_day is None or start_at is None or end_day is None:
        return None
    if check.values.get("end_time") and end_at is None:
        return None
    starts_at = datetime.combine(start_day, start_at, tzinfo=tz)
    if end_at is None:
        ends_at = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=tz)
    else:
        ends_at = datetime.combine(end_day, end_at, tzinfo=tz)
    return starts_at, ends_at


def period_text(starts_at: datetime, ends_at: datetime, tz: ZoneInfo, language: str) -> str:
    """A period as people say it: whole days when it starts and ends at midnight."""
    start, end = starts_at.astimezone(tz), ends_at.astimezone(tz)
    if start.time() == time.min and end.time() == time.min:
        last = (end - timedelta(days=1)).date()
        if last <= start.date():
            return translate(language, "practice.period.day", day=f"{start:%d/%m/%Y}")
        return translate(
            language, "practice.period.days", start=f"{start:%d/%m/%Y}", end=f"{last:%d/%m/%Y}"
        )
    if start.date() == end.date():
        return translate(
            language,
            "practice.period.hours",
            day=f"{start:%d/%m/%Y}",
            start=f"{start:%H:%M}",
            end=f"{end:%H:%M}",
        )
    return translate(
        language,
        "practice.period.span",
        start=f"{start:%d/%m/%Y %H:%M}",
        end=f"{end:%d/%m/%Y %H:%M}",
    )


def hours_field(day: int, column: int, edge: str) -> str:
    return f"h{day}_{column}_{edge}"


def hours_field_names(columns: int) -> list[str]:
    return [
        hours_field(day, column, edge)
        for day in range(7)
        for column in range(columns)
        for edge in ("start", "end")
    ]


def hours_columns(week: dict[int, list[TimeRange]]) -> int:
    """How many ranges a row of the editor offers: three, or more if a day already has more."""
    return max(HOURS_COLUMNS, *(len(ranges) for ranges in week.values()))


def hours_values(week: dict[int, list[TimeRange]]) -> dict[str, str]:
    """Stored hours as the editor's field values."""
    values: dict[str, str] = {}
    for day, ranges in week.items():
        for column, (start, end) in enumerate(ranges):
            values[hours_field(day, column, "start")] = start.strftime("%H:%M")
            values[hours_field(day, column, "end")] = end.strftime("%H:%M")
    return values


def hours_from_form(check: FormCheck, columns: int) -> dict[int, list[TimeRange]]:
    """Each weekday's ranges from the editor; a range needs both its start and its end."""
    week: dict[int, list[TimeRange]] = {}
    for day in range(7):
        ranges: list[TimeRange] = []
        for column in range(columns):
            start_name, end_name = (hours_field(day, column, e) for e in ("start", "end"))
            given = [name for name in (start_name, end_name) if check.values.get(name)]
            if not given:
                continue
            if len(given) == 1:
                missing = end_name if given == [start_name] else start_name
                check.fail(missing, "practice.error.range_incomplete")
                continue
            start, end = check.clock(start_name), check.clock(end_name)
            if start is not None and end is not None:
                ranges.append((start, end))
        week[day] = ranges
    return week
