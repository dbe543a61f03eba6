"""Staff pages of notifications (outbox with filters and retry, a patient's consent, the admin
settings with a test message, no-show statistics), the SMS gateway adapter against an HTTP
endpoint on loopback, and the sending window."""

import html as html_module
import json
import threading
from datetime import UTC, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import Session, col, select

from app.services.notifications import planning as notifications
from app.services.scheduling.agenda import book_appointment, set_attendance
from app.services.scheduling.no_show_stats import report
from models.appointments import Appointment, AppointmentStatus
from models.audit import AuditEvent
from models.notifications import (
    Channel,
    MessageKind,
    MessageStatus,
    NotificationConsent,
    NotificationSettings,
    OutboxMessage,
)
from tests.scheduling.test_agenda_pages import HTML, next_monday
from tests.support.jobs_helpers import run_jobs
from tests.support.notification_helpers import (
    ADMIN,
    add_reachable_patient,
    body,
    enable,
    free_port,
    mail_settings,
)
from tests.support.practice import PARIS, add_practitioner


@pytest.fixture
def sms_gateway():
    """An HTTP endpoint on loopback standing for an on-premise SMS gateway."""
    received: list[dict] = []
    statuses = [200]

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            payload = json.loads(self.rfile.read(length))
            payload["authorization"] = self.headers.get("authorization")
            received.append(payload)
            self.send_response(statuses[0])
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, received, statuses
    server.shutdown()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_server, sms_gateway):
    server, _, _ = sms_gateway
    return mail_settings(database_url, tmp_path / "data", smtp_server.port).model_copy(
        update={
            "sms_gateway_url": f"http://127.0.0.1:{server.server_port}/send",
            "sms_gateway_token": SecretStr("gateway-token"),
        }
    )


@pytest.fixture
def practice(db: Session, staff) -> dict[str, int]:
    martin = add_practitioner(db, "Martin")
    ids = {
        "martin": martin.id or 0,
        "durand": add_reachable_patient(
            db, "Durand", "Marie", "marie.durand@exemple.fr", phone="06 12 34 56 78"
        ),
    }
    db.commit()
    enable(db)
    return ids


def _book(db: Session, practice, start: datetime, **kw) -> Appointment:
    appointment = book_appointment(
        db,
        ADMIN,
        PARIS,
        patient_id=practice["durand"],
        practitioner_id=practice["martin"],
        starts_at=start,
        **kw,
    )
    db.commit()
    return appointment


def _text(response) -> str:
    return html_module.unescape(response.text)


def test_outbox_lists_filters_and_retries(logged_in, db, practice, job_queue, smtp_server) -> None:
    smtp_server.stop()
    _book(db, practice, next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    client = logged_in("secretaire")
    page = client.get("/notifications", headers=HTML)
    assert page.status_code == 200
    text = _text(page)
    assert "Durand Marie" in text and "Échec" in text and "Serveur d'envoi injoignable" in text
    failed = client.get("/notifications", params={"status": "failed"}, headers=HTML)
    assert _text(failed).count("Renvoyer") == 1
    planned = client.get("/notifications", params={"status": "planned", "kind": "reminder"})
    assert (
        "Rappel (48 h)" in _text(planned)
        and "Confirmation" not in _text(planned).split("<tbody>")[1]
    )
    odd = client.get("/notifications", params={"status": "nonsense", "page": "2"}, headers=HTML)
    assert odd.status_code == 200
    [message] = db.exec(
        select(OutboxMessage).where(OutboxMessage.status == MessageStatus.failed)
    ).all()
    smtp_server.start()
    retried = client.post(
        f"/notifications/{message.id}/retry",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
        follow_redirects=False,
    )
    assert retried.status_code == 303
    run_jobs(job_queue)
    db.expire_all()
    assert db.get(OutboxMessage, message.id).status == MessageStatus.sent
    again = client.post(
        f"/notifications/{message.id}/retry",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
    )
    assert again.status_code == 409 and "Seul un message en échec" in _text(again)
    missing = client.post(
        "/notifications/999999/retry",
        data={"csrf_token": client.headers["x-csrf-token"]},
        headers=HTML,
    )
    assert missing.status_code == 404
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "notification.retry")).all()


