"""When the secretary means: days, parts of the day and times in her French words, located in
the sentence (a move has a day it leaves and a day it goes to)."""

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from agents.rules.names import fold
from app.services.core.calendar_names import MONTHS_FR, WEEKDAYS_FR
from app.services.scheduling import time_expressions

WEEKDAYS = WEEKDAYS_FR
MONTHS = tuple(fold(m) for m in MONTHS_FR)  # accent-free, as folded text reads
NOON = time(13, 0)  # the scheduling services' morning ends at 13:00

_WD = "|".join(WEEKDAYS)
CLOCK = re.compile(
    r"\b(?P<mode>vers |pas avant |apres |avant |a partir de |a )?(?P<h>\d{1,2}) ?(?:h|heures?)"
    r"(?: ?(?P<m>\d{2}))?\b"
)
TODAY = re.compile(r"\b(?:aujourd hui|ce matin|cet apres midi|ce soir|tout a l heure)\b")
SAME_TIME = re.compile(r"\b(?:a )?(?:la )?meme heure\b")
EARLIEST = re.compile(
    r"\b(?:le plus tot|au plus tot|premier creneau|des que possible|"
    r"premiere place|premier disponible|premier libre|premier mercredi|"
    r"premier \w+ possible)"
)
LATE_MORNING = re.compile(r"\bfin (?:de )?matinee\b")
LATE_AFTERNOON = re.compile(r"\bfin (?:d )?apres midi\b")
MORNING = re.compile(r"\b(?:matin|matinee)\b")
AFTERNOON = re.compile(r"\b(?:apres midi|aprem|soir)\b")
PARTS = re.compile(
    r"\b(?:(?:en |au )?(?:debut|fin) (?:de |d )?)?(?:(?:le |l |la |en )?"
    r"(?:matin|matinee|apres midi|aprem|soir|soiree|midi|journee))\b"
)


@dataclass(frozen=True)
class When:
    """Everything the words say about time."""

    first: date | None = None
    last: date | None = None
    part: str = "any"  # any | morning | afternoon
    at: time | None = None  # an exact time
    near: time | None = None  # "vers 10 heures"
    after: time | None = None
    before: time | None = None
    same_time: bool = False
    earliest: bool = False
    weekday: int | None = None
    time_only: bool = False  # "15h" alone: the day is the one already given, if any

    @property
    def has_day(self) -> bool:
        return self.first is not None


def _next_weekday(today: date, weekday: int, *, strictly_after: bool = False) -> date:
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and strictly_after:
        ahead = 7
    return today + timedelta(days=ahead)


def _clock(text: str) -> tuple[str, time] | None:
    for m in CLOCK.finditer(text):
        hour, minute = int(m["h"]), int(m["m"] or 0)
        if hour < 24 and minute < 60:
            return (m["mode"] or "").strip(), time(hour, minute)
    return None


MORNING_PARTS = frozenset({"debut_matinee", "matin", "fin_matinee"})
AFTERNOON_PARTS = frozenset(
    {"debut_apres_midi", "apres_midi", "fin_apres_midi", "fin_journee", "soir"}
)


def _zone(now: datetime) -> ZoneInfo:
    return now.tzinfo if isinstance(now.tzinfo, ZoneInfo) else ZoneInfo("Europe/Paris")


@lru_cache(maxsize=512)
def days(text: str, now: datetime) -> tuple[date, date] | None:
    """The first and last day the words name (the scheduling time-expression parser)."""
    query = time_expressions.parse(text, now, _zone(now))
    if query is None or not query.days:
        return None
    return query.days[0], query.days[-1]


@lru_cache(maxsize=1024)
def read(text: str, now: datetime) -> When:
    """What one stretch of words says about time: days, part of the day and exact time from
    the scheduling parser (``app/services/scheduling/time_expressions``); how to pick among
    the free slots ("vers", "pas avant", "la même heure", "le premier") from the words."""
    folded = fold(text)
    when = When()
    query = time_expressions.parse(text, now, _zone(now))
    if query is not None:
        only_asap = query.asap and query.days and query.days[0] <= now.date()
        if only_asap and TODAY.search(folded):
            when = replace(when, first=now.date(), last=now.date())
        elif query.days and not only_asap:  # "le premier créneau" names no day
            when = replace(when, first=query.days[0], last=query.days[-1])
            if len(query.days) == 1:
                when = replace(when, weekday=query.days[0].weekday())
        if query.part_of_day in MORNING_PARTS:
            when = replace(when, part="morning")
        elif query.part_of_day in AFTERNOON_PARTS:
            when = replace(when, part="afternoon")
        if query.part_of_day in ("fin_matinee", "fin_apres_midi"):
            when = replace(when, after=query.start.astimezone(_zone(now)).time())
        if query.instant is not None:
            when = replace(when, at=query.instant.astimezone(_zone(now)).time())
        when = replace(when, earliest=query.asap)
        if query.days and (query.instant is not None or _clock(folded) or query.part_of_day):
            rest = PARTS.sub(" ", CLOCK.sub(" ", folded))
            named = time_expressions.parse(rest, now, _zone(now)) if rest.strip() else None
            named_today = TODAY.search(folded) is not None  # "ce matin" names today
            when = replace(when, time_only=not named_today and (named is None or not named.days))
    clock = _clock(folded)
    if clock and when.at is None:
        mode, moment = clock
        if mode == "vers":
            when = replace(when, near=moment)
        elif mode in ("pas avant", "apres", "a partir de"):
            when = replace(when, after=moment)
        elif mode == "avant":
            when = replace(when, before=moment)
        else:
            when = replace(when, at=moment)
    elif clock and clock[0] == "vers":
        when = replace(when, near=when.at, at=None)
    if SAME_TIME.search(folded):
        when = replace(when, same_time=True)
    if EARLIEST.search(folded):
        when = replace(when, earliest=True)
    only = re.search(rf"\bpremier ({_WD}) possible|\bque le ({_WD})\b", folded)
    if only:
        weekday = WEEKDAYS.index(only.group(1) or only.group(2))
        first = _next_weekday(now.date(), weekday)
        when = replace(when, first=first, last=first + timedelta(days=56), weekday=weekday)
    return when


def split_move(text: str) -> tuple[str, str]:
    """A move's words: (where the appointment is now, where it goes). The target follows
    "à", "au", "pour" or "vers" after the verb; what comes before is the current day."""
    folded = fold(text)
    verb = re.search(
        r"\b(deplace|decale|avance|recule|passe|change|bouge|mets|reporte|repousse)", folded
    )
    start = verb.end() if verb else 0
    target = re.search(
        rf"(?:\b(?:a|au|pour|vers|en|plutot)|,\s*(?:le|au|pour))\s+(?=(?:{_WD}|demain|"
        rf"apres demain|aujourd hui|la meme|meme|le \d|\d|la semaine|cette semaine|semaine|"
        rf"l apres midi|le matin|apres midi|matin|le \w+ \d))",
        folded[start:],
    )
    if target is None:
        return folded, ""
    cut = start + target.start()
    return folded[:cut], folded[cut:]
