"""Patients' consent and opt-out per channel (RGPD): recorded, audited, and honoured when a
message is planned and again when it is sent."""

from sqlmodel import Session, select

from app.services.core import audit
from app.services.core.errors import NotFound
from models.notifications import Channel, ConsentSource, NotificationConsent
from models.patients import Patient
from models.types import utcnow


def choices(session: Session, patient_id: int) -> dict[Channel, NotificationConsent | None]:
    """Each channel's recorded choice (``None``: nothing recorded, messages allowed)."""
    rows = session.exec(
        select(NotificationConsent).where(NotificationConsent.patient_id == patient_id)
    ).all()
    found = {Channel(row.channel): row for row in rows}
    return {channel: found.get(channel) for channel in Channel}


def allowed(session: Session, patient_id: int, channel: Channel) -> bool:
    """Whether the patient may receive messages on this channel (not opted out)."""
    row = session.exec(
        select(NotificationConsent).where(
            NotificationConsent.patient_id == patient_id, NotificationConsent.channel == channel
        )
    ).first()
    return row is None or not row.opted_out


def record_choice(
    session: Session,
    actor: audit.Actor,
    patient_id: int,
    channel: Channel,
    *,
    opted_out: bool,
    source: ConsentSource = ConsentSource.staff,
    user_id: int | None = None,
) -> NotificationConsent:
    """Record a consent (``opted_out=False``) or an opt-out for one channel, audited."""
    if session.get(Patient, patient_id) is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    row = session.exec(
        select(NotificationConsent).where(
            NotificationConsent.patient_id == patient_id, NotificationConsent.channel == channel
        )
    ).first()
    row = row or NotificationConsent(patient_id=patient_id, channel=channel)
    row.opted_out = opted_out
    row.source = source
    row.changed_by_id = user_id
    row.changed_at = utcnow()
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "notification.opt_out" if opted_out else "notification.consent",
        record_type="notification_consent",
        record_id=row.id,
        patient_id=patient_id,
        details={"channel": str(channel), "source": str(source)},
    )
    return row
