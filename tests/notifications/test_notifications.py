"""Patient notifications delivered to a real SMTP server on loopback: confirmation with a
parseable .ics, language, no medical detail, moves, cancellations, exactly-once delivery across
a worker restart, and retries then "failed" when the mail server is down."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlmodel import Session, col, select

from app.jobs import queue as job_queue_module
from app.services.flows import agenda_changes
from app.services.notifications import consent as notification_consent
from app.services.scheduling.agenda import book_appointment
from app.services.scheduling.public_holidays import open_holiday, public_holidays
from models.appointments import Appointment, AppointmentStatus
from models.audit import AuditEvent
from models.jobs import Job, JobStatus
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.patients import Patient
from tests.scheduling.test_agenda_pages import next_monday
from tests.support.jobs_helpers import run_jobs
from tests.support.notification_helpers import (
    ADMIN,
    PUBLIC_URL,
    add_reachable_patient,
    attachment,
    body,
    enable,
    mail_settings,
)
from tests.support.practice import PARIS, add_practitioner

REASON = "Douleur thoracique et essoufflement"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_server):
    return mail_settings(database_url, tmp_path / "data", smtp_server.port)


@pytest.fixture
def practice(db: Session) -> dict[str, int]:
    martin = add_practitioner(db, "Martin")
    ids = {
        "martin": martin.id or 0,
        "durand": add_reachable_patient(db, "Durand", "Marie", "marie.durand@exemple.fr"),
        "smith": add_reachable_patient(db, "Smith", "John", "john.smith@exemple.fr", language="en"),
    }
    db.commit()
    enable(db)
    return ids


def _book(db: Session, practice, patient: str, start: datetime, **kw) -> Appointment:
    appointment = book_appointment(
        db,
        ADMIN,
        PARIS,
        patient_id=practice[patient],
        practitioner_id=practice["martin"],
        starts_at=start,
        reason=REASON,
        **kw,
    )
    db.commit()
    return appointment


def _messages(db: Session) -> list[OutboxMessage]:
    db.expire_all()
    return list(db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def test_confirmation_in_french_with_ics_and_no_medical_detail(
    db, practice, job_queue, smtp_server
) -> None:
    start = next_monday() + timedelta(days=7)
    appointment = _book(db, practice, "durand", start)
    planned = _messages(db)
    kinds = sorted((m.kind, m.reminder_hours) for m in planned)
    assert kinds == [("confirmation", None), ("reminder", 24), ("reminder", 48)]
    run_jobs(job_queue)
    [mail] = smtp_server.mailbox.to("marie.durand@exemple.fr")
    assert mail["Subject"].startswith("Rendez-vous enregistré le lundi")
    assert mail["From"].addresses[0].addr_spec == "cabinet@cabinet-tilleuls.fr"
    text = body(mail)
    local = start.astimezone(PARIS)
    assert f"à {local:%H:%M}" in text and "Dr Claire Martin" in text
    assert "12 rue des Tilleuls, 69003 Lyon" in text
    assert f"{PUBLIC_URL}/rdv/" in text
    raw = mail.as_string()
    assert REASON not in raw and "thoracique" not in raw.lower()
    ics = attachment(mail, "rendez-vous.ics")
    assert ics is not None
    [event] = Calendar.from_ical(ics).walk("VEVENT")
    assert event.start == appointment.starts_at and event.end == appointment.ends_at
    assert str(event["UID"]) == f"appointment-{appointment.id}@accueil"
    assert REASON not in ics.decode()
    confirmation = next(m for m in _messages(db) if m.kind == MessageKind.confirmation)
    assert confirmation.status == MessageStatus.sent and confirmation.attempts == 1
    sent_events = db.exec(select(AuditEvent).where(AuditEvent.action == "notification.send")).all()
    assert [e.record_id for e in sent_events] == [str(confirmation.id)]
    assert sent_events[0].patient_id == practice["durand"]
    assert "marie" not in str(sent_events[0].details).lower()


def test_english_patient_gets_english_text(db, practice, job_queue, smtp_server) -> None:
    _book(db, practice, "smith", next_monday() + timedelta(days=7, hours=1))
    run_jobs(job_queue)
    [mail] = smtp_server.mailbox.to("john.smith@exemple.fr")
    assert mail["Subject"].startswith("Appointment booked on Monday")
    assert "Practitioner: Dr Claire Martin" in body(mail)
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and 'lang="en"' in html.get_content()


# -- reminders across daylight-saving changes -----------------------------------------------


@pytest.mark.parametrize(
    ("booked_on", "appointment", "expected"),
    [
        # Summer time starts on Sunday 28 March 2027 (02:00 -> 03:00).
        (
            datetime(2027, 3, 20, 10, 0, tzinfo=PARIS),
            datetime(2027, 3, 29, 9, 0, tzinfo=PARIS),
            {
                48: datetime(2027, 3, 27, 9, 0, tzinfo=PARIS),
                24: datetime(2027, 3, 28, 9, 0, tzinfo=PARIS),
            },
        ),
        # Winter time starts on Sunday 31 October 2027 (03:00 -> 02:00).
        (
            datetime(2027, 10, 22, 10, 0, tzinfo=PARIS),
            datetime(2027, 11, 1, 9, 0, tzinfo=PARIS),
            {
                48: datetime(2027, 10, 30, 9, 0, tzinfo=PARIS),
                24: datetime(2027, 10, 31, 9, 0, tzinfo=PARIS),
            },
        ),
    ],
    ids=["march", "october"],
)
def test_each_reminder_goes_out_once_at_local_time_across_dst(
    db, practice, job_queue, smtp_server, booked_on, appointment, expected
) -> None:
    import time_machine

    address = "marie.durand@exemple.fr"
    # Both days are public holidays (Easter Monday, Toussaint 2027): the practice opened them
    # exceptionally, as an admin may.
    day = appointment.date()
    assert public_holidays(day, day)
    open_holiday(db, ADMIN, day, "ouvert pour le test")
    db.commit()
    with time_machine.travel(booked_on, tick=False) as clock:
        _book(db, practice, "durand", appointment)
        run_jobs(job_queue)
        assert len(smtp_server.mailbox.to(address)) == 1  # the confirmation
        arrivals: dict[int, datetime] = {}
        moment = booked_on
        while moment < appointment:
            moment += timedelta(minutes=30)
            clock.move_to(moment)
            before = len(smtp_server.mailbox.to(address))
            run_jobs(job_queue)
            for mail in smtp_server.mailbox.to(address)[before:]:
                assert mail["Subject"].startswith("Rappel : rendez-vous le")
                hours = 48 if "48h" in _key_of(db, mail) else 24
                assert hours not in arrivals, "a reminder went out twice"
                arrivals[hours] = moment
    assert arrivals == expected
    for when in expected.values():
        assert when.astimezone(PARIS).hour == 9  # 09:00 local on both sides of the change
    reminders = [m for m in _messages(db) if m.kind == MessageKind.reminder]
    assert {m.status for m in reminders} == {MessageStatus.sent}
    assert {m.sent_at for m in reminders} == {e.astimezone(UTC) for e in expected.values()}


def _key_of(db: Session, mail) -> str:
    """The outbox key of a received mail, read back through its stable Message-ID."""
    message_id = int(mail["Message-ID"].split("accueil-notification-")[1].split("@")[0])
    db.expire_all()
    row = db.get(OutboxMessage, message_id)
    assert row is not None
    return row.idempotency_key


# -- durable delivery ------------------------------------------------------------------------


def test_worker_restarted_mid_queue_sends_everything_exactly_once(
    db, practice, job_queue, smtp_server, settings, engine
) -> None:
    start = next_monday() + timedelta(days=7)
    for index in range(6):
        _book(db, practice, "durand", start + timedelta(minutes=20 * index))
    assert run_jobs_limited(job_queue, 2) == 2  # the worker stops after two messages
    # A third job was claimed by a worker that then died (its process is gone).
    third = db.exec(select(Job).where(Job.status == JobStatus.queued).order_by(col(Job.id))).first()
    assert third is not None
    third.status, third.attempts, third.worker = JobStatus.running, 1, "ghost:999999:thread-x"
    db.add(third)
    db.commit()
    job_queue.close()
    restarted = job_queue_module.configure(
        settings.model_copy(update={"jobs_retry_delay_seconds": 0.0}), engine
    )
    from app.jobs.recovery import recover

    recover(restarted)  # what a starting worker does
    run_jobs(restarted)
    run_jobs(restarted)  # a second pass finds nothing left
    ids = [m["Message-ID"] for m in smtp_server.mailbox.to("marie.durand@exemple.fr")]
    assert len(ids) == 6 and len(set(ids)) == 6
    confirmations = [m for m in _messages(db) if m.kind == MessageKind.confirmation]
    assert [m.status for m in confirmations] == [MessageStatus.sent] * 6
    assert all(m.attempts == 1 for m in confirmations)
    restarted.close()


def run_jobs_limited(queue, count: int) -> int:
    from app.jobs.worker import drain

    return drain(queue, max_tasks=count)


def test_smtp_down_retries_then_failed_and_the_appointment_is_intact(
    db, practice, job_queue, smtp_server
) -> None:
    smtp_server.stop()  # the practice's mail server is down
    appointment = _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    confirmation = next(m for m in _messages(db) if m.kind == MessageKind.confirmation)
    assert confirmation.status == MessageStatus.failed
    assert confirmation.attempts == 4
    assert "Serveur d'envoi injoignable" in confirmation.last_error
    job = db.get(Job, confirmation.job_id)
    assert job is not None and job.status == JobStatus.failed and job.attempts == 4
    db.expire_all()
    kept = db.get(Appointment, appointment.id)
    assert kept is not None and kept.status == AppointmentStatus.booked
    failures = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "notification.send", AuditEvent.outcome != "ok"
        )
    ).all()
    assert [e.outcome for e in failures] == ["retry", "retry", "retry", "failed"]
    # The server is back: a retry from the outbox sends it, once.
    smtp_server.start()
    from app.services.notifications import outbox as notification_outbox

    notification_outbox.retry(db, ADMIN, confirmation.id or 0)
    db.commit()
    run_jobs(job_queue)
    db.expire_all()
    assert db.get(OutboxMessage, confirmation.id).status == MessageStatus.sent
    assert len(smtp_server.mailbox.to("marie.durand@exemple.fr")) == 1


def test_moved_appointment_gets_a_notice_and_new_reminders(
    db, practice, job_queue, smtp_server
) -> None:
    start = next_monday() + timedelta(days=7)
    appointment = _book(db, practice, "durand", start)
    run_jobs(job_queue)
    new_start = start + timedelta(days=1, hours=1)
    agenda_changes.move(db, ADMIN, PARIS, appointment.id or 0, starts_at=new_start)
    db.commit()
    run_jobs(job_queue)
    mails = smtp_server.mailbox.to("marie.durand@exemple.fr")
    assert [m["Subject"].split(" ")[1] for m in mails] == ["enregistré", "déplacé"]
    ics = attachment(mails[1], "rendez-vous.ics")
    [event] = Calendar.from_ical(ics).walk("VEVENT")
    assert event.start == new_start.astimezone(UTC)
    reminders = [m for m in _messages(db) if m.kind == MessageKind.reminder]
    old = [m for m in reminders if m.status == MessageStatus.cancelled]
    new = [m for m in reminders if m.status == MessageStatus.planned]
    assert len(old) == 2 and all(m.note == "Rendez-vous déplacé." for m in old)
    assert len(new) == 2
    old_jobs = [db.get(Job, m.job_id) for m in old]
    assert all(j is not None and j.status == JobStatus.cancelled for j in old_jobs)


def test_cancelled_appointment_notice_with_cancel_ics(db, practice, job_queue, smtp_server) -> None:
    appointment = _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    agenda_changes.cancel(db, ADMIN, PARIS, appointment.id or 0)
    db.commit()
    run_jobs(job_queue)
    notice = smtp_server.mailbox.to("marie.durand@exemple.fr")[-1]
    assert notice["Subject"].startswith("Rendez-vous du lundi")
    assert "est annulé" in body(notice)
    calendar = Calendar.from_ical(attachment(notice, "rendez-vous.ics"))
    assert str(calendar["METHOD"]) == "CANCEL"
    assert all(m.status in (MessageStatus.sent, MessageStatus.cancelled) for m in _messages(db))


def test_booked_then_cancelled_before_anything_went_out_stays_silent(
    db, practice, job_queue, smtp_server
) -> None:
    appointment = _book(db, practice, "durand", next_monday() + timedelta(days=7))
    agenda_changes.cancel(db, ADMIN, PARIS, appointment.id or 0)
    db.commit()
    run_jobs(job_queue)
    assert smtp_server.mailbox.messages == []
    assert {m.status for m in _messages(db)} == {MessageStatus.cancelled}


# -- bad input -------------------------------------------------------------------------------


def test_opted_out_patient_gets_nothing(db, practice, job_queue, smtp_server) -> None:
    notification_consent.record_choice(db, ADMIN, practice["durand"], Channel.email, opted_out=True)
    db.commit()
    _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    assert smtp_server.mailbox.messages == []
    rows = _messages(db)
    assert rows and all(m.status == MessageStatus.cancelled for m in rows)
    assert all(m.job_id is None for m in rows)
    assert "Refusé par le patient" in rows[0].note


def test_opt_out_after_planning_is_honoured_at_sending_time(
    db, practice, job_queue, smtp_server
) -> None:
    _book(db, practice, "durand", next_monday() + timedelta(days=7))
    notification_consent.record_choice(db, ADMIN, practice["durand"], Channel.email, opted_out=True)
    db.commit()
    run_jobs(job_queue)
    assert smtp_server.mailbox.messages == []
    confirmation = next(m for m in _messages(db) if m.kind == MessageKind.confirmation)
    assert confirmation.status == MessageStatus.cancelled


def test_malformed_email_address_fails_at_once_with_a_clear_reason(
    db, practice, job_queue, smtp_server
) -> None:
    patient = db.get(Patient, practice["durand"])
    patient.email = "marie.durand@@exemple"  # imported data, never validated
    db.add(patient)
    db.commit()
    _book(db, practice, "durand", next_monday() + timedelta(days=7))
    run_jobs(job_queue)
    assert smtp_server.mailbox.messages == []
    confirmation = next(m for m in _messages(db) if m.kind == MessageKind.confirmation)
    assert confirmation.status == MessageStatus.failed and confirmation.attempts == 1
    assert confirmation.last_error == "Adresse e-mail invalide : corrigez-la sur la fiche."
