"""Waiting-list pages: add a patient, then book, decline or withdraw the slots offered."""

import re
from dataclasses import dataclass
from datetime import UTC, timedelta

import pytest
from sqlmodel import Session, col, select

from app.services.flows import agenda_changes
from app.services.scheduling.agenda import book_appointment
from app.services.scheduling.waiting_list import add_to_waiting_list, list_waiting
from models.appointments import (
    Appointment,
    AppointmentStatus,
    OfferStatus,
    WaitingListEntry,
    WaitingOffer,
    WaitingStatus,
)
from models.audit import AuditEvent
from tests.scheduling.test_agenda_pages import HTML, next_monday
from tests.support.practice import ACTOR, PARIS, add_patient, add_practitioner


@dataclass
class Practice:
    practitioner: int
    durand: int
    petit: int
    roux: int


@pytest.fixture
def practice(db: Session, staff) -> Practice:
    martin = add_practitioner(db, "Martin")
    ids = [
        add_patient(db, name, first)
        for name, first in (("Durand", "Marie"), ("Petit", "Jeanne"), ("Roux", "Léa"))
    ]
    db.commit()
    return Practice(martin.id or 0, *ids)


def _wait(db: Session, practice: Practice, patient_id: int) -> WaitingListEntry:
    monday = next_monday().date()
    entry = add_to_waiting_list(
        db,
        ACTOR,
        patient_id=patient_id,
        earliest=monday,
        latest=monday + timedelta(days=4),
        practitioner_id=practice.practitioner,
        reason="Plus tôt si possible",
    )
    db.commit()
    return entry


def _free_a_slot(db: Session, practice: Practice) -> WaitingOffer:
    """Durand's Monday 10:00 appointment is cancelled: the slot goes to the waiting list."""
    appointment = book_appointment(
        db,
        ACTOR,
        PARIS,
        patient_id=practice.durand,
        practitioner_id=practice.practitioner,
        starts_at=next_monday(),
    )
    _, offer = agenda_changes.cancel(db, ACTOR, PARIS, appointment.id or 0)
    db.commit()
    assert offer is not None
    return offer


def _offers(db: Session) -> list[WaitingOffer]:
    db.expire_all()
    return list(db.exec(select(WaitingOffer).order_by(col(WaitingOffer.id))).all())


def test_add_form_puts_a_patient_on_the_list(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    search = client.get("/liste-attente", params={"q": "petit"}, headers=HTML)
    assert search.status_code == 200
    assert f'name="patient_id" value="{practice.petit}"' in search.text
    assert f'name="patient_id" value="{practice.durand}"' not in search.text
    monday = next_monday().date()
    added = client.post(
        "/liste-attente",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "patient_id": str(practice.petit),
            "earliest": monday.isoformat(),
            "latest": (monday + timedelta(days=7)).isoformat(),
            "part_of_day": "morning",
            "duration": "30",
            "reason": "Suivi tension",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert added.status_code == 303
    [entry] = db.exec(select(WaitingListEntry)).all()
    assert entry.patient_id == practice.petit and entry.practitioner_id is None
    assert entry.part_of_day == "morning" and entry.duration_minutes == 30
    assert entry.status == WaitingStatus.waiting and entry.reason == "Suivi tension"
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "waiting_list.add")).all()
    assert event.actor_name == "secretaire" and event.patient_id == practice.petit
    page = client.get(added.headers["location"], headers=HTML)
    assert "Patient inscrit sur la liste d&#39;attente." in page.text
    assert "Petit Jeanne" in page.text and "Indifférent" in page.text and "Matin" in page.text
    assert "Suivi tension" in page.text and "30 min" in page.text


def test_add_form_errors_keep_what_was_typed(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    monday = next_monday().date()
    backwards = client.post(
        "/liste-attente",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "patient_id": str(practice.petit),
            "earliest": monday.isoformat(),
            "latest": (monday - timedelta(days=1)).isoformat(),
            "reason": "Urgent-ish",
            "q": "petit",
        },
        headers=HTML,
    )
    assert backwards.status_code == 422
    assert "La période est à l&#39;envers." in backwards.text and 'role="alert"' in backwards.text
    assert 'value="Urgent-ish"' in backwards.text
    assert re.search(rf'value="{practice.petit}" required\s+checked', backwards.text)
    missing = client.post(
        "/liste-attente",
        data={"csrf_token": client.headers["x-csrf-token"], "part_of_day": "soir"},
        headers=HTML,
    )
    assert missing.status_code == 422
    assert "Choisissez un patient." in missing.text and "Valeur non autorisée" in missing.text
    assert db.exec(select(WaitingListEntry)).all() == []


