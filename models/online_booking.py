"""Online booking by patients: the practice's rules, slot holds and one-time codes."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class OnlineBookingRules(SQLModel, table=True):
    """The practice's rules for the public booking page (one row)."""

    __tablename__ = "online_booking_rules"

    id: int | None = Field(default=None, primary_key=True)
    enabled: bool = Field(default=False)
    allow_new_patients: bool = Field(default=True)
    min_notice_hours: int = Field(default=2, ge=0, le=720)
    horizon_days: int = Field(default=30, ge=1, le=365)
    max_future_bookings: int = Field(default=2, ge=1, le=20)
    hold_minutes: int = Field(default=5, ge=1, le=30)
    # Visit type codes and practitioner ids open to online booking.
    visit_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    practitioner_ids: list[int] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # Weekly ranges kept for the phone: [{"weekday": 0, "start": "08:30", "end": "10:00"}].
    phone_ranges: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # Sites allowed to show the page in an iframe (CSP frame-ancestors), space-separated.
    frame_ancestors: str = Field(default="", max_length=500)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SlotHold(SQLModel, table=True):
    """A slot held for a few minutes by a patient who chose it on the public page.

    Live holds (``released_at`` empty) of one practitioner never overlap: PostgreSQL enforces
    it with an exclusion constraint, SQLite with triggers (see the migration). An expired
    hold is released before a new one is taken over it.
    """

    __tablename__ = "slot_holds"
    __table_args__ = (
        CheckConstraint("starts_at < ends_at", name="range"),
        Index("ix_slot_holds_practitioner_id_starts_at", "practitioner_id", "starts_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    practitioner_id: int = Field(foreign_key="practitioners.id", ondelete="CASCADE")
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    visit_type: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    release_reason: str = Field(default="", max_length=32)
    language: str = Field(default="fr", max_length=5)
    client_address: str | None = Field(default=None, max_length=64)
    # The identity step: what the patient typed, kept until the booking or the hold ends.
    birth_name: str | None = Field(default=None, max_length=100)
    first_name: str | None = Field(default=None, max_length=100)
    birth_date: date | None = Field(default=None)
    sex: str | None = Field(default=None, max_length=1)
    phone: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=254)
    contact_hash: str | None = Field(default=None, max_length=64, index=True)
    # The one-time code (hashed), its tries and when it was proven.
    code_hash: str | None = Field(default=None, max_length=64)
    code_sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    code_attempts: int = Field(default=0)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    appointment_id: int | None = Field(default=None, foreign_key="appointments.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
