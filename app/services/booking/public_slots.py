"""The free slots the public booking page offers: the scheduling core's free slots (which
already leave out appointments, live holds, absences, closures and public holidays), within
the practice's online rules (practitioners, visit type, minimum notice, horizon, ranges kept
for the phone)."""

import threading
import time as clock
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.services.booking import rules as booking_rules
from app.services.core.errors import Conflict
from app.services.scheduling.slots import Slot, SlotQuery, find_slots
from models.online_booking import OnlineBookingRules

MAX_SLOTS = 100


class SlotGone(Conflict):
    """The slot was taken or held meanwhile; ``alternatives`` are the next free ones."""

    def __init__(self, alternatives: list[Slot], tz: ZoneInfo) -> None:
        listed = ", ".join(s.starts_at.astimezone(tz).strftime("%d/%m %H:%M") for s in alternatives)
        fr, en = "Créneau déjà pris.", "Slot already taken."
        if listed:
            fr += f" Prochains créneaux libres : {listed}."
            en += f" Next free slots: {listed}."
        else:
            fr += " Aucun autre créneau libre en ligne pour l'instant : appelez le cabinet."
            en += " No other free slot online for now: please call the practice."
        super().__init__(fr, en, alternatives=alternatives)
        self.alternatives = alternatives


@dataclass(frozen=True)
class DaySlots:
    """The free slots of one local day."""

    day: date
    slots: list[Slot]


def public_slots(
    session: Session,
    tz: ZoneInfo,
    rules: OnlineBookingRules,
    *,
    practitioner_id: int | None,
    visit_type: str,
    now: datetime,
    start: datetime | None = None,
    limit: int = MAX_SLOTS,
) -> list[Slot]:
    """Free slots open to online booking, earliest first; with no practitioner ("premier
    disponible"), one per start time, from the first bookable practitioner free then."""
    if not rules.enabled or visit_type not in rules.visit_types:
        return []
    allowed = set(rules.practitioner_ids)
    if practitioner_id is not None and practitioner_id not in allowed:
        return []
    earliest, latest = booking_rules.window(rules, now)
    begin = max(earliest, start or earliest)
    if begin >= latest:
        return []
    found: list[Slot] = []
    seen: set[datetime] = set()
    cursor = begin
    # A few passes at most: ranges kept for the phone or practitioners not open online can
    # filter out many slots of a pass.
    for _ in range(4):
        batch = find_slots(
            session,
            tz,
            SlotQuery(
                start=cursor,
                end=latest,
                practitioner_id=practitioner_id,
                visit_type=visit_type,
                limit=MAX_SLOTS,
            ),
            now=now,
        )
        for slot in batch:
            if slot.practitioner_id not in allowed:
                continue
            if booking_rules.phone_only(rules, slot.starts_at, slot.ends_at, tz):
                continue
            if practitioner_id is None:
                if slot.starts_at in seen:
                    continue
                seen.add(slot.starts_at)
            found.append(slot)
            if len(found) >= limit:
                return found
        if len(batch) < MAX_SLOTS:
            break
        cursor = batch[-1].starts_at + timedelta(minutes=1)
    return found


def by_day(slots: list[Slot], tz: ZoneInfo) -> list[DaySlots]:
    days: dict[date, list[Slot]] = {}
    for slot in slots:
        days.setdefault(slot.starts_at.astimezone(tz).date(), []).append(slot)
    return [DaySlots(day, items) for day, items in sorted(days.items())]


class SlotCache:
    """The free slots of recent page views, kept a couple of seconds: under a rush every
    patient loads the same few pages, and the slot search is a dozen queries. A slot shown a
    moment after it was taken is refused at the pick with the clear "déjà pris" answer (the
    hold checks the database), and a hold or booking made here clears the cache at once."""

    def __init__(self, ttl_seconds: float = 2.0, max_entries: int = 256) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, int, list[Slot]]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def get(self, key: Hashable, compute: Callable[[], list[Slot]]) -> list[Slot]:
        now = clock.monotonic()
        with self._lock:
            found = self._entries.get(key)
            generation = self._generation
            if found is not None and found[0] > now and found[1] == generation:
                return found[2]
        value = compute()
        with self._lock:
            if generation == self._generation:  # not cleared meanwhile
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl, generation, value)
        return value
