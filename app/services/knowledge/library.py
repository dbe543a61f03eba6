"""The practice knowledge base: documents stored under the data directory, their passages in
one Chroma collection built by one embedding model, and search with citations.

Every change is audited. An upload is checked (name, size, real type), stored and queued:
a background job (``app/services/knowledge/index.py``) parses, chunks and embeds it with
progress, so large documents never hold a request. A refused upload leaves nothing behind;
a failed job leaves the former passages (or none) and shows the failure with a retry.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.jobs import runner as job_runner
from app.jobs import store as jobs
from app.services.core import audit, job_actions
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.knowledge import lexical, no_answer
from app.services.knowledge.analysis import embedding_query, vocabulary
from app.services.knowledge.chunking import Chunk
from app.services.knowledge.index import (
    COLLECTION,
    INGEST,
    MODEL_KEY,
    REBUILD,
    RECORD_TYPE,
    EmbeddingModelMismatch,
    embedder_for,
    open_collection,
    remove_file,
    remove_versions,
    version_name,
    write_file,
)
from app.services.knowledge.index import existing_collection as _existing_collection
from app.services.knowledge.parsing import MEDIA_TYPES, check_upload
from app.services.knowledge.retrieval import Passage, SearchResult, hybrid_search
from models.jobs import Job, JobStatus
from models.knowledge import IngestionStatus, KnowledgeDocument
from models.types import utcnow

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

__all__ = [
    "COLLECTION",
    "MODEL_KEY",
    "EmbeddingModelMismatch",
    "InvalidInput",
    "NotFound",
    "Passage",
    "SearchResult",
    "open_collection",
]

MAX_K = 10


class DuplicateDocument(Conflict):
    """The same file (same SHA-256) is already in the knowledge base."""

    def __init__(self, title: str) -> None:
        super().__init__(
            f"Ce fichier est déjà dans la base de connaissances : « {title} ».",
            f"This file is already in the knowledge base: '{title}'.",
        )


@dataclass(frozen=True)
class UploadOutcome:
    """The document as stored, the job that indexes this version, and whether it replaces
    an earlier version (which stays searchable until the new one is indexed)."""

    document: KnowledgeDocument
    job: Job
    replaced: bool


@dataclass(frozen=True)
class IngestOutcome:
    """The document as indexed, and whether it replaced an earlier version."""

    document: KnowledgeDocument
    replaced: bool


def upload(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    filename: str,
    content: bytes,
    *,
    uploaded_by_id: int | None = None,
    dispatch: bool = True,
) -> UploadOutcome:
    """Store a new document, or a new version of the document of the same file name, and
    queue the job that indexes it (one job per document and content)."""
    name = check_upload(filename, content, max_bytes=settings.knowledge_max_upload_mb * 1024**2)
    sha = hashlib.sha256(content).hexdigest()
    duplicate = session.exec(
        select(KnowledgeDocument).where(KnowledgeDocument.sha256 == sha)
    ).first()
    if duplicate is not None:
        raise DuplicateDocument(duplicate.title)
    previous = session.exec(
        select(KnowledgeDocument).where(KnowledgeDocument.filename == name)
    ).first()
    document = previous or KnowledgeDocument(
        title=PurePath(name).stem[:200],
        filename=name,
        media_type=MEDIA_TYPES[PurePath(name).suffix.lower()],
        sha256=sha,
        size_bytes=len(content),
        stored_path="",
        status=IngestionStatus.pending,
        uploaded_by_id=uploaded_by_id,
    )
    if previous is None:
        session.add(document)
        try:
            session.flush()
        except IntegrityError as exc:  # the same file uploaded at the same moment
            raise DuplicateDocument(document.title) from exc
        document.stored_path = version_name(document.id or 0, sha, name)
        session.add(document)
    version = version_name(document.id or 0, sha, name)
    write_file(settings, version, content)
    try:
        audit.record(
            session,
            actor,
            "knowledge.replace" if previous else "knowledge.upload",
            record_type=RECORD_TYPE,
            record_id=document.id,
            details={"filename": name, "sha256": sha, "size": len(content)},
        )
        for earlier in jobs.active_for_record(session, RECORD_TYPE, document.id or 0):
            older = earlier.kind == INGEST and earlier.payload.get("sha256") != sha
            if older and earlier.status == JobStatus.queued:  # superseded, not started yet
                job_actions.cancel(session, actor, settings, earlier.id or 0)
        job = jobs.enqueue(
            session,
            INGEST,
            {"document_id": document.id, "sha256": sha},
            key=f"{INGEST}:{document.id}:{sha}",
            record_type=RECORD_TYPE,
            record_id=document.id,
            dispatch=dispatch,
        )
        if job.status in (JobStatus.failed, JobStatus.cancelled):  # the same version again
            job = job_actions.retry(session, actor, job.id or 0)
    except BaseException:
        remove_file(settings, version)  # never a current version: the content is new
        raise
    return UploadOutcome(document, job, replaced=previous is not None)


def ingest(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    filename: str,
    content: bytes,
    *,
    uploaded_by_id: int | None = None,
) -> IngestOutcome:
    """Upload and index at once, in the caller's transaction, through the indexing job's
    own handler (demo seed, evaluations, benchmarks). A failure propagates and leaves no
    file behind: the caller rolls back."""
    outcome = upload(
        session, actor, settings, filename, content, uploaded_by_id=uploaded_by_id, dispatch=False
    )
    version = version_name(outcome.document.id or 0, outcome.job.payload["sha256"], filename)
    try:
        if outcome.job.status == JobStatus.queued:
            job_runner.run_now(session, settings, outcome.job)
    except BaseException:
        remove_file(settings, version)  # the caller rolls back the rows that named it
        raise
    return IngestOutcome(outcome.document, outcome.replaced)


def get_document(session: Session, document_id: int) -> KnowledgeDocument:
    document = session.get(KnowledgeDocument, document_id)
    if document is None:
        raise NotFound("Document introuvable.", "Document not found.")
    return document


def list_documents(session: Session) -> list[KnowledgeDocument]:
    """Every document, by title."""
    return list(
        session.exec(select(KnowledgeDocument).order_by(col(KnowledgeDocument.title))).all()
    )


def document_jobs(session: Session, documents: list[KnowledgeDocument]) -> dict[int, Job]:
    """The latest indexing job of each document: where its indexing is, or why it failed."""
    return jobs.latest_for_records(session, RECORD_TYPE, [d.id or 0 for d in documents])


def reindex(session: Session, actor: audit.Actor, settings: Settings, document_id: int) -> Job:
    """Queue the indexing of a document's stored file again (after a chunking or parser
    change); a document already waiting or being indexed keeps its job."""
    document = get_document(session, document_id)
    for job in jobs.active_for_record(session, RECORD_TYPE, document_id):
        if job.kind == INGEST:
            return job
    runs = session.exec(
        select(func.count())
        .select_from(Job)
        .where(Job.record_type == RECORD_TYPE, Job.record_id == str(document_id))
    ).one()
    audit.record(
        session, actor, "knowledge.reindex", record_type=RECORD_TYPE, record_id=document_id
    )
    return jobs.enqueue(
        session,
        INGEST,
        {"document_id": document_id, "sha256": document.sha256},
        key=f"{INGEST}:{document_id}:{document.sha256}:{runs + 1}",
        record_type=RECORD_TYPE,
        record_id=document_id,
    )


def latest_rebuild(session: Session) -> Job | None:
    """The most recent rebuild of the whole base, for its state on the page."""
    return session.exec(select(Job).where(Job.kind == REBUILD).order_by(col(Job.id).desc())).first()


def rebuild(session: Session, actor: audit.Actor, settings: Settings) -> Job:
    """Queue the rebuild of the whole base with the configured model (the way to change
    embedding model); a rebuild already waiting or running is returned instead."""
    running = session.exec(
        select(Job).where(Job.kind == REBUILD, col(Job.status).in_(("queued", "running")))
    ).first()
    if running is not None:
        return running
    count = session.exec(select(func.count()).select_from(Job).where(Job.kind == REBUILD)).one()
    audit.record(
        session,
        actor,
        "knowledge.rebuild",
        record_type=RECORD_TYPE,
        details={"model": settings.embedding_model},
    )
    return jobs.enqueue(session, REBUILD, {}, key=f"{REBUILD}:{count + 1}:{utcnow().isoformat()}")


def delete(session: Session, actor: audit.Actor, settings: Settings, document_id: int) -> None:
    """Remove a document: its waiting jobs, its passages, its files and its row."""
    document = get_document(session, document_id)
    for job in jobs.active_for_record(session, RECORD_TYPE, document_id):
        if job.status == JobStatus.queued:
            job.status = JobStatus.cancelled
            job.finished_at = job.updated_at = utcnow()
            job.next_attempt_at = None
            session.add(job)
    collection = _existing_collection(settings)
    if collection is not None:
        collection.delete(where={"document_id": document_id})
    lexical.delete_document(settings, document_id)
    audit.record(
        session,
        actor,
        "knowledge.delete",
        record_type=RECORD_TYPE,
        record_id=document_id,
        details={"filename": document.filename},
    )
    session.delete(document)
    session.flush()
    jobs.on_commit(session, lambda: remove_versions(settings, document_id))


def _meta_int(meta: Mapping[str, object], key: str) -> int:
    """A number we stored in a passage's metadata (Chroma types metadata values loosely)."""
    value = meta[key]
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"passage metadata {key!r} is not a number: {value!r}")


