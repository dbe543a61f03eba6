"""Which writes change what the public booking page offers, and a counter of them per process.

Every session of the process is watched: a commit that wrote to a table the free slots are
made of (appointments, holds, absences, closures, holiday openings, working hours,
practitioners, visit types and their durations, the online rules) bumps ``generation()``,
after the database has the change. The public page's caches compare the generation their
entry was computed under with the current one, so a booking, a move, a cancellation, a hold,
an absence or a rules change made by this process (staff pages, MCP tools, in-process jobs,
the booking page itself) leaves every cached page at once.

Other processes (several web replicas on PostgreSQL) are not told: their entries age out
after the caches' time to live (``public_slots.FRESH_SECONDS``), and a patient who picks a
slot taken meanwhile gets the "already taken" page with the next free slots, since the hold
checks the database.

Changes made outside a session (a bare ``Connection.execute``, raw SQL) are not seen; the
app writes these tables through sessions only.
"""

import itertools
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Result, event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from models.appointments import Appointment
from models.online_booking import OnlineBookingRules, SlotHold
from models.practice import (
    Absence,
    HolidayOpening,
    PracticeClosure,
    Practitioner,
    VisitType,
    VisitTypeDuration,
    WorkingHours,
)

MODELS: tuple[type, ...] = (
    Appointment,
    SlotHold,
    Absence,
    PracticeClosure,
    HolidayOpening,
    WorkingHours,
    Practitioner,
    VisitType,
    VisitTypeDuration,
    OnlineBookingRules,
)
TABLES = frozenset(str(getattr(model, "__tablename__")) for model in MODELS)  # noqa: B009
_FLAG = "booking_availability_changed"
_counter = itertools.count(1)
_generation = 0
_lock = threading.Lock()


def generation() -> int:
    """How many commits of this process changed availability (a cache key's freshness)."""
    return _generation


def changed() -> None:
    """Availability changed: every cached page of this process is stale."""
    global _generation
    with _lock:
        _generation = next(_counter)


def touches(objects: Iterable[object]) -> bool:
    """Whether any of these ORM objects is a row the free slots are made of."""
    return any(isinstance(item, MODELS) for item in objects)


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    # The lists still hold what this flush wrote.
    if touches(itertools.chain(session.new, session.dirty, session.deleted)):
        session.info[_FLAG] = True


def _on_execute(state: ORMExecuteState) -> Result[Any] | None:
    # Bulk statements (``update(SlotHold)…``) bypass the flush. Run here to see how many
    # rows they changed: the minute's sweep of expired holds mostly changes none.
    if not (state.is_insert or state.is_update or state.is_delete):
        return None
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) not in TABLES:
        return None
    result = state.invoke_statement()
    if getattr(result, "rowcount", -1) != 0:
        state.session.info[_FLAG] = True
    return result


def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        changed()


def _watch() -> None:
    # A change rolled back keeps its mark until the next commit: at worst one extra refresh.
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "do_orm_execute", _on_execute)
        event.listen(Session, "after_commit", _after_commit)


_watch()
