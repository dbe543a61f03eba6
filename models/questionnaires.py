"""Questionnaires (FHIR R4 JSON, versioned) and pre-consultations sent to patients."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class Questionnaire(SQLModel, table=True):
    """One version of a questionnaire, kept as a FHIR ``Questionnaire`` resource."""

    __tablename__ = "questionnaires"
    __table_args__ = (UniqueConstraint("slug", "version", "language"),)

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, index=True)
    version: str = Field(max_length=16)
    language: str = Field(default="fr", max_length=5)
    title: str = Field(max_length=200)
    visit_type: str | None = Field(default=None, max_length=64)
    resource: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    is_active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PreConsultationStatus(StrEnum):
    """Where a patient is in the pre-consultation."""

    sent = "sent"
    opened = "opened"
    in_progress = "in_progress"
    submitted = "submitted"
    expired = "expired"
    revoked = "revoked"


class PreConsultation(SQLModel, table=True):
    """A questionnaire sent for one appointment, with the patient's answers."""

    __tablename__ = "preconsultations"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(foreign_key="appointments.id", index=True)
    questionnaire_id: int = Field(foreign_key="questionnaires.id")
    token_hash: str = Field(max_length=128, unique=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    status: PreConsultationStatus = Field(
        default=PreConsultationStatus.sent, sa_type=String(16), index=True
    )
    answers: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    response: dict[str, Any] | None = Field(default=None, sa_type=JSON)  # QuestionnaireResponse
    red_flags: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    failed_identity_checks: int = Field(default=0)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
