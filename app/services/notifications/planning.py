"""Planning patient notifications: the outbox rows and the jobs that send them, written in the
same transaction as the agenda change that calls for them (booking, move, cancellation,
waiting-list offer), and the sending window in the practice's local time."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.jobs import store as jobs
from app.services.notifications import consent as notification_consent
from app.services.notifications import practice_settings
from models.appointments import Appointment, WaitingListEntry, WaitingOffer
from models.jobs import Job, JobStatus
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.patients import Patient
from models.types import utcnow

SEND_JOB = "notifications.send"
SEND_ATTEMPTS = 4  # the first try and three retries, each after a doubled delay
OFFER_EXPIRY_JOB = "waiting_list.expire_offer"
RECORD_TYPE = "notification"
MIN_REMINDER_GAP = timedelta(hours=1)  # a reminder this close to now adds nothing
OPTED_OUT_NOTE = "Refusé par le patient pour ce canal."


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


# -- sending window ------------------------------------------------------------------------


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz).astimezone(UTC)


def in_window(moment: datetime, tz: ZoneInfo, start: time, end: time) -> bool:
    local = moment.astimezone(tz).time()
    return start <= local <= end


def next_window_start(moment: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """``moment`` itself inside the window, else the window's next opening (local time)."""
    if in_window(moment, tz, start, end):
        return moment
    local = moment.astimezone(tz)
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return _at(day, start, tz)


def last_window_moment(moment: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """``moment`` itself inside the window, else the window's last minute before it."""
    if in_window(moment, tz, start, end):
        return moment
    local = moment.astimezone(tz)
    day = local.date() if local.time() > end else local.date() - timedelta(days=1)
    return _at(day, end, tz)


def reminder_time(
    starts_at: datetime, hours: int, tz: ZoneInfo, start: time, end: time
) -> datetime:
    """When the reminder ``hours`` before an appointment goes out: the same wall-clock time
    whole days before (so "24 h before" a Monday 09:00 is Sunday 09:00 across a daylight-
    saving change), then moved earlier into the sending window if it falls outside."""
    local = starts_at.astimezone(tz).replace(tzinfo=None)
    days, rest = divmod(hours, 24)
    wall = local - timedelta(days=days, hours=rest)
    return last_window_moment(wall.replace(tzinfo=tz).astimezone(UTC), tz, start, end)


# -- outbox rows and their jobs ------------------------------------------------------------


def message_key(kind: MessageKind, channel: Channel, *parts: object) -> str:
    """The idempotency key of a message: the same event never makes a second message."""
    return ":".join([str(kind), *(str(p) for p in parts), str(channel)])


def start_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def plan_message(
    session: Session,
    *,
    key: str,
    kind: MessageKind,
    channel: Channel,
    planned_at: datetime,
    patient_id: int | None,
    appointment_id: int | None = None,
    offer_id: int | None = None,
    reminder_hours: int | None = None,
    recipient: str | None = None,
) -> OutboxMessage:
    """Create the message of ``key`` (or return the existing one) and queue its sending job
    for ``planned_at``, sent to the workers once the caller's transaction commits."""
    existing = session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))
    found = existing.first()
    if found is not None:
        return found
    message = OutboxMessage(
        idempotency_key=key,
        kind=kind,
        channel=channel,
        patient_id=patient_id,
        appointment_id=appointment_id,
        offer_id=offer_id,
        reminder_hours=reminder_hours,
        planned_at=planned_at,
        recipient=recipient,
    )
    if patient_id is not None and not notification_consent.allowed(session, patient_id, channel):
        message.status = MessageStatus.cancelled
        message.note = OPTED_OUT_NOTE
        session.add(message)
        session.flush()
        return message
    session.add(message)
    session.flush()
    job = jobs.enqueue(
        session,
        SEND_JOB,
        {"message_id": message.id},
        key=f"notification:{message.id}",
        record_type=RECORD_TYPE,
        record_id=message.id,
        max_attempts=SEND_ATTEMPTS,
        dispatch=False,
    )
    job.next_attempt_at = planned_at
    session.add(job)
    message.job_id = job.id
    session.add(message)
    session.flush()
    jobs.dispatch_after_commit(session, job)
    return message


def cancel_planned(
    session: Session,
    note: str,
    *,
    appointment_id: int | None = None,
    offer_id: int | None = None,
    kinds: tuple[MessageKind, ...] | None = None,
) -> int:
    """Cancel the still-planned messages of an appointment or an offer (and their queued
    jobs); returns how many."""
    query = select(OutboxMessage).where(OutboxMessage.status == MessageStatus.planned)
    if appointment_id is not None:
        query = query.where(OutboxMessage.appointment_id == appointment_id)
    if offer_id is not None:
        query = query.where(OutboxMessage.offer_id == offer_id)
    if kinds:
        query = query.where(col(OutboxMessage.kind).in_(kinds))
    rows = session.exec(query).all()
    now = utcnow()
    for message in rows:
        message.status = MessageStatus.cancelled
        message.note = note[:200]
        message.updated_at = now
        session.add(message)
    job_ids = [m.job_id for m in rows if m.job_id is not None]
    if job_ids:
        session.execute(
            update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.status) == JobStatus.queued)
            .values(status=JobStatus.cancelled, finished_at=now, updated_at=now)
        )
    session.flush()
    return len(rows)


def _channels(session: Session, patient: Patient) -> list[Channel]:
    """The practice's enabled channels this patient can be reached on."""
    chosen = practice_settings.current(session)
    found = []
    if chosen.email_enabled and patient.email:
        found.append(Channel.email)
    if chosen.sms_enabled and patient.phone:
        found.append(Channel.sms)
    return found


def _immediate(session: Session, channel: Channel, tz: ZoneInfo, now: datetime) -> datetime:
    """Now, except for SMS during quiet hours: the window's next opening."""
    if channel != Channel.sms:
        return now
    chosen = practice_settings.current(session)
    return next_window_start(now, tz, chosen.window_start, chosen.window_end)


def _plan_reminders(
    session: Session, appointment: Appointment, channel: Channel, tz: ZoneInfo, now: datetime
) -> None:
    chosen = practice_settings.current(session)
    for hours in chosen.reminder_hours:
        at = reminder_time(appointment.starts_at, hours, tz, chosen.window_start, chosen.window_end)
        if at < now + MIN_REMINDER_GAP or at >= appointment.starts_at:
            continue
        plan_message(
            session,
            key=message_key(
                MessageKind.reminder,
                channel,
                appointment.id,
                f"{hours}h",
                start_stamp(appointment.starts_at),
            ),
            kind=MessageKind.reminder,
            channel=channel,
            planned_at=at,
            patient_id=appointment.patient_id,
            appointment_id=appointment.id,
            reminder_hours=hours,
        )


def _plan_notice_and_reminders(
    session: Session,
    appointment: Appointment,
    kind: MessageKind,
    key_parts: tuple[object, ...],
    tz: ZoneInfo,
    now: datetime | None,
) -> None:
    """On each channel the patient can be reached on: a message of ``kind`` now (its key made
    of ``key_parts``), then the appointment's reminders. No patient: nothing."""
    patient = session.get(Patient, appointment.patient_id)
    if patient is None:
        return
    moment = _now(now)
    for channel in _channels(session, patient):
        plan_message(
            session,
            key=message_key(kind, channel, *key_parts),
            kind=kind,
            channel=channel,
            planned_at=_immediate(session, channel, tz, moment),
            patient_id=patient.id,
            appointment_id=appointment.id,
        )
        _plan_reminders(session, appointment, channel, tz, moment)


# -- events called by the scheduling services ----------------------------------------------


def appointment_booked(
    session: Session, appointment: Appointment, tz: ZoneInfo, *, now: datetime | None = None
) -> None:
    """A new appointment: its confirmation now and its reminders at the configured delays."""
    _plan_notice_and_reminders(
        session, appointment, MessageKind.confirmation, (appointment.id,), tz, now
    )


def appointment_moved(
    session: Session,
    appointment: Appointment,
    previous_start: datetime,
    tz: ZoneInfo,
    *,
    now: datetime | None = None,
) -> None:
    """A moved appointment: reminders of the old time are cancelled, the patient is told the
    new time, and reminders are planned for it."""
    cancel_planned(
        session,
        "Rendez-vous déplacé.",
        appointment_id=appointment.id,
        kinds=(MessageKind.reminder, MessageKind.moved),
    )
    key_parts = (appointment.id, start_stamp(appointment.starts_at))
    _plan_notice_and_reminders(session, appointment, MessageKind.moved, key_parts, tz, now)


def appointment_cancelled(
    session: Session, appointment: Appointment, tz: ZoneInfo, *, now: datetime | None = None
) -> None:
    """A cancelled appointment: nothing more about it goes out, and the patient is told,
    unless nothing about it was ever sent (then silence is clearer)."""
    cancel_planned(session, "Rendez-vous annulé.", appointment_id=appointment.id)
    patient = session.get(Patient, appointment.patient_id)
    if patient is None or appointment.starts_at <= _now(now):
        return
    informed = session.exec(
        select(OutboxMessage.id).where(
            OutboxMessage.appointment_id == appointment.id,
            OutboxMessage.status == MessageStatus.sent,
        )
    ).first()
    if informed is None:
        return
    for channel in _channels(session, patient):
        plan_message(
            session,
            key=message_key(MessageKind.cancelled, channel, appointment.id),
            kind=MessageKind.cancelled,
            channel=channel,
            planned_at=_immediate(session, channel, tz, _now(now)),
            patient_id=patient.id,
            appointment_id=appointment.id,
        )


def offer_made(
    session: Session, offer: WaitingOffer, tz: ZoneInfo, *, now: datetime | None = None
) -> None:
    """A freed slot offered to a waiting patient: the offer goes out with its answer links,
    and a job passes the slot on when the offer expires unanswered."""
    entry = session.get(WaitingListEntry, offer.entry_id)
    patient = session.get(Patient, entry.patient_id) if entry else None
    if patient is None or not practice_settings.any_channel(practice_settings.current(session)):
        return
    expiry = jobs.enqueue(
        session,
        OFFER_EXPIRY_JOB,
        {"offer_id": offer.id},
        key=f"waiting_offer.expire:{offer.id}",
        record_type="waiting_offer",
        record_id=offer.id,
        dispatch=False,
    )
    expiry.next_attempt_at = offer.expires_at
    session.add(expiry)
    session.flush()
    jobs.dispatch_after_commit(session, expiry)
    moment = _now(now)
    for channel in _channels(session, patient):
        at = _immediate(session, channel, tz, moment)
        if at >= offer.expires_at:  # an SMS in quiet hours would come after the offer ends
            continue
        plan_message(
            session,
            key=message_key(MessageKind.waiting_offer, channel, offer.id),
            kind=MessageKind.waiting_offer,
            channel=channel,
            planned_at=at,
            patient_id=patient.id,
            offer_id=offer.id,
        )
