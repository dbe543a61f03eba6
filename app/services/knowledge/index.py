"""Indexing practice documents: the Chroma collection (one embedding model), a document's
passages swapped all at once, and the background jobs that index one document or rebuild
the whole base, reporting their progress.

A document is parsed, chunked and embedded before anything is written; its passages are
written last and undo themselves on failure, so a failed job leaves the former passages (or
none) and never half a document.
"""

import hashlib
import os
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.jobs import store as jobs
from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput
from app.services.knowledge import lexical
from app.services.knowledge.chunking import Chunk, chunk_document, embedding_input
from app.services.knowledge.parsing import (
    DocumentTooLarge,
    InvalidDocument,
    ParsedDocument,
    parse_document,
)
from models.jobs import Job
from models.knowledge import IngestionStatus, KnowledgeDocument
from models.types import utcnow

if TYPE_CHECKING:  # chromadb takes seconds to import: loaded on first use only
    from chromadb.api.models.Collection import Collection

    from app.services.knowledge.embeddings import PracticeEmbedding

COLLECTION = "practice_knowledge"
MODEL_KEY = "embedding_model"
RECORD_TYPE = "knowledge_document"
INGEST = "knowledge.ingest"
REBUILD = "knowledge.rebuild"
EMBED_BATCH = 32
JOB_ACTOR = audit.Actor.system("jobs")


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
    """More passages than one document may have."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"Document trop long : {count} passages ({limit} au plus). "
            "Découpez-le en plusieurs fichiers.",
            f"Document too long: {count} passages ({limit} at most). Split it into several files.",
        )


class MissingFile(InvalidDocument):
    def __init__(self) -> None:
        super().__init__(
            "Le fichier de ce document est introuvable : importez-le de nouveau.",
            "This document's file is missing: upload it again.",
        )


def embedder_for(settings: Settings) -> "PracticeEmbedding":
    from app.services.knowledge.embeddings import get_embedder

    return get_embedder(settings)


def existing_collection(settings: Settings) -> "Collection | None":
    """The collection as it is, whatever model built it (for reads and deletions)."""
    from chromadb.errors import NotFoundError

    from app.services.knowledge.vector_store import open_client

    try:
        return open_client(settings).get_collection(COLLECTION)
    except NotFoundError:
        return None


def open_collection(settings: Settings, embedder: "PracticeEmbedding") -> "Collection":
    """The collection built by ``embedder`` (created empty on first use); a collection built
    by another model is refused rather than mixed."""
    from chromadb.errors import ChromaError

    from app.services.knowledge.vector_store import open_client

    client = open_client(settings)
    existing = existing_collection(settings)
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
            # chromadb types this as an embedder of texts *and* images (EmbeddingFunction is
            # contravariant); ours embeds texts, all this collection ever holds.
            embedding_function=embedder,  # type: ignore[arg-type]
            metadata={MODEL_KEY: embedder.model_id},
            configuration={"hnsw": {"space": "cosine"}},
        )
    except ChromaError:
        if existing_collection(settings) is None:
            raise
        return open_collection(settings, embedder)  # created meanwhile by another worker


# -- files ---------------------------------------------------------------------------------


def version_name(document_id: int, sha256: str, filename: str) -> str:
    """The stored name of one version of a document: generated, never the uploaded name."""
    return f"{document_id}-{sha256[:16]}{PurePath(filename).suffix.lower()}"


def stored_path(settings: Settings, stored_name: str) -> Path:
    """A stored file's path, which must lie in the knowledge directory."""
    root = settings.knowledge_dir.resolve()
    path = (root / stored_name).resolve()
    if path.parent != root:
        raise InvalidInput("Chemin de fichier invalide.", "Invalid file path.")
    return path


def write_file(settings: Settings, stored_name: str, content: bytes) -> None:
    settings.knowledge_dir.mkdir(parents=True, exist_ok=True)
    path = stored_path(settings, stored_name)
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_bytes(content)
    temporary.chmod(0o600)
    os.replace(temporary, path)


