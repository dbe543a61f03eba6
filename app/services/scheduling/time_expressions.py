"""French time expressions of the front desk, resolved against the practice clock.

The secretary says "mardi matin", "le 23 à 14h30", "dans 15 jours", "après le 14 juillet";
this module turns those words into UTC intervals so that no language model ever does date
arithmetic. It is a small deterministic grammar over folded text. Measured on the first 361
expressions of ``tests/scheduling/time_expressions_corpus.txt``, EDS-NLP's ``eds.dates`` pipe
(built for clinical notes) detects a date in 116 and gives the right day for 50 of the 146
single-day cases: it misses bare weekdays ("mardi") and day numbers ("le 23"), and has no
parts of the day, "avant/après" bounds or holidays. ``dateparser`` is not a dependency and was
not added for this. Public holidays come from ``holidays``.

Conventions (the corpus tests them; change them here and there together):

- Every interval is half-open ``[start, end)``, in UTC, and bounds the *start* of an
  appointment: "avant 10h" is a slot that starts before 10:00. Local wall-clock windows are
  converted day by day, so an interval is right on both sides of a daylight-saving change.
- Parts of the day (local time): début de matinée 08:00–10:00, matin 08:00–12:00, fin de
  matinée 11:00–12:00, midi 12:00–14:00, début d'après-midi 13:00–15:00, après-midi
  13:00–18:00, fin d'après-midi 16:00–18:00, fin de journée 17:00–20:00, soir 18:00–21:00.
  ``parse(..., day_parts=...)`` takes the practice's own windows.
- "après 17h" is 17:00–24:00 of the day, "avant 10h" 00:00–10:00, "entre 14h et 16h"
  14:00–16:00, "vers 15h" 14:30–15:30. An exact time ("à 15h", "15h30") is the one-minute
  interval ``[15:00, 15:01)`` and sets ``TimeQuery.instant``.
- An exact hour from 1 to 6 ("à 3h") is read in the afternoon (15:00) unless the words say
  "du matin"; any hour before noon with "de l'après-midi" or "du soir" too.
- "ce week-end" is the coming Saturday and Sunday.
- A time with no day ("à 15h", "après 17h", "le matin") is today if its window has not ended
  yet, else tomorrow.
- A bare weekday ("mardi") and "mardi prochain" are the next such day *after* today (said on a
  Tuesday, "mardi" is next week's); "ce mardi" is today when today is Tuesday. "mardi en huit"
  is one week after "mardi".
- "le 23" is the next 23rd not in the past (today included); "le 23 décembre" is this year's,
  or next year's once it has passed; "jeudi 18" is the next Thursday that is an 18th.
- "dans 15 jours" / "dans 3 semaines" / "dans 2 mois" is that one day; "dans les 15 jours" and
  "d'ici 15 jours" are the days from today up to and including that day. As in everyday French,
  "huit jours" is one week and "quinze jours" two ("dans quinze jours", said on a Friday, is
  the Friday two weeks later), like "jeudi en huit" and "quinzaine".
- "en fin de semaine" is Thursday to Saturday, "en début de semaine" Monday and Tuesday (this
  week's while still ahead, else next week's).
- "la semaine prochaine", "cette semaine", "la semaine du 12": Monday to Sunday of that week;
  "la semaine du 12" is the week of the next 12th whose week has not ended. "le mois prochain"
  is the calendar month, "en mars" / "mars" the next March (from today when it is March);
  "début", "mi-" and "fin" of a month are its days 1–10, 10–20 and 21 to the end.
- Open ranges ("le plus tôt possible", "avant le 23", "après le 14 juillet", "à partir de
  lundi", "d'ici la fin de la semaine") start no earlier than now and last ``HORIZON``
  (14 days) when nothing ends them.
- Public holidays are named ("le lundi de Pâques", "l'Ascension", "le 14 juillet") and resolve
  to their next date (today included).
- Accents, case and common typos of weekdays and months ("mecredi", "apres midi") are
  tolerated; capitalised words inside a sentence are taken as names and never corrected.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

HORIZON = timedelta(days=14)
MINUTE = timedelta(minutes=1)

# (start, end) local wall-clock windows; time.max stands for 24:00.
DayWindow = tuple[time, time]
END_OF_DAY = time.max

DEFAULT_DAY_PARTS: Mapping[str, DayWindow] = {
    "debut_matinee": (time(8), time(10)),
    "matin": (time(8), time(12)),
    "fin_matinee": (time(11), time(12)),
    "midi": (time(12), time(14)),
    "debut_apres_midi": (time(13), time(15)),
    "apres_midi": (time(13), time(18)),
    "fin_apres_midi": (time(16), time(18)),
    "fin_journee": (time(17), time(20)),
    "soir": (time(18), time(21)),
}

WEEKDAY_WORDS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTH_WORDS = (
    "janvier", "fevrier", "mars", "avril", "mai", "juin",
    "juillet", "aout", "septembre", "octobre", "novembre", "decembre",
)  # fmt: skip
NUMBER_WORDS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
    "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14,
    "quinze": 15, "seize": 16, "vingt": 20, "trente": 30,
}  # fmt: skip

Interval = tuple[datetime, datetime]
_LATE_PARTS = frozenset({"debut_apres_midi", "apres_midi", "fin_apres_midi", "fin_journee", "soir"})
_EARLY_PARTS = frozenset({"debut_matinee", "matin", "fin_matinee"})


@dataclass(frozen=True)
class TimeQuery:
    """What a time expression asks for, resolved.

    ``intervals`` is the answer (UTC, sorted, ``[start, end)``, bounding an appointment's
    start); the other fields keep the parts it was built from, for callers that apply them
    differently (a slot search over several days, a confirmation text).
    """

    intervals: tuple[Interval, ...]
    part_of_day: str | None = None  # a key of DEFAULT_DAY_PARTS
    asap: bool = False
    after: datetime | None = None  # UTC: nothing starts before (from "après le 14 juillet")
    before: datetime | None = None  # UTC: nothing starts at or after (from "avant le 23")
    instant: datetime | None = None  # UTC: the words name one exact time ("jeudi 14h30")
    days: tuple[date, ...] = ()  # the local days named, when the words name days
    spans: tuple[tuple[int, int], ...] = ()  # each matched fragment, offsets in the text

    @property
    def span(self) -> tuple[int, int]:
        """From the first matched character to the last (offsets in the original text)."""
        return (self.spans[0][0], self.spans[-1][1]) if self.spans else (0, 0)

    @property
    def start(self) -> datetime:
        return self.intervals[0][0]

    @property
    def end(self) -> datetime:
        return self.intervals[-1][1]


# --- normalisation -----------------------------------------------------------------------


def _fold(char: str) -> str:
    """One character without accent, lower case, so offsets in the text are kept."""
    if char in "’ʼ`´":
        return "'"
    if char in "‐‑–—":
        return "-"
    base = unicodedata.normalize("NFKD", char)[0].lower()
    return base if len(base) == 1 else char.lower()


_FUZZY_TARGETS = WEEKDAY_WORDS + MONTH_WORDS + ("prochain", "prochaine", "semaine", "demain")
_KNOWN = frozenset(
    _FUZZY_TARGETS
    + tuple(NUMBER_WORDS)
    + ("matin", "matinee", "apres", "midi", "soir", "soiree", "avant", "entre", "heures")
)


def _distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Damerau), stopped early past ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        prev2, prev = prev, row
    return prev[-1]


def _correct(word: str) -> str:
    """A weekday, month or keyword the word is a typo of, else the word itself."""
    if word in _KNOWN or len(word) < 5 or not word.isalpha():
        return word
    if word.endswith("s") and word[:-1] in WEEKDAY_WORDS:  # "les mardis"
        return word[:-1]
    best, best_distance = word, 2
    for target in _FUZZY_TARGETS:
        limit = 2 if len(target) >= 8 and len(word) >= 8 else 1
        d = _distance(word, target, limit)
        if d <= limit and d < best_distance:
            best, best_distance = target, d
    return best


@dataclass
class _Text:
    """The folded, corrected text and, for each of its characters, the original offset."""

    text: str
    origin: list[int]
    length: int

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        if start >= end:
            return (self.origin[start], self.origin[start])
        return (self.origin[start], self.origin[end - 1] + 1)


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _normalise(text: str) -> _Text:
    folded = "".join(_fold(c) for c in text)
    out: list[str] = []
    origin: list[int] = []
    position = 0
    for m in _WORD.finditer(folded):
        out.append(folded[position : m.start()])
        origin.extend(range(position, m.start()))
        word = m.group()
        inside_sentence = m.start() > 0 and not re.search(r"[.!?:]\s*$", folded[: m.start()])
        is_name = text[m.start()].isupper() and inside_sentence
        fixed = word if is_name else _correct(word)
        out.append(fixed)
        if len(fixed) == len(word):
            origin.extend(range(m.start(), m.end()))
        else:
            origin.extend(min(m.start() + k, m.end() - 1) for k in range(len(fixed) - 1))
            origin.append(m.end() - 1)
        position = m.end()
    out.append(folded[position:])
    origin.extend(range(position, len(folded)))
    origin.append(len(folded))
    return _Text("".join(out), origin, len(folded))


# --- the grammar -------------------------------------------------------------------------

_WD = "|".join(WEEKDAY_WORDS)
_MONTH = "|".join(MONTH_WORDS)
_NUMW = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_DAYNUM = r"(?:1er|premier|[0-3]?\d)"
_APM = r"apres[- ]?midi|aprem"
_CLOCK = (
    r"(?:(?P<{p}h>[0-2]?\d)\s*(?:h|heures?|:)\s*(?P<{p}m>[0-5]\d)?(?:\s*(?P<{p}half>et demie?))?"
    r"(?![\w])|(?P<{p}noon>midi|minuit)(?:\s*(?P<{p}nm>[0-5]\d)|\s*(?P<{p}nhalf>et demie?))?"
    r"(?![\w-]))"
)


def _clock(p: str) -> str:
    return _CLOCK.format(p=p)


def _clock_value(m: re.Match[str], p: str) -> time | None:
    if m.group(f"{p}noon"):
        hour = 12 if m.group(f"{p}noon") == "midi" else 0
        minute = int(m.group(f"{p}nm") or 0) or (30 if m.group(f"{p}nhalf") else 0)
    else:
        hour = int(m.group(f"{p}h"))
        minute = int(m.group(f"{p}m") or 0) or (30 if m.group(f"{p}half") else 0)
    if hour == 24 and minute == 0:
        return END_OF_DAY
    if hour > 23:
        return None
    return time(hour, minute)


def _day_number(token: str) -> int:
    return 1 if token in ("1er", "premier") else int(token)


def _count(token: str) -> int:
    return NUMBER_WORDS[token] if token in NUMBER_WORDS else int(token)


@dataclass
class _Facts:
    """What the fragments of the text said, before resolution."""

    days: list[tuple[date, date]] = field(default_factory=list)  # [first, last] local days
    open_from: date | None = None  # "après le 14 juillet": first day allowed
    open_until: date | None = None  # "avant le 23": first day excluded
    window: DayWindow | None = None
    part: str | None = None
    exact: time | None = None
    asap: bool = False
    weekday_only: list[int] = field(default_factory=list)  # "mardi" when a week is named
    spans: list[tuple[int, int]] = field(default_factory=list)


def _next_weekday(today: date, weekday: int, include_today: bool) -> date:
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and not include_today:
        ahead = 7
    return today + timedelta(days=ahead)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_day_of_month(today: date, day: int, weekday: int | None = None) -> date | None:
    """The next date (today included) with that day number (and weekday), within 2 years."""
    year, month = today.year, today.month
    for _ in range(28):
        candidate = _safe_date(year, month, day)
        if candidate and candidate >= today and (weekday is None or candidate.weekday() == weekday):
            return candidate
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return None


def _next_date(today: date, month: int, day: int, year: int | None) -> date | None:
    if year is not None:
        return _safe_date(year, month, day)
    for y in (today.year, today.year + 1, today.year + 2, today.year + 3, today.year + 4):
        candidate = _safe_date(y, month, day)
        if candidate and candidate >= today:
            return candidate
    return None


_OFFICIAL = {  # our keys -> the names `holidays` gives France's public holidays in French
    "jour de l'an": "Jour de l'an",
    "nouvel an": "Jour de l'an",
    "lundi de paques": "Lundi de Pâques",
    "fete du travail": "Fête du Travail",
    "victoire": "Fête de la Victoire",
    "ascension": "Ascension",
    "lundi de pentecote": "Lundi de Pentecôte",
    "fete nationale": "Fête nationale",
    "assomption": "Assomption",
    "toussaint": "Toussaint",
    "armistice": "Armistice",
    "noel": "Noël",
}


@lru_cache(maxsize=16)
def _holidays(year: int) -> dict[str, date]:
    """France's public holidays of a year (from ``holidays``), by our keys, with the two
    Sundays people also name ("Pâques", "Pentecôte") and New Year's Eve."""
    official = {
        name: day
        for day, name in holidays.country_holidays("FR", years=year, language="fr").items()
    }
    found = {key: official[name] for key, name in _OFFICIAL.items()}
    found["paques"] = found["lundi de paques"] - timedelta(days=1)
    found["pentecote"] = found["lundi de pentecote"] - timedelta(days=1)
    found["saint-sylvestre"] = date(year, 12, 31)
    return found


