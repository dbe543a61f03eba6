"""The free slots the public booking page offers: the scheduling core's free slots (which
already leave out appointments, live holds, absences, closures and public holidays), within
the practice's online rules (practitioners, visit type, minimum notice, horizon, ranges kept
for the phone)."""

import threading
import time as clock
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.services.booking import availability
from app.services.booking import rules as booking_rules
from app.services.core.errors import Conflict
from app.services.scheduling.slots import Slot, SlotQuery, find_slots
from models.online_booking import OnlineBookingRules

MAX_SLOTS = 100
# How long another process's change may take to reach a cached page (this process's own
# changes reach it at once).
FRESH_SECONDS = 2.0
V = TypeVar("V")


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


class SlotCache(Generic[V]):
    """What the public page shows (its free slots, the page itself), kept ``FRESH_SECONDS``:
    under a rush every patient loads the same few pages, and the slot search is a dozen
    queries.

    Fresh means: computed less than ``ttl`` seconds ago, and no commit of this process has
    changed availability since (``availability.generation``; a booking, move, cancellation,
    hold, absence, closure or rules change made here leaves every entry at once). Another
    process's change is seen within ``ttl``; a slot shown meanwhile is refused at the pick
    with the clear "déjà pris" answer and the next free slots (the hold checks the database).

    One computation per key at a time: the others wait for it rather than repeat it. Past
    half its life an entry is due for a refresh, which ``peek`` hands to one caller (to run
    beside serving) while every caller is still served the entry: a rush never meets an
    expired page all at once, and nobody waits for the refresh.
    """

    def __init__(
        self,
        ttl_seconds: float = FRESH_SECONDS,
        max_entries: int = 256,
        monotonic: Callable[[], float] = clock.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self._now = monotonic
        self.max_entries = max_entries
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._local = 0
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._local += 1
            self._entries.clear()

    def _generation(self) -> tuple[int, int]:
        return availability.generation(), self._local

    def _fresh(self, key: Hashable, now: float) -> "_Entry[V] | None":
        """Under the lock: the entry, if still fresh."""
        entry = self._entries.get(key)
        if entry is None or entry.generation != self._generation() or entry.expires_at <= now:
            return None
        return entry

    def peek(self, key: Hashable) -> tuple[V | None, bool]:
        """The fresh value (None when there is none), and whether this caller is the one to
        ``refresh`` it now. Never waits on a computation nor reads the database: an event
        loop may call it."""
        now = self._now()
        with self._lock:
            entry = self._fresh(key, now)
            if entry is None:
                return None, False
            if now >= entry.refresh_at and not entry.refreshing:
                entry.refreshing = True
                return entry.value, True
            return entry.value, False

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The fresh value, or ``compute()`` stored (may wait for another thread's)."""
        with self._lock:
            entry = self._fresh(key, self._now())
            if entry is not None:
                return entry.value
        return self._compute(key, compute, refreshing=False)

    def refresh(self, key: Hashable, compute: Callable[[], V]) -> V:
        """Compute the value again (the caller ``peek`` named), unless done meanwhile."""
        return self._compute(key, compute, refreshing=True)

    def _compute(self, key: Hashable, compute: Callable[[], V], *, refreshing: bool) -> V:
        with self._lock:
            turn = self._computing.setdefault(key, threading.Lock())
        with turn:
            now = self._now()
            with self._lock:  # computed by another thread while this one waited?
                entry = self._fresh(key, now)
                if entry is not None and (not refreshing or now < entry.refresh_at):
                    return entry.value
                generation = self._generation()  # before the database is read
            try:
                value = compute()
            except BaseException:
                with self._lock:
                    if entry is not None:
                        entry.refreshing = False  # the next caller tries again
                raise
            with self._lock:
                if generation == self._generation():  # not changed meanwhile
                    self._entries.pop(key, None)  # kept last: the newest
                    self._make_room(now)
                    self._entries[key] = _Entry(
                        value, generation, now + self.ttl / 2, now + self.ttl
                    )
                self._computing.pop(key, None)
        return value

    def _make_room(self, now: float) -> None:
        """Under the lock: drop the expired entries, then the oldest, when full."""
        if len(self._entries) < self.max_entries:
            return
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]
        excess = len(self._entries) - self.max_entries * 3 // 4
        for key in list(self._entries)[: max(excess, 0)]:
            del self._entries[key]


@dataclass
class _Entry(Generic[V]):
    value: V
    generation: tuple[int, int]
    refresh_at: float
    expires_at: float
    refreshing: bool = False
