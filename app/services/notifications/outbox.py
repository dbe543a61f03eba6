"""The outbox as staff see it: messages with their state, filtered; retrying a failed one;
and the admin's test message."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.jobs import store as jobs
from app.services.core import audit, job_actions
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.notifications import planning as notifications
from models.jobs import Job, JobStatus
from models.notifications import Channel, MessageKind, MessageStatus, OutboxMessage
from models.patients import Patient, PatientInputError, normalize_email, normalize_phone
from models.types import utcnow


class NotRetryable(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Seul un message en échec peut être renvoyé.", "Only a failed message can be retried."
        )


@dataclass(frozen=True)
class OutboxFilter:
    """What the outbox page filters on."""

    status: MessageStatus | None = None
    kind: MessageKind | None = None
    channel: Channel | None = None
    patient_id: int | None = None


@dataclass(frozen=True)
class OutboxRow:
    message: OutboxMessage
    patient: Patient | None


def list_messages(
    session: Session,
    actor: audit.Actor,
    filters: OutboxFilter,
    *,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[OutboxRow], int]:
    """Messages newest first with their patient, and the total; audited as one read."""
    query = select(OutboxMessage, Patient).join(
        Patient, col(Patient.id) == OutboxMessage.patient_id, isouter=True
    )
    if filters.status is not None:
        query = query.where(OutboxMessage.status == filters.status)
    if filters.kind is not None:
        query = query.where(OutboxMessage.kind == filters.kind)
    if filters.channel is not None:
        query = query.where(OutboxMessage.channel == filters.channel)
    if filters.patient_id is not None:
        query = query.where(OutboxMessage.patient_id == filters.patient_id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(OutboxMessage.id).desc()).offset(offset).limit(limit)
    ).all()
    found = [OutboxRow(message, patient) for message, patient in rows]
    if found:
        audit.record(
            session,
            actor,
            "notification.list",
            record_type="notification",
            patient_id=filters.patient_id,
            details={"message_ids": [r.message.id for r in found]},
        )
    return found, total


def counts(session: Session) -> dict[str, int]:
    """How many messages are in each state (the page's summary)."""
    rows = session.exec(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ).all()
    return {str(status): number for status, number in rows}


def retry(session: Session, actor: audit.Actor, message_id: int) -> OutboxMessage:
    """Send a failed message again (its text and address are read afresh)."""
    message = session.get(OutboxMessage, message_id)
    if message is None:
        raise NotFound("Message introuvable.", "Message not found.")
    if message.status != MessageStatus.failed:
        raise NotRetryable()
    now = utcnow()
    message.status = MessageStatus.planned
    message.planned_at = now
    message.updated_at = now
    session.add(message)
    job = session.get(Job, message.job_id) if message.job_id else None
    if job is not None and job.status in (JobStatus.failed, JobStatus.cancelled):
        job_actions.retry(session, actor, job.id or 0)
    else:
        job = jobs.enqueue(
            session,
            notifications.SEND_JOB,
            {"message_id": message.id},
            key=f"notification:{message.id}:retry:{uuid.uuid4().hex[:12]}",
            record_type=notifications.RECORD_TYPE,
            record_id=message.id,
            max_attempts=notifications.SEND_ATTEMPTS,
        )
        message.job_id = job.id
    session.flush()
    audit.record(
        session,
        actor,
        "notification.retry",
        record_type="notification",
        record_id=message.id,
        patient_id=message.patient_id,
    )
    return message


def send_test(
    session: Session,
    actor: audit.Actor,
    channel: Channel,
    address: str,
    *,
    now: datetime | None = None,
) -> OutboxMessage:
    """Queue a test message to a staff member's own address or number."""
    try:
        recipient = (
            normalize_email(address) if channel == Channel.email else normalize_phone(address)
        )
    except PatientInputError as exc:
        raise InvalidInput(
            "Adresse e-mail invalide." if channel == Channel.email else "Numéro invalide.",
            "Invalid email address." if channel == Channel.email else "Invalid phone number.",
        ) from exc
    if not recipient:
        raise InvalidInput("Indiquez une adresse.", "Give an address.")
    message = notifications.plan_message(
        session,
        key=notifications.message_key(MessageKind.test, channel, uuid.uuid4().hex),
        kind=MessageKind.test,
        channel=channel,
        planned_at=(now or datetime.now(UTC)).astimezone(UTC),
        patient_id=None,
        recipient=recipient,
    )
    audit.record(
        session,
        actor,
        "notification.test",
        record_type="notification",
        record_id=message.id,
        details={"channel": str(channel)},
    )
    return message
