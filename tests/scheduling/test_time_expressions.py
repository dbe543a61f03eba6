"""The French time-expression parser: a corpus resolved against fixed practice clocks, and the
conventions one by one (with UTC written out where daylight saving changes the answer)."""

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.services.scheduling.time_expressions import DEFAULT_DAY_PARTS, TimeQuery, parse

PARIS = ZoneInfo("Europe/Paris")
CORPUS = Path(__file__).with_name("time_expressions_corpus.txt")
Interval = tuple[datetime, datetime]


def _at(day: str, clock: str) -> datetime:
    if clock == "24:00":
        return datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), PARIS)
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), PARIS)


def _days(first: str, last: str) -> list[str]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return [(a + timedelta(days=k)).isoformat() for k in range((b - a).days + 1)]


def expected_intervals(spec: str) -> tuple[Interval, ...] | None:
    """The corpus notation (local time) as merged UTC intervals, converted here on its own."""
    if spec == "none":
        return None
    out: list[Interval] = []
    for part in (p.strip() for p in spec.split(";")):
        if m := re.fullmatch(r"(\S+) (\d\d:\d\d)\.\.(\S+) (\d\d:\d\d)", part):
            out.append((_at(m[1], m[2]), _at(m[3], m[4])))
            continue
        m = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:\.\.(\d{4}-\d\d-\d\d))?(?: (\S+))?", part)
        assert m, f"bad corpus notation: {part}"
        days = _days(m[1], m[2] or m[1])
        if m[3] is None:
            out.append((_at(days[0], "00:00"), _at(days[-1], "24:00")))
        elif "-" in m[3]:
            start, end = m[3].split("-")
            out += [(_at(d, start), _at(d, end)) for d in days]
        else:
            out += [(_at(d, m[3]), _at(d, m[3]) + timedelta(minutes=1)) for d in days]
    merged: list[Interval] = []
    for start, end in sorted((s.astimezone(UTC), e.astimezone(UTC)) for s, e in out):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def corpus() -> list[tuple[int, datetime, str, str]]:
    cases = []
    clock = None
    for number, line in enumerate(CORPUS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("@"):
            clock = datetime.fromisoformat(line[1:].strip()).replace(tzinfo=PARIS)
            continue
        text, spec = (p.strip() for p in line.rsplit("|", 1))
        assert clock is not None
        cases.append((number, clock, text, spec))
    return cases


def test_at_least_98_percent_of_the_corpus_resolves_exactly() -> None:
    cases = corpus()
    failures = []
    for number, clock, text, spec in cases:
        found = parse(text, clock, PARIS)
        got = found.intervals if found else None
        if got != expected_intervals(spec):
            failures.append(f"line {number}: {text!r} -> {got}, expected {spec}")
    assert len(cases) >= 300
    assert len(failures) <= len(cases) * 0.02, "\n".join(failures)


def test_the_corpus_crosses_both_daylight_saving_changes() -> None:
    clocks = {clock.date() for _, clock, _, _ in corpus()}
    assert {date(2027, 3, 26), date(2027, 3, 28), date(2027, 10, 29), date(2026, 10, 24)} <= clocks


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _one(text: str, now: datetime, tz: ZoneInfo = PARIS) -> TimeQuery:
    found = parse(text, now, tz)
    assert found is not None, text
    return found


FRIDAY_BEFORE_SUMMER = datetime(2027, 3, 26, 16, 40, tzinfo=PARIS)
FRIDAY_BEFORE_WINTER = datetime(2027, 10, 29, 8, 5, tzinfo=PARIS)


def test_the_same_wall_clock_hour_moves_in_utc_across_the_spring_change() -> None:
    assert _one("demain 9h", FRIDAY_BEFORE_SUMMER).instant == _utc(2027, 3, 27, 8)
    assert _one("lundi 9h", FRIDAY_BEFORE_SUMMER).instant == _utc(2027, 3, 29, 7)
    sunday = _one("dimanche", FRIDAY_BEFORE_SUMMER).intervals
    assert sunday == ((_utc(2027, 3, 27, 23), _utc(2027, 3, 28, 22)),)  # a 23-hour day


def test_the_autumn_change_gives_a_25_hour_day() -> None:
    sunday = _one("dimanche", FRIDAY_BEFORE_WINTER).intervals
    assert sunday == ((_utc(2027, 10, 30, 22), _utc(2027, 10, 31, 23)),)
    assert _one("lundi matin", FRIDAY_BEFORE_WINTER).intervals == (
        (_utc(2027, 11, 1, 7), _utc(2027, 11, 1, 11)),
    )


def test_a_week_across_the_change_runs_from_local_midnight_to_local_midnight() -> None:
    week = _one("la semaine prochaine", FRIDAY_BEFORE_SUMMER).intervals
    assert week == ((_utc(2027, 3, 28, 22), _utc(2027, 4, 4, 22)),)
    this_week = _one("cette semaine", FRIDAY_BEFORE_SUMMER).intervals
    assert this_week == ((_utc(2027, 3, 21, 23), _utc(2027, 3, 28, 22)),)


def test_a_bare_weekday_is_the_next_one_after_today_and_ce_includes_today() -> None:
    tuesday = datetime(2026, 12, 8, 9, 0, tzinfo=PARIS)
    assert _one("mardi", tuesday).days == (date(2026, 12, 15),)
    assert _one("mardi prochain", tuesday).days == (date(2026, 12, 15),)
    assert _one("ce mardi", tuesday).days == (date(2026, 12, 8),)
    assert _one("mercredi", tuesday).days == (date(2026, 12, 9),)
    assert _one("mardi en huit", tuesday).days == (date(2026, 12, 22),)


def test_a_day_number_is_the_next_one_not_in_the_past() -> None:
    the_23rd = datetime(2026, 12, 23, 18, 0, tzinfo=PARIS)
    assert _one("le 23", the_23rd).days == (date(2026, 12, 23),)
    assert _one("le 22", the_23rd).days == (date(2027, 1, 22),)
    assert _one("le 30", datetime(2027, 2, 1, 9, tzinfo=PARIS)).days == (date(2027, 3, 30),)
    assert _one("le 23 décembre", datetime(2026, 12, 24, 9, tzinfo=PARIS)).days == (
        date(2027, 12, 23),
    )


def test_a_time_without_a_day_is_today_until_its_window_has_passed() -> None:
    now = datetime(2026, 12, 4, 10, 15, tzinfo=PARIS)
    assert _one("à 15h", now).instant == _utc(2026, 12, 4, 14)
    assert _one("à 9h", now).instant == _utc(2026, 12, 5, 8)
    assert _one("le matin", now).days == (date(2026, 12, 4),)
    assert _one("en début de matinée", now).days == (date(2026, 12, 5),)


def test_parts_of_the_day_follow_the_documented_windows_or_the_practice_s_own() -> None:
    now = datetime(2026, 12, 4, 7, 0, tzinfo=PARIS)
    expected = {
        "le matin": (8, 12),
        "en fin de matinée": (11, 12),
        "en début d'après-midi": (13, 15),
        "l'après-midi": (13, 18),
        "ce soir": (18, 21),
    }
    for text, (start, end) in expected.items():
        assert _one(text, now).intervals == (
            (_utc(2026, 12, 4, start - 1), _utc(2026, 12, 4, end - 1)),
        ), text
    own = {**DEFAULT_DAY_PARTS, "matin": (time(7, 30), time(12, 30))}
    found = parse("mardi matin", now, PARIS, day_parts=own)
    assert found is not None
    assert found.intervals == ((_utc(2026, 12, 8, 6, 30), _utc(2026, 12, 8, 11, 30)),)
    assert found.part_of_day == "matin"


def test_open_ranges_start_now_and_keep_their_bounds() -> None:
    now = datetime(2027, 7, 7, 14, 20, tzinfo=PARIS)
    asap = _one("le plus tôt possible", now)
    assert asap.asap and asap.intervals == ((_utc(2027, 7, 7, 12, 20), _utc(2027, 7, 20, 22)),)
    after = _one("après le 14 juillet", now)
    assert after.after == _utc(2027, 7, 14, 22) and after.start == after.after
    before = _one("avant le 14 juillet", now)
    assert before.before == _utc(2027, 7, 13, 22) and before.end == before.before
    assert before.start == _utc(2027, 7, 7, 12, 20)


def test_public_holidays_by_name() -> None:
    now = datetime(2026, 12, 4, 10, 0, tzinfo=PARIS)
    assert _one("le lundi de Pâques", now).days == (date(2027, 3, 29),)
    assert _one("l'Ascension", now).days == (date(2027, 5, 6),)
    assert _one("le lundi de pentecote", now).days == (date(2027, 5, 17),)
    assert _one("la Toussaint", now).days == (date(2027, 11, 1),)
    assert _one("Noël", now).days == (date(2026, 12, 25),)


def test_typos_and_missing_accents_are_tolerated_but_names_are_not_read_as_days() -> None:
    now = datetime(2026, 12, 4, 10, 0, tzinfo=PARIS)
    assert _one("mecredi apres midi", now).intervals == (
        (_utc(2026, 12, 9, 12), _utc(2026, 12, 9, 17)),
    )
    assert _one("vendredie", now).days == (date(2026, 12, 11),)
    assert _one("jeudy", now).days == (date(2026, 12, 10),)
    assert parse("le Dr Martin", now, PARIS) is None
    assert parse("Raymond Martinez", now, PARIS) is None
    assert parse("je voudrais vendre", now, PARIS) is None


def test_birth_dates_phone_numbers_and_counts_in_a_sentence_are_no_times() -> None:
    now = datetime(2026, 12, 4, 10, 0, tzinfo=PARIS)
    text = "Mme Durand, née le 02/04/2015, tél. 06 12 34 56 78, mardi matin"
    found = _one(text, now)
    assert text[slice(*found.span)] == "mardi matin" and found.days == (date(2026, 12, 8),)
    assert parse("née le 12/03/2015", now, PARIS) is None
    assert parse("donnez-moi 5 créneaux", now, PARIS) is None


def test_one_exact_time_is_an_instant_and_a_window_is_not() -> None:
    now = datetime(2026, 12, 4, 10, 0, tzinfo=PARIS)
    assert _one("jeudi 18 à 14h30", now).instant == _utc(2027, 2, 18, 13, 30)
    assert _one("mardi matin", now).instant is None
    assert _one("la semaine prochaine à 10h", now).instant is None


def test_the_span_points_at_the_words_in_the_original_text() -> None:
    text = "Trouve un créneau lundi matin avec le Dr Martin pour Raymond Martinez"
    found = _one(text, datetime(2026, 12, 4, 10, 0, tzinfo=PARIS))
    assert text[slice(*found.span)] == "lundi matin"
    typo = "rdv mecredi à 9h svp"
    found = _one(typo, datetime(2026, 12, 4, 10, 0, tzinfo=PARIS))
    assert typo[slice(*found.span)] == "mecredi à 9h"


def test_another_time_zone_is_read_in_its_own_wall_clock() -> None:
    reunion = ZoneInfo("Indian/Reunion")  # UTC+4, no daylight saving
    now = datetime(2027, 3, 26, 16, 0, tzinfo=reunion)
    assert _one("lundi 9h", now, reunion).instant == _utc(2027, 3, 29, 5)


def test_a_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError):
        parse("demain", datetime(2026, 12, 4, 10, 0), PARIS)
