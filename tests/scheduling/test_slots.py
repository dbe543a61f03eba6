"""Slot search: lunch breaks, end of day, absences, closures, past times and DST weeks."""

from datetime import UTC, timedelta

import pytest
from sqlmodel import Session

from app.services.core.errors import InvalidInput
from app.services.scheduling.slots import SlotQuery, find_slots
from models.appointments import Appointment, AppointmentStatus, PartOfDay
from models.practice import Absence, PracticeClosure, VisitType, VisitTypeDuration
from tests.support.practice import PARIS, add_patient, add_practitioner, paris

LONG_AGO = paris(2020, 1, 1).astimezone(UTC)


def local_times(slots) -> list[str]:
    return [s.starts_at.astimezone(PARIS).strftime("%a %d/%m %H:%M") for s in slots]


def day_query(day, **kw) -> SlotQuery:
    return SlotQuery(start=day, end=day + timedelta(days=1), limit=100, **kw)


def test_a_day_of_slots_skips_lunch_and_stops_at_closing(db: Session) -> None:
    add_practitioner(db)
    slots = find_slots(db, PARIS, day_query(paris(2026, 6, 1)), now=LONG_AGO)  # a Monday
    times = [s.starts_at.astimezone(PARIS).strftime("%H:%M") for s in slots]
    assert times[0] == "08:30" and times[11] == "12:10"  # last morning slot ends at 12:30
    assert times[12] == "14:00" and times[-1] == "18:40"  # last slot ends at 19:00
    assert len(times) == 12 + 15
    assert all(s.ends_at - s.starts_at == timedelta(minutes=20) for s in slots)


def test_weekend_has_no_slot(db: Session) -> None:
    add_practitioner(db)
    assert find_slots(db, PARIS, day_query(paris(2026, 6, 6)), now=LONG_AGO) == []


def test_appointments_absences_and_closures_are_skipped(db: Session) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    start = paris(2026, 6, 1, 9, 0)
    db.add(
        Appointment(
            practitioner_id=practitioner.id,
            patient_id=patient,
            starts_at=start,
            ends_at=start + timedelta(minutes=45),
        )
    )
    cancelled = paris(2026, 6, 1, 11, 0)
    db.add(
        Appointment(
            practitioner_id=practitioner.id,
            patient_id=patient,
            starts_at=cancelled,
            ends_at=cancelled + timedelta(minutes=20),
            status=AppointmentStatus.cancelled,
        )
    )
    db.add(
        Absence(
            practitioner_id=practitioner.id,
            starts_at=paris(2026, 6, 1, 16),
            ends_at=paris(2026, 6, 2),
        )
    )
    db.add(
        PracticeClosure(starts_at=paris(2026, 6, 2), ends_at=paris(2026, 6, 3), reason="Pentecôte")
    )
    db.flush()
    slots = find_slots(
        db,
        PARIS,
        SlotQuery(start=paris(2026, 6, 1), end=paris(2026, 6, 4), limit=100),
        now=LONG_AGO,
    )
    times = local_times(slots)
    assert "Mon 01/06 08:30" in times
    assert "Mon 01/06 08:50" not in times  # would overlap the 09:00 appointment
    assert "Mon 01/06 09:00" not in times and "Mon 01/06 09:20" not in times
    assert "Mon 01/06 09:45" in times  # right after the 45-minute appointment
    assert "Mon 01/06 11:05" in times  # grid restarts from the end of the busy time
    assert not any(t.startswith("Mon 01/06 1") and t >= "Mon 01/06 16:00" for t in times)
    assert not any(t.startswith("Tue 02/06") for t in times)  # closed
    assert any(t.startswith("Wed 03/06") for t in times)


def test_no_slot_is_proposed_in_the_past(db: Session) -> None:
    add_practitioner(db)
    now = paris(2026, 6, 1, 15, 5)
    slots = find_slots(db, PARIS, day_query(paris(2026, 6, 1)), now=now)
    assert slots[0].starts_at.astimezone(PARIS).strftime("%H:%M") == "15:20"
    assert all(s.starts_at >= now for s in slots)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (paris(2026, 3, 27), paris(2026, 3, 30)),  # clocks go forward on Sunday 29 March
        (paris(2026, 10, 23), paris(2026, 10, 26)),  # clocks go back on Sunday 25 October
    ],
)
def test_slots_keep_local_hours_across_daylight_saving(db: Session, before, after) -> None:
    add_practitioner(db)
    week = find_slots(
        db, PARIS, SlotQuery(start=before, end=after + timedelta(days=1), limit=100), now=LONG_AGO
    )
    friday = [s for s in week if s.starts_at.astimezone(PARIS).date() == before.date()]
    monday = [s for s in week if s.starts_at.astimezone(PARIS).date() == after.date()]
    assert len(friday) == len(monday) == 27

    def wall(slot):
        return slot.starts_at.astimezone(PARIS).strftime("%H:%M")

    assert [wall(s) for s in friday] == [wall(s) for s in monday]
    assert wall(monday[0]) == "08:30"
    # Same wall-clock time, one hour apart in UTC.
    shift = friday[0].starts_at.astimezone(UTC).hour - monday[0].starts_at.astimezone(UTC).hour
    assert abs(shift) == 1


