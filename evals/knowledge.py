"""Knowledge search evaluation: recall@k and MRR on a question set, reported as JSON and
Markdown. The documents are ingested into a throw-away knowledge base with the configured
embedding model, through the same service as the app."""

import json
import tempfile
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from sqlmodel import Session

from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.knowledge import library as knowledge
from app.services.knowledge.embeddings import get_embedder
from app.services.knowledge.parsing import MEDIA_TYPES, SECTION_SEPARATOR
from models.db import make_engine
from models.migrate import upgrade

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared").resolve()
QUESTIONS = SHARED / "evals" / "knowledge" / "questions.yaml"
DOCUMENTS = SHARED / "knowledge"
REPORTS = Path(__file__).resolve().parent / "reports"
KS = (1, 3, 4, 5)
DEPTH = 10  # MRR looks this far


@dataclass(frozen=True)
class Question:
    question: str
    expected_section: str
    expected_phrase: str


@dataclass
class QuestionResult:
    question: str
    expected_section: str
    rank: int | None  # 1-based rank of the first passage that answers, within DEPTH
    top_sections: list[str]


@dataclass
class KnowledgeEval:
    """The scores of one run, and what they were measured on."""

    model: str
    documents: int
    chunks: int
    questions: int
    recall: dict[int, float]
    mrr: float
    ingest_seconds: float
    search_ms_mean: float
    results: list[QuestionResult] = field(default_factory=list)
    run_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def load_questions(path: Path, limit: int | None = None) -> list[Question]:
    """The question set: ``question``, ``expected_section`` and ``expected_phrase`` each."""
    items = yaml.safe_load(path.read_text("utf-8")) or []
    questions = [
        Question(
            str(i["question"]),
            str(i["expected_section"]),
            str(i.get("expected_phrase", "")),
        )
        for i in items
    ]
    return questions[:limit] if limit else questions


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("’", "'").lower()
    return " ".join(text.split())


def answers(passage: knowledge.Passage, question: Question) -> bool:
    """A passage answers when it sits in the expected section and holds the expected words."""
    sections = [_fold(part) for part in passage.section.split(SECTION_SEPARATOR)]
    return _fold(question.expected_section) in sections and _fold(
        question.expected_phrase
    ) in _fold(passage.text)


def evaluate(
    settings: Settings, *, questions: Path, documents: Path, limit: int | None = None
) -> KnowledgeEval:
    """Ingest every document of ``documents`` in a temporary base, then ask each question."""
    asked = load_questions(questions, limit)
    files = sorted(p for p in documents.iterdir() if p.suffix.lower() in MEDIA_TYPES)
    actor = Actor.system("eval")
    with tempfile.TemporaryDirectory(prefix="accueil-eval-", ignore_cleanup_errors=True) as tmp:
        local = settings.model_copy(
            update={"data_dir": Path(tmp), "database_url": "", "chroma_url": None}
        )
        upgrade(local.resolved_database_url)
        engine = make_engine(local.resolved_database_url)
        try:
            with Session(engine, expire_on_commit=False) as session:
                start = time.perf_counter()
                chunks = 0
                for path in files:
                    outcome = knowledge.ingest(session, actor, local, path.name, path.read_bytes())
                    chunks += outcome.document.chunk_count
                session.commit()
                ingest_seconds = time.perf_counter() - start
                results, durations = [], []
                for q in asked:
                    start = time.perf_counter()
                    found = knowledge.search(session, actor, local, q.question, k=DEPTH)
                    durations.append((time.perf_counter() - start) * 1000)
                    rank = next((n for n, p in enumerate(found, 1) if answers(p, q)), None)
                    results.append(
                        QuestionResult(
                            q.question, q.expected_section, rank, [p.section for p in found[:4]]
                        )
                    )
        finally:
            engine.dispose()
    total = max(1, len(results))
    return KnowledgeEval(
        model=get_embedder(settings).model_id,
        documents=len(files),
        chunks=chunks,
        questions=len(results),
        recall={k: sum(1 for r in results if r.rank and r.rank <= k) / total for k in KS},
        mrr=sum(1 / r.rank for r in results if r.rank) / total,
        ingest_seconds=round(ingest_seconds, 2),
        search_ms_mean=round(sum(durations) / max(1, len(durations)), 1),
        results=results,
    )


def summary(result: KnowledgeEval) -> str:
    recalls = ", ".join(f"recall@{k} {v:.2f}" for k, v in result.recall.items())
    return (
        f"{recalls}, MRR {result.mrr:.2f} — {result.questions} questions, "
        f"{result.documents} documents ({result.chunks} passages), modèle {result.model}"
    )


def markdown(result: KnowledgeEval) -> str:
    lines = [
        "# Knowledge search evaluation",
        "",
        f"Run {result.run_at} with `{result.model}`: {result.documents} documents, "
        f"{result.chunks} passages, {result.questions} questions; ingestion "
        f"{result.ingest_seconds:.1f} s, search {result.search_ms_mean:.0f} ms per question "
        "(embedding included).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        *(f"| recall@{k} | {v:.2f} |" for k, v in result.recall.items()),
        f"| MRR (first {DEPTH}) | {result.mrr:.2f} |",
        "",
        "| question | expected section | rank | top sections |",
        "| --- | --- | ---: | --- |",
    ]
    for r in result.results:
        top = " · ".join(s or "—" for s in r.top_sections)
        lines.append(f"| {r.question} | {r.expected_section} | {r.rank or '—'} | {top} |")
    return "\n".join(lines) + "\n"


def write_reports(result: KnowledgeEval, directory: Path) -> tuple[Path, Path]:
    """``knowledge.json`` and ``knowledge.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "knowledge.json"
    md_path = directory / "knowledge.md"
    json_path.write_text(json.dumps(asdict(result), ensure_ascii=False, indent=2), "utf-8")
    md_path.write_text(markdown(result), "utf-8")
    return json_path, md_path