_HOLIDAY_RE = (
    r"(?:(?:le|la|l')\s*)?(?:jeudi de l'|jour de l'|fete de l'|fete de la )?"
    r"(?P<holiday>lundi de paques|lundi de pentecote|paques|pentecote|ascension|assomption|"
    r"toussaint|noel|jour de l'an|nouvel an|fete du travail|fete nationale|armistice|"
    r"victoire|saint[- ]sylvestre)(?![\w])"
)


def _holiday_date(today: date, name: str) -> date:
    name = name.replace("saint sylvestre", "saint-sylvestre")
    for year in (today.year, today.year + 1):
        found = _holidays(year)[name]
        if found >= today:
            return found
    return _holidays(today.year + 1)[name]


# A date reference used after "le", "après", "avant", "du", "jusqu'au": weekday and/or day
# number and/or month, a holiday, or a relative day word.
_DATE_REF = (
    rf"(?:{_HOLIDAY_RE}"
    rf"|(?P<rel>apres[- ]demain|avant[- ]hier|aujourd'hui|demain|hier)"
    rf"|(?:(?P<this>ce|cette)\s+)?(?P<wd>{_WD})"
    rf"(?:\s+(?P<wdnum>{_DAYNUM})(?![\d:])(?!\s*(?:h\b|h\d|heures?\b))"
    rf"(?:\s+(?P<wdmonth>{_MONTH})|\s*/\s*(?P<wdmonthnum>0?[1-9]|1[0-2])(?![\d]))?)?"
    rf"(?:\s+(?P<next>prochain|qui vient|d'apres))?(?:\s+(?P<huit>en huit|en quinze))?"
    rf"|(?P<num>{_DAYNUM})(?:(?:\s*[/.-]\s*|\s+(?=[a-z]))(?P<month>{_MONTH}|0?[1-9]|1[0-2])"
    rf"(?:(?:\s*[/.-]\s*|\s+)(?P<year>20\d\d))?)?(?![\w:/.])(?!\s*(?:h\b|heures?\b|:))"
    rf")"
)


