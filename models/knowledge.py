"""Practice documents indexed in the knowledge base."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class IngestionStatus(StrEnum):
    """Where a document is in ingestion."""

    pending = "pending"
    indexing = "indexing"
    indexed = "indexed"
    failed = "failed"


class KnowledgeDocument(SQLModel, table=True):
    """A document uploaded by the staff; its chunks live in the vector store."""

    __tablename__ = "knowledge_documents"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    filename: str = Field(max_length=255)
    media_type: str = Field(max_length=128)
    sha256: str = Field(max_length=64, unique=True)
    size_bytes: int
    stored_path: str = Field(max_length=500)
    status: IngestionStatus = Field(default=IngestionStatus.pending, sa_type=String(16))
    chunk_count: int = Field(default=0)
    embedding_model: str | None = Field(default=None, max_length=128)
    error: str = Field(default="", max_length=500)
    uploaded_by_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
