"""Practitioners, their weekly working hours and their absences."""

from datetime import date, datetime, time

from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class Practitioner(SQLModel, table=True):
    """A physician (or other practitioner) who holds an agenda."""

    __tablename__ = "practitioners"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(default="Dr", max_length=16)
    first_name: str = Field(max_length=64)
    last_name: str = Field(max_length=64, index=True)
    specialty: str = Field(default="Médecine générale", max_length=64)
    rpps: str | None = Field(default=None, max_length=11, unique=True)
    default_duration_minutes: int = Field(default=20, ge=5, le=240)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def display_name(self) -> str:
        return f"{self.title} {self.first_name} {self.last_name}".strip()


class WorkingHours(SQLModel, table=True):
    """One range of consultation hours on a weekday (0 = Monday), in local time.

    Several ranges a day express a lunch break.
    """

    __tablename__ = "working_hours"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday"),
        CheckConstraint("start_time < end_time", name="range"),
        UniqueConstraint("practitioner_id", "weekday", "start_time"),
    )

    id: int | None = Field(default=None, primary_key=True)
    practitioner_id: int = Field(foreign_key="practitioners.id", index=True, ondelete="CASCADE")
    weekday: int
    start_time: time
    end_time: time


class Absence(SQLModel, table=True):
    """A period when a practitioner does not consult (holiday, training...)."""

    __tablename__ = "absences"
    __table_args__ = (CheckConstraint("starts_at < ends_at", name="range"),)

    id: int | None = Field(default=None, primary_key=True)
    practitioner_id: int = Field(foreign_key="practitioners.id", index=True, ondelete="CASCADE")
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(default="", max_length=128)


class VisitType(SQLModel, table=True):
    """A kind of visit (consultation, vaccination...) with its usual duration."""

    __tablename__ = "visit_types"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True)
    label: str = Field(max_length=128)
    duration_minutes: int | None = Field(default=None, ge=5, le=240)
    is_active: bool = Field(default=True)


class VisitTypeDuration(SQLModel, table=True):
    """A practitioner's own duration for a visit type (overrides the visit type's)."""

    __tablename__ = "visit_type_durations"
    __table_args__ = (UniqueConstraint("practitioner_id", "visit_type_id"),)

    id: int | None = Field(default=None, primary_key=True)
    practitioner_id: int = Field(foreign_key="practitioners.id", ondelete="CASCADE")
    visit_type_id: int = Field(foreign_key="visit_types.id", ondelete="CASCADE")
    duration_minutes: int = Field(ge=5, le=240)


class PracticeClosure(SQLModel, table=True):
    """A period when the whole practice is closed (public holiday, works...)."""

    __tablename__ = "practice_closures"
    __table_args__ = (CheckConstraint("starts_at < ends_at", name="range"),)

    id: int | None = Field(default=None, primary_key=True)
    starts_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(default="", max_length=128)


class HolidayOpening(SQLModel, table=True):
    """A French public holiday on which an admin opened the practice exceptionally.

    Holidays themselves are not stored (the ``holidays`` library knows them); only the
    exceptions are, so the practice is closed on every holiday out of the box.
    """

    __tablename__ = "holiday_openings"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(unique=True)
    reason: str = Field(default="", max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CalendarFeed(SQLModel, table=True):
    """A token-protected iCalendar feed of one practitioner's agenda (token stored hashed)."""

    __tablename__ = "calendar_feeds"

    id: int | None = Field(default=None, primary_key=True)
    practitioner_id: int = Field(foreign_key="practitioners.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    include_patient_names: bool = Field(default=False)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