def _resolve_date_ref(m: re.Match[str], today: date) -> date | None:
    if m.group("holiday"):
        return _holiday_date(today, m.group("holiday"))
    rel = m.group("rel")
    if rel:
        offsets = {"aujourd'hui": 0, "demain": 1, "hier": -1}
        if rel.startswith("apres"):
            return today + timedelta(days=2)
        if rel.startswith("avant"):
            return today - timedelta(days=2)
        return today + timedelta(days=offsets[rel])
    if m.group("wd"):
        weekday = WEEKDAY_WORDS.index(m.group("wd"))
        if m.group("wdnum"):
            day = _day_number(m.group("wdnum"))
            if m.group("wdmonth") or m.group("wdmonthnum"):
                named = m.group("wdmonth")
                month = MONTH_WORDS.index(named) + 1 if named else int(m.group("wdmonthnum") or 1)
                for y in range(today.year, today.year + 8):
                    c = _safe_date(y, month, day)
                    if c and c >= today and c.weekday() == weekday:
                        return c
                return _next_date(today, month, day, None)
            return _next_day_of_month(today, day, weekday) or _next_day_of_month(today, day)
        result = _next_weekday(today, weekday, include_today=bool(m.group("this")))
        if m.group("huit"):
            result += timedelta(days=7 if m.group("huit") == "en huit" else 14)
        return result
    if m.group("num"):
        day = _day_number(m.group("num"))
        month_token = m.group("month")
        if month_token:
            month = (
                MONTH_WORDS.index(month_token) + 1
                if month_token in MONTH_WORDS
                else int(month_token)
            )
            year = int(m.group("year")) if m.group("year") else None
            return _next_date(today, month, day, year)
        if not 1 <= day <= 31:
            return None
        return _next_day_of_month(today, day)
    return None


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


