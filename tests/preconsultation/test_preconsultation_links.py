"""Pre-consultation links: hashed tokens, expiry, tampering, revocation, lockout, replay, audit."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.services.core.errors import Conflict
from app.services.preconsultation import links as pc
from models.appointments import Appointment, AppointmentStatus
from models.audit import ActorKind, AuditEvent
from models.questionnaires import PreConsultation, PreConsultationStatus
from tests.support.practice import ACTOR
from tests.support.preconsultation import (
    SECRET,
    autosave,
    book,
    link_csrf,
    send,
    session_csrf,
    verify,
)

HTML = {"accept": "text/html"}


def test_link_is_signed_random_and_stored_only_as_a_hash(db: Session) -> None:
    booked = book(db)
    sent = send(db, booked.appointment_id)
    assert sent.path == f"/p/{sent.token}" and len(sent.token) > 40
    row = db.exec(select(PreConsultation)).one()
    assert row.token_hash == pc.hash_token(sent.token) and sent.token not in row.token_hash
    assert pc.signature_ok(SECRET, sent.token) and not pc.signature_ok("other", sent.token)
    assert row.expires_at <= db.get(Appointment, booked.appointment_id).ends_at
    assert sent.questionnaire.slug == "consultation-generale"
    assert pc.qr_svg_data_uri("http://x/p/" + sent.token).startswith("data:image/svg+xml")


def test_visit_type_picks_the_questionnaire(db: Session) -> None:
    booked = book(db, visit_type="vaccination")
    assert send(db, booked.appointment_id).questionnaire.slug == "vaccination"


def test_tampered_and_unknown_tokens_get_a_clear_page(client: TestClient, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    nonce, _, signature = sent.token.partition(".")
    for token in (nonce + "X." + signature, nonce, "nope", pc.new_token(SECRET)):
        page = client.get(f"/p/{token}", headers=HTML)
        assert page.status_code == 404
        assert "Lien non valable" in page.text
    denied = db.exec(
        select(AuditEvent).where(AuditEvent.action == "preconsultation.link_denied")
    ).all()
    assert len(denied) == 4 and all(e.actor_kind == ActorKind.patient_link for e in denied)


def test_expired_link(client: TestClient, db: Session) -> None:
    booked = book(db)
    sent = send(db, booked.appointment_id, lifetime=timedelta(minutes=5))
    row = db.exec(select(PreConsultation)).one()
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    db.add(row)
    db.commit()
    page = client.get(sent.path, headers={"accept": "text/html", "accept-language": "en"})
    assert page.status_code == 410 and "Link expired" in page.text
    db.expire_all()
    assert db.get(PreConsultation, row.id).status == PreConsultationStatus.expired


def test_new_link_revokes_the_old_one_and_cancelling_the_visit_too(
    client: TestClient, db: Session
) -> None:
    booked = book(db)
    first = send(db, booked.appointment_id)
    second = send(db, booked.appointment_id)
    assert client.get(first.path, headers=HTML).status_code == 410
    assert "Lien annulé" in client.get(first.path, headers=HTML).text
    assert client.get(second.path, headers=HTML).status_code == 200
    appointment = db.get(Appointment, booked.appointment_id)
    appointment.status = AppointmentStatus.cancelled
    db.add(appointment)
    db.commit()
    assert client.get(second.path, headers=HTML).status_code == 410
    with pytest.raises(Conflict):
        send(db, booked.appointment_id)


def test_birth_date_is_required_and_five_failures_lock(client: TestClient, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    assert client.get(f"{sent.path}/etape/1", follow_redirects=False).status_code == 303
    for attempt in range(1, 5):
        wrong = verify(client, sent.path, "1980-02-01")
        assert wrong.status_code == 422
        assert f"Essais restants : {5 - attempt}" in wrong.text
    locked = verify(client, sent.path, "02/01/1981")
    assert locked.status_code == 423 and "Lien bloqué" in locked.text
    # even the right date no longer opens it
    assert client.get(sent.path, headers=HTML).status_code == 423
    row = db.exec(select(PreConsultation)).one()
    db.refresh(row)
    assert row.failed_identity_checks == 5
    failures = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "preconsultation.identity", AuditEvent.outcome == "denied"
        )
    ).all()
    assert len(failures) == 5


def test_right_birth_date_in_french_format_opens_the_form(client: TestClient, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    ok = verify(client, sent.path, "02/01/1980")
    assert ok.status_code == 303 and ok.headers["location"] == f"{sent.path}/etape/1"
    page = client.get(ok.headers["location"], headers=HTML)
    assert page.status_code == 200 and "Motif de consultation" in page.text
    # the verification belongs to this browser only
    other = TestClient(client.app)
    assert other.get(f"{sent.path}/etape/1", follow_redirects=False).status_code == 303


def test_submitted_link_cannot_be_replayed(client: TestClient, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    verify(client, sent.path)
    assert autosave(client, sent.path, {"motif": "Toux"}).status_code == 200
    page = client.get(f"{sent.path}/relecture", headers=HTML)
    from tests.support.preconsultation import link_csrf, session_csrf

    data = {"link_csrf": link_csrf(page.text), "csrf_token": session_csrf(page.text)}
    done = client.post(f"{sent.path}/envoyer", data=data, headers=HTML, follow_redirects=False)
    assert done.headers["location"] == f"{sent.path}/merci"
    again = client.post(f"{sent.path}/envoyer", data=data, headers=HTML)
    assert again.status_code == 410 and "déjà été transmises" in again.text
    late = client.post(
        f"{sent.path}/answers",
        json={"answers": {"motif": "Autre"}},
        headers={"x-link-csrf": data["link_csrf"], "x-csrf-token": data["csrf_token"]},
    )
    assert late.status_code == 410
    assert client.get(sent.path, headers=HTML).status_code == 410
    row = db.exec(select(PreConsultation)).one()
    db.refresh(row)
    assert row.answers == {"motif": "Toux"}
    # and a new link for an already answered appointment is refused
    with pytest.raises(Conflict):
        send(db, row.appointment_id)


def test_every_access_by_the_link_is_audited(client: TestClient, db: Session) -> None:
    booked = book(db)
    sent = send(db, booked.appointment_id)
    verify(client, sent.path)
    autosave(client, sent.path, {"motif": "Toux"})
    events = db.exec(
        select(AuditEvent).where(AuditEvent.actor_kind == ActorKind.patient_link)
    ).all()
    actions = {e.action for e in events}
    assert {"preconsultation.link_open", "preconsultation.identity", "preconsultation.answer"} <= (
        actions
    )
    assert all(e.patient_id == booked.patient_id for e in events)
    answer = next(e for e in events if e.action == "preconsultation.answer")
    assert answer.details == {"questions": ["motif"]}  # which questions, never the answers
    assert "Toux" not in str([e.details for e in events])


def test_an_autosave_is_audited_once_and_a_refused_one_as_a_denial(
    client: TestClient, db: Session
) -> None:
    booked = book(db)
    sent = send(db, booked.appointment_id)
    verify(client, sent.path)
    page = client.get(f"{sent.path}/etape/1", headers={"accept": "text/html"})
    headers = {
        "accept": "application/json",
        "x-link-csrf": link_csrf(page.text),
        "x-csrf-token": session_csrf(page.text),
    }

    def link_events() -> list[AuditEvent]:
        db.expire_all()
        query = select(AuditEvent).where(AuditEvent.actor_kind == ActorKind.patient_link)
        return list(db.exec(query.order_by(AuditEvent.id)).all())

    before = len(link_events())
    saved = client.post(
        f"{sent.path}/answers", json={"answers": {"motif": "Toux"}}, headers=headers
    )
    assert saved.status_code == 200, saved.text
    [event] = link_events()[before:]
    assert (event.action, event.patient_id) == ("preconsultation.answer", booked.patient_id)

    forged = {**headers, "x-link-csrf": "forged"}
    refused = client.post(f"{sent.path}/answers", json={"answers": {"motif": "X"}}, headers=forged)
    assert refused.status_code == 403
    [denial] = link_events()[before + 1 :]
    assert denial.action == "preconsultation.link_denied"
    assert (denial.outcome, denial.details) == ("denied", {"problem": "csrf"})
    assert denial.patient_id == booked.patient_id
    row = db.exec(select(PreConsultation)).one()
    db.refresh(row)
    assert row.answers == {"motif": "Toux"}  # the refused save changed nothing


def test_staff_send_the_link_from_the_appointment_page(logged_in, db: Session) -> None:
    booked = book(db)
    client = logged_in("secretaire")
    page = client.get(f"/agenda/appointments/{booked.appointment_id}", headers=HTML)
    assert "Pré-consultation" in page.text and "Envoyer le lien" in page.text
    sent = client.post(
        f"/agenda/appointments/{booked.appointment_id}/preconsultation", headers=HTML
    )
    assert sent.status_code == 200
    assert 'src="data:image/svg+xml' in sent.text and "http://testserver/p/" in sent.text
    detail = client.get(f"/agenda/appointments/{booked.appointment_id}", headers=HTML)
    assert "Envoyé" in detail.text and "Annuler le lien" in detail.text
    revoked = client.post(
        f"/agenda/appointments/{booked.appointment_id}/preconsultation/revoke",
        headers=HTML,
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert db.exec(select(PreConsultation)).one().status == PreConsultationStatus.revoked
    by_staff = db.exec(select(AuditEvent).where(AuditEvent.action == "preconsultation.send")).one()
    assert by_staff.actor_kind == ActorKind.user


def test_admin_cannot_send_links(logged_in, db: Session) -> None:
    booked = book(db)
    client = logged_in("admin")
    response = client.post(f"/agenda/appointments/{booked.appointment_id}/preconsultation")
    assert response.status_code == 403
    assert ACTOR.kind == ActorKind.user
