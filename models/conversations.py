"""Secretary conversations with the assistant (messages live in the agent checkpointer)."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class Conversation(SQLModel, table=True):
    """One conversation thread of a staff member with the assistant."""

    __tablename__ = "conversations"

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    title: str = Field(default="Nouvelle conversation", max_length=200)
    model: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