# A rule returns True when it read its match, False to leave it to later rules, None to take
# the words without reading a time in them.
_Rule = Callable[[re.Match[str], "_Context"], bool | None]


@dataclass
class _Context:
    today: date
    now_local: datetime
    facts: _Facts
    day_parts: Mapping[str, DayWindow]


def _days(ctx: _Context, first: date, last: date | None = None) -> bool:
    ctx.facts.days.append((first, last or first))
    return True


def _rule_birth_date(m: re.Match[str], ctx: _Context) -> None:
    """A birth date ("née le 02/04/1979") names a patient, not a time: taken, never read."""
    return None


def _rule_asap(m: re.Match[str], ctx: _Context) -> bool:
    ctx.facts.asap = True
    return True


def _rule_range(m: re.Match[str], ctx: _Context) -> bool:
    """A range of days: "du 12 au 15", "entre le 12 et le 15"."""
    first = _resolve_date_ref(_named(m, "a"), ctx.today)
    last_match = _named(m, "b")
    last = _resolve_date_ref(last_match, ctx.today)
    if first is None or last is None:
        return False
    if last < first and not (last_match.group("month") or last_match.group("wdmonth")):
        # "du 28 au 3": the end is in the following month.
        nxt = _next_day_of_month(first, last.day)
        last = nxt or last
    if last < first:
        return False
    return _days(ctx, first, last)


class _Sub:
    """A match seen through a prefix: ``group("x")`` reads group ``<prefix>x``."""

    def __init__(self, m: re.Match[str], prefix: str) -> None:
        self._m, self._p = m, prefix

    def group(self, name: str) -> str | None:
        return self._m.group(self._p + name)


def _named(m: re.Match[str], prefix: str) -> re.Match[str]:
    return _Sub(m, prefix)  # type: ignore[return-value]  # duck-typed: only .group is read


def _date_ref(prefix: str) -> str:
    return re.sub(r"\(\?P<(\w+)>", lambda g: f"(?P<{prefix}{g.group(1)}>", _DATE_REF)


def _rule_after_date(m: re.Match[str], ctx: _Context) -> bool:
    day = _resolve_date_ref(_named(m, "a"), ctx.today)
    if day is None:
        return False
    ctx.facts.open_from = day if m.group("from") else day + timedelta(days=1)
    return True


