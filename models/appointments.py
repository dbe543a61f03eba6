"""Appointments and the waiting list."""

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, String
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class AppointmentStatus(StrEnum):
    """Life cycle of an appointment."""

    booked = "booked"
    confirmed = "confirmed"
    cancelled = "cancelled"
    honoured = "honoured"
    missed = "missed"


class AppointmentSource(StrEnum):
    """Who or what created the appointment."""

    secretary = "secretary"
    assistant = "assistant"
    patient = "patient"
    phone = "phone"
    import_ = "import"
    online = "online"  # booked by the patient on the public booking page


class Appointment(SQLModel, table=True):
    """A consultation slot held for a patient with a practitioner (times in UTC)."""

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("starts_at < ends_at", name="range"),
        # Slot search reads one practitioner's agenda by time.
        Index("ix_appointments_practitioner_id_starts_at", "practitioner_id", "starts_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    practitioner_id: int = Field(foreign_key="practitioners.id", index=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    status: AppointmentStatus = Field(default=AppointmentStatus.booked, sa_type=String(16))
    reason: str = Field(default="", max_length=200)
    visit_type: str = Field(default="consultation", max_length=64)
    source: AppointmentSource = Field(default=AppointmentSource.secretary, sa_type=String(16))
    notes: str = Field(default="", max_length=1000)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancel_reason: str = Field(default="", max_length=200)


class PartOfDay(StrEnum):
    """When in the day a waiting patient can come."""

    any = "any"
    morning = "morning"
    afternoon = "afternoon"


class WaitingStatus(StrEnum):
    """Life cycle of a waiting-list entry."""

    waiting = "waiting"
    offered = "offered"
    booked = "booked"
    withdrawn = "withdrawn"
    expired = "expired"


class WaitingListEntry(SQLModel, table=True):
    """A patient waiting for an earlier or a freed slot."""

    __tablename__ = "waiting_list_entries"
    __table_args__ = (CheckConstraint("earliest <= latest", name="range"),)

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    practitioner_id: int | None = Field(default=None, foreign_key="practitioners.id", index=True)
    earliest: date
    latest: date
    part_of_day: PartOfDay = Field(default=PartOfDay.any, sa_type=String(16))
    duration_minutes: int = Field(default=20, ge=5, le=240)
    reason: str = Field(default="", max_length=200)
    status: WaitingStatus = Field(default=WaitingStatus.waiting, sa_type=String(16), index=True)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OfferStatus(StrEnum):
    """Life cycle of a freed slot offered to a waiting patient."""

    pending = "pending"
    accepted = "accepted"
    declined = "declined"
    expired = "expired"
    superseded = "superseded"  # the slot was taken some other way


class WaitingOffer(SQLModel, table=True):
    """A freed slot offered to one waiting-list entry; tracked until answered or expired."""

    __tablename__ = "waiting_offers"

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="waiting_list_entries.id", index=True)
    practitioner_id: int = Field(foreign_key="practitioners.id")
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    freed_by_appointment_id: int | None = Field(default=None, foreign_key="appointments.id")
    status: OfferStatus = Field(default=OfferStatus.pending, sa_type=String(16), index=True)
    rank: int = Field(default=1)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    booked_appointment_id: int | None = Field(default=None, foreign_key="appointments.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
