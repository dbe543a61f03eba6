"""Every loser of a race for one slot is told "Créneau déjà pris", with alternatives.

Runs on the test database of the session: SQLite by default, PostgreSQL with
ACCUEIL_TEST_DATABASE_URL (CI runs both).
"""

import threading
from datetime import UTC, datetime

from sqlmodel import Session, select

from app.services.core.errors import DomainError
from app.services.scheduling.agenda import SlotTaken, book_appointment
from models.appointments import Appointment
from models.db import make_engine
from models.practice import Absence
from tests.support.practice import ACTOR, PARIS, add_patient, add_practitioner, paris

ATTEMPTS = 40


def test_every_loser_of_a_booking_race_hears_slot_taken(db: Session, database_url: str) -> None:
    practitioner = add_practitioner(db)
    # An absence the same afternoon: a loser must never be told the practitioner is away.
    db.add(
        Absence(
            practitioner_id=practitioner.id,
            starts_at=paris(2027, 6, 7, 16),
            ends_at=paris(2027, 6, 7, 19),
        )
    )
    patients = [add_patient(db, f"Patient{i}", "Test") for i in range(ATTEMPTS)]
    db.commit()
    engine = make_engine(database_url)
    barrier = threading.Barrier(ATTEMPTS)
    outcomes: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    start = paris(2027, 6, 7, 10, 0)  # a Monday well ahead
    assert start > datetime.now(UTC)

    def attempt(patient_id: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                book_appointment(
                    session,
                    ACTOR,
                    PARIS,
                    patient_id=patient_id,
                    practitioner_id=practitioner.id,
                    starts_at=start,
                )
                session.commit()
                result = ("booked", "", 0)
            except SlotTaken as exc:
                session.rollback()
                result = ("taken", exc.fr, len(exc.alternatives))
            except DomainError as exc:
                session.rollback()
                result = ("other", exc.fr, 0)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    assert len(outcomes) == ATTEMPTS
    assert [o[0] for o in outcomes].count("booked") == 1, outcomes
    losers = [o for o in outcomes if o[0] != "booked"]
    assert all(kind == "taken" for kind, _, _ in losers), losers
    assert all(text.startswith("Créneau déjà pris. Créneaux proches :") for _, text, _ in losers)
    assert all(alternatives == 3 for _, _, alternatives in losers)
    db.expire_all()
    assert len(db.exec(select(Appointment).where(Appointment.starts_at == start)).all()) == 1


def _lose_the_transaction(db: Session, monkeypatch) -> None:
    """The next flush of ``db`` fails as a deadlock victim (PostgreSQL) or a writer that gave
    up on the lock (SQLite) does."""
    from sqlalchemy.exc import OperationalError

    real_flush = db.flush
    failed: list[bool] = []

    def flush(*args, **kwargs):
        if not failed and any(isinstance(item, Appointment) for item in db.new):
            failed.append(True)
            raise OperationalError("INSERT", {}, Exception("deadlock detected"))
        return real_flush(*args, **kwargs)

    monkeypatch.setattr(db, "flush", flush)


def test_a_booking_that_loses_its_transaction_waits_for_the_winner(
    db: Session, database_url: str, monkeypatch
) -> None:
    """The winner of the race commits a moment after the loser's transaction failed: the
    loser looks again and is told "Créneau déjà pris", never "réessayez"."""
    from app.services.scheduling import agenda

    practitioner = add_practitioner(db).id or 0
    loser, winner = add_patient(db, "Perdant", "Paul"), add_patient(db, "Gagnant", "Jean")
    db.commit()
    start = paris(2027, 6, 7, 10, 0)
    other = Session(make_engine(database_url))
    looks: list[float] = []

    def pause(seconds: float) -> None:
        looks.append(seconds)
        if len(looks) == 3:  # the winner commits while the loser looks
            book_appointment(
                other, ACTOR, PARIS, patient_id=winner, practitioner_id=practitioner,
                starts_at=start,
            )  # fmt: skip
            other.commit()

    monkeypatch.setattr(agenda.time, "sleep", pause)
    _lose_the_transaction(db, monkeypatch)
    try:
        book_appointment(
            db, ACTOR, PARIS, patient_id=loser, practitioner_id=practitioner, starts_at=start
        )
    except SlotTaken as exc:
        assert "Créneau déjà pris" in exc.message("fr")
    else:
        raise AssertionError("the loser was booked")
    finally:
        other.close()
    assert len(looks) == 3
    db.rollback()
    booked = db.exec(select(Appointment).where(Appointment.practitioner_id == practitioner)).all()
    assert [a.patient_id for a in booked] == [winner]


def test_a_booking_that_loses_its_transaction_to_nobody_says_try_again(
    db: Session, monkeypatch
) -> None:
    from app.services.scheduling import agenda

    practitioner = add_practitioner(db).id or 0
    patient = add_patient(db)
    db.commit()
    looks: list[float] = []
    monkeypatch.setattr(agenda.time, "sleep", looks.append)
    _lose_the_transaction(db, monkeypatch)
    try:
        book_appointment(
            db, ACTOR, PARIS, patient_id=patient, practitioner_id=practitioner,
            starts_at=paris(2027, 6, 7, 10, 0),
        )  # fmt: skip
    except SlotTaken:
        raise AssertionError("nobody took the slot") from None
    except DomainError as exc:
        assert "réessayez" in exc.message("fr")
    else:
        raise AssertionError("a failed transaction booked nothing, yet no error")
    assert looks == list(agenda.RACE_LOOKS)
