"""Generated documents as the review sees them: loading, the physician-only rule, versions
(who, when, what changed) and the audited read."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import Conflict, NotFound, PermissionDenied
from models.documents import DocumentKind, DocumentVersion, GeneratedDocument, ReviewStatus
from models.types import utcnow
from models.users import Role, User

RECORD_TYPE = "generated_document"


class PhysicianOnly(PermissionDenied):
    """Only a physician reviews, edits, approves or rejects what a model generated."""

    def __init__(self) -> None:
        super(PermissionDenied, self).__init__(
            "Vous n'avez pas accès à cette action : seul un médecin relit, modifie, approuve ou "
            "rejette un document généré.",
            "You do not have access to this action: only a physician reviews, edits, approves "
            "or rejects a generated document.",
        )


class StillDrafting(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Le brouillon est encore en cours de rédaction.", "The draft is still being written."
        )


class AlreadyReviewed(Conflict):
    def __init__(self, status: str) -> None:
        fr = "approuvé" if status == ReviewStatus.approved else "rejeté"
        en = "approved" if status == ReviewStatus.approved else "rejected"
        super().__init__(
            f"Ce document est déjà {fr} : il ne peut plus être modifié.",
            f"This document is already {en}: it can no longer be changed.",
        )


def require_physician(user: User) -> None:
    """The review rule, enforced in the service whatever the route or tool."""
    if user.role != Role.physician or not user.is_active:
        raise PhysicianOnly()


def load(session: Session, document_id: int) -> GeneratedDocument:
    document = session.get(GeneratedDocument, document_id)
    if document is None:
        raise NotFound("Document introuvable.", "Document not found.")
    return document


def is_generated(document: GeneratedDocument) -> bool:
    """False while a letter's draft is still being written (its placeholder has no model)."""
    return bool(document.model)


def ensure_editable(document: GeneratedDocument) -> None:
    """Only a generated draft can be edited, approved or rejected."""
    if not is_generated(document):
        raise StillDrafting()
    if document.status != ReviewStatus.draft:
        raise AlreadyReviewed(document.status)


def read(session: Session, actor: audit.Actor, document_id: int) -> GeneratedDocument:
    """One document, its read audited."""
    document = load(session, document_id)
    audit.record(
        session,
        actor,
        f"{document.kind}.read",
        record_type=RECORD_TYPE,
        record_id=document.id,
        patient_id=document.patient_id,
    )
    return document


def add_version(
    session: Session, document: GeneratedDocument, author: User | None, change: str
) -> DocumentVersion:
    """Save the document's current state as its next version."""
    number = session.exec(
        select(func.max(DocumentVersion.number)).where(DocumentVersion.document_id == document.id)
    ).one()
    version = DocumentVersion(
        document_id=document.id or 0,
        number=(number or 0) + 1,
        text=document.text,
        content=document.content,
        author_id=author.id if author else None,
        change=change[:32],
    )
    document.updated_at = utcnow()
    session.add(document)
    session.add(version)
    session.flush()
    return version


def versions(session: Session, document_id: int) -> list[DocumentVersion]:
    return list(
        session.exec(
            select(DocumentVersion)
            .where(DocumentVersion.document_id == document_id)
            .order_by(col(DocumentVersion.number))
        ).all()
    )


def record_change(
    session: Session,
    actor: audit.Actor,
    document: GeneratedDocument,
    action: str,
    details: dict[str, Any] | None = None,
) -> None:
    """The audit event of a review action: names the record, never its content."""
    audit.record(
        session,
        actor,
        f"document.{action}",
        record_type=RECORD_TYPE,
        record_id=document.id,
        patient_id=document.patient_id,
        details={"kind": str(document.kind), **(details or {})},
    )


def summary_text(content: dict[str, Any]) -> str:
    """A summary's sections as plain text (what the record keeps once approved)."""
    parts: list[str] = []
    for section in content.get("sections", []):
        parts.append(str(section.get("title", "")))
        parts += [f"- {s.get('text', '')}" for s in section.get("sentences", [])]
        parts.append("")
    return "\n".join(parts).strip()


@dataclass(frozen=True)
class DocumentRow:
    """A document with the names a list shows."""

    document: GeneratedDocument
    patient_name: str
    title: str


def is_letter(document: GeneratedDocument) -> bool:
    return document.kind == DocumentKind.letter