def _rule_before_date(m: re.Match[str], ctx: _Context) -> bool:
    day = _resolve_date_ref(_named(m, "a"), ctx.today)
    if day is None:
        return False
    ctx.facts.open_until = day + timedelta(days=1) if m.group("until") else day
    return True


def _rule_week_of(m: re.Match[str], ctx: _Context) -> bool:
    day = _day_number(m.group("wnum"))
    month = MONTH_WORDS.index(m.group("wmonth")) + 1 if m.group("wmonth") else None
    monday_now = _monday(ctx.today)
    if month is not None:
        found = None
        for y in (ctx.today.year, ctx.today.year + 1):
            c = _safe_date(y, month, day)
            if c and _monday(c) >= monday_now:
                found = c
                break
    else:
        found = None
        y, mo = ctx.today.year, ctx.today.month
        for _ in range(14):
            c = _safe_date(y, mo, day)
            if c and _monday(c) >= monday_now:
                found = c
                break
            mo += 1
            if mo > 12:
                y, mo = y + 1, 1
    if found is None:
        return False
    return _days(ctx, _monday(found), _monday(found) + timedelta(days=6))


def _rule_week(m: re.Match[str], ctx: _Context) -> bool:
    which = m.group("which")
    monday = _monday(ctx.today)
    if which in ("prochaine", "d'apres", "suivante", "qui vient"):
        monday += timedelta(days=7)
    elif which == "apres la prochaine":
        monday += timedelta(days=14)
    return _days(ctx, monday, monday + timedelta(days=6))


def _rule_until_end(m: re.Match[str], ctx: _Context) -> bool:
    """From now to the end of this week or month ("d'ici la fin de la semaine")."""
    if m.group("unit") == "semaine":
        ctx.facts.open_until = _monday(ctx.today) + timedelta(days=7)
    else:
        month_after = date(ctx.today.year + (ctx.today.month == 12), ctx.today.month % 12 + 1, 1)
        ctx.facts.open_until = month_after
    return True


def _rule_week_edge(m: re.Match[str], ctx: _Context) -> bool:
    """The end of a week ("en fin de semaine") is Thursday to Saturday, its start Monday and
    Tuesday: this week's while still ahead, else next week's."""
    monday = _monday(ctx.today)
    first, last = (3, 5) if m.group("edge") == "fin" else (0, 1)
    if m.group("next") or ctx.today > monday + timedelta(days=last):
        monday += timedelta(days=7)
    return _days(ctx, max(monday + timedelta(days=first), ctx.today), monday + timedelta(days=last))


def _rule_weekend(m: re.Match[str], ctx: _Context) -> bool:
    """A weekend ("ce week-end"): the coming Saturday and Sunday (today's weekend on a Saturday or a
    Sunday); "le week-end prochain" the one after."""
    saturday = _monday(ctx.today) + timedelta(days=5)
    if m.group("next"):
        saturday += timedelta(days=7)
    return _days(ctx, max(saturday, ctx.today), saturday + timedelta(days=1))


def _rule_month(m: re.Match[str], ctx: _Context) -> bool:
    year, month = ctx.today.year, ctx.today.month
    if m.group("mwhich") and m.group("mwhich") != "ce mois":
        month += 1
        if month > 12:
            year, month = year + 1, 1
    elif m.group("mname"):
        month = MONTH_WORDS.index(m.group("mname")) + 1
        if month < ctx.today.month:
            year += 1
    first = date(year, month, 1)
    last = (date(year + (month == 12), month % 12 + 1, 1)) - timedelta(days=1)
    if m.group("mpart") == "debut":
        last = first + timedelta(days=9)
    elif m.group("mpart") == "fin":
        first = first + timedelta(days=20)
    elif m.group("mpart") == "mi":
        first, last = first + timedelta(days=9), first + timedelta(days=19)
    return _days(ctx, max(first, ctx.today) if first <= ctx.today <= last else first, last)


_IDIOMATIC_DAYS = {8: 7, 15: 14}


def _rule_in(m: re.Match[str], ctx: _Context) -> bool:
    n = _count(m.group("n"))
    unit = m.group("unit")
    if unit.startswith("jour"):
        # French counts both ends: "dans huit jours" is a week, "dans quinze jours" two.
        target = ctx.today + timedelta(days=_IDIOMATIC_DAYS.get(n, n))
    elif unit.startswith("semaine"):
        target = ctx.today + timedelta(days=7 * n)
    else:
        month = ctx.today.month - 1 + n
        year = ctx.today.year + month // 12
        month = month % 12 + 1
        target = _safe_date(year, month, ctx.today.day) or (
            date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
        )
    if m.group("within"):
        return _days(ctx, ctx.today, target)
    return _days(ctx, target)


def _rule_quinzaine(m: re.Match[str], ctx: _Context) -> bool:
    target = ctx.today + timedelta(days=14)
    if m.group("qwithin"):
        return _days(ctx, ctx.today, target)
    return _days(ctx, target)


