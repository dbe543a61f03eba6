"""Patient notifications: the outbox of messages, consent per channel, self-service links and
the practice's notification settings."""

from datetime import datetime, time
from enum import StrEnum

from sqlalchemy import JSON, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class Channel(StrEnum):
    """How a message reaches the patient."""

    email = "email"
    sms = "sms"


class MessageKind(StrEnum):
    """What a message says."""

    confirmation = "confirmation"
    reminder = "reminder"
    moved = "moved"
    cancelled = "cancelled"
    waiting_offer = "waiting_offer"
    instructions = "instructions"  # an approved instruction sheet, by email
    test = "test"


class MessageStatus(StrEnum):
    """Where a message is: planned (waiting for its time or a retry), then one final state."""

    planned = "planned"
    sent = "sent"
    failed = "failed"
    cancelled = "cancelled"


class OutboxMessage(SQLModel, table=True):
    """One message to send (or sent, failed, cancelled). Holds ids and times only: the text is
    rendered when it is sent, so nothing medical or personal is kept here."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        Index("ix_notification_outbox_status_planned_at", "status", "planned_at"),
        Index("ix_notification_outbox_appointment_id_kind", "appointment_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=160, unique=True)
    kind: MessageKind = Field(sa_type=String(16))
    channel: Channel = Field(sa_type=String(8))
    status: MessageStatus = Field(default=MessageStatus.planned, sa_type=String(16))
    patient_id: int | None = Field(default=None, foreign_key="patients.id", index=True)
    appointment_id: int | None = Field(default=None, foreign_key="appointments.id")
    offer_id: int | None = Field(default=None, foreign_key="waiting_offers.id")
    instruction_sheet_id: int | None = Field(default=None, foreign_key="instruction_sheets.id")
    reminder_hours: int | None = Field(default=None)
    planned_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = Field(default=0)
    last_error: str = Field(default="", max_length=300)
    note: str = Field(default="", max_length=200)
    recipient: str | None = Field(default=None, max_length=254)  # test messages only
    job_id: int | None = Field(default=None, foreign_key="jobs.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsentSource(StrEnum):
    """Who recorded a consent or an opt-out."""

    staff = "staff"
    patient = "patient"


class NotificationConsent(SQLModel, table=True):
    """A patient's choice for one channel (RGPD): absent means the practice's default."""

    __tablename__ = "notification_consents"
    __table_args__ = (UniqueConstraint("patient_id", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    channel: Channel = Field(sa_type=String(8))
    opted_out: bool = Field(default=False)
    source: ConsentSource = Field(default=ConsentSource.staff, sa_type=String(16))
    changed_by_id: int | None = Field(default=None, foreign_key="users.id")
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AppointmentLink(SQLModel, table=True):
    """The patient's self-service link of one appointment (confirm or cancel). Only the
    token's hash is kept; the token is derived again from the secret key to be sent."""

    __tablename__ = "appointment_links"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(foreign_key="appointments.id", unique=True)
    nonce: str = Field(max_length=32)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # cancelled with it


class NotificationSettings(SQLModel, table=True):
    """The practice's notification settings (one row; defaults when it is missing)."""

    __tablename__ = "notification_settings"

    id: int | None = Field(default=None, primary_key=True)
    email_enabled: bool = Field(default=False)
    sms_enabled: bool = Field(default=False)
    reminder_hours: list[int] = Field(default_factory=lambda: [48, 24], sa_type=JSON)
    window_start: time = Field(default=time(8, 0))
    window_end: time = Field(default=time(20, 0))
    cancel_cutoff_hours: int = Field(default=24)
    sender_name: str = Field(default="", max_length=100)
    sender_email: str = Field(default="", max_length=254)
    reply_to: str = Field(default="", max_length=254)
    sms_sender: str = Field(default="", max_length=11)
    updated_by_id: int | None = Field(default=None, foreign_key="users.id")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
