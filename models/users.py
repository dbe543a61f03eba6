"""Staff accounts and their roles."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class Role(StrEnum):
    """What a staff member may do; checked on every page and API route."""

    secretary = "secretary"
    physician = "physician"
    admin = "admin"


class User(SQLModel, table=True):
    """A staff member who logs in with a username and a password."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    full_name: str = Field(max_length=128)
    role: Role = Field(sa_type=String(16))
    password_hash: str = Field(max_length=256)
    is_active: bool = Field(default=True)
    language: str = Field(default="fr", max_length=5)
    practitioner_id: int | None = Field(default=None, foreign_key="practitioners.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
