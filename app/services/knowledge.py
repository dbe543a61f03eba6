"""The practice knowledge base: documents stored under the data directory, their passages in
one Chroma collection built by one embedding model, and search with citations.

Every change is audited. A document is parsed, chunked and embedded before anything is
stored, so a refused or failed upload leaves no file, row or passage behind. Documents are
indexed within the request (no job queue yet): ``knowledge_max_chunks`` bounds its length.
"""

import hashlib
import os
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.services import audit
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.knowledge_chunking import Chunk, chunk_document, embedding_input
from app.services.knowledge_parsing import (
    DocumentTooLarge,
    InvalidDocument,
    ParsedDocument,
    parse_document,
    safe_filename,
)
from app.settings import Settings
from models.knowledge import IngestionStatus, KnowledgeDocument
from models.types import utcnow

if TYPE_CHECKING:  # chromadb takes seconds to import: loaded on first use only
    from chromadb.api.models.Collection import Collection

    from app.services.embeddings import PracticeEmbedding

COLLECTION = "practice_knowledge"
MODEL_KEY = "embedding_model"
MAX_K = 10
RECORD_TYPE = "knowledge_document"


class DuplicateDocument(Conflict):
    """The same file (same SHA-256) is already in the knowledge base."""

    def __init__(self, title: str) -> None:
        super().__init__(
            f"Ce fichier est déjà dans la base de connaissances : « {title} ».",
            f"This file is already in the knowledge base: '{title}'.",
        )


class EmbeddingModelMismatch(Conflict):
    """The collection was built by another embedding model than the configured one."""

    def __init__(self, built_with: str, configured: str) -> None:
        super().__init__(
            f"La base de connaissances a été indexée avec le modèle « {built_with} » mais le "
            f"modèle configuré est « {configured} » : les deux ne se mélangent pas. "
            "Réindexez toute la base (Administration › Connaissances) ou revenez à l'ancien "
            "modèle.",
            f"The knowledge base was indexed with '{built_with}' but the configured model is "
            f"'{configured}': they cannot be mixed. Re-index the whole base (Administration › "
            "Knowledge) or go back to the former model.",
        )


class DocumentTooLong(DocumentTooLarge):
    """More passages than one request may index."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"Document trop long pour être indexé en une fois : {count} passages "
            f"({limit} au plus). Découpez-le en plusieurs fichiers.",
            f"Document too long to index at once: {count} passages ({limit} at most). "
            "Split it into several files.",
        )


@dataclass(frozen=True)
class Passage:
    """A passage found by a search, with what is needed to cite it."""

    document_id: int
    title: str
    section: str
    text: str
    position: int
    score: float

    @property
    def link(self) -> str:
        return f"/connaissances/{self.document_id}#c{self.position}"


@dataclass(frozen=True)
class IngestOutcome:
    """The document as stored, and whether it replaced an earlier version."""

    document: KnowledgeDocument
    replaced: bool


@dataclass(frozen=True)
class RebuildOutcome:
    """How many documents a rebuild indexed, and how many it could not."""

    indexed: int
    failed: int


def _embedder(settings: Settings) -> "PracticeEmbedding":
    from app.services.embeddings import get_embedder

    return get_embedder(settings)


def _existing_collection(settings: Settings) -> "Collection | None":
    """The collection as it is, whatever model built it (for reads and deletions)."""
    from chromadb.errors import NotFoundError

    from app.services.vector_store import open_client

    try:
        return open_client(settings).get_collection(COLLECTION)
    except NotFoundError:
        return None


def open_collection(settings: Settings, embedder: "PracticeEmbedding") -> "Collection":
    """The collection built by ``embedder`` (created empty on first use); a collection built
    by another model is refused rather than mixed."""
    from chromadb.errors import ChromaError

    from app.services.vector_store import open_client

    client = open_client(settings)
    existing = _existing_collection(settings)
    if existing is not None:
        built_with = (existing.metadata or {}).get(MODEL_KEY)
        if built_with == embedder.model_id:
            return existing
        if existing.count():
            raise EmbeddingModelMismatch(str(built_with), embedder.model_id)
        client.delete_collection(COLLECTION)  # empty: nothing to mix, start again
    try:
        return client.create_collection(
            COLLECTION,
            embedding_function=embedder,
            metadata={MODEL_KEY: embedder.model_id},
            configuration={"hnsw": {"space": "cosine"}},
        )
    except ChromaError:
        if _existing_collection(settings) is None:
            raise
        return open_collection(settings, embedder)  # created meanwhile by another request


def _prepare(
    settings: Settings, filename: str, content: bytes
) -> tuple[ParsedDocument, list[Chunk]]:
    """Parse and chunk, refusing documents without text or with too many passages."""
    parsed = parse_document(
        filename, content, max_bytes=settings.knowledge_max_upload_mb * 1024 * 1024
    )
    chunks = chunk_document(parsed)
    if not chunks:
        raise InvalidDocument(
            "Aucun texte n'a pu être extrait de ce document (un PDF scanné n'est qu'une image : "
            "convertissez-le en texte d'abord).",
            "No text could be extracted from this document (a scanned PDF is only an image: "
            "convert it to text first).",
        )
    if len(chunks) > settings.knowledge_max_chunks:
        raise DocumentTooLong(len(chunks), settings.knowledge_max_chunks)
    return parsed, chunks


def _chunk_ids(document: KnowledgeDocument, chunks: list[Chunk]) -> list[str]:
    return [f"{document.id}-{document.sha256[:16]}-{c.position}" for c in chunks]


def _replace_chunks(
    collection: "Collection",
    document: KnowledgeDocument,
    chunks: list[Chunk],
    vectors: list[Any],
) -> None:
    """Write the document's new passages, then drop its old ones; on failure, undo the
    writes so the collection holds exactly the old passages."""
    ids = _chunk_ids(document, chunks)
    before = set(collection.get(where={"document_id": document.id or 0}, include=[])["ids"])
    batch = 1000
    try:
        for start in range(0, len(ids), batch):
            part = slice(start, start + batch)
            collection.upsert(
                ids=ids[part],
                embeddings=vectors[part],
                documents=[c.text for c in chunks[part]],
                metadatas=[
                    {
                        "document_id": document.id or 0,
                        "sha256": document.sha256,
                        "title": document.title,
                        "section": c.section,
                        "position": c.position,
                    }
                    for c in chunks[part]
                ],
            )
    except Exception:
        added = [i for i in ids if i not in before]
        if added:
            collection.delete(ids=added)
        raise
    stale = sorted(before - set(ids))
    if stale:
        collection.delete(ids=stale)


def _stored_path(settings: Settings, stored_name: str) -> Path:
    """A stored file's path, which must lie in the knowledge directory."""
    root = settings.knowledge_dir.resolve()
    path = (root / stored_name).resolve()
    if path.parent != root:
        raise InvalidInput("Chemin de fichier invalide.", "Invalid file path.")
    return path


