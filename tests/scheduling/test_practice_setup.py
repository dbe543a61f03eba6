"""Practice set-up service: practitioners, weekly hours, absences, closures, visit types."""

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlmodel import Session, select

from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.scheduling import practice_setup as setup
from app.services.scheduling.slots import (
    SlotQuery,
    active_practitioners,
    find_slots,
    resolve_duration,
)
from models.appointments import Appointment, AppointmentStatus
from models.audit import AuditEvent
from models.practice import Absence, PracticeClosure, VisitTypeDuration, WorkingHours
from tests.support.practice import ACTOR, PARIS, add_patient, add_practitioner, paris

LONG_AGO = paris(2020, 1, 1).astimezone(UTC)
MONDAY = paris(2030, 6, 3)  # a Monday
T = time.fromisoformat


def events(db: Session, action: str) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def appointment(
    db: Session,
    practitioner_id: int,
    patient_id: int,
    start: datetime,
    minutes: int = 20,
    status: AppointmentStatus = AppointmentStatus.booked,
) -> Appointment:
    row = Appointment(
        practitioner_id=practitioner_id,
        patient_id=patient_id,
        starts_at=start.astimezone(UTC),
        ends_at=(start + timedelta(minutes=minutes)).astimezone(UTC),
        status=status,
    )
    db.add(row)
    db.flush()
    return row


def day_slots(db: Session, day: datetime, practitioner_id: int | None = None) -> list[str]:
    query = SlotQuery(
        start=day, end=day + timedelta(days=1), practitioner_id=practitioner_id, limit=100
    )
    return [
        s.starts_at.astimezone(PARIS).strftime("%H:%M")
        for s in find_slots(db, PARIS, query, now=LONG_AGO)
    ]


def test_monday_is_a_monday() -> None:
    assert MONDAY.weekday() == 0


# --- practitioners -------------------------------------------------------------------------


def test_create_practitioner_cleans_and_audits(db: Session) -> None:
    details = setup.PractitionerDetails(
        first_name="  Claire ",
        last_name="Martin   Dupuis",
        rpps="100 0000 0001",
        default_duration_minutes=15,
    )
    practitioner = setup.create_practitioner(db, ACTOR, details)
    assert practitioner.id is not None and practitioner.is_active
    assert practitioner.display_name == "Dr Claire Martin Dupuis"
    assert practitioner.rpps == "10000000001"
    assert practitioner.specialty == "Médecine générale"
    [event] = events(db, "practitioner.create")
    assert event.actor_name == "secretaire" and event.record_id == str(practitioner.id)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"last_name": "   "}, "last_name", "Nom : champ obligatoire"),
        ({"first_name": "x" * 65}, "first_name", "64 caractères au plus"),
        ({"specialty": ""}, "specialty", "Spécialité : champ obligatoire"),
        ({"title": "Docteur en médecine"}, "title", "16 caractères"),
        ({"rpps": "1234"}, "rpps", "11 chiffres"),
        ({"rpps": "1000000000A"}, "rpps", "11 chiffres"),
        ({"rpps": "١٠٠٠٠٠٠٠٠٠١"}, "rpps", "11 chiffres"),  # Arabic-Indic digits
        ({"default_duration_minutes": 4}, "default_duration_minutes", "entre 5 et 240"),
        ({"default_duration_minutes": 241}, "default_duration_minutes", "entre 5 et 240"),
    ],
)
def test_practitioner_details_are_checked(db: Session, changes, field: str, message: str) -> None:
    base = {"first_name": "Claire", "last_name": "Martin", "rpps": None}
    details = setup.PractitionerDetails(**{**base, **changes})
    with pytest.raises(InvalidInput, match=message) as caught:
        setup.create_practitioner(db, ACTOR, details)
    assert caught.value.details["field"] == field
    assert caught.value.en != caught.value.fr  # an English message too
    assert events(db, "practitioner.create") == []


