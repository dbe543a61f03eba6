"""Booking, moving and cancelling: conflicts refused in Python and in the database, even
under concurrency; freed slots offered to the waiting list."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.flows.agenda_changes import cancel, move
from app.services.scheduling.agenda import SlotTaken, book_appointment, set_attendance
from app.services.scheduling.waiting_list import (
    accept_offer,
    add_to_waiting_list,
    decline_offer,
    expire_offers,
)
from models.appointments import (
    Appointment,
    AppointmentStatus,
    OfferStatus,
    PartOfDay,
    WaitingListEntry,
    WaitingOffer,
    WaitingStatus,
)
from models.audit import AuditEvent
from models.db import make_engine
from models.practice import Absence
from tests.support.practice import ACTOR, PARIS, add_patient, add_practitioner, paris

NOW = paris(2026, 6, 1, 7, 0)  # Monday morning, before opening
MONDAY_10 = paris(2026, 6, 1, 10, 0)


def _book(db: Session, patient: int, practitioner: int, start: datetime, **kw) -> Appointment:
    return book_appointment(
        db,
        ACTOR,
        PARIS,
        patient_id=patient,
        practitioner_id=practitioner,
        starts_at=start,
        now=NOW,
        **kw,
    )


def test_booking_stores_utc_times_and_audits(db: Session) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    appointment = _book(db, patient, practitioner.id, MONDAY_10, reason="Fièvre")
    db.commit()
    assert appointment.starts_at == MONDAY_10 and appointment.starts_at.tzinfo is not None
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=20)
    event = db.exec(select(AuditEvent).where(AuditEvent.action == "appointment.book")).one()
    assert event.patient_id == patient and event.record_id == str(appointment.id)


def test_a_taken_slot_is_refused_with_nearby_alternatives(db: Session) -> None:
    practitioner = add_practitioner(db)
    first, second = add_patient(db), add_patient(db, "Petit", "Jean")
    _book(db, first, practitioner.id, MONDAY_10)
    with pytest.raises(SlotTaken) as caught:
        _book(db, second, practitioner.id, paris(2026, 6, 1, 10, 10))
    message = caught.value.fr
    assert message.startswith("Créneau déjà pris. Créneaux proches : 01/06 10:20")
    assert len(caught.value.alternatives) == 3
    assert all(s.starts_at >= MONDAY_10 for s in caught.value.alternatives)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (paris(2026, 6, 1, 12, 20), "En dehors des horaires"),  # runs into lunch
        (paris(2026, 6, 6, 10, 0), "En dehors des horaires"),  # Saturday
        (paris(2026, 5, 29, 10, 0), "déjà passé"),
    ],
)
def test_impossible_times_are_refused(db: Session, start, message) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    with pytest.raises(InvalidInput, match=message):
        _book(db, patient, practitioner.id, start)


def test_absence_is_refused_with_a_clear_reason(db: Session) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    db.add(
        Absence(
            practitioner_id=practitioner.id,
            starts_at=paris(2026, 6, 1),
            ends_at=paris(2026, 6, 2),
            reason="Formation",
        )
    )
    db.flush()
    with pytest.raises(SlotTaken, match="absent"):
        _book(db, patient, practitioner.id, MONDAY_10)


def test_unknown_patient_or_practitioner(db: Session) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    with pytest.raises(NotFound, match="Patient"):
        _book(db, 9999, practitioner.id, MONDAY_10)
    with pytest.raises(NotFound, match="Praticien"):
        _book(db, patient, 9999, MONDAY_10)


def test_the_database_itself_refuses_overlaps(db: Session) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    db.add(
        Appointment(
            practitioner_id=practitioner.id,
            patient_id=patient,
            starts_at=MONDAY_10,
            ends_at=MONDAY_10 + timedelta(minutes=20),
        )
    )
    db.commit()
    db.add(
        Appointment(
            practitioner_id=practitioner.id,
            patient_id=patient,
            starts_at=MONDAY_10 + timedelta(minutes=10),
            ends_at=MONDAY_10 + timedelta(minutes=30),
        )
    )
    with pytest.raises(IntegrityError, match="appointment_overlap"):
        db.flush()
    db.rollback()
    # Back-to-back and cancelled appointments are fine.
    db.add(
        Appointment(
            practitioner_id=practitioner.id,
            patient_id=patient,
            starts_at=MONDAY_10 + timedelta(minutes=20),
            ends_at=MONDAY_10 + timedelta(minutes=40),
        )
    )
    db.add(
        Appointment(
            practitioner_id=practitioner.id,
            patient_id=patient,
            starts_at=MONDAY_10,
            ends_at=MONDAY_10 + timedelta(minutes=20),
            status=AppointmentStatus.cancelled,
        )
    )
    db.commit()
    # Moving one onto another is refused as well.
    second = db.exec(select(Appointment).where(Appointment.starts_at > MONDAY_10)).one()
    second.starts_at = MONDAY_10 + timedelta(minutes=5)
    db.add(second)
    with pytest.raises(IntegrityError, match="appointment_overlap"):
        db.flush()
    db.rollback()


def test_twenty_four_simultaneous_bookings_make_exactly_one_appointment(
    db: Session, database_url: str
) -> None:
    practitioner = add_practitioner(db)
    patients = [add_patient(db, f"Patient{i}", "Test") for i in range(24)]
    db.commit()
    engine = make_engine(database_url)
    barrier = threading.Barrier(len(patients))
    outcomes: list[str] = []
    lock = threading.Lock()
    now = datetime.now(UTC)
    start = paris(2027, 6, 7, 10, 0)  # a Monday well ahead
    assert start > now

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
                result = "booked"
            except SlotTaken:
                session.rollback()
                result = "taken"
            except Conflict:
                session.rollback()
                result = "busy"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in patients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    engine.dispose()
    assert len(outcomes) == 24
    assert outcomes.count("booked") == 1, outcomes
    db.expire_all()
    live = db.exec(select(Appointment).where(Appointment.starts_at == start)).all()
    assert len(live) == 1


def _waiting(
    db,
    patient,
    practitioner=None,
    part=PartOfDay.any,
    earliest=date(2026, 6, 1),
    latest=date(2026, 6, 5),
    minutes=20,
) -> WaitingListEntry:
    return add_to_waiting_list(
        db,
        ACTOR,
        patient_id=patient,
        practitioner_id=practitioner,
        earliest=earliest,
        latest=latest,
        part_of_day=part,
        duration_minutes=minutes,
        today=date(2026, 6, 1),
    )


def test_cancel_offers_the_slot_to_the_first_matching_waiting_patient(
    db: Session, monkeypatch
) -> None:
    practitioner = add_practitioner(db)
    other = add_practitioner(db, "Lefèvre")
    booked = add_patient(db)
    afternoon_only = add_patient(db, "Aprem", "Anne")
    other_doctor = add_patient(db, "Autre", "Alain")
    too_late = add_patient(db, "Tard", "Théo")
    too_long = add_patient(db, "Long", "Léa")
    first_match = add_patient(db, "Premier", "Paul")
    second_match = add_patient(db, "Second", "Sam")
    _waiting(db, afternoon_only, part=PartOfDay.afternoon)
    _waiting(db, other_doctor, practitioner=other.id)
    _waiting(db, too_late, earliest=date(2026, 6, 3))
    _waiting(db, too_long, minutes=40)
    _waiting(db, first_match, practitioner=practitioner.id, part=PartOfDay.morning)
    _waiting(db, second_match)
    appointment = _book(db, booked, practitioner.id, MONDAY_10)
    monkeypatch.setattr("app.services.scheduling.waiting_list.datetime", _FrozenDatetime)

    _, offer = cancel(db, ACTOR, PARIS, appointment.id, reason="Patient malade")
    assert offer is not None
    entry = db.get(WaitingListEntry, offer.entry_id)
    assert entry.patient_id == first_match and entry.status == WaitingStatus.offered
    assert offer.starts_at == MONDAY_10 and offer.expires_at == NOW + timedelta(hours=2)

    # Declined: the next matching patient gets it.
    next_offer = decline_offer(db, ACTOR, PARIS, offer.id, now=NOW)
    assert next_offer is not None
    assert db.get(WaitingListEntry, next_offer.entry_id).patient_id == second_match
    assert db.get(WaitingListEntry, offer.entry_id).status == WaitingStatus.waiting

    # Accepted: booked through the scheduling core.
    booked_again = accept_offer(db, ACTOR, PARIS, next_offer.id, now=NOW)
    assert booked_again.patient_id == second_match and booked_again.starts_at == MONDAY_10
    assert db.get(WaitingListEntry, next_offer.entry_id).status == WaitingStatus.booked
    assert db.get(WaitingOffer, next_offer.id).status == OfferStatus.accepted


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return NOW.astimezone(tz or UTC)


def test_accepting_a_slot_taken_meanwhile_keeps_the_patient_waiting(
    db: Session, monkeypatch
) -> None:
    monkeypatch.setattr("app.services.scheduling.waiting_list.datetime", _FrozenDatetime)
    practitioner = add_practitioner(db)
    booked, waiting, walk_in = (
        add_patient(db),
        add_patient(db, "Attente", "A"),
        add_patient(db, "Direct", "D"),
    )
    entry = _waiting(db, waiting)
    appointment = _book(db, booked, practitioner.id, MONDAY_10)
    _, offer = cancel(db, ACTOR, PARIS, appointment.id)
    _book(db, walk_in, practitioner.id, MONDAY_10)  # the secretary gave it to someone else
    db.commit()
    with pytest.raises(Conflict, match="reste sur la liste"):
        accept_offer(db, ACTOR, PARIS, offer.id, now=NOW)
    db.expire_all()
    assert db.get(WaitingOffer, offer.id).status == OfferStatus.superseded
    assert db.get(WaitingListEntry, entry.id).status == WaitingStatus.waiting


def test_expired_offers_pass_to_the_next_patient(db: Session, monkeypatch) -> None:
    monkeypatch.setattr("app.services.scheduling.waiting_list.datetime", _FrozenDatetime)
    practitioner = add_practitioner(db)
    booked = add_patient(db)
    first, second = add_patient(db, "Un", "A"), add_patient(db, "Deux", "B")
    _waiting(db, first)
    _waiting(db, second)
    appointment = _book(db, booked, practitioner.id, MONDAY_10)
    _, offer = cancel(db, ACTOR, PARIS, appointment.id)
    assert expire_offers(db, ACTOR, PARIS, now=NOW + timedelta(hours=1)) == 0
    assert expire_offers(db, ACTOR, PARIS, now=NOW + timedelta(hours=2, minutes=1)) == 1
    assert db.get(WaitingOffer, offer.id).status == OfferStatus.expired
    pending = db.exec(select(WaitingOffer).where(WaitingOffer.status == OfferStatus.pending)).one()
    assert db.get(WaitingListEntry, pending.entry_id).patient_id == second


def test_move_frees_the_old_time_for_the_waiting_list(db: Session, monkeypatch) -> None:
    monkeypatch.setattr("app.services.scheduling.waiting_list.datetime", _FrozenDatetime)
    practitioner = add_practitioner(db)
    patient, waiting = add_patient(db), add_patient(db, "Attente", "A")
    _waiting(db, waiting)
    appointment = _book(db, patient, practitioner.id, MONDAY_10)
    monkeypatch.setattr("app.services.scheduling.agenda.datetime", _FrozenDatetime)
    moved, offer = move(db, ACTOR, PARIS, appointment.id, starts_at=paris(2026, 6, 2, 15, 0))
    assert moved.starts_at == paris(2026, 6, 2, 15, 0)
    assert offer is not None and offer.starts_at == MONDAY_10
    # Shifting by ten minutes over its own old time is allowed.
    shifted, _ = move(db, ACTOR, PARIS, appointment.id, starts_at=paris(2026, 6, 2, 15, 10))
    assert shifted.ends_at == paris(2026, 6, 2, 15, 30)


def test_cancelled_appointments_cannot_change_and_attendance_needs_a_start(db: Session) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    appointment = _book(db, patient, practitioner.id, paris(2027, 6, 7, 10, 0))
    with pytest.raises(InvalidInput, match="pas encore commencé"):
        set_attendance(db, ACTOR, appointment.id, honoured=False)
    cancel(db, ACTOR, PARIS, appointment.id)
    with pytest.raises(InvalidInput, match="annulé"):
        cancel(db, ACTOR, PARIS, appointment.id)
