"""A secretary asks the assistant for a booking, sees the proposal, confirms it with the
keyboard, and finds the appointment booked — in a real browser, with a scripted model."""

import re

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from agents.scripted_model import ScriptedChatModel, say
from models.appointments import Appointment
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
