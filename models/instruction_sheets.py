"""Patient instruction sheets ("consignes au patient"): paragraphs quoted from the practice's
knowledge base, each citing its passage, reviewed by a physician before any patient sees them."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class InstructionSheet(SQLModel, table=True):
    """One sheet for one patient (and optionally one appointment).

    ``paragraphs`` holds, for each paragraph, its text and its source: ``{"text", "edited",
    "source": {"document_id", "sha256", "title", "section", "position", "passage"}}``; the
    passage is the knowledge base's text as it was quoted, so an edit can be compared with it.
    ``status`` reuses the review states of generated documents (draft, approved, rejected).
    """

    __tablename__ = "instruction_sheets"

    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    appointment_id: int | None = Field(default=None, foreign_key="appointments.id", index=True)
    topic: str = Field(max_length=200)
    title: str = Field(max_length=200)
    paragraphs: list[Any] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="draft", sa_type=String(16), index=True)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    reviewer_id: int | None = Field(default=None, foreign_key="users.id")
    reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rejection_reason: str = Field(default="", max_length=500)
    approved_text: str = Field(default="", sa_type=Text)
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
