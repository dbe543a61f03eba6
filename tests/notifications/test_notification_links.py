"""The patient's links from a message: the self-service page (confirm, cancel up to the
cut-off, questionnaire, opt-out), waiting-list offers answered by email link end to end, and
bad links (unknown, tampered, reused, expired, too late)."""

import html as html_module
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from app.services.core import link_tokens
from app.services.flows import agenda_changes
from app.services.preconsultation import links as pc
from app.services.scheduling.agenda import book_appointment
from app.services.scheduling.slots import Slot
from app.services.scheduling.waiting_list import add_to_waiting_list, offer_freed_slot
from models.appointments import (
    Appointment,
    AppointmentStatus,
    OfferStatus,
    WaitingListEntry,
    WaitingOffer,
    WaitingStatus,
)
from models.audit import AuditEvent
from models.notifications import AppointmentLink, NotificationConsent
from models.questionnaires import PreConsultation
from tests.scheduling.test_agenda_pages import HTML, next_monday
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

LINK = re.compile(re.escape(PUBLIC_URL) + r"(/(?:rdv|offre)/[0-9]+\.[A-Za-z0-9_-]+)")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_server):
    return mail_settings(database_url, tmp_path / "data", smtp_server.port)


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    martin = add_practitioner(db, "Martin")
    ids = {
        "martin": martin.id or 0,
        "durand": add_reachable_patient(db, "Durand", "Marie", "marie.durand@exemple.fr"),
        "petit": add_reachable_patient(db, "Petit", "Jeanne", "jeanne.petit@exemple.fr"),
        "roux": add_reachable_patient(db, "Roux", "Léa", "lea.roux@exemple.fr", language="en"),
    }
    db.commit()
    enable(db)
    return ids


def _book(db: Session, practice, patient: str, start: datetime) -> Appointment:
    appointment = book_appointment(
        db,
        ADMIN,
        PARIS,
        patient_id=practice[patient],
        practitioner_id=practice["martin"],
        starts_at=start,
    )
    db.commit()
    return appointment


def _links(smtp_server, address: str) -> list[str]:
    """The patient links in the last message the address received."""
    return LINK.findall(body(smtp_server.mailbox.to(address)[-1]))


def _form_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} in the page"
    return match.group(1)


def _post(client, path: str, page: str):
    html = client.get(page, headers=HTML).text
    return client.post(
        path,
        data={
            "csrf_token": _form_field(html, "csrf_token"),
            "link_csrf": _form_field(html, "link_csrf"),
        },
        headers=HTML,
        follow_redirects=False,
    )


# -- self-service ----------------------------------------------------------------------------


def test_patient_confirms_presence_from_the_link(client, db, practice, job_queue, smtp_server):
    appointment = _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    [path] = _links(smtp_server, "marie.durand@exemple.fr")
    page = client.get(path, headers=HTML)
    assert page.status_code == 200
    assert "Dr Claire Martin" in html_module.unescape(
        page.text
    ) and "Je confirme ma présence" in html_module.unescape(page.text)
    done = _post(client, f"{path}/confirmer", path)
    assert done.status_code == 303
    db.expire_all()
    assert db.get(Appointment, appointment.id).status == AppointmentStatus.confirmed
    assert "Merci, votre présence est confirmée." in client.get(done.headers["location"]).text
    stored = db.exec(select(AppointmentLink)).one()
    token = path.rsplit("/", 1)[1]
    assert stored.token_hash == link_tokens.hash_token(token) and token not in stored.token_hash
    assert stored.nonce not in token


