"""In a real browser on a phone-sized screen: the patient opens the link of the reminder they
received by email, cancels the appointment, and the agenda shows the slot free again."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from app.services.scheduling.agenda import book_appointment
from models.appointments import Appointment, AppointmentStatus
from models.notifications import MessageKind, OutboxMessage
from tests.conftest import PASSWORD
from tests.scheduling.test_agenda_pages import next_monday
from tests.support.browser import sign_in
from tests.support.jobs_helpers import run_jobs
from tests.support.notification_helpers import (
    ADMIN,
    PUBLIC_URL,
    add_reachable_patient,
    body,
    enable,
    mail_settings,
)
from tests.support.practice import PARIS, add_practitioner

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_server):
    return mail_settings(database_url, tmp_path / "data", smtp_server.port)


def test_patient_cancels_from_the_reminder_on_a_phone(
    browser_page, db: Session, staff, job_queue, smtp_server
) -> None:
    import time_machine

    martin = add_practitioner(db, "Martin")
    patient = add_reachable_patient(db, "Durand", "Marie", "marie.durand@exemple.fr")
    db.commit()
    enable(db)
    start = next_monday(10, 10) + timedelta(days=7)  # on the agenda's 20-minute grid
    appointment = book_appointment(
        db, ADMIN, PARIS, patient_id=patient, practitioner_id=martin.id or 0, starts_at=start
    )
    db.commit()
    reminder = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.kind == MessageKind.reminder, OutboxMessage.reminder_hours == 24
        )
    ).one()
    with time_machine.travel(reminder.planned_at, tick=False):
        run_jobs(job_queue)  # the confirmation, then the reminders due by then
    mail = smtp_server.mailbox.to("marie.durand@exemple.fr")[-1]
    assert mail["Subject"].startswith("Rappel : rendez-vous le")
    match = re.search(re.escape(PUBLIC_URL) + r"(/rdv/\S+)", body(mail))
    assert match
    page = browser_page
    page.goto(page.base_url + match.group(1))
    assert page.viewport_size == {"width": 390, "height": 844}
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == "Votre rendez-vous"
    assert "Dr Claire Martin" in page.locator(".ss-details").inner_text()
    # Mobile first: the buttons span the screen and nothing scrolls sideways.
    cancel_link = page.get_by_role("link", name="Annuler le rendez-vous")
    assert cancel_link.bounding_box()["width"] > 300
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    cancel_link.click()
    page.wait_for_url("**/annuler")
    assert page.get_by_role("heading", level=1).inner_text() == "Annuler ce rendez-vous ?"
    page.get_by_role("button", name="Oui, annuler le rendez-vous").click()
    page.get_by_role("heading", name="Rendez-vous annulé").wait_for()
    db.expire_all()
    assert db.get(Appointment, appointment.id).status == AppointmentStatus.cancelled

    # The secretary's agenda shows the slot free again (bookable in one click).
    local = start.astimezone(PARIS)
    page.context.clear_cookies()
    sign_in(
        page,
        f"/agenda?date={local.date().isoformat()}",
        "secretaire",
        PASSWORD,
        landing="**/agenda?date=*",
    )
    free = page.get_by_role("link", name=f"Réserver {local:%H:%M}, Dr Claire Martin")
    assert free.count() == 1
    assert page.off_box.urls == []
