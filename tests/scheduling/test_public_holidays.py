"""French public holidays: never offered by the slot search unless an admin opened the day."""

from datetime import UTC, date, timedelta

import pytest
from sqlmodel import Session, select

from app.config.settings import Settings, get_settings
from app.services.core import audit
from app.services.core.errors import InvalidInput
from app.services.scheduling import public_holidays
from app.services.scheduling.agenda import SlotTaken, book_appointment
from app.services.scheduling.slots import SlotQuery, find_slots
from models.audit import AuditEvent
from tests.support.practice import PARIS, add_patient, add_practitioner, paris

LONG_AGO = paris(2020, 1, 1).astimezone(UTC)
EVERY_DAY = {d: [("09:00", "12:00"), ("14:00", "18:00")] for d in range(7)}
ADMIN = audit.Actor.system("test-admin")

# Written out rather than asked of the library under test.
EASTER = {
    2026: date(2026, 4, 5),
    2027: date(2027, 3, 28),
    2028: date(2028, 4, 16),
    2029: date(2029, 4, 1),
    2030: date(2030, 4, 21),
}
FIXED = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]


def mainland_holidays() -> list[date]:
    days = []
    for year, easter in EASTER.items():
        days += [date(year, m, d) for m, d in FIXED]
        days += [easter + timedelta(days=n) for n in (1, 39, 50)]  # Monday, Ascension, Whit
    return sorted(days)


def day_slots(db: Session, day: date) -> list:
    start = paris(day.year, day.month, day.day)
    query = SlotQuery(start=start, end=start + timedelta(days=1), limit=100)
    return find_slots(db, PARIS, query, now=LONG_AGO)


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch):
    """Set ACCUEIL_HOLIDAYS_SUBDIVISION for one test."""

    def _set(value: str) -> None:
        monkeypatch.setenv("ACCUEIL_HOLIDAYS_SUBDIVISION", value)
        get_settings.cache_clear()

    yield _set
    monkeypatch.delenv("ACCUEIL_HOLIDAYS_SUBDIVISION", raising=False)
    get_settings.cache_clear()


@pytest.mark.parametrize("holiday", mainland_holidays(), ids=str)
def test_no_slot_is_offered_on_a_public_holiday(db: Session, holiday: date) -> None:
    add_practitioner(db, hours=EVERY_DAY)
    assert day_slots(db, holiday) == []
    neighbour = next(
        holiday + timedelta(days=n)
        for n in (-1, 1, -2, 2)
        if holiday + timedelta(days=n) not in mainland_holidays()
    )
    assert day_slots(db, neighbour)  # the same hours, a working day: slots


def test_the_library_knows_exactly_these_mainland_holidays() -> None:
    listed = public_holidays.public_holidays(date(2026, 1, 1), date(2030, 12, 31), region="")
    assert [h.day for h in listed] == mainland_holidays()
    assert listed[0].name_fr == "Jour de l'an" and listed[0].name_en == "New Year's Day"


@pytest.mark.parametrize("subdivision", ["57", "67", "68", "Moselle", "alsace"])
@pytest.mark.parametrize("year", list(EASTER))
def test_alsace_moselle_adds_good_friday_and_saint_stephen(
    db: Session, region, subdivision: str, year: int
) -> None:
    add_practitioner(db, hours=EVERY_DAY)
    good_friday, saint_stephen = EASTER[year] - timedelta(days=2), date(year, 12, 26)
    assert day_slots(db, good_friday) and day_slots(db, saint_stephen)  # mainland: open
    region(subdivision)
    assert day_slots(db, good_friday) == []
    assert day_slots(db, saint_stephen) == []


def test_overseas_departments_add_their_own_day(db: Session, region) -> None:
    add_practitioner(db, hours=EVERY_DAY)
    abolition = date(2026, 5, 27)  # Guadeloupe
    assert day_slots(db, abolition)
    region("Guadeloupe")
    assert day_slots(db, abolition) == []