def _write_file(settings: Settings, filename: str, content: bytes) -> str:
    """Store an upload under a generated name; returns that name."""
    settings.knowledge_dir.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}{PurePath(filename).suffix.lower()}"
    path = _stored_path(settings, name)
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_bytes(content)
    temporary.chmod(0o600)
    os.replace(temporary, path)
    return name


def _remove_file(settings: Settings, stored_name: str) -> None:
    if stored_name:
        _stored_path(settings, stored_name).unlink(missing_ok=True)


def ingest(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    filename: str,
    content: bytes,
    *,
    uploaded_by_id: int | None = None,
) -> IngestOutcome:
    """Add a document, or replace the document of the same file name with this version."""
    name = safe_filename(filename)
    sha = hashlib.sha256(content).hexdigest()
    duplicate = session.exec(
        select(KnowledgeDocument).where(KnowledgeDocument.sha256 == sha)
    ).first()
    if duplicate is not None:
        raise DuplicateDocument(duplicate.title)
    parsed, chunks = _prepare(settings, name, content)
    embedder = _embedder(settings)
    collection = open_collection(settings, embedder)
    vectors = embedder([embedding_input(parsed.title, c) for c in chunks])
    previous = session.exec(
        select(KnowledgeDocument).where(KnowledgeDocument.filename == name)
    ).first()
    old_file = previous.stored_path if previous else ""
    stored = _write_file(settings, name, content)
    try:
        document = previous or KnowledgeDocument(
            title="", filename=name, media_type="", sha256=sha, size_bytes=0, stored_path=""
        )
        document.title = parsed.title
        document.media_type = parsed.media_type
        document.sha256 = sha
        document.size_bytes = len(content)
        document.stored_path = stored
        document.status = IngestionStatus.indexed
        document.chunk_count = len(chunks)
        document.embedding_model = embedder.model_id
        document.error = ""
        document.updated_at = utcnow()
        document.uploaded_by_id = uploaded_by_id
        session.add(document)
        session.flush()
        audit.record(
            session,
            actor,
            "knowledge.replace" if previous else "knowledge.upload",
            record_type=RECORD_TYPE,
            record_id=document.id,
            details={"filename": name, "chunks": len(chunks), "sha256": sha},
        )
        _replace_chunks(collection, document, chunks, vectors)  # last: it undoes itself
    except IntegrityError as exc:  # the same file uploaded at the same moment
        _remove_file(settings, stored)
        raise DuplicateDocument(parsed.title) from exc
    except BaseException:
        _remove_file(settings, stored)
        raise
    _remove_file(settings, old_file)
    return IngestOutcome(document, replaced=previous is not None)


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