def test_rpps_is_unique_and_blank_is_none(db: Session) -> None:
    first = setup.create_practitioner(
        db, ACTOR, setup.PractitionerDetails("Claire", "Martin", rpps="10000000001")
    )
    with pytest.raises(Conflict, match="déjà"):
        setup.create_practitioner(
            db, ACTOR, setup.PractitionerDetails("Paul", "Petit", rpps="10000000001")
        )
    other = setup.create_practitioner(
        db, ACTOR, setup.PractitionerDetails("Paul", "Petit", rpps=" ")
    )
    assert other.rpps is None
    # Keeping one's own number is not a conflict.
    same = setup.practitioner_details(first)
    assert setup.update_practitioner(db, ACTOR, first.id or 0, same).rpps == "10000000001"


def test_update_audits_the_changed_fields_only(db: Session) -> None:
    practitioner = add_practitioner(db)
    details = setup.practitioner_details(practitioner)
    setup.update_practitioner(db, ACTOR, practitioner.id or 0, details)
    assert events(db, "practitioner.update") == []
    changed = setup.PractitionerDetails(
        **{**vars(details), "specialty": "Pédiatrie", "default_duration_minutes": 30}
    )
    updated = setup.update_practitioner(db, ACTOR, practitioner.id or 0, changed)
    assert updated.specialty == "Pédiatrie" and updated.default_duration_minutes == 30
    [event] = events(db, "practitioner.update")
    assert event.details == {"changed": ["specialty", "default_duration_minutes"]}
    with pytest.raises(NotFound):
        setup.update_practitioner(db, ACTOR, 9999, changed)


def test_deactivation_keeps_appointments_and_lists_the_upcoming_ones(db: Session) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db)
    past = appointment(db, practitioner.id or 0, patient, paris(2030, 5, 27, 9))
    upcoming = appointment(db, practitioner.id or 0, patient, MONDAY.replace(hour=9))
    appointment(
        db,
        practitioner.id or 0,
        patient,
        MONDAY.replace(hour=10),
        status=AppointmentStatus.cancelled,
    )
    now = paris(2030, 6, 1).astimezone(UTC)
    stopped, kept = setup.deactivate_practitioner(db, ACTOR, practitioner.id or 0, now=now)
    assert not stopped.is_active
    assert [a.id for a in kept] == [upcoming.id]
    assert past.status == AppointmentStatus.booked and upcoming.status == AppointmentStatus.booked
    assert active_practitioners(db) == []
    assert day_slots(db, MONDAY) == []
    setup.deactivate_practitioner(db, ACTOR, practitioner.id or 0, now=now)  # no second event
    assert len(events(db, "practitioner.deactivate")) == 1
    setup.reactivate_practitioner(db, ACTOR, practitioner.id or 0)
    assert [p.id for p in active_practitioners(db)] == [practitioner.id]
    assert len(events(db, "practitioner.reactivate")) == 1


# --- weekly hours --------------------------------------------------------------------------


def test_setting_one_weekday_replaces_only_that_day(db: Session) -> None:
    practitioner = add_practitioner(db)  # Monday-Friday 08:30-12:30 and 14:00-19:00
    pid = practitioner.id or 0
    tuesday = setup.set_day_hours(
        db, ACTOR, pid, 1, [(T("14:00"), T("18:00")), (T("09:00"), T("12:00"))]
    )
    assert tuesday == [(T("09:00"), T("12:00")), (T("14:00"), T("18:00"))]
    week = setup.weekly_hours(db, pid)
    assert week[0] == [(T("08:30"), T("12:30")), (T("14:00"), T("19:00"))]
    assert week[1] == tuesday and week[5] == []
    rows = db.exec(select(WorkingHours).where(WorkingHours.practitioner_id == pid)).all()
    assert len(rows) == 10  # five days of two ranges
    [event] = events(db, "working_hours.set")
    assert event.actor_name == "secretaire" and event.record_id == str(pid)
    assert event.details == {
        "weekday": 1,
        "before": ["08:30-12:30", "14:00-19:00"],
        "after": ["09:00-12:00", "14:00-18:00"],
    }
    tuesday_day = MONDAY + timedelta(days=1)
    slots = day_slots(db, tuesday_day)
    assert slots[0] == "09:00" and slots[-1] == "17:40" and "12:00" not in slots


