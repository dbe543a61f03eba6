"""The append-only audit trail."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class ActorKind(StrEnum):
    """Who acted."""

    user = "user"
    patient_link = "patient_link"
    agent = "agent"
    mcp_client = "mcp_client"
    system = "system"
    anonymous = "anonymous"


class AuditEvent(SQLModel, table=True):
    """Who did what to which record, when and from where. Never updated, never deleted."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor_kind: ActorKind = Field(sa_type=String(16))
    actor_id: str | None = Field(default=None, max_length=64, index=True)
    actor_name: str = Field(default="", max_length=128)
    action: str = Field(max_length=64, index=True)
    record_type: str | None = Field(default=None, max_length=64)
    record_id: str | None = Field(default=None, max_length=64, index=True)
    patient_id: int | None = Field(default=None, index=True)
    client_address: str | None = Field(default=None, max_length=64)
    outcome: str = Field(default="ok", max_length=16)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
