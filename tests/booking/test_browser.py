"""A patient books on a phone, as a new patient and as a known one, code step included (the
code read from the loopback SMTP server)."""

import re

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from app.services.booking import throttle
from models.appointments import Appointment, AppointmentSource
from models.patients import Patient, RegistrationStatus
from tests.booking.conftest import Practice, code_from
from tests.support.notification_helpers import add_reachable_patient

pytestmark = pytest.mark.browser


def _book(page, mailbox, email: str, slot_index: int) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{page.base_url}/rendez-vous")
    expect(page.get_by_role("heading", name="Prendre rendez-vous")).to_be_visible()
    page.get_by_label("Premier disponible").check()
    page.get_by_label("Consultation").check()
    page.get_by_role("button", name="Voir les créneaux libres").click()
    expect(page.get_by_role("heading", name="Créneaux libres")).to_be_visible()
    page.locator("button.booking-slot").nth(slot_index).click()
    expect(page.get_by_role("heading", name="Vos coordonnées")).to_be_visible()
    page.get_by_label("Nom de naissance").fill("Durand")
    page.get_by_label("Prénom").fill("Marie")
    page.get_by_label("Date de naissance").fill("1980-01-02")
    page.get_by_label("Téléphone portable").fill("06 12 34 56 78")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Femme").check()
    page.get_by_role("button", name="Recevoir le code").click()
    expect(page.get_by_role("heading", name="Code de confirmation")).to_be_visible()
    page.get_by_label("Code reçu (6 chiffres)").fill(code_from(mailbox, email))
    page.get_by_role("button", name="Confirmer le rendez-vous").click()
    expect(page.get_by_role("heading", name="Rendez-vous confirmé")).to_be_visible()


def test_a_new_and_a_known_patient_book_on_a_phone(  # type: ignore[no-untyped-def]
    app, browser_page, db: Session, practice: Practice, smtp_server
) -> None:
    app.state.booking_limits = throttle.Limits(pow_after_holds=1000)
    known = add_reachable_patient(db, "Durand", "Marie", "marie@example.org")
    db.commit()
    page = browser_page
    assert page.viewport_size["width"] < 500  # a phone
    _book(page, smtp_server.mailbox, "nouvelle.patiente@example.org", 6)
    _book(page, smtp_server.mailbox, "marie@example.org", 8)
    db.expire_all()
    rows = db.exec(select(Appointment).order_by(Appointment.id)).all()
    assert [r.source for r in rows] == [AppointmentSource.online] * 2
    new_patient = db.get(Patient, rows[0].patient_id)
    assert new_patient.registration_status == RegistrationStatus.pending
    assert rows[1].patient_id == known
    assert page.off_box.urls == []
    # The page fits the phone: nothing wider than the viewport.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]
    assert re.search(r"\d\d/\d\d/\d{4}", page.content())


def test_the_challenge_is_solved_by_the_served_script(  # type: ignore[no-untyped-def]
    app, browser_page, db: Session, practice: Practice
) -> None:
    app.state.booking_limits = throttle.Limits(pow_after_holds=0)
    page = browser_page
    page.goto(f"{page.base_url}/rendez-vous/creneaux?praticien=premier&motif=consultation")
    page.locator("button.booking-slot").nth(3).click()
    # The challenge page solves itself and posts on: the held slot's page follows.
    expect(page.get_by_role("heading", name="Vos coordonnées")).to_be_visible(timeout=30_000)
    assert page.off_box.urls == []