def test_same_hours_write_nothing_and_an_empty_day_closes_it(db: Session) -> None:
    practitioner = add_practitioner(db)
    pid = practitioner.id or 0
    setup.set_day_hours(db, ACTOR, pid, 0, [(T("08:30"), T("12:30")), (T("14:00"), T("19:00"))])
    assert events(db, "working_hours.set") == []
    assert setup.set_day_hours(db, ACTOR, pid, 0, []) == []
    assert day_slots(db, MONDAY) == []
    # A range may start at the very time another ends, and reuse a start time just removed.
    setup.set_day_hours(db, ACTOR, pid, 2, [(T("08:30"), T("10:00")), (T("10:00"), T("11:00"))])
    assert setup.weekly_hours(db, pid)[2] == [(T("08:30"), T("10:00")), (T("10:00"), T("11:00"))]
    assert len(events(db, "working_hours.set")) == 2


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ([("08:00", "12:00"), ("11:30", "14:00")], "se chevauchent"),
        ([("09:00", "18:00"), ("10:00", "11:00")], "se chevauchent"),
        ([("12:00", "12:00")], "doit commencer avant de finir"),
        ([("14:00", "09:00")], "doit commencer avant de finir"),
        ([("05:30", "09:00")], "entre 06:00 et 23:00"),
        ([("20:00", "23:30")], "entre 06:00 et 23:00"),
        ([("08:00:30", "09:00")], "à la minute"),
    ],
)
def test_bad_hours_are_refused_and_nothing_changes(db: Session, ranges, message: str) -> None:
    practitioner = add_practitioner(db)
    pid = practitioner.id or 0
    before = setup.weekly_hours(db, pid)
    week = {
        0: [(T("09:00"), T("10:00"))],  # valid, but not written: the whole week is refused
        3: [(T(s), T(e)) for s, e in ranges],
    }
    with pytest.raises(setup.InvalidHours, match=message) as caught:
        setup.set_week_hours(db, ACTOR, pid, week)
    assert caught.value.details["weekday"] == 3
    assert caught.value.fr.startswith("Jeudi") and caught.value.en.startswith("Thursday")
    assert setup.weekly_hours(db, pid) == before
    assert events(db, "working_hours.set") == []


def test_hours_of_an_unknown_practitioner(db: Session) -> None:
    with pytest.raises(NotFound):
        setup.set_day_hours(db, ACTOR, 9999, 0, [(T("09:00"), T("10:00"))])
    with pytest.raises(setup.InvalidHours):
        setup.set_day_hours(db, ACTOR, add_practitioner(db).id or 0, 7, [])


# --- absences and closures -----------------------------------------------------------------


def test_an_absence_returns_the_live_appointments_it_covers(db: Session) -> None:
    martin = add_practitioner(db, "Martin")
    bernard = add_practitioner(db, "Bernard")
    patient = add_patient(db)
    inside = appointment(db, martin.id or 0, patient, MONDAY.replace(hour=9))
    straddling = appointment(db, martin.id or 0, patient, MONDAY.replace(hour=11, minute=50))
    appointment(
        db, martin.id or 0, patient, MONDAY.replace(hour=10), status=AppointmentStatus.cancelled
    )
    appointment(db, martin.id or 0, patient, MONDAY.replace(hour=14))  # after the absence
    appointment(db, bernard.id or 0, patient, MONDAY.replace(hour=9))  # someone else's
    absence, covered = setup.add_absence(
        db, ACTOR, martin.id or 0, MONDAY.replace(hour=8), MONDAY.replace(hour=12), "Formation"
    )
    assert [a.id for a in covered] == [inside.id, straddling.id]
    assert all(a.status == AppointmentStatus.booked for a in covered)  # nothing cancelled
    assert absence.starts_at == MONDAY.replace(hour=8).astimezone(UTC)
    assert absence.reason == "Formation"
    [event] = events(db, "absence.create")
    assert event.actor_name == "secretaire" and event.record_id == str(absence.id)
    assert event.details["appointments_kept"] == [inside.id, straddling.id]
    slots = day_slots(db, MONDAY, martin.id)
    assert slots[:2] == ["12:10", "14:20"]  # after the absence and 11:50-12:10; 14:00 taken
    assert setup.absence_appointments(db, absence) == covered
    assert day_slots(db, MONDAY, bernard.id)[0] == "08:30"


