"""The physician's dashboard on an evening or a weekend (issue 17): today's day, and the next
working day (the next day with appointments), each flagged first; when nothing is left today
the next working day leads the page, so Monday's flagged pre-consultations are in view on
Saturday. Time is moved with time-machine."""

from datetime import datetime, timedelta

import pytest
import time_machine
from sqlmodel import Session, select

from app.services.core.audit import Actor
from app.services.documents import physician_day
from models.appointments import Appointment, AppointmentStatus
from models.questionnaires import PreConsultation, PreConsultationStatus, Questionnaire
from models.users import User
from tests.support.practice import PARIS, add_patient, add_practitioner, paris

ACTOR = Actor.system("test")
HTML = {"accept": "text/html"}
FRIDAY = paris(2026, 12, 4)  # a Friday; Monday is December 7


def flag(severity: str, text: str) -> dict[str, object]:
    return {"rule": text.lower(), "severity": severity, "staff": {"fr": text, "en": text}}


def book(
    db: Session,
    practitioner_id: int,
    patient_id: int,
    start: datetime,
    reason: str,
    flags: list[dict[str, object]] | None = None,
    status: AppointmentStatus = AppointmentStatus.booked,
) -> Appointment:
    appointment = Appointment(
        practitioner_id=practitioner_id,
        patient_id=patient_id,
        starts_at=start,
        ends_at=start + timedelta(minutes=20),
        reason=reason,
        status=status,
    )
    db.add(appointment)
    db.flush()
    if flags is not None:
        questionnaire = db.exec(select(Questionnaire)).first()
        if questionnaire is None:
            questionnaire = Questionnaire(slug="generaliste", version="1", title="Pré-consultation")
            db.add(questionnaire)
            db.flush()
        db.add(
            PreConsultation(
                appointment_id=appointment.id or 0,
                questionnaire_id=questionnaire.id or 0,
                token_hash=f"hash-{appointment.id}",
                expires_at=start,
                status=PreConsultationStatus.submitted,
                red_flags=flags,
            )
        )
    return appointment


@pytest.fixture
def week(db: Session, staff) -> dict[str, int]:
    practitioner = add_practitioner(db)
    pid = practitioner.id or 0
    patient = add_patient(db)
    book(db, pid, patient, FRIDAY.replace(hour=9), "Vendredi matin")
    book(
        db,
        pid,
        patient,
        paris(2026, 12, 6, 10),
        "Dimanche annulé",
        status=AppointmentStatus.cancelled,
    )
    book(db, pid, patient, paris(2026, 12, 7, 9), "Contrôle tension", flags=[])
    book(
        db,
        pid,
        patient,
        paris(2026, 12, 7, 11),
        "Douleur",
        flags=[flag("urgence", "Douleur thoracique signalée")],
    )
    book(
        db, pid, patient, paris(2026, 12, 7, 10), "Toux", flags=[flag("check", "Fièvre à vérifier")]
    )
    book(db, pid, patient, paris(2026, 12, 8, 9), "Mardi", flags=[flag("urgence", "Mardi urgent")])
    db.commit()
    return {"practitioner": pid, "patient": patient}


def physician(db: Session) -> User:
    return db.exec(select(User).where(User.username == "medecin")).one()


def reasons(rows: list[physician_day.DayRow]) -> list[str]:
    return [r.view.appointment.reason for r in rows]


def test_saturday_shows_monday_flags_first(db: Session, week) -> None:
    saturday = paris(2026, 12, 5, 10)
    day = physician_day.dashboard(db, ACTOR, physician(db), saturday, PARIS)
    assert day.today == saturday.date() and day.today_rows == [] and day.today_left == 0
    assert day.next_day == paris(2026, 12, 7).date()  # Sunday's cancelled one is skipped
    assert reasons(day.next_rows) == ["Douleur", "Toux", "Contrôle tension"]
    assert day.next_first


def test_friday_evening_after_the_last_appointment(db: Session, week) -> None:
    evening = FRIDAY.replace(hour=20)
    day = physician_day.dashboard(db, ACTOR, physician(db), evening, PARIS)
    assert reasons(day.today_rows) == ["Vendredi matin"] and day.today_left == 0
    assert day.next_day == paris(2026, 12, 7).date() and day.next_first
    morning = physician_day.dashboard(db, ACTOR, physician(db), FRIDAY.replace(hour=8), PARIS)
    assert morning.today_left == 1 and not morning.next_first  # today leads while it lasts


def test_monday_morning_today_first_then_tuesday(db: Session, week) -> None:
    day = physician_day.dashboard(db, ACTOR, physician(db), paris(2026, 12, 7, 8), PARIS)
    assert reasons(day.today_rows) == ["Douleur", "Toux", "Contrôle tension"]
    assert day.today_left == 3 and not day.next_first
    assert day.next_day == paris(2026, 12, 8).date() and reasons(day.next_rows) == ["Mardi"]


def test_nothing_ahead_within_the_horizon(db: Session, staff) -> None:
    add_practitioner(db)
    db.commit()
    day = physician_day.dashboard(db, ACTOR, physician(db), paris(2026, 12, 5, 10), PARIS)
    assert day.today_rows == [] and day.next_day is None and not day.next_first


def test_dashboard_page_on_saturday_leads_with_monday(db: Session, week, logged_in) -> None:
    with time_machine.travel(paris(2026, 12, 5, 10), tick=True):
        client = logged_in("medecin")
        page = client.get("/medecin", headers=HTML).text
    assert "Prochain jour de consultation" in page and "Aucun rendez-vous aujourd" in page
    assert page.index('id="next-day-title"') < page.index('id="day-title"')
    first_row = page.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    assert 'class="row-urgent"' in first_row and "Douleur thoracique signalée" in first_row
    assert page.index("Douleur thoracique") < page.index("Fièvre à vérifier")
    assert "Mardi urgent" not in page


def test_dashboard_page_on_a_weekday_morning_leads_with_today(db: Session, week, logged_in) -> None:
    with time_machine.travel(paris(2026, 12, 7, 8), tick=True):
        client = logged_in("medecin")
        page = client.get("/medecin", headers=HTML).text
    assert page.index('id="day-title"') < page.index('id="next-day-title"')
    assert "Mardi urgent" in page
