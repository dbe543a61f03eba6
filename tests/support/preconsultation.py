"""Builders for the pre-consultation tests: an appointment, its link, a verified patient client."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.services.preconsultation import links as pc
from app.services.preconsultation.questionnaires import import_bundled
from models.appointments import Appointment
from tests.support.practice import ACTOR, add_patient, add_practitioner

SECRET = "test-secret-key-not-for-production"  # the ``settings`` fixture's key
BIRTH_DATE = "1980-01-02"  # tests.support.practice.add_patient's


@dataclass
class Booked:
    appointment_id: int
    patient_id: int


def book(db: Session, visit_type: str = "consultation", days: int = 2) -> Booked:
    """Questionnaires imported, one practitioner, one patient, one future appointment."""
    import_bundled(db)
    practitioner = add_practitioner(db)
    patient_id = add_patient(db)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    appointment = Appointment(
        practitioner_id=practitioner.id or 0,
        patient_id=patient_id,
        starts_at=start,
        ends_at=start + timedelta(minutes=20),
        visit_type=visit_type,
        reason="Fièvre",
    )
    db.add(appointment)
    db.commit()
    return Booked(appointment.id or 0, patient_id)


def send(db: Session, appointment_id: int, **kwargs) -> pc.SentLink:
    sent = pc.send_preconsultation(db, ACTOR, appointment_id, secret=SECRET, **kwargs)
    db.commit()
    return sent


def link_csrf(html: str) -> str:
    marker = 'name="link_csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def session_csrf(html: str) -> str:
    marker = 'name="csrf-token" content="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def verify(client: TestClient, path: str, birth_date: str = BIRTH_DATE):
    """Open the link and confirm the birth date; returns the POST's response."""
    page = client.get(path, headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    return client.post(
        f"{path}/identite",
        data={
            "birth_date": birth_date,
            "link_csrf": link_csrf(page.text),
            "csrf_token": session_csrf(page.text),
        },
        headers={"accept": "text/html"},
        follow_redirects=False,
    )


def autosave(client: TestClient, path: str, answers: dict, *, step: int = 1):
    page = client.get(f"{path}/etape/{step}", headers={"accept": "text/html"})
    return client.post(
        f"{path}/answers",
        json={"answers": answers},
        headers={
            "accept": "application/json",
            "x-link-csrf": link_csrf(page.text),
            "x-csrf-token": session_csrf(page.text),
        },
    )