def _rule_date(m: re.Match[str], ctx: _Context) -> bool:
    sub = _named(m, "a")
    if sub.group("num") and not sub.group("month") and not m.group().startswith(("le", "l'")):
        return False  # a bare number ("5 créneaux", a phone number) is no day
    day = _resolve_date_ref(sub, ctx.today)
    if day is None:
        return False
    if sub.group("wd") and not sub.group("wdnum") and ctx.facts.weekday_only is not None:
        ctx.facts.weekday_only.append(WEEKDAY_WORDS.index(sub.group("wd") or ""))
    return _days(ctx, day)


def _set_window(ctx: _Context, window: DayWindow) -> bool:
    current = ctx.facts.window
    if current is None:
        ctx.facts.window = window
    else:  # "l'après-midi après 15h": both hold
        start, end = max(current[0], window[0]), min(current[1], window[1])
        ctx.facts.window = (start, end) if start < end else window
    return True


def _rule_between_times(m: re.Match[str], ctx: _Context) -> bool:
    if m.group("bare"):
        start: time | None = time(int(m.group("bare"))) if int(m.group("bare")) < 24 else None
    else:
        start = _clock_value(m, "t" if m.group("th") or m.group("tnoon") else "v")
    end = _clock_value(m, "u")
    if start is None or end is None or not start < end:
        return False
    return _set_window(ctx, (start, end))


def _rule_after_time(m: re.Match[str], ctx: _Context) -> bool:
    at = _clock_value(m, "t")
    if at is None:
        return False
    return _set_window(ctx, (at, END_OF_DAY))


def _rule_before_time(m: re.Match[str], ctx: _Context) -> bool:
    at = _clock_value(m, "t")
    if at is None or at == time(0):
        return False
    return _set_window(ctx, (time(0), at))


def _rule_around_time(m: re.Match[str], ctx: _Context) -> bool:
    at = _clock_value(m, "t")
    if at is None or at == END_OF_DAY:
        return False
    moment = datetime.combine(date(2000, 1, 2), at)
    start = (moment - timedelta(minutes=30)).time() if at >= time(0, 30) else time(0)
    end = (moment + timedelta(minutes=30)).time() if at < time(23, 30) else END_OF_DAY
    return _set_window(ctx, (start, end))


def _rule_exact_time(m: re.Match[str], ctx: _Context) -> bool:
    at = _clock_value(m, "t")
    if at is None or at == END_OF_DAY:
        return False
    ctx.facts.exact = at
    return True


def _rule_part(m: re.Match[str], ctx: _Context) -> bool:
    which = m.group("part")
    edge = m.group("edge")
    if which.startswith("apres") or which == "aprem":
        key = {"debut": "debut_apres_midi", "fin": "fin_apres_midi"}.get(edge or "", "apres_midi")
    elif which.startswith("mat"):
        key = {"debut": "debut_matinee", "fin": "fin_matinee"}.get(edge or "", "matin")
    elif which == "journee":
        if edge == "fin":
            key = "fin_journee"
        elif edge == "debut":
            key = "debut_matinee"
        else:
            return True  # "dans la journée": the whole day
    elif which == "midi":
        key = "midi"
    else:
        key = "soir"
    if m.group("today"):
        _days(ctx, ctx.today)
    ctx.facts.part = key
    return _set_window(ctx, ctx.day_parts[key])