def test_patient_cancels_and_the_slot_goes_to_the_waiting_list(
    client, db, practice, job_queue, smtp_server
):
    start = next_monday() + timedelta(days=7)
    appointment = _book(db, practice, "durand", start)
    add_to_waiting_list(
        db,
        ADMIN,
        patient_id=practice["petit"],
        earliest=start.date() - timedelta(days=1),
        latest=start.date() + timedelta(days=3),
        practitioner_id=practice["martin"],
    )
    db.commit()
    run_jobs(job_queue)
    [path] = _links(smtp_server, "marie.durand@exemple.fr")
    confirm_page = client.get(f"{path}/annuler", headers=HTML)
    assert "Annuler ce rendez-vous ?" in html_module.unescape(confirm_page.text)
    cancelled = _post(client, f"{path}/annuler", f"{path}/annuler")
    assert cancelled.status_code == 200 and "Rendez-vous annulé" in html_module.unescape(
        cancelled.text
    )
    db.expire_all()
    assert db.get(Appointment, appointment.id).status == AppointmentStatus.cancelled
    [offer] = db.exec(select(WaitingOffer)).all()
    assert offer.starts_at == appointment.starts_at and offer.status == OfferStatus.pending
    run_jobs(job_queue)
    offer_mail = smtp_server.mailbox.to("jeanne.petit@exemple.fr")[-1]
    assert offer_mail["Subject"].startswith("Un créneau s'est libéré")
    notice = smtp_server.mailbox.to("marie.durand@exemple.fr")[-1]
    assert "est annulé" in body(notice)
    # The link has been used: opening it again says so clearly.
    again = client.get(path, headers=HTML)
    assert again.status_code == 410 and "Lien déjà utilisé" in html_module.unescape(again.text)
    denied = db.exec(select(AuditEvent).where(AuditEvent.action == "appointment_link.denied")).all()
    assert denied and denied[-1].details == {"problem": "used"}


def test_cancelling_after_the_cut_off_is_refused(client, db, practice, job_queue, smtp_server):
    enable(db, cutoff=24 * 8)  # eight days: the appointment next Monday is already too close
    appointment = _book(db, practice, "durand", next_monday())
    run_jobs(job_queue)
    [path] = _links(smtp_server, "marie.durand@exemple.fr")
    assert "Annulation en ligne" not in body(smtp_server.mailbox.messages[-1])
    page = client.get(path, headers=HTML)
    assert "Il est trop tard pour annuler en ligne" in html_module.unescape(page.text)
    html = client.get(path, headers=HTML).text
    refused = client.post(
        f"{path}/annuler",
        data={
            "csrf_token": _form_field(html, "csrf_token"),
            "link_csrf": _form_field(html, "link_csrf"),
        },
        headers=HTML,
    )
    assert refused.status_code == 409
    assert "trop tard pour annuler en ligne (moins de 192 h" in html_module.unescape(refused.text)
    db.expire_all()
    assert db.get(Appointment, appointment.id).status == AppointmentStatus.booked


@pytest.mark.parametrize(
    "path",
    ["/rdv/1.AAAAAAAAAAAAAAAAAAAAAAAA", "/rdv/nothing", "/rdv/" + "9" * 60, "/rdv/0.x"],
)
def test_unknown_tokens_get_a_clear_page(client, db, practice, path):
    page = client.get(path, headers=HTML)
    assert page.status_code == 404 and "Lien non valable" in html_module.unescape(page.text)


def test_a_tampered_token_is_refused(client, db, practice, job_queue, smtp_server):
    _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    [path] = _links(smtp_server, "marie.durand@exemple.fr")
    last = path[-1]
    tampered = path[:-1] + ("A" if last != "A" else "B")
    assert client.get(tampered, headers=HTML).status_code == 404
    other_row = re.sub(r"/rdv/(\d+)\.", lambda m: f"/rdv/{int(m.group(1)) + 1}.", path)
    assert client.get(other_row, headers=HTML).status_code == 404


def test_expired_link_after_the_appointment(client, db, practice, job_queue, smtp_server):
    import time_machine

    appointment = _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    [path] = _links(smtp_server, "marie.durand@exemple.fr")
    with time_machine.travel(appointment.ends_at + timedelta(minutes=1), tick=False):
        page = client.get(path, headers=HTML)
    assert page.status_code == 410 and "Lien expiré" in html_module.unescape(page.text)


def test_a_post_without_the_link_token_is_refused(client, db, practice, job_queue, smtp_server):
    appointment = _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    [path] = _links(smtp_server, "marie.durand@exemple.fr")
    html = client.get(path, headers=HTML).text
    forged = client.post(
        f"{path}/annuler",
        data={"csrf_token": _form_field(html, "csrf_token"), "link_csrf": "forged"},
        headers=HTML,
    )
    assert forged.status_code == 403
    db.expire_all()
    assert db.get(Appointment, appointment.id).status == AppointmentStatus.booked


