"""Background jobs: one row per unit of work, the source of every "en cours" / "échec" shown."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class JobStatus(StrEnum):
    """Where a job is: waiting (first try or a retry), running, or finished one way."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_STATUSES = (JobStatus.queued, JobStatus.running)


class Job(SQLModel, table=True):
    """A durable job. The payload holds ids only, never patient data; ``last_error`` is a
    short message meant for the admin, never a traceback or a document's content."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_kind", "status", "kind"),
        Index("ix_jobs_record", "record_type", "record_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=200, unique=True)
    status: JobStatus = Field(default=JobStatus.queued, sa_type=String(16))
    attempts: int = Field(default=0)
    max_attempts: int = Field(default=3)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str = Field(default="", max_length=500)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    progress: int = Field(default=0)
    progress_message: str = Field(default="", max_length=200)
    record_type: str | None = Field(default=None, max_length=64)
    record_id: str | None = Field(default=None, max_length=64)
    worker: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES
