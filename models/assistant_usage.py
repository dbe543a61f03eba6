"""Tokens the assistant consumed for each staff member: one row per turn, for the per-user
daily budget (durable, so it holds across workers and restarts)."""

from datetime import datetime

from sqlalchemy import CheckConstraint, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class AssistantUsage(SQLModel, table=True):
    """What one assistant turn of a user consumed (input and output tokens of every model
    call it made); ``estimated`` when the model reported no usage and characters / 4 was
    counted instead."""

    __tablename__ = "assistant_usage"
    __table_args__ = (
        Index("ix_assistant_usage_user_id_occurred_at", "user_id", "occurred_at"),
        CheckConstraint("input_tokens >= 0 AND output_tokens >= 0", name="tokens"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id")
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    estimated: bool = False
    model: str = Field(default="", max_length=128)