def _index_stored(
    session: Session, settings: Settings, document: KnowledgeDocument, embedder, collection
) -> None:
    """Parse, chunk and embed a stored document again, and swap its passages."""
    try:
        content = _stored_path(settings, document.stored_path).read_bytes()
    except OSError as exc:
        raise InvalidDocument(
            "Le fichier de ce document est introuvable : importez-le de nouveau.",
            "This document's file is missing: upload it again.",
        ) from exc
    parsed, chunks = _prepare(settings, document.filename, content)
    vectors = embedder([embedding_input(parsed.title, c) for c in chunks])
    document.title = parsed.title
    _replace_chunks(collection, document, chunks, vectors)
    document.status = IngestionStatus.indexed
    document.chunk_count = len(chunks)
    document.embedding_model = embedder.model_id
    document.error = ""
    document.updated_at = utcnow()
    session.add(document)


def reindex(
    session: Session, actor: audit.Actor, settings: Settings, document_id: int
) -> KnowledgeDocument:
    """Index one document again from its stored file (after a chunking or parser change)."""
    document = get_document(session, document_id)
    embedder = _embedder(settings)
    collection = open_collection(settings, embedder)
    _index_stored(session, settings, document, embedder, collection)
    audit.record(
        session,
        actor,
        "knowledge.reindex",
        record_type=RECORD_TYPE,
        record_id=document.id,
        details={"chunks": document.chunk_count},
    )
    session.flush()
    return document


def rebuild(session: Session, actor: audit.Actor, settings: Settings) -> RebuildOutcome:
    """Drop the collection and index every document with the configured model (the way to
    change embedding model). A document that cannot be indexed is marked failed."""
    from chromadb.errors import NotFoundError

    from app.services.vector_store import open_client

    embedder = _embedder(settings)
    embedder(["vérification du modèle"])  # an unreachable model fails before anything is dropped
    with suppress(NotFoundError):
        open_client(settings).delete_collection(COLLECTION)
    collection = open_collection(settings, embedder)
    indexed = failed = 0
    for document in list_documents(session):
        try:
            _index_stored(session, settings, document, embedder, collection)
            indexed += 1
        except InvalidInput as exc:
            document.status = IngestionStatus.failed
            document.chunk_count = 0
            document.error = exc.fr[:500]
            document.updated_at = utcnow()
            session.add(document)
            failed += 1
    audit.record(
        session,
        actor,
        "knowledge.rebuild",
        record_type=RECORD_TYPE,
        details={"indexed": indexed, "failed": failed, "model": embedder.model_id},
    )
    session.flush()
    return RebuildOutcome(indexed, failed)


def delete(session: Session, actor: audit.Actor, settings: Settings, document_id: int) -> None:
    """Remove a document: its passages, its file and its row."""
    document = get_document(session, document_id)
    collection = _existing_collection(settings)
    if collection is not None:
        collection.delete(where={"document_id": document_id})
    _remove_file(settings, document.stored_path)
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


def indexed_passages(settings: Settings, document: KnowledgeDocument) -> list[Chunk]:
    """The passages stored for a document, in reading order."""
    collection = _existing_collection(settings)
    if collection is None:
        return []
    found = collection.get(
        where={"document_id": document.id or 0}, include=["documents", "metadatas"]
    )
    chunks = [
        Chunk(position=int(meta["position"]), section=str(meta["section"]), text=text or "")
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
    """The ``k`` passages nearest to an embedded question, from indexed documents only."""
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
                col(KnowledgeDocument.id).in_({int(m["document_id"]) for m in metas}),
                KnowledgeDocument.status == IngestionStatus.indexed,
            )
        ).all()
    )
    passages = [
        Passage(
            document_id=int(meta["document_id"]),
            title=titles[int(meta["document_id"])],
            section=str(meta["section"]),
            text=text or "",
            position=int(meta["position"]),
            score=round(1.0 - float(distance), 4),
        )
        for meta, text, distance in zip(metas, texts, distances, strict=True)
        if int(meta["document_id"]) in titles
    ]
    return passages[:k]


def search(
    session: Session, actor: audit.Actor, settings: Settings, query: str, k: int = 4
) -> list[Passage]:
    """The ``k`` passages closest to the question, best first, from indexed documents."""
    query = " ".join(query.split())
    if len(query) < 2:
        raise InvalidInput("Question trop courte.", "Question too short.")
    if not 1 <= k <= MAX_K:
        raise InvalidInput(
            f"Nombre de passages entre 1 et {MAX_K}.", f"Number of passages from 1 to {MAX_K}."
        )
    embedder = _embedder(settings)
    collection = open_collection(settings, embedder)
    passages = nearest_passages(session, collection, embedder.embed_query([query])[0], k)
    audit.record(
        session,
        actor,
        "knowledge.search",
        record_type=RECORD_TYPE,
        details={"k": k, "results": len(passages)},
    )
    return passages