def test_the_region_setting_is_validated() -> None:
    assert Settings(_env_file=None, holidays_subdivision="Moselle").holidays_subdivision == "57"
    assert Settings(_env_file=None, holidays_subdivision="68").holidays_subdivision == "6AE"
    assert Settings(_env_file=None).holidays_subdivision == ""
    with pytest.raises(ValueError, match="unknown French holiday subdivision"):
        Settings(_env_file=None, holidays_subdivision="Bretagne")


def test_an_opened_holiday_offers_slots_and_is_audited(db: Session) -> None:
    add_practitioner(db, hours=EVERY_DAY)
    toussaint = date(2027, 11, 1)
    assert day_slots(db, toussaint) == []
    public_holidays.open_holiday(db, ADMIN, toussaint, "Garde du pont")
    slots = day_slots(db, toussaint)
    assert [s.starts_at.astimezone(PARIS).strftime("%H:%M") for s in slots][:2] == [
        "09:00",
        "09:20",
    ]
    listed = public_holidays.list_holidays(db, date(2027, 10, 1), date(2027, 11, 30))
    assert [(h.day, h.opened) for h in listed] == [
        (date(2027, 11, 1), True),
        (date(2027, 11, 11), False),
    ]
    public_holidays.close_holiday(db, ADMIN, toussaint)
    assert day_slots(db, toussaint) == []
    actions = db.exec(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["holiday.open", "holiday.close"]


def test_only_a_holiday_can_be_opened(db: Session) -> None:
    with pytest.raises(InvalidInput, match="n'est pas un jour férié"):
        public_holidays.open_holiday(db, ADMIN, date(2027, 11, 2))


def test_booking_on_a_holiday_is_refused(db: Session) -> None:
    practitioner = add_practitioner(db, hours=EVERY_DAY)
    patient_id = add_patient(db)
    with pytest.raises(SlotTaken, match="cabinet est fermé") as refused:
        book_appointment(
            db,
            ADMIN,
            PARIS,
            patient_id=patient_id,
            practitioner_id=practitioner.id,
            starts_at=paris(2027, 7, 14, 9),
            now=LONG_AGO,
        )
    assert refused.value.alternatives[0].starts_at == paris(2027, 7, 15, 9).astimezone(UTC)


def test_the_closures_page_lists_holidays_and_opens_one(logged_in, db: Session) -> None:
    client = logged_in("admin")
    html = {"accept": "text/html"}
    page = client.get("/admin/fermetures", headers=html)
    assert page.status_code == 200 and "Jours fériés" in page.text
    upcoming = public_holidays.public_holidays(date.today(), date.today() + timedelta(days=366))
    assert upcoming and all(f"{h.day:%d/%m/%Y}</time>" in page.text for h in upcoming)
    assert "Noël" in page.text
    day = upcoming[0].day
    token = {"csrf_token": client.headers["x-csrf-token"]}
    opened = client.post(
        f"/admin/fermetures/feries/{day.isoformat()}/ouvrir",
        data=token,
        headers=html,
        follow_redirects=False,
    )
    assert opened.status_code == 303
    assert public_holidays.opened_days(db, day, day) == {day}
    shown = client.get(opened.headers["location"], headers=html)
    assert "Jour férié ouvert exceptionnellement" in shown.text and "Refermer" in shown.text
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "holiday.open")).all()
    assert event.actor_name == "admin" and event.details["day"] == day.isoformat()
    not_a_holiday = client.post(
        f"/admin/fermetures/feries/{(day + timedelta(days=2)).isoformat()}/ouvrir",
        data=token,
        headers=html,
    )
    assert not_a_holiday.status_code == 422 and "pas un jour férié" in not_a_holiday.text
    client.post(f"/admin/fermetures/feries/{day.isoformat()}/fermer", data=token, headers=html)
    assert public_holidays.opened_days(db, day, day) == set()