def test_bad_absences_are_refused(db: Session) -> None:
    practitioner = add_practitioner(db)
    pid = practitioner.id or 0
    with pytest.raises(setup.InvalidPeriod, match="fuseau"):
        setup.add_absence(db, ACTOR, pid, datetime(2030, 6, 3, 8), datetime(2030, 6, 3, 12))
    with pytest.raises(setup.InvalidPeriod, match="La fin doit suivre le début") as caught:
        setup.add_absence(db, ACTOR, pid, MONDAY.replace(hour=12), MONDAY.replace(hour=12))
    assert caught.value.details["field"] == "end_date"
    with pytest.raises(setup.InvalidPeriod, match="128"):
        setup.add_absence(db, ACTOR, pid, MONDAY, MONDAY + timedelta(days=1), "x" * 129)
    with pytest.raises(NotFound):
        setup.add_absence(db, ACTOR, 9999, MONDAY, MONDAY + timedelta(days=1))
    assert db.exec(select(Absence)).all() == []


def test_deleting_an_absence_frees_the_slots(db: Session) -> None:
    martin = add_practitioner(db, "Martin")
    bernard = add_practitioner(db, "Bernard")
    absence, _ = setup.add_absence(db, ACTOR, martin.id or 0, MONDAY, MONDAY + timedelta(days=1))
    assert day_slots(db, MONDAY, martin.id) == []
    assert [a.id for a in setup.list_absences(db, martin.id or 0)] == [absence.id]
    assert setup.list_absences(db, martin.id or 0, ending_after=MONDAY + timedelta(days=2)) == []
    with pytest.raises(NotFound):
        setup.delete_absence(db, ACTOR, absence.id or 0, practitioner_id=bernard.id)
    setup.delete_absence(db, ACTOR, absence.id or 0, practitioner_id=martin.id)
    assert len(day_slots(db, MONDAY, martin.id)) == 12 + 15
    [event] = events(db, "absence.delete")
    assert event.record_id == str(absence.id) and event.details["practitioner_id"] == martin.id
    with pytest.raises(NotFound):
        setup.delete_absence(db, ACTOR, absence.id or 0)


def test_a_closure_covers_every_practitioner(db: Session) -> None:
    martin = add_practitioner(db, "Martin")
    bernard = add_practitioner(db, "Bernard")
    patient = add_patient(db)
    first = appointment(db, martin.id or 0, patient, MONDAY.replace(hour=15))
    second = appointment(db, bernard.id or 0, patient, MONDAY.replace(hour=9))
    closure, covered = setup.add_closure(
        db, ACTOR, MONDAY, MONDAY + timedelta(days=1), "Lundi de Pentecôte"
    )
    assert [a.id for a in covered] == [second.id, first.id]  # in time order
    assert day_slots(db, MONDAY) == []
    assert day_slots(db, MONDAY + timedelta(days=1))[0] == "08:30"
    [event] = events(db, "closure.create")
    assert event.record_type == "practice_closure" and event.actor_name == "secretaire"
    assert set(event.details["appointments_kept"]) == {first.id, second.id}
    assert [c.id for c in setup.list_closures(db, ending_after=MONDAY)] == [closure.id]
    with pytest.raises(setup.InvalidPeriod):
        setup.add_closure(db, ACTOR, MONDAY + timedelta(days=1), MONDAY)
    setup.delete_closure(db, ACTOR, closure.id or 0)
    assert db.exec(select(PracticeClosure)).all() == []
    assert len(events(db, "closure.delete")) == 1
    with pytest.raises(NotFound):
        setup.delete_closure(db, ACTOR, closure.id or 0)