def test_patient_opts_out_from_the_link(client, db, practice, job_queue, smtp_server):
    _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    [path] = _links(smtp_server, "marie.durand@exemple.fr")
    stopped = _post(client, f"{path}/desinscription", path)
    assert stopped.status_code == 303
    rows = db.exec(select(NotificationConsent)).all()
    assert {(r.channel, r.opted_out, r.source) for r in rows} == {
        ("email", True, "patient"),
        ("sms", True, "patient"),
    }
    count = len(smtp_server.mailbox.messages)
    _book(db, practice, "durand", next_monday() + timedelta(days=8))
    run_jobs(job_queue)
    assert len(smtp_server.mailbox.messages) == count  # honoured: nothing more


def test_pending_questionnaire_is_reachable_from_the_message_link(
    client, db, practice, job_queue, smtp_server, settings
):
    from app.services.preconsultation.questionnaires import import_bundled

    import_bundled(db)
    appointment = _book(db, practice, "durand", next_monday() + timedelta(days=7))
    sent = pc.send_preconsultation(
        db, ADMIN, appointment.id or 0, secret=settings.resolved_secret_key()
    )
    db.commit()
    run_jobs(job_queue)
    text = body(smtp_server.mailbox.to("marie.durand@exemple.fr")[-1])
    assert "questionnaire de pré-consultation vous attend" in text
    path = _links(smtp_server, "marie.durand@exemple.fr")[0]
    assert f"{PUBLIC_URL}{path}#questionnaire" in text
    page = client.get(path, headers=HTML)
    assert "Remplir le questionnaire" in html_module.unescape(page.text)
    opened = _post(client, f"{path}/questionnaire", path)
    assert opened.status_code == 303 and opened.headers["location"].startswith("/p/")
    new_token = opened.headers["location"][3:]
    db.expire_all()
    row = db.get(PreConsultation, sent.preconsultation.id)
    assert row.token_hash == pc.hash_token(new_token)
    identity = client.get(opened.headers["location"], headers=HTML)
    assert (
        identity.status_code == 200
        and "date de naissance" in html_module.unescape(identity.text).lower()
    )


# -- waiting-list offers end to end ----------------------------------------------------------


def _waiting(db: Session, practice, patient: str, start: datetime) -> WaitingListEntry:
    entry = add_to_waiting_list(
        db,
        ADMIN,
        patient_id=practice[patient],
        earliest=start.date() - timedelta(days=1),
        latest=start.date() + timedelta(days=3),
        practitioner_id=practice["martin"],
    )
    db.commit()
    return entry


def _entry(db: Session, entry_id: int) -> WaitingListEntry:
    db.expire_all()
    found = db.get(WaitingListEntry, entry_id)
    assert found is not None
    return found


def test_offer_by_email_accept_link_books_the_slot(client, db, practice, job_queue, smtp_server):
    start = next_monday() + timedelta(days=7)
    appointment = _book(db, practice, "durand", start)
    entry = _waiting(db, practice, "petit", start)
    agenda_changes.cancel(db, ADMIN, PARIS, appointment.id or 0)
    db.commit()
    run_jobs(job_queue)
    mail = smtp_server.mailbox.to("jeanne.petit@exemple.fr")[-1]
    text = body(mail)
    assert "Accepter ce créneau" in text and "Refuser" in text
    accept_url = next(u for u in LINK.findall(text) if u.startswith("/offre/"))
    page = client.get(accept_url + "?reponse=accepter", headers=HTML)
    assert page.status_code == 200 and "J'accepte ce créneau" in html_module.unescape(page.text)
    assert "Je refuse" not in html_module.unescape(page.text)
    token_path = accept_url
    accepted = _post(client, f"{token_path}/accepter", token_path)
    assert accepted.status_code == 200 and "Rendez-vous enregistré" in html_module.unescape(
        accepted.text
    )
    db.expire_all()
    booked = db.exec(
        select(Appointment).where(
            Appointment.patient_id == practice["petit"],
            Appointment.status == AppointmentStatus.booked,
        )
    ).one()
    assert booked.starts_at == appointment.starts_at
    assert _entry(db, entry.id).status == WaitingStatus.booked
    run_jobs(job_queue)  # the new appointment's confirmation
    assert smtp_server.mailbox.to("jeanne.petit@exemple.fr")[-1]["Subject"].startswith(
        "Rendez-vous enregistré"
    )
    reused = client.get(token_path, headers=HTML)
    assert reused.status_code == 409 and "déjà accepté" in html_module.unescape(reused.text)