def test_a_sunday_search_across_the_change_finds_monday(db: Session) -> None:
    add_practitioner(db)
    slots = find_slots(
        db,
        PARIS,
        SlotQuery(start=paris(2026, 3, 29), end=paris(2026, 3, 31), limit=1),
        now=LONG_AGO,
    )
    assert local_times(slots) == ["Mon 30/03 08:30"]
    assert slots[0].starts_at.astimezone(UTC).hour == 6  # 08:30 CEST


def test_part_of_day_weekday_and_limit_filters(db: Session) -> None:
    add_practitioner(db)
    start, end = paris(2026, 6, 1), paris(2026, 6, 8)
    mornings = find_slots(
        db,
        PARIS,
        SlotQuery(start=start, end=end, limit=100, part_of_day=PartOfDay.morning),
        now=LONG_AGO,
    )
    assert mornings and all(s.starts_at.astimezone(PARIS).hour < 13 for s in mornings)
    assert "12:10" in {s.starts_at.astimezone(PARIS).strftime("%H:%M") for s in mornings}
    afternoons = find_slots(
        db,
        PARIS,
        SlotQuery(start=start, end=end, limit=100, part_of_day=PartOfDay.afternoon),
        now=LONG_AGO,
    )
    assert afternoons and all(s.starts_at.astimezone(PARIS).hour >= 14 for s in afternoons)
    tuesdays = find_slots(
        db, PARIS, SlotQuery(start=start, end=end, limit=100, weekdays=frozenset({1})), now=LONG_AGO
    )
    assert {s.starts_at.astimezone(PARIS).weekday() for s in tuesdays} == {1}
    first_three = find_slots(db, PARIS, SlotQuery(start=start, end=end, limit=3), now=LONG_AGO)
    assert local_times(first_three) == ["Mon 01/06 08:30", "Mon 01/06 08:50", "Mon 01/06 09:10"]


def test_any_practitioner_merges_agendas_in_time_order(db: Session) -> None:
    add_practitioner(db, "Martin", minutes=20)
    other = add_practitioner(db, "Lefèvre", minutes=15, hours={0: [("08:00", "09:00")]})
    slots = find_slots(
        db, PARIS, SlotQuery(start=paris(2026, 6, 1), end=paris(2026, 6, 2), limit=5), now=LONG_AGO
    )
    assert local_times(slots)[:2] == ["Mon 01/06 08:00", "Mon 01/06 08:15"]
    assert slots[0].practitioner_id == other.id
    assert [s.starts_at for s in slots] == sorted(s.starts_at for s in slots)


def test_visit_type_durations(db: Session) -> None:
    practitioner = add_practitioner(db)
    vaccine = VisitType(code="vaccination", label="Vaccination", duration_minutes=10)
    long_visit = VisitType(code="bilan", label="Bilan", duration_minutes=40)
    db.add_all([vaccine, long_visit])
    db.flush()
    db.add(
        VisitTypeDuration(
            practitioner_id=practitioner.id, visit_type_id=long_visit.id, duration_minutes=60
        )
    )
    db.flush()
    day = paris(2026, 6, 1)
    short = find_slots(db, PARIS, day_query(day, visit_type="vaccination"), now=LONG_AGO)
    assert short[1].starts_at - short[0].starts_at == timedelta(minutes=10)
    longer = find_slots(db, PARIS, day_query(day, visit_type="bilan"), now=LONG_AGO)
    assert longer[0].ends_at - longer[0].starts_at == timedelta(minutes=60)
    with pytest.raises(InvalidInput, match="Type de visite inconnu"):
        find_slots(db, PARIS, day_query(day, visit_type="nope"), now=LONG_AGO)


def test_bad_queries_get_clear_errors(db: Session) -> None:
    add_practitioner(db)
    with pytest.raises(InvalidInput, match="fin de la période"):
        find_slots(db, PARIS, SlotQuery(start=paris(2026, 6, 2), end=paris(2026, 6, 1)))
    with pytest.raises(InvalidInput, match="un an"):
        find_slots(db, PARIS, SlotQuery(start=paris(2026, 1, 1), end=paris(2028, 1, 1)))


def test_a_deactivated_visit_type_is_refused(db: Session) -> None:
    add_practitioner(db)
    db.add(VisitType(code="ancien", label="Ancien type", duration_minutes=30, is_active=False))
    db.flush()
    with pytest.raises(InvalidInput, match="désactivé"):
        find_slots(db, PARIS, day_query(paris(2026, 6, 1), visit_type="ancien"), now=LONG_AGO)
