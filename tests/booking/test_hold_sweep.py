"""The periodic sweep that releases the slot holds whose time ran out."""

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from app.services.booking import availability
from app.services.flows.online_booking import RELEASE_HOLDS, release_expired_holds
from models.online_booking import SlotHold
from tests.booking.conftest import Practice, first_slot
from tests.booking.test_service import _hold as take


def _hold(db: Session, slot, now: datetime) -> SlotHold:  # type: ignore[no-untyped-def]
    hold = take(db, slot, now).hold
    hold.email = "marie@example.org"  # what the patient typed, kept while it lives
    db.commit()
    return hold


def test_the_sweep_releases_expired_holds_and_forgets_what_was_typed(
    db: Session, engine, settings, practice: Practice
) -> None:
    martin, bernard = practice.practitioner_ids
    expired = _hold(db, first_slot(db, martin), datetime.now(UTC) - timedelta(minutes=30))
    live = _hold(db, first_slot(db, bernard), datetime.now(UTC))
    before = availability.generation()
    assert release_expired_holds(engine, settings) == 1
    assert availability.generation() > before  # a bulk write that changed rows is seen
    db.expire_all()
    gone, kept = db.get(SlotHold, expired.id), db.get(SlotHold, live.id)
    assert gone is not None and kept is not None
    assert gone.released_at is not None and gone.release_reason == "expired"
    assert gone.email is None
    assert kept.released_at is None and kept.email == "marie@example.org"
    before = availability.generation()
    assert release_expired_holds(engine, settings) == 0  # nothing left to do
    assert availability.generation() == before  # the cached pages are kept


def test_the_sweep_never_raises(settings) -> None:  # type: ignore[no-untyped-def]
    from models.db import make_engine

    broken = make_engine("sqlite:////nonexistent/dir/accueil.db")
    assert release_expired_holds(broken, settings) == 0


def test_the_sweep_runs_every_minute_on_the_app_queue(app) -> None:  # type: ignore[no-untyped-def]
    queue = app.state.jobs
    try:
        for minute in (0, 1, 17, 59):
            due = {t.name for t in queue.huey.read_periodic(datetime(2030, 1, 7, 10, minute))}
            assert RELEASE_HOLDS in due
    finally:
        queue.close()
