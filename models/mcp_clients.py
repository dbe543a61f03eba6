"""MCP clients allowed to call the practice tools over HTTP, each with its own bearer token
and scope: the areas (MCP servers) it may open and whether it may use tools that change data."""

from datetime import datetime

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow

# The practice areas served at /mcp/<area> (mcp_servers/mount.py checks its SERVERS match).
MCP_AREAS = ("agenda", "knowledge", "letters", "questionnaires")


class McpClient(SQLModel, table=True):
    """An MCP client created by an admin; its token is stored hashed and shown once.

    Clients created before scopes existed got every area and write access from the migration's
    server defaults, which is what they had before."""

    __tablename__ = "mcp_clients"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    areas: list[str] = Field(default_factory=lambda: list(MCP_AREAS), sa_type=JSON)
    can_write: bool = True
