"""A secretary asks the assistant for a booking, sees the proposal, confirms it with the
keyboard, and finds the appointment booked — in a real browser, with a scripted model, and on
`make run`'s defaults (the demo practice, no Ollama: ``auto`` serves the rules assistant)."""

import re
from collections import Counter
from datetime import date, datetime, timedelta

import holidays
import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel, say
from app.config.settings import Settings
from app.services.assistant.action_preview import long_date
from app.services.core.calendar_names import MONTHS_FR
from app.services.operations.demo import seed_demo
from models.appointments import Appointment
from models.patients import Patient
from models.practice import Practitioner, WorkingHours
from tests.assistant.test_secretary_chat import booking_script, next_monday
from tests.conftest import PASSWORD
from tests.support.browser import sign_in
from tests.support.practice import PARIS, add_patient, add_practitioner

pytestmark = pytest.mark.browser


def test_secretary_confirms_a_booking_proposed_by_the_assistant(
    app, browser_page, db: Session, staff
) -> None:
    practitioner = add_practitioner(db)
    patient = add_patient(db, "Durand", "Sophie")
    db.commit()
    practice = {"practitioner": practitioner.id or 0, "patient": patient}
    app.state.assistant.model_override = booking_script(
        practice, then=[say("C'est réservé : lundi à 08:30 avec le Dr Martin.")]
    )
    page = browser_page
    sign_in(page, "/secretariat", "secretaire", PASSWORD, landing="**/secretariat/c/*")

    budget_before = page.locator("#chat-budget").inner_text()
    assert "1 000 000 jetons restants" in budget_before
    box = page.get_by_label("Votre demande")
    box.press_sequentially("Un rendez-vous lundi pour Mme Durand")
    box.press("Enter")  # Enter sends, Shift+Enter would add a line

    card = page.locator("fieldset.confirm-card")
    card.wait_for()
    assert "Réserver un rendez-vous" in card.inner_text()
    assert "Durand Sophie" in card.inner_text()
    assert re.search(r"lundi \d+ \w+ \d{4} à 08:30", card.inner_text())
    assert db.exec(select(Appointment)).all() == []
    # The first choice ("Confirmer") has the focus; send the decisions with the keyboard.
    assert page.evaluate("document.activeElement.value") == "approve"
    page.get_by_role("button", name="Envoyer mes décisions").press("Enter")

    answer = page.locator(".msg-assistant p", has_text="C'est réservé")
    answer.wait_for()
    # The budget line counts the turns without a reload.
    expect(page.locator("#chat-budget")).not_to_have_text(budget_before)
    assert "jetons restants" in page.locator("#chat-budget").inner_text()
    assert "book_appointment" in page.locator(".sources").last.inner_text()
    db.expire_all()
    [appointment] = db.exec(select(Appointment)).all()
    start = appointment.starts_at.astimezone(PARIS)
    assert (start.date(), start.hour, start.minute) == (next_monday(), 8, 30)

    # The conversation is kept: after a reload it is still there.
    page.reload()
    assert page.locator(".msg-user", has_text="Un rendez-vous lundi").count() == 1
    assert page.off_box.urls == []


def test_model_down_keeps_the_text_and_retry_works(app, browser_page, db: Session, staff) -> None:
    import httpx

    app.state.assistant.model_override = ScriptedChatModel(
        script=[httpx.ConnectError("refused"), say("Bonjour !")]
    )
    page = browser_page
    sign_in(page, "/secretariat", "secretaire", PASSWORD, landing="**/secretariat/c/*")
    box = page.get_by_label("Votre demande")
    box.fill("Bonjour")
    box.press("Enter")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "conservé" in alert.inner_text()
    page.get_by_role("button", name="Réessayer").press("Enter")
    page.locator(".msg-assistant p", has_text="Bonjour !").wait_for()
    assert page.locator(".msg-user", has_text="Bonjour").count() == 1


def _plain_patient(db: Session) -> Patient:
    """A demo patient the secretary can name without ambiguity: one word for each name, no
    married name, a surname no other patient or doctor has."""
    patients = db.exec(select(Patient)).all()
    surnames = Counter(p.birth_name.casefold() for p in patients)
    surnames.update(p.used_name.casefold() for p in patients if p.used_name)
    doctors = {p.last_name.casefold() for p in db.exec(select(Practitioner)).all()}
    return next(
        p
        for p in sorted(patients, key=lambda p: p.id or 0)
        if not p.used_name
        and p.birth_name.isalpha()
        and p.first_name.isalpha()
        and surnames[p.birth_name.casefold()] == 1
        and p.birth_name.casefold() not in doctors
    )


def _quiet_working_day(db: Session, doctor: Practitioner, today: date) -> tuple[date, str]:
    """A day past the demo agenda (eleven days ahead) when the doctor works and the practice
    is open, with her first opening time."""
    hours = db.exec(select(WorkingHours).where(WorkingHours.practitioner_id == doctor.id)).all()
    closed = holidays.country_holidays("FR", years=[today.year, today.year + 1])
    day = today + timedelta(days=14)
    while day in closed or not any(h.weekday == day.weekday() for h in hours):
        day += timedelta(days=1)
    opening = min(h.start_time for h in hours if h.weekday == day.weekday())
    return day, f"{opening:%H:%M}"


def test_on_the_defaults_the_rules_assistant_books_into_the_agenda(
    app, browser_page, db: Session, settings: Settings
) -> None:
    seeded = seed_demo(db, settings)
    db.commit()
    doctor = db.exec(select(Practitioner).where(Practitioner.last_name == "Martin")).one()
    patient = _plain_patient(db)
    day, opening = _quiet_working_day(db, doctor, datetime.now(PARIS).date())
    assert app.state.assistant.model_override is None  # the app's own choice: no Ollama here

    page = browser_page
    password = seeded.credentials["secretaire"]
    sign_in(page, "/secretariat", "secretaire", password, landing="**/secretariat/c/*")
    expect(page.locator(".model-banner")).to_contain_text("Assistant à règles")
    box = page.get_by_label("Votre demande")
    request = (
        f"Rendez-vous le {day.day} {MONTHS_FR[day.month - 1]} avec le Dr Martin "
        f"pour {patient.first_name} {patient.birth_name}"
    )
    box.fill(request)
    box.press("Enter")

    card = page.locator("fieldset.confirm-card")
    expect(card).to_contain_text("Réserver un rendez-vous")
    expect(card).to_contain_text(patient.display_name)
    expect(card).to_contain_text("Dr Claire Martin")
    expect(card).to_contain_text(f"{long_date(day)} à {opening}")
    page.get_by_role("button", name="Envoyer mes décisions").click()
    answer = page.locator(".msg-assistant p", has_text="C'est réservé")
    expect(answer).to_contain_text(opening)

    page.goto(f"{page.base_url}/agenda?date={day.isoformat()}&practitioner={doctor.id}")
    row = page.get_by_role("row", name=re.compile(f"^{opening}–"))
    expect(row).to_contain_text(patient.display_name)
    db.expire_all()
    booked = db.exec(select(Appointment).where(Appointment.patient_id == patient.id)).all()
    mine = [a for a in booked if a.starts_at.astimezone(PARIS).date() == day]
    assert [(a.practitioner_id, f"{a.starts_at.astimezone(PARIS):%H:%M}") for a in mine] == [
        (doctor.id, opening)
    ]
    assert page.off_box.urls == []