def remove_file(settings: Settings, stored_name: str) -> None:
    if stored_name:
        stored_path(settings, stored_name).unlink(missing_ok=True)


def remove_versions(settings: Settings, document_id: int) -> None:
    """Every stored version of a document (the current one and any waiting or failed)."""
    folder = settings.knowledge_dir
    if folder.exists():
        for path in folder.glob(f"{document_id}-*"):
            path.unlink(missing_ok=True)


# -- indexing ------------------------------------------------------------------------------


def prepare(
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


Progress = Callable[[float, str], None]


def embed_passages(
    embedder: "PracticeEmbedding",
    title: str,
    chunks: list[Chunk],
    progress: Progress,
    span: tuple[float, float] = (5.0, 95.0),
) -> list[Any]:
    """Embed the passages batch by batch, reporting "n / total" within ``span`` percent."""
    texts = [embedding_input(title, c) for c in chunks]
    vectors: list[Any] = []
    low, high = span
    for start in range(0, len(texts), EMBED_BATCH):
        vectors.extend(embedder(texts[start : start + EMBED_BATCH]))
        done = len(vectors)
        progress(low + (high - low) * done / len(texts), f"Passages : {done} / {len(texts)}")
    return vectors


def _chunk_ids(document: KnowledgeDocument, chunks: list[Chunk]) -> list[str]:
    return [f"{document.id}-{document.sha256[:16]}-{c.position}" for c in chunks]


def replace_chunks(
    settings: Settings,
    collection: "Collection",
    document: KnowledgeDocument,
    chunks: list[Chunk],
    vectors: list[Any],
) -> None:
    """Write the document's new passages (Chroma, then the lexical index in one
    transaction), then drop its old ones; on failure, undo the writes so the collection
    holds exactly the old passages. The lexical index follows the database's documents:
    ``retrieval.sync`` repairs it from Chroma if a process dies between the two."""
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
    try:
        lexical.replace_document(
            settings,
            document.id or 0,
            document.sha256,
            [
                lexical.IndexedPassage(i, document.id or 0, c.position, c.section, c.text)
                for i, c in zip(ids, chunks, strict=True)
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


def _read_version(settings: Settings, name: str, sha256: str) -> bytes:
    try:
        content = stored_path(settings, name).read_bytes()
    except OSError as exc:
        raise MissingFile() from exc
    if hashlib.sha256(content).hexdigest() != sha256:
        raise MissingFile()  # replaced on disk: this version is gone
    return content


def _ingest_given_up(session: Session, settings: Settings, job: Job) -> None:
    """A version that will not be indexed: a first upload shows the failure; a new version
    that was cancelled is dropped, the indexed one staying as it is."""
    document = session.get(KnowledgeDocument, int(job.payload.get("document_id", 0)))
    if document is None:
        return
    sha = str(job.payload.get("sha256", ""))
    if document.sha256 == sha and document.status != IngestionStatus.indexed:
        document.status = IngestionStatus.failed
        document.error = (job.last_error or "Indexation annulée.")[:500]
        document.updated_at = utcnow()
        session.add(document)
    elif document.sha256 != sha and job.status == "cancelled":
        version = version_name(document.id or 0, sha, document.filename)
        jobs.on_commit(session, lambda: remove_file(settings, version))


@jobs.handler(INGEST, max_attempts=3, on_give_up=_ingest_given_up)
def index_document(ctx: jobs.JobContext) -> None:
    """Index one version of a document (payload: ``document_id``, ``sha256``): the first
    upload, a new version that replaces the indexed one, or the same version again."""
    session, settings = ctx.session, ctx.settings
    document = session.get(KnowledgeDocument, int(ctx.payload["document_id"]))
    if document is None:
        raise jobs.PermanentJobError("Document supprimé entre-temps.")
    sha = str(ctx.payload["sha256"])
    replacing = document.sha256 != sha
    name = version_name(document.id or 0, sha, document.filename) if replacing else None
    ctx.progress(1, "Lecture du document")
    content = _read_version(settings, name or document.stored_path, sha)
    parsed, chunks = prepare(settings, document.filename, content)
    embedder = embedder_for(settings)
    collection = open_collection(settings, embedder)
    vectors = embed_passages(embedder, parsed.title, chunks, ctx.progress)
    # The last report comes before any write: SQLite has one writer at a time.
    ctx.progress(96, f"Enregistrement de {len(chunks)} passages")
    old_file = document.stored_path if replacing else ""
    document.title = parsed.title
    document.media_type = parsed.media_type
    document.sha256 = sha
    document.size_bytes = len(content)
    document.stored_path = name or document.stored_path
    document.status = IngestionStatus.indexed
    document.chunk_count = len(chunks)
    document.embedding_model = embedder.model_id
    document.error = ""
    document.updated_at = utcnow()
    session.add(document)
    try:
        session.flush()
    except IntegrityError as exc:  # the same content became another document meanwhile
        raise jobs.PermanentJobError("Ce fichier est déjà dans la base de connaissances.") from exc
    audit.record(
        session,
        JOB_ACTOR,
        "knowledge.index",
        record_type=RECORD_TYPE,
        record_id=document.id,
        details={"chunks": len(chunks), "sha256": sha, "job_id": ctx.job_id},
    )
    replace_chunks(settings, collection, document, chunks, vectors)  # last: it undoes itself
    if old_file and old_file != document.stored_path:
        jobs.on_commit(session, lambda: remove_file(settings, old_file))


def _reindex_stored(
    settings: Settings,
    document: KnowledgeDocument,
    embedder: "PracticeEmbedding",
    collection: "Collection",
) -> None:
    """Parse, chunk and embed a document's stored file again, and swap its passages."""
    content = _read_version(settings, document.stored_path, document.sha256)
    parsed, chunks = prepare(settings, document.filename, content)
    vectors = embedder([embedding_input(parsed.title, c) for c in chunks])
    document.title = parsed.title
    replace_chunks(settings, collection, document, chunks, vectors)
    document.status = IngestionStatus.indexed
    document.chunk_count = len(chunks)
    document.embedding_model = embedder.model_id
    document.error = ""
    document.updated_at = utcnow()


@jobs.handler(REBUILD, max_attempts=2)
def rebuild_collection(ctx: jobs.JobContext) -> None:
    """Drop the collection and index every document with the configured model (the way to
    change model). A document that cannot be indexed is marked failed."""
    from chromadb.errors import NotFoundError

    from app.services.knowledge.vector_store import open_client

    session, settings = ctx.session, ctx.settings
    embedder = embedder_for(settings)
    embedder(["vérification du modèle"])  # an unreachable model fails before anything is dropped
    documents = list(
        session.exec(select(KnowledgeDocument).order_by(col(KnowledgeDocument.id))).all()
    )
    with suppress(NotFoundError):
        open_client(settings).delete_collection(COLLECTION)
    lexical.replace_all(settings, [])
    collection = open_collection(settings, embedder)
    indexed = failed = 0
    with session.no_autoflush:  # no write before the last progress report (one SQLite writer)
        for n, document in enumerate(documents):
            ctx.progress(100 * n / max(1, len(documents)), f"Documents : {n} / {len(documents)}")
            try:
                _reindex_stored(settings, document, embedder, collection)
                indexed += 1
            except InvalidInput as exc:
                document.status = IngestionStatus.failed
                document.chunk_count = 0
                document.error = exc.fr[:500]
                document.updated_at = utcnow()
                failed += 1
            session.add(document)
        ctx.progress(99, f"{indexed} documents indexés, {failed} en échec")
    audit.record(
        session,
        JOB_ACTOR,
        "knowledge.rebuilt",
        record_type=RECORD_TYPE,
        details={"indexed": indexed, "failed": failed, "model": embedder.model_id},
    )
