"""Generated documents (summaries, letters) with their provenance and review."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, String, Text
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class DocumentKind(StrEnum):
    """What was generated."""

    summary = "summary"
    letter = "letter"


class ReviewStatus(StrEnum):
    """Review state: nothing generated leaves the box before ``approved``."""

    draft = "draft"
    approved = "approved"
    rejected = "rejected"


class GeneratedDocument(SQLModel, table=True):
    """Text produced by a model, reviewed by a physician before any use."""

    __tablename__ = "generated_documents"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: DocumentKind = Field(sa_type=String(16), index=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    appointment_id: int | None = Field(default=None, foreign_key="appointments.id", index=True)
    preconsultation_id: int | None = Field(default=None, foreign_key="preconsultations.id")
    template: str | None = Field(default=None, max_length=64)
    content: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    text: str = Field(default="", sa_type=Text)
    status: ReviewStatus = Field(default=ReviewStatus.draft, sa_type=String(16), index=True)
    model: str = Field(max_length=128)
    prompt_id: str = Field(max_length=64)
    prompt_version: str = Field(max_length=16)
    prompt_hash: str = Field(max_length=64)
    input_refs: list[Any] = Field(default_factory=list, sa_type=JSON)
    timings: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    reviewer_id: int | None = Field(default=None, foreign_key="users.id")
    reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rejection_reason: str = Field(default="", max_length=500)
    rating: int | None = Field(default=None)
    review_comment: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DocumentVersion(SQLModel, table=True):
    """One saved state of a generated document: who changed what, when."""

    __tablename__ = "document_versions"

    id: int | None = Field(default=None, primary_key=True)
    document_id: int = Field(foreign_key="generated_documents.id", index=True, ondelete="CASCADE")
    number: int
    text: str = Field(sa_type=Text)
    content: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    author_id: int | None = Field(default=None, foreign_key="users.id")
    change: str = Field(default="generated", max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