def indexed_passages(settings: Settings, document: KnowledgeDocument) -> list[Chunk]:
    """The passages stored for a document, in reading order."""
    collection = _existing_collection(settings)
    if collection is None:
        return []
    found = collection.get(
        where={"document_id": document.id or 0}, include=["documents", "metadatas"]
    )
    chunks = [
        Chunk(position=_meta_int(meta, "position"), section=str(meta["section"]), text=text or "")
        for text, meta in zip(found["documents"] or [], found["metadatas"] or [], strict=True)
    ]
    return sorted(chunks, key=lambda c: c.position)


def view_document(
    session: Session, actor: audit.Actor, settings: Settings, document_id: int
) -> tuple[KnowledgeDocument, list[Chunk]]:
    """A document and its indexed passages, for its preview page (audited)."""
    document = get_document(session, document_id)
    audit.record(session, actor, "knowledge.view", record_type=RECORD_TYPE, record_id=document_id)
    return document, indexed_passages(settings, document)


def nearest_passages(
    session: Session, collection: "Collection", vector: Any, k: int
) -> list[Passage]:
    """The ``k`` passages nearest to an embedded question, from indexed documents only
    (embedding search alone: the baseline the hybrid search is measured against)."""
    # No count() first: it costs more than the query itself on a large collection, and a
    # query on a small or empty one simply returns fewer results.
    found = collection.query(
        query_embeddings=[vector],
        n_results=k + 8,  # a few spare in case a document was just removed
        include=["documents", "metadatas", "distances"],
    )
    metas = (found["metadatas"] or [[]])[0]
    texts = (found["documents"] or [[]])[0]
    distances = (found["distances"] or [[]])[0]
    titles = dict(
        session.exec(
            select(KnowledgeDocument.id, KnowledgeDocument.title).where(
                col(KnowledgeDocument.id).in_({_meta_int(m, "document_id") for m in metas}),
                KnowledgeDocument.status == IngestionStatus.indexed,
            )
        ).all()
    )
    passages = [
        Passage(
            document_id=_meta_int(meta, "document_id"),
            title=titles[_meta_int(meta, "document_id")],
            section=str(meta["section"]),
            text=text or "",
            position=_meta_int(meta, "position"),
            score=round(1.0 - float(distance), 4),
        )
        for meta, text, distance in zip(metas, texts, distances, strict=True)
        if _meta_int(meta, "document_id") in titles
    ]
    return passages[:k]