def test_two_patients_accepting_the_same_slot_one_gets_it(
    client, db, practice, job_queue, smtp_server
):
    start = next_monday() + timedelta(days=7)
    appointment = _book(db, practice, "durand", start)
    first = _waiting(db, practice, "petit", start)
    second = _waiting(db, practice, "roux", start)
    agenda_changes.cancel(db, ADMIN, PARIS, appointment.id or 0)
    # The same freed slot offered again while the first offer is open: two pending offers.
    offer_freed_slot(
        db, ADMIN, PARIS, Slot(practice["martin"], appointment.starts_at, appointment.ends_at)
    )
    db.commit()
    assert (
        db.exec(select(WaitingOffer).where(WaitingOffer.status == OfferStatus.pending))
        .all()
        .__len__()
        == 2
    )
    run_jobs(job_queue)
    petit_url = next(
        u for u in _links(smtp_server, "jeanne.petit@exemple.fr") if u.startswith("/offre/")
    )
    roux_url = next(
        u for u in _links(smtp_server, "lea.roux@exemple.fr") if u.startswith("/offre/")
    )
    assert "A slot is free" in smtp_server.mailbox.to("lea.roux@exemple.fr")[-1]["Subject"]
    assert _post(client, f"{petit_url}/accepter", petit_url).status_code == 200
    refused = _post(client, f"{roux_url}/accepter", roux_url)
    assert refused.status_code == 409
    assert "attribué à un autre patient" in html_module.unescape(refused.text)
    assert "restez sur la liste d'attente" in html_module.unescape(refused.text)
    assert _entry(db, first.id).status == WaitingStatus.booked
    assert _entry(db, second.id).status == WaitingStatus.waiting
    db.expire_all()
    assert (
        len(
            db.exec(
                select(Appointment).where(
                    Appointment.starts_at == appointment.starts_at,
                    Appointment.status == AppointmentStatus.booked,
                )
            ).all()
        )
        == 1
    )


def test_an_expired_offer_passes_to_the_next_patient(client, db, practice, job_queue, smtp_server):
    import time_machine

    start = next_monday() + timedelta(days=7)
    appointment = _book(db, practice, "durand", start)
    first = _waiting(db, practice, "petit", start)
    second = _waiting(db, practice, "roux", start)
    agenda_changes.cancel(db, ADMIN, PARIS, appointment.id or 0)
    db.commit()
    run_jobs(job_queue)
    petit_url = next(
        u for u in _links(smtp_server, "jeanne.petit@exemple.fr") if u.startswith("/offre/")
    )
    assert smtp_server.mailbox.to("lea.roux@exemple.fr") == []
    later = datetime.now(UTC) + timedelta(hours=2, minutes=1)
    with time_machine.travel(later, tick=False):
        run_jobs(job_queue)  # the offer's expiry job: the slot passes to the next entry
        offers = db.exec(select(WaitingOffer).order_by(col(WaitingOffer.id))).all()
        db.expire_all()
        offers = db.exec(select(WaitingOffer).order_by(col(WaitingOffer.id))).all()
        assert [o.status for o in offers] == [OfferStatus.expired, OfferStatus.pending]
        assert offers[1].entry_id == second.id
        roux_mail = smtp_server.mailbox.to("lea.roux@exemple.fr")[-1]
        assert roux_mail["Subject"].startswith("A slot is free")
        late = client.get(petit_url, headers=HTML)
        assert late.status_code == 410 and "Proposition expirée" in html_module.unescape(late.text)
        assert "restez sur la liste d'attente" in html_module.unescape(late.text)
    assert _entry(db, first.id).status == WaitingStatus.waiting