def test_the_list_shows_the_offer_and_accepting_books_it(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    entry = _wait(db, practice, practice.petit)
    offer = _free_a_slot(db, practice)
    page = client.get("/liste-attente", headers=HTML)
    assert "Petit Jeanne" in page.text and "Créneau proposé" in page.text
    assert f"lun. {next_monday():%d/%m} 10:00" in page.text and "valable jusqu" in page.text
    assert f'action="/liste-attente/offers/{offer.id}/accept"' in page.text
    accepted = client.post(
        f"/liste-attente/offers/{offer.id}/accept",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    db.expire_all()
    booked = db.exec(
        select(Appointment).where(Appointment.status == AppointmentStatus.booked)
    ).one()
    assert booked.patient_id == practice.petit
    assert booked.starts_at == next_monday().astimezone(UTC)
    assert booked.reason == "Plus tôt si possible"
    [offer] = _offers(db)
    assert offer.status == OfferStatus.accepted and offer.booked_appointment_id == booked.id
    assert db.get(WaitingListEntry, entry.id).status == WaitingStatus.booked
    after = client.get(accepted.headers["location"], headers=HTML)
    assert "Créneau réservé." in after.text and f"/agenda/appointments/{booked.id}" in after.text
    assert "Petit Jeanne" not in after.text.split("<h2")[0]  # no longer on the open list


def test_declining_passes_the_slot_to_the_next_patient(logged_in, db, practice) -> None:
    client = logged_in("medecin")
    first = _wait(db, practice, practice.petit)
    second = _wait(db, practice, practice.roux)
    offer = _free_a_slot(db, practice)
    assert offer.entry_id == first.id
    declined = client.post(
        f"/liste-attente/offers/{offer.id}/decline",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
        follow_redirects=False,
    )
    assert declined.status_code == 303
    old, new = _offers(db)
    assert old.status == OfferStatus.declined
    assert new.entry_id == second.id and new.status == OfferStatus.pending
    assert new.starts_at == old.starts_at
    assert db.get(WaitingListEntry, first.id).status == WaitingStatus.waiting
    page = client.get(declined.headers["location"], headers=HTML)
    assert "Proposition refusée." in page.text
    assert "Créneau proposé à Roux Léa (liste d&#39;attente)." in page.text


def test_withdraw_takes_the_patient_off_the_list(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    entry = _wait(db, practice, practice.petit)
    offer = _free_a_slot(db, practice)
    withdrawn = client.post(
        f"/liste-attente/{entry.id}/withdraw",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
        follow_redirects=False,
    )
    assert withdrawn.status_code == 303
    db.expire_all()
    assert db.get(WaitingListEntry, entry.id).status == WaitingStatus.withdrawn
    assert db.get(WaitingOffer, offer.id).status == OfferStatus.declined
    page = client.get(withdrawn.headers["location"], headers=HTML)
    assert "Personne n&#39;est en attente." in page.text
    again = client.post(
        f"/liste-attente/offers/{offer.id}/accept",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
    )
    assert again.status_code == 409 and "plus ouverte" in again.text


def test_posts_without_csrf_token_are_refused(logged_in, db, practice) -> None:
    client = logged_in("secretaire")
    entry = _wait(db, practice, practice.petit)
    offer = _free_a_slot(db, practice)
    client.headers.pop("x-csrf-token")
    for path in (
        f"/liste-attente/offers/{offer.id}/accept",
        f"/liste-attente/offers/{offer.id}/decline",
        f"/liste-attente/{entry.id}/withdraw",
        "/liste-attente",
    ):
        response = client.post(path, data={"patient_id": str(practice.roux)}, headers=HTML)
        assert response.status_code == 403, path
    [offer] = _offers(db)
    assert offer.status == OfferStatus.pending
    assert len(db.exec(select(WaitingListEntry)).all()) == 1


def test_a_rebooked_slot_shows_its_offer_as_stale(logged_in, db: Session, practice) -> None:
    client = logged_in("secretaire")
    _wait(db, practice, practice.petit)
    offer = _free_a_slot(db, practice)
    [row] = list_waiting(db, ACTOR)
    assert row.offer is not None and not row.stale
    # Someone else books the freed time directly from the agenda.
    book_appointment(
        db,
        ACTOR,
        PARIS,
        patient_id=practice.roux,
        practitioner_id=practice.practitioner,
        starts_at=next_monday(),
    )
    db.commit()
    [row] = list_waiting(db, ACTOR)
    assert row.offer is not None and row.offer.id == offer.id and row.stale
    page = client.get("/liste-attente", headers=HTML)
    assert page.status_code == 200
    assert "Créneau repris entre-temps : proposition caduque" in page.text
    assert f'action="/liste-attente/offers/{offer.id}/accept"' not in page.text
    assert "valable jusqu" not in page.text