# --- visit types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "label", "minutes", "field"),
    [
        ("Vaccin grippe", "Vaccin", None, "code"),
        ("vaccin-", "Vaccin", None, "code"),
        ("téléconsultation", "Téléconsultation", None, "code"),
        ("x" * 65, "Long", None, "code"),
        ("vaccin", "  ", None, "label"),
        ("vaccin", "Vaccin", 3, "duration_minutes"),
        ("vaccin", "Vaccin", 300, "duration_minutes"),
    ],
)
def test_bad_visit_types_are_refused(
    db: Session, code: str, label: str, minutes: int | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        setup.create_visit_type(db, ACTOR, code, label, minutes)
    assert caught.value.details["field"] == field
    assert setup.list_visit_types(db) == []


def test_visit_type_durations_resolve_through_the_slot_service(db: Session) -> None:
    practitioner = add_practitioner(db, minutes=20)
    pid = practitioner.id or 0
    vaccine = setup.create_visit_type(db, ACTOR, " Vaccination ", "Vaccination", 10)
    assert vaccine.code == "vaccination"
    check_up = setup.create_visit_type(db, ACTOR, "bilan-annuel", "Bilan annuel")
    with pytest.raises(setup.VisitTypeCodeTaken):
        setup.create_visit_type(db, ACTOR, "vaccination", "Autre", None)
    assert resolve_duration(db, practitioner, "vaccination") == 10
    assert resolve_duration(db, practitioner, "bilan-annuel") == 20  # the practitioner's
    setup.set_visit_type_duration(db, ACTOR, pid, check_up.id or 0, 45)
    assert resolve_duration(db, practitioner, "bilan-annuel") == 45
    durations = setup.set_visit_type_durations(
        db, ACTOR, pid, {vaccine.id or 0: 15, check_up.id or 0: 40}
    )
    assert durations == {vaccine.id: 15, check_up.id: 40}
    assert resolve_duration(db, practitioner, "vaccination") == 15
    assert resolve_duration(db, practitioner, "vaccination", 30) == 30  # explicit minutes win
    assert setup.set_visit_type_duration(db, ACTOR, pid, vaccine.id or 0, None) is None
    assert resolve_duration(db, practitioner, "vaccination") == 10
    setup.update_visit_type(db, ACTOR, vaccine.id or 0, label="Vaccin", duration_minutes=None)
    assert resolve_duration(db, practitioner, "vaccination") == 20
    assert len(db.exec(select(VisitTypeDuration)).all()) == 1
    assert [e.details["after"] for e in events(db, "visit_type_duration.set")] == [45, 15, 40]
    assert len(events(db, "visit_type_duration.clear")) == 1
    [update] = events(db, "visit_type.update")
    assert update.details == {"changed": ["label", "duration_minutes"]}
    slots = find_slots(
        db,
        PARIS,
        SlotQuery(start=MONDAY, end=MONDAY + timedelta(days=1), visit_type="bilan-annuel"),
        now=LONG_AGO,
    )
    assert slots[0].ends_at - slots[0].starts_at == timedelta(minutes=40)


def test_durations_are_all_checked_before_any_is_written(db: Session) -> None:
    practitioner = add_practitioner(db)
    kind = setup.create_visit_type(db, ACTOR, "vaccination", "Vaccination", 10)
    other = setup.create_visit_type(db, ACTOR, "bilan", "Bilan", None)
    with pytest.raises(setup.InvalidDuration) as caught:
        setup.set_visit_type_durations(
            db, ACTOR, practitioner.id or 0, {kind.id or 0: 15, other.id or 0: 500}
        )
    assert caught.value.details["field"] == f"vt_{other.id}"
    assert setup.practitioner_visit_durations(db, practitioner.id or 0) == {}
    with pytest.raises(NotFound):
        setup.set_visit_type_duration(db, ACTOR, practitioner.id or 0, 9999, 15)


def test_deactivated_visit_types_leave_the_active_list(db: Session) -> None:
    vaccine = setup.create_visit_type(db, ACTOR, "vaccination", "Vaccination", 10)
    check_up = setup.create_visit_type(db, ACTOR, "bilan", "Bilan", None)
    assert [k.code for k in setup.list_visit_types(db)] == ["bilan", "vaccination"]
    setup.deactivate_visit_type(db, ACTOR, vaccine.id or 0)
    assert [k.code for k in setup.list_visit_types(db, active_only=True)] == ["bilan"]
    assert len(setup.list_visit_types(db)) == 2
    setup.set_visit_type_active(db, ACTOR, vaccine.id or 0, True)
    assert len(setup.list_visit_types(db, active_only=True)) == 2
    assert [e.action for e in events(db, "visit_type.deactivate")] == ["visit_type.deactivate"]
    assert len(events(db, "visit_type.reactivate")) == 1
    assert len(events(db, "visit_type.create")) == 2
    assert check_up.duration_minutes is None
    with pytest.raises(NotFound):
        setup.update_visit_type(db, ACTOR, 9999, label="x", duration_minutes=None)