def _checked(query: str, k: int) -> str:
    query = " ".join(query.split())
    if len(query) < 2:
        raise InvalidInput("Question trop courte.", "Question too short.")
    if not 1 <= k <= MAX_K:
        raise InvalidInput(
            f"Nombre de passages entre 1 et {MAX_K}.", f"Number of passages from 1 to {MAX_K}."
        )
    return query


def find(
    session: Session, actor: audit.Actor, settings: Settings, query: str, k: int = 4
) -> SearchResult:
    """The ``k`` best passages for a question (hybrid: embeddings and French lexical search
    fused), best first, from indexed documents; and whether they answer it (``found``),
    not (``none``), or the question is an emergency (``urgent``); a ``found`` answer may be
    ``doubtful`` (the passages may not give what was asked: a reader checks)."""
    query = _checked(query, k)
    embedder = embedder_for(settings)
    collection = open_collection(settings, embedder)
    vector = embedder.embed_query([embedding_query(query, vocabulary(settings.data_dir))])[0]
    result = hybrid_search(session, settings, collection, vector, query, k)
    audit.record(
        session,
        actor,
        "knowledge.search",
        record_type=RECORD_TYPE,
        details={
            "k": k,
            "results": len(result.passages),
            "answer": result.answer,
            "doubtful": result.doubtful,
        },
    )
    return result


def search(
    session: Session, actor: audit.Actor, settings: Settings, query: str, k: int = 4
) -> list[Passage]:
    """The ``k`` best passages for the question, best first (see ``find``)."""
    return find(session, actor, settings, query, k).passages


def record_calibration(
    session: Session,
    actor: audit.Actor,
    path: Path,
    *,
    questions: int,
    unanswerable: int,
    f1: float,
    f1_cross_validated: float | None,
) -> None:
    """Record in the audit trail that the practice's own "no answer" calibration (``path``)
    was written: it changes what its staff are told ("not in the documents", doubtful). The
    file, the number of questions, the thresholds and the F1; no question text."""
    model = no_answer.load(path)
    audit.record(
        session,
        actor,
        "knowledge.calibration",
        record_type=RECORD_TYPE,
        details={
            "file": path.name,
            "questions": questions,
            "unanswerable": unanswerable,
            "threshold": model.threshold if model else None,
            "doubt": model.doubt if model else None,
            "f1": f1,
            "f1_cross_validated": f1_cross_validated,
        },
    )