def test_outbox_is_for_patient_staff_only(logged_in, practice) -> None:
    client = logged_in("admin")
    assert client.get("/notifications", headers=HTML).status_code == 403


def test_consent_is_recorded_on_the_patient_record(
    logged_in, db, practice, job_queue, smtp_server
) -> None:
    client = logged_in("secretaire")
    record = client.get(f"/patients/{practice['durand']}", headers=HTML)
    assert f'href="/patients/{practice["durand"]}/messages"' in record.text
    page = client.get(f"/patients/{practice['durand']}/messages", headers=HTML)
    assert "Rien d'enregistré" in _text(page)
    saved = client.post(
        f"/patients/{practice['durand']}/messages",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "channel": "email",
            "choice": "opt_out",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert saved.status_code == 303
    [row] = db.exec(select(NotificationConsent)).all()
    assert row.opted_out and row.channel == Channel.email and row.source == "staff"
    [event] = db.exec(select(AuditEvent).where(AuditEvent.action == "notification.opt_out")).all()
    assert event.patient_id == practice["durand"] and event.actor_name == "secretaire"
    assert "Opposé : aucun message" in _text(client.get(saved.headers["location"], headers=HTML))
    _book(db, practice, next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    assert smtp_server.mailbox.messages == []
    bad = client.post(
        f"/patients/{practice['durand']}/messages",
        data={"csrf_token": client.headers["x-csrf-token"], "channel": "fax", "choice": "x"},
        headers=HTML,
        follow_redirects=False,
    )
    assert bad.status_code == 303 and len(db.exec(select(NotificationConsent)).all()) == 1
    assert client.get("/patients/999999/messages", headers=HTML).status_code == 404


def _settings_form(client, **changes: str) -> dict[str, str]:
    data = {
        "csrf_token": client.headers["x-csrf-token"],
        "email_enabled": "1",
        "reminder_hours": "72, 24",
        "window_start": "09:00",
        "window_end": "19:00",
        "cancel_cutoff_hours": "12",
        "sender_name": "Cabinet des Tilleuls",
        "sender_email": "accueil@cabinet-tilleuls.fr",
        "reply_to": "",
        "sms_sender": "Tilleuls",
    }
    data.update(changes)
    return data


def test_admin_saves_settings_and_bad_values_are_explained(logged_in, db, practice) -> None:
    client = logged_in("admin")
    page = client.get("/admin/notifications", headers=HTML)
    assert page.status_code == 200 and "Serveur d'envoi (SMTP) configuré." in _text(page)
    saved = client.post(
        "/admin/notifications", data=_settings_form(client), headers=HTML, follow_redirects=False
    )
    assert saved.status_code == 303
    db.expire_all()
    row = db.exec(select(NotificationSettings)).one()
    assert row.reminder_hours == [72, 24] and row.window_start == time(9, 0)
    assert row.cancel_cutoff_hours == 12 and row.sender_email == "accueil@cabinet-tilleuls.fr"
    assert not row.sms_enabled
    for changes, message in (
        ({"window_start": "21:00"}, "La plage d'envoi doit commencer avant de finir"),
        ({"reminder_hours": "24, abc"}, "nombre entier"),
        ({"reminder_hours": "1000"}, "Rappels : au plus 4 délais"),
        ({"sender_email": "pas une adresse"}, "Adresse d'expédition invalide."),
        ({"sms_sender": "Cabinet médical Tilleuls"}, "Expéditeur SMS"),
        ({"window_end": "25:99"}, "heure"),
    ):
        refused = client.post("/admin/notifications", data=_settings_form(client, **changes))
        assert refused.status_code == 422, changes
        assert message.lower() in _text(refused).lower(), (changes, message)
    secretary = logged_in("secretaire")
    assert secretary.get("/admin/notifications", headers=HTML).status_code == 403


def test_admin_sends_a_test_message(logged_in, db, practice, job_queue, smtp_server) -> None:
    client = logged_in("admin")
    sent = client.post(
        "/admin/notifications/essai",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "test_channel": "email",
            "test_address": "admin@cabinet-tilleuls.fr",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert sent.status_code == 303
    run_jobs(job_queue)
    [mail] = smtp_server.mailbox.to("admin@cabinet-tilleuls.fr")
    assert mail["Subject"] == "Message d'essai d'Accueil"
    state = client.get(sent.headers["location"], headers=HTML)
    assert "Message d'essai : Envoyé." in _text(state)
    assert db.exec(select(AuditEvent).where(AuditEvent.action == "notification.test")).all()
    bad = client.post(
        "/admin/notifications/essai",
        data={
            "csrf_token": client.headers["x-csrf-token"],
            "test_channel": "email",
            "test_address": "admin@@nowhere",
        },
        headers=HTML,
    )
    assert bad.status_code == 422 and "Adresse e-mail invalide." in _text(bad)


def test_no_show_rate_by_month_and_by_reminders(logged_in, db, practice, job_queue) -> None:
    import time_machine

    start = next_monday()
    with time_machine.travel(start - timedelta(days=10), tick=False):
        with_reminders = [_book(db, practice, start + timedelta(minutes=20 * i)) for i in range(4)]
    enable(db, hours=[])
    with time_machine.travel(start - timedelta(days=10), tick=False):
        without = [
            _book(db, practice, start + timedelta(hours=4, minutes=20 * i)) for i in range(2)
        ]
    with time_machine.travel(start + timedelta(hours=8), tick=False):
        db.exec(select(OutboxMessage)).all()
        for message in db.exec(
            select(OutboxMessage).where(OutboxMessage.kind == MessageKind.reminder)
        ).all():
            message.status, message.sent_at = MessageStatus.sent, start - timedelta(days=1)
            db.add(message)
        for appointment, honoured in zip(with_reminders, (True, True, True, False), strict=True):
            set_attendance(db, ADMIN, appointment.id or 0, honoured=honoured)
        for appointment in without:
            set_attendance(db, ADMIN, appointment.id or 0, honoured=False)
        db.commit()
        result = report(db, PARIS, now=start + timedelta(hours=8))
        client = logged_in("admin")
        page = client.get("/admin/rendez-vous-manques", headers=HTML)
    rows = {r.label: (r.total, r.missed, r.rate) for r in result.by_reminders}
    assert rows == {"48 h + 24 h": (4, 1, 25.0), "none": (2, 2, 100.0)}
    assert result.overall.total == 6 and result.overall.rate == 50.0
    assert [r.label for r in result.by_month] == [start.astimezone(PARIS).strftime("%Y-%m")]
    assert page.status_code == 200
    assert "Aucun rappel" in _text(page) and "48 h + 24 h" in _text(page) and "25.0 %" in page.text
    assert "Durand" not in page.text


# -- SMS and the sending window ----------------------------------------------------------------


def test_sms_waits_for_the_morning_and_goes_through_the_http_gateway(
    db, practice, job_queue, sms_gateway
) -> None:
    import time_machine

    _, received, _ = sms_gateway
    enable(db, email=False, sms=True)
    night = (next_monday() - timedelta(days=2)).replace(hour=23)  # Saturday 23:00
    with time_machine.travel(night, tick=False) as clock:
        appointment = _book(
            db, practice, next_monday() + timedelta(days=7), reason="Contrôle diabète"
        )
        planned = db.exec(
            select(OutboxMessage).where(OutboxMessage.kind == MessageKind.confirmation)
        ).one()
        assert planned.channel == Channel.sms
        morning = (night + timedelta(days=1)).replace(hour=8)
        assert planned.planned_at == morning  # quiet hours: not before 08:00
        run_jobs(job_queue)
        assert received == []
        clock.move_to(morning)
        run_jobs(job_queue)
    [sms] = received
    assert sms["to"] == "+33612345678" and sms["authorization"] == "Bearer gateway-token"
    local = appointment.starts_at.astimezone(PARIS)
    assert f"{local:%d/%m} à {local:%H:%M}" in sms["text"] and "Dr Claire Martin" in sms["text"]
    assert "diabète" not in sms["text"] and "/rdv/" in sms["text"]
    assert len(sms["text"]) <= 640


def test_sms_refused_by_the_gateway_fails_at_once(db, practice, job_queue, sms_gateway) -> None:
    _, _, statuses = sms_gateway
    statuses[0] = 400
    enable(db, email=False, sms=True, hours=[])
    _book(db, practice, next_monday() + timedelta(days=7))
    import time_machine

    planned = db.exec(select(OutboxMessage)).one()
    with time_machine.travel(max(planned.planned_at, datetime.now(UTC)), tick=False):
        run_jobs(job_queue)
    db.expire_all()
    message = db.get(OutboxMessage, planned.id)
    assert message.status == MessageStatus.failed and message.attempts == 1
    assert message.last_error == "Message refusé par la passerelle SMS."


def test_sms_at_night_waits_for_the_morning() -> None:
    late = datetime(2026, 12, 3, 22, 30, tzinfo=PARIS)
    morning = notifications.next_window_start(late, PARIS, time(8, 0), time(20, 0))
    assert morning == datetime(2026, 12, 4, 8, 0, tzinfo=PARIS)
    early = datetime(2026, 12, 3, 6, 0, tzinfo=PARIS)
    assert notifications.next_window_start(early, PARIS, time(8, 0), time(20, 0)) == datetime(
        2026, 12, 3, 8, 0, tzinfo=PARIS
    )


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        # 24 h before a Monday 07:30 is Sunday 07:30: too early, sent the evening before.
        (datetime(2026, 12, 7, 7, 30), 24, datetime(2026, 12, 5, 20, 0)),
        # 2 h before 21:00 is 19:00: inside the window.
        (datetime(2026, 12, 7, 21, 0), 2, datetime(2026, 12, 7, 19, 0)),
        # 2 h before 23:30 is 21:30: moved back to 20:00.
        (datetime(2026, 12, 7, 23, 30), 2, datetime(2026, 12, 7, 20, 0)),
        # Across the spring change: Monday 09:00 minus 24 h is Sunday 09:00 local (23 h).
        (datetime(2027, 3, 29, 9, 0), 24, datetime(2027, 3, 28, 9, 0)),
    ],
)
def test_reminder_times_stay_in_the_sending_window(start, hours, expected) -> None:
    at = notifications.reminder_time(
        start.replace(tzinfo=PARIS), hours, PARIS, time(8, 0), time(20, 0)
    )
    assert at == expected.replace(tzinfo=PARIS)


def test_everything_is_off_until_an_admin_turns_a_channel_on(db, staff, job_queue) -> None:
    martin = add_practitioner(db, "Martin")
    patient = add_reachable_patient(db, "Durand", "Marie", "marie.durand@exemple.fr")
    db.commit()
    book_appointment(
        db,
        ADMIN,
        PARIS,
        patient_id=patient,
        practitioner_id=martin.id or 0,
        starts_at=next_monday() + timedelta(days=7),
    )
    db.commit()
    assert db.exec(select(OutboxMessage)).all() == []
    assert db.exec(select(col(Appointment.status))).all() == [AppointmentStatus.booked]
    assert body  # the helper module stays imported for the fixtures