_RULES: list[tuple[re.Pattern[str], _Rule]] = [
    (
        re.compile(
            r"(?:nee?s?|naissance|ddn)\s*:?\s*(?:le\s+)?(?:\d{1,2}\s*[/.-]\s*\d{1,2}\s*[/.-]\s*\d{2,4}"
            rf"|{_DAYNUM}\s+(?:{_MONTH})\s+\d{{4}})"
        ),
        _rule_birth_date,
    ),
    (
        re.compile(
            r"(?:le |au )?(?:plus (?:tot|vite) possible|au plus (?:tot|vite)|des que possible"
            r"|rapidement|en urgence|asap|des que vous pouvez"
            r"|(?:le )?(?:premier|prochain) (?:creneau|rendez-vous|rdv)"
            r"(?: (?:disponible|libre|possible))?)"
        ),
        _rule_asap,
    ),
    (
        re.compile(
            r"(?:d'ici|avant|jusqu'a)\s+(?:la\s+)?fin\s+(?:de\s+(?:la\s+|cette\s+)?|du\s+)"
            r"(?P<unit>semaine|mois)"
        ),
        _rule_until_end,
    ),
    (
        re.compile(
            r"(?:(?:en|a la|au)\s+)?(?P<edge>debut|fin) de (?:la |cette )?semaine"
            r"(?:\s+(?P<next>prochaine))?"
        ),
        _rule_week_edge,
    ),
    (
        re.compile(
            rf"(?:du|entre)\s+(?:le\s+)?{_date_ref('a')}\s+(?:au|et le|et)\s+"
            rf"(?:le\s+)?{_date_ref('b')}"
        ),
        _rule_range,
    ),
    (
        re.compile(
            rf"(?:(?:entre|de)\s+(?:{_clock('t')}|(?P<bare>[0-2]?\d))\s*(?:et|a|-|jusqu'a)\s*"
            rf"|{_clock('v')}\s*-\s*){_clock('u')}"
        ),
        _rule_between_times,
    ),
    (
        re.compile(rf"(?:apres(?![- ]?midi)|a partir de|des|plus tard que)\s+{_clock('t')}"),
        _rule_after_time,
    ),
    (
        re.compile(rf"(?:avant|jusqu'a|au plus tard a|pas apres)\s+{_clock('t')}"),
        _rule_before_time,
    ),
    (
        re.compile(rf"(?:vers|aux alentours de|autour de|environ)\s+{_clock('t')}"),
        _rule_around_time,
    ),
    (
        re.compile(
            r"la semaine (?:du|d'|de)\s*(?:(?:"
            + _WD
            + r")\s+)?(?P<wnum>"
            + _DAYNUM
            + r")(?:\s+(?P<wmonth>"
            + _MONTH
            + r"))?"
        ),
        _rule_week_of,
    ),
    (
        re.compile(
            r"(?:(?:la|cette)\s+)?semaine\s+(?P<which>prochaine|d'apres|suivante|qui vient"
            r"|apres la prochaine)|(?P<this>cette semaine)|(?:la\s+)?(?P<which2>prochaine) semaine"
        ),
        lambda m, ctx: _rule_week(_named_week(m), ctx),
    ),
    (
        re.compile(
            r"(?:(?P<within>d'ici|dans les|sous|au cours des)|dans)\s+"
            r"(?P<n>\d{1,3}|" + _NUMW + r")\s+(?P<unit>jours?|semaines?|mois)"
            r"(?:\s+(?:a venir|qui viennent|prochains?))?"
        ),
        _rule_in,
    ),
    (
        re.compile(
            r"(?:(?P<qwithin>d'ici|dans les|sous)\s+(?:une\s+|la\s+)?|dans\s+(?:une\s+)?)"
            r"quinzaine"
        ),
        _rule_quinzaine,
    ),
    (
        re.compile(
            rf"(?:(?P<from>a partir d[ue]|a compter d[ue]|des)|apres(?![- ]demain))\s+"
            rf"(?:le\s+|la\s+|l')?{_date_ref('a')}"
        ),
        _rule_after_date,
    ),
    (
        re.compile(
            rf"(?:(?P<until>jusqu'au|jusqu'a|au plus tard)|avant(?![- ]hier)|d'ici)\s+"
            rf"(?:le\s+|la\s+|l'|au\s+)?{_date_ref('a')}"
        ),
        _rule_before_date,
    ),
    (re.compile(rf"(?:a|pour)\s+{_clock('t')}"), _rule_exact_time),
    (
        re.compile(
            rf"(?P<today>ce |cet )?(?:(?:en|dans la|dans l'|le|la|l')\s*)?"
            rf"(?P<edge>debut|fin|milieu)?\s*(?:de |d'|du )?\s*(?:la\s+|l')?"
            rf"(?P<part>matinee|matin|{_APM}|soiree|soir|journee|midi)(?![\w])"
        ),
        _rule_part,
    ),
    (re.compile(r"(?:(?:ce|le|du|au)\s+)?week-?end(?:\s+(?P<next>prochain))?"), _rule_weekend),
    (re.compile(_clock("t")), _rule_exact_time),
    (re.compile(rf"(?:(?:le|l')\s*)?{_date_ref('a')}"), _rule_date),
    (
        re.compile(
            r"(?:(?:en|au|a la|a)\s+)?(?:(?P<mpart>debut|fin|mi)[- ]?(?:(?:du|de|d')\s*)?)?"
            r"(?:(?P<mwhich>mois prochain|ce mois|mois suivant)(?:-ci)?"
            r"|(?:mois d'|mois de\s+)?(?P<mname>" + _MONTH + r"))(?![\w])"
        ),
        _rule_month,
    ),
]


def _named_week(m: re.Match[str]) -> re.Match[str]:
    return _WeekMatch(m)  # type: ignore[return-value]  # duck-typed: only .group is read


# A rule starts at the start of a word: "le" in "possible" is no article.
_RULES = [(re.compile(r"(?<![\w'])(?:" + p.pattern + ")"), rule) for p, rule in _RULES]


class _WeekMatch:
    """Adapts the three spellings of a week rule to one ``which`` group."""

    def __init__(self, m: re.Match[str]) -> None:
        self._m = m

    def group(self, name: str) -> str | None:
        if name == "which":
            if self._m.group("this"):
                return "cette"
            return self._m.group("which") or self._m.group("which2")
        return self._m.group(name)


