"""A secretary books a free slot from the agenda with the keyboard only, in a real browser."""

import re

import pytest
from sqlmodel import Session, select

from models.appointments import Appointment
from tests.conftest import PASSWORD
from tests.scheduling.test_agenda_pages import next_monday
from tests.support.practice import add_patient, add_practitioner

pytestmark = pytest.mark.browser


def test_secretary_books_a_free_slot_with_the_keyboard(browser_page, db: Session, staff) -> None:
    add_practitioner(db, "Martin")
    patient_id = add_patient(db, "Durand", "Marie")
    db.commit()
    monday = next_monday()  # a future weekday; its free slots run 08:30, 08:50, ... 10:10
    page = browser_page
    page.goto(f"{page.base_url}/agenda?date={monday.date().isoformat()}")
    assert "/login" in page.url  # anonymous: sent to the login page, then back
    page.get_by_label("Identifiant").fill("secretaire")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_label("Mot de passe").press("Enter")
    page.wait_for_url("**/agenda?date=*")
    assert (
        page.get_by_role("link", name=re.compile(r"^lun\. ")).get_attribute("aria-current")
        == "date"
    )

    page.get_by_role("link", name="Réserver 10:10, Dr Claire Martin").press("Enter")
    page.wait_for_url("**/agenda/new?*")
    search = page.get_by_label("Rechercher un patient (nom, prénom)")
    search.press_sequentially("durand")
    search.press("Enter")
    page.wait_for_url("**q=durand*")
    choice = page.get_by_label("Durand Marie (02/01/1980)")
    choice.press("Space")
    assert choice.is_checked()
    assert page.get_by_label("Heure").input_value() == "10:10"
    reason = page.get_by_label("Motif", exact=True)
    reason.press_sequentially("Renouvellement")
    reason.press("Enter")  # submits the booking form

    page.wait_for_url("**/agenda?*booked=*")
    assert page.get_by_role("status").first.inner_text().startswith("Rendez-vous réservé.")
    row = page.get_by_role("row", name=re.compile("10:10–10:30"))
    assert "Durand Marie" in row.inner_text() and "Renouvellement" in row.inner_text()
    db.expire_all()
    [appointment] = db.exec(select(Appointment)).all()
    assert appointment.patient_id == patient_id and appointment.reason == "Renouvellement"
    assert page.off_box.urls == []
