"""Empty slot searches say why, and where the next free slot is."""

from datetime import UTC, timedelta

import pytest
from sqlmodel import Session

from app.services.scheduling.slot_answers import EmptyReason, search_slots
from app.services.scheduling.slots import SlotQuery
from models.appointments import Appointment, PartOfDay
from models.practice import Absence, PracticeClosure
from tests.support.practice import PARIS, add_patient, add_practitioner, paris

LONG_AGO = paris(2020, 1, 1).astimezone(UTC)


def day(y: int, m: int, d: int, **kw) -> SlotQuery:
    start = paris(y, m, d)
    return SlotQuery(start=start, end=start + timedelta(days=1), limit=5, **kw)


def test_slots_found_have_no_reason(db: Session) -> None:
    add_practitioner(db)
    answer = search_slots(db, PARIS, day(2027, 3, 15), now=LONG_AGO)
    assert answer.slots and answer.reason is None and answer.message(PARIS) == ""


def test_a_past_range(db: Session) -> None:
    add_practitioner(db)
    answer = search_slots(db, PARIS, day(2027, 3, 15), now=paris(2027, 3, 20).astimezone(UTC))
    assert answer.reason == EmptyReason.past
    assert answer.next_free is not None
    assert answer.next_free.starts_at == paris(2027, 3, 22, 8, 30).astimezone(UTC)
    assert answer.message(PARIS) == (
        "La période demandée est passée. Prochain créneau libre : lundi 22/03/2027 à 08:30."
    )
    assert answer.message(PARIS, "en").startswith("The requested period is over. Next free")


def test_a_sunday_is_a_closed_day(db: Session) -> None:
    add_practitioner(db)
    answer = search_slots(db, PARIS, day(2027, 3, 14), now=LONG_AGO)
    assert answer.reason == EmptyReason.closed_day
    assert answer.next_free.starts_at == paris(2027, 3, 15, 8, 30).astimezone(UTC)
    assert answer.message(PARIS).startswith("Le cabinet est fermé")


def test_a_practice_closure_is_a_closed_day(db: Session) -> None:
    add_practitioner(db)
    db.add(PracticeClosure(starts_at=paris(2027, 3, 15), ends_at=paris(2027, 3, 16)))
    db.flush()
    assert search_slots(db, PARIS, day(2027, 3, 15), now=LONG_AGO).reason == EmptyReason.closed_day


def test_a_holiday_names_itself(db: Session) -> None:
    add_practitioner(db)
    answer = search_slots(db, PARIS, day(2027, 11, 11), now=LONG_AGO)
    assert answer.reason == EmptyReason.holiday
    assert answer.message(PARIS).startswith("Jour férié (Armistice) : le cabinet est fermé.")
    assert answer.next_free.starts_at == paris(2027, 11, 12, 8, 30).astimezone(UTC)


def test_an_absence(db: Session) -> None:
    doctor = add_practitioner(db)
    db.add(
        Absence(practitioner_id=doctor.id, starts_at=paris(2027, 3, 15), ends_at=paris(2027, 3, 17))
    )
    db.flush()
    answer = search_slots(db, PARIS, day(2027, 3, 15), now=LONG_AGO)
    assert answer.reason == EmptyReason.absence
    assert answer.next_free.starts_at == paris(2027, 3, 17, 8, 30).astimezone(UTC)


def test_outside_hours(db: Session) -> None:
    add_practitioner(db)
    query = SlotQuery(start=paris(2027, 3, 15, 20), end=paris(2027, 3, 15, 22), limit=5)
    answer = search_slots(db, PARIS, query, now=LONG_AGO)
    assert answer.reason == EmptyReason.outside_hours
    assert answer.message(PARIS).startswith("En dehors des horaires de consultation.")


def test_fully_booked(db: Session) -> None:
    doctor = add_practitioner(db)
    patient = add_patient(db)
    start, end = paris(2027, 3, 15, 8, 30), paris(2027, 3, 15, 12, 30)
    db.add(Appointment(practitioner_id=doctor.id, patient_id=patient, starts_at=start, ends_at=end))
    db.flush()
    answer = search_slots(db, PARIS, day(2027, 3, 15, part_of_day=PartOfDay.morning), now=LONG_AGO)
    assert answer.reason == EmptyReason.fully_booked
    assert answer.next_free.starts_at == paris(2027, 3, 16, 8, 30).astimezone(UTC)
    assert answer.message(PARIS, "en").startswith("Fully booked during this period.")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (day(2027, 3, 13), EmptyReason.closed_day),  # Saturday
        (
            SlotQuery(start=paris(2027, 3, 13), end=paris(2027, 3, 15), limit=5),
            EmptyReason.closed_day,
        ),
    ],
)
def test_weekends(db: Session, query: SlotQuery, reason: EmptyReason) -> None:
    add_practitioner(db)
    assert search_slots(db, PARIS, query, now=LONG_AGO).reason == reason


def test_the_day_page_says_why_nothing_is_free(logged_in, db: Session) -> None:
    doctor = add_practitioner(db)
    db.commit()
    client = logged_in("secretaire")
    page = client.get(
        f"/agenda?date=2027-11-11&practitioner={doctor.id}", headers={"accept": "text/html"}
    )
    assert page.status_code == 200
    assert "Jour férié (Armistice) : le cabinet est fermé." in page.text
    assert "Prochain créneau libre : vendredi 12/11/2027 à 08:30." in page.text