def _scan(text: str, ctx: _Context) -> None:
    """Apply the rules left to right; a character belongs to the first rule that takes it."""
    taken = [False] * len(text)
    for pattern, rule in _RULES:
        for m in pattern.finditer(text):
            start, end = m.span()
            while start < end and text[start] == " ":
                start += 1
            if start >= end or any(taken[start:end]):
                continue
            if start > 0 and text[start - 1].isalnum() and text[start].isalnum():
                continue  # inside a word
            if end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
                continue
            read = rule(m, ctx)
            if read is not False:
                for k in range(start, end):
                    taken[k] = True
            if read:
                ctx.facts.spans.append((start, end))


# --- resolution --------------------------------------------------------------------------


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    if at == END_OF_DAY:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def parse(
    text: str,
    now: datetime,
    tz: ZoneInfo,
    *,
    day_parts: Mapping[str, DayWindow] = DEFAULT_DAY_PARTS,
) -> TimeQuery | None:
    """Resolve the time expression in ``text`` (French, free wording) against ``now``.

    Returns None when the text names no time at all. ``now`` must be aware; ``tz`` is the
    practice's zone, in which days and hours are read.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now_local = now.astimezone(tz)
    today = now_local.date()
    norm = _normalise(text)
    ctx = _Context(today, now_local, _Facts(), day_parts)
    _scan(norm.text, ctx)
    facts = ctx.facts
    if not facts.spans:
        return None
    now_utc = now.astimezone(UTC).replace(second=0, microsecond=0)

    window: DayWindow | None = facts.window
    exact = facts.exact
    if exact is not None and 1 <= exact.hour <= 11:
        later = facts.part in _LATE_PARTS or (exact.hour <= 6 and facts.part not in _EARLY_PARTS)
        if later:  # "à 3h de l'après-midi", "à 2h": 15:00, 14:00
            exact = exact.replace(hour=exact.hour + 12)
    if exact is not None:
        exact_window: DayWindow = (exact, (datetime.combine(today, exact) + MINUTE).time())
        window = exact_window

    # The days: named days (a weekday inside a named week is that week's day), open bounds.
    ranges = list(facts.days)
    week_ranges = [(a, b) for a, b in ranges if (b - a).days == 6 and a.weekday() == 0]
    if week_ranges and facts.weekday_only and len(ranges) > len(week_ranges):
        monday = week_ranges[0][0]
        ranges = [
            (monday + timedelta(days=w), monday + timedelta(days=w)) for w in facts.weekday_only
        ]
    clip_to_now = False
    after_bound = before_bound = None
    if facts.open_from is not None or facts.open_until is not None:
        first = facts.open_from or today
        last_excl = facts.open_until or (first + HORIZON)
        if facts.open_from is None:
            clip_to_now = True
        if facts.open_from is not None:
            after_bound = _local(facts.open_from, time(0), tz)
        if facts.open_until is not None:
            before_bound = _local(facts.open_until, time(0), tz)
        if ranges:  # "mardi après 17h" kept the day; "mardi, après le 14" narrows nothing
            ranges = [(max(a, first), min(b, last_excl - timedelta(days=1))) for a, b in ranges]
            ranges = [(a, b) for a, b in ranges if a <= b]
        else:
            ranges = [(max(first, today), last_excl - timedelta(days=1))]
    elif facts.asap and not ranges:
        ranges = [(today, today + HORIZON - timedelta(days=1))]
        clip_to_now = True
    elif facts.asap:
        clip_to_now = True

    if not ranges:
        if window is None and not facts.asap:
            return None
        assert window is not None
        day = today
        if _local(today, window[1] if exact is None else window[0], tz) <= now_utc:
            day = today + timedelta(days=1)
        ranges = [(day, day)]

    intervals: list[Interval] = []
    days: list[date] = []
    for first, last in ranges:
        if facts.asap and not (facts.open_from or facts.open_until) and first == last:
            last = first + HORIZON - timedelta(days=1)  # "le plus tôt possible à partir de mardi"
        if window is None and not (clip_to_now and first == today):
            intervals.append((_local(first, time(0), tz), _local(last, END_OF_DAY, tz)))
        else:
            day = first
            while day <= last:
                w = window or (time(0), END_OF_DAY)
                intervals.append((_local(day, w[0], tz), _local(day, w[1], tz)))
                day += timedelta(days=1)
        day = first
        while day <= last and len(days) < 62:
            days.append(day)
            day += timedelta(days=1)
    if clip_to_now:
        intervals = [(max(s, now_utc), e) for s, e in intervals if e > now_utc]
    merged = _merge(intervals)
    if not merged:
        return None
    instant = merged[0][0] if exact is not None and len(merged) == 1 else None
    return TimeQuery(
        intervals=merged,
        part_of_day=facts.part,
        asap=facts.asap,
        after=after_bound,
        before=before_bound,
        instant=instant,
        days=tuple(sorted(set(days))),
        spans=tuple(sorted(norm.original_span(s, e) for s, e in facts.spans)),
    )
