"""Knowledge search evaluation: recall@k and MRR on a question set, reported as JSON and
Markdown. The documents are ingested into a throw-away knowledge base with the configured
embedding model, through the same service as the app.

By default it measures the handbooks the demo seeds (shipped in the repository) against the
question set beside this module, so the eval runs from a fresh clone; ``--questions`` and
``--documents`` point it at any other set. Questions the handbooks do not answer
(``expected_section: null``) stay out of recall and MRR: their best score, next to the
answerable questions' best scores, is what a "no answer" threshold is calibrated on."""

import json
import statistics
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
from app.services.operations.demo import HANDBOOKS_DIR
from models.db import make_engine
from models.migrate import upgrade

QUESTIONS = Path(__file__).resolve().parent / "data" / "knowledge" / "questions.yaml"
DOCUMENTS = HANDBOOKS_DIR
REPORTS = Path(__file__).resolve().parent / "reports"
KS = (1, 3, 4, 5)
DEPTH = 10  # MRR looks this far


@dataclass(frozen=True)
class Question:
    question: str
    expected_section: str | None  # None: the documents do not answer it
    expected_phrase: str

    @property
    def answerable(self) -> bool:
        return self.expected_section is not None


@dataclass
class QuestionResult:
    question: str
    expected_section: str | None
    rank: int | None  # 1-based rank of the first passage that answers, within DEPTH
    top_score: float | None  # the best passage's similarity, whatever it says
    top_sections: list[str]


@dataclass(frozen=True)
class ScoreSpread:
    """How the best scores of a group of questions spread."""

    count: int
    min: float
    median: float
    mean: float
    max: float

    @classmethod
    def of(cls, scores: list[float]) -> "ScoreSpread | None":
        if not scores:
            return None
        return cls(
            count=len(scores),
            min=round(min(scores), 4),
            median=round(statistics.median(scores), 4),
            mean=round(statistics.fmean(scores), 4),
            max=round(max(scores), 4),
        )


@dataclass(frozen=True)
class NoAnswerPoint:
    """Saying "no answer" whenever the best score is below ``threshold``: how often that is
    right (precision), how many unanswerable questions it catches (recall), and the share of
    answerable questions it would wrongly turn away."""

    threshold: float
    precision: float
    recall: float
    answerable_refused: float


@dataclass
class KnowledgeEval:
    """The scores of one run, and what they were measured on."""

    model: str
    documents: int
    chunks: int
    questions: int  # answerable questions: the ones recall and MRR are computed on
    recall: dict[int, float]
    mrr: float
    ingest_seconds: float
    search_ms_mean: float
    unanswerable: int = 0
    answerable_top_scores: ScoreSpread | None = None
    unanswerable_top_scores: ScoreSpread | None = None
    no_answer: list[NoAnswerPoint] = field(default_factory=list)
    results: list[QuestionResult] = field(default_factory=list)
    run_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def load_questions(path: Path, limit: int | None = None) -> list[Question]:
    """The question set: ``question``, ``expected_section`` (``null`` when the documents do
    not answer) and ``expected_phrase`` each."""
    items = yaml.safe_load(path.read_text("utf-8")) or []
    questions = [
        Question(
            str(i["question"]),
            None if i.get("expected_section") is None else str(i["expected_section"]),
            str(i.get("expected_phrase") or ""),
        )
        for i in items
    ]
    return questions[:limit] if limit else questions


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("’", "'").lower()
    return " ".join(text.split())


def answers(section: str, text: str, question: Question) -> bool:
    """A passage answers when it sits in the expected section (any level of its heading path)
    and holds the expected words."""
    if question.expected_section is None:
        return False
    sections = [_fold(part) for part in section.split(SECTION_SEPARATOR)]
    return _fold(question.expected_section) in sections and _fold(
        question.expected_phrase
    ) in _fold(text)


def no_answer_curve(results: list[QuestionResult]) -> list[NoAnswerPoint]:
    """Precision and recall of "no answer" at each threshold, a hundredth apart, from the
    lowest best score to just above the highest unanswerable one."""
    unanswerable = [
        r.top_score for r in results if r.expected_section is None and r.top_score is not None
    ]
    answerable = [
        r.top_score for r in results if r.expected_section is not None and r.top_score is not None
    ]
    if not unanswerable or not answerable:
        return []
    low = int(min(unanswerable + answerable) * 100)
    high = int(max(unanswerable) * 100) + 1
    points = []
    for step in range(low, high + 1):
        threshold = step / 100
        caught = sum(1 for s in unanswerable if s < threshold)
        refused = sum(1 for s in answerable if s < threshold)
        points.append(
            NoAnswerPoint(
                threshold=threshold,
                precision=round(caught / (caught + refused), 4) if caught + refused else 1.0,
                recall=round(caught / len(unanswerable), 4),
                answerable_refused=round(refused / len(answerable), 4),
            )
        )
    return points


def best_threshold(points: list[NoAnswerPoint]) -> NoAnswerPoint | None:
    """The threshold with the best F1 of "no answer" (the lower one on a tie)."""

    def f1(p: NoAnswerPoint) -> float:
        total = p.precision + p.recall
        return 2 * p.precision * p.recall / total if total else 0.0

    ranked = [p for p in points if p.recall > 0]
    return max(ranked, key=f1) if ranked else None


def evaluate(
    settings: Settings, *, questions: Path, documents: Path, limit: int | None = None
) -> KnowledgeEval:
    """Ingest every document of ``documents`` in a temporary base, then ask each question."""
    asked = load_questions(questions, limit)
    files = sorted(p for p in documents.iterdir() if p.suffix.lower() in MEDIA_TYPES)
    actor = Actor.system("eval")
    results: list[QuestionResult] = []
    durations: list[float] = []
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
                for q in asked:
                    start = time.perf_counter()
                    found = knowledge.search(session, actor, local, q.question, k=DEPTH)
                    durations.append((time.perf_counter() - start) * 1000)
                    rank = next(
                        (n for n, p in enumerate(found, 1) if answers(p.section, p.text, q)), None
                    )
                    results.append(
                        QuestionResult(
                            q.question,
                            q.expected_section,
                            rank,
                            found[0].score if found else None,
                            [p.section for p in found[:4]],
                        )
                    )
        finally:
            engine.dispose()
    answerable = [r for r in results if r.expected_section is not None]
    total = max(1, len(answerable))
    return KnowledgeEval(
        model=get_embedder(settings).model_id,
        documents=len(files),
        chunks=chunks,
        questions=len(answerable),
        recall={k: sum(1 for r in answerable if r.rank and r.rank <= k) / total for k in KS},
        mrr=sum(1 / r.rank for r in answerable if r.rank) / total,
        ingest_seconds=round(ingest_seconds, 2),
        search_ms_mean=round(sum(durations) / max(1, len(durations)), 1),
        unanswerable=len(results) - len(answerable),
        answerable_top_scores=ScoreSpread.of(
            [r.top_score for r in answerable if r.top_score is not None]
        ),
        unanswerable_top_scores=ScoreSpread.of(
            [r.top_score for r in results if r.expected_section is None and r.top_score is not None]
        ),
        no_answer=no_answer_curve(results),
        results=results,
    )


def summary(result: KnowledgeEval) -> str:
    recalls = ", ".join(f"recall@{k} {v:.2f}" for k, v in result.recall.items())
    line = (
        f"{recalls}, MRR {result.mrr:.2f} — {result.questions} questions, "
        f"{result.documents} documents ({result.chunks} passages), modèle {result.model}"
    )
    spread, unanswered = result.answerable_top_scores, result.unanswerable_top_scores
    if unanswered is not None:
        line += (
            f"\nQuestions sans réponse ({result.unanswerable}) : meilleur score "
            f"{unanswered.min:.3f} à {unanswered.max:.3f} (médiane {unanswered.median:.3f})"
        )
        if spread is not None:
            line += (
                f" ; questions avec réponse : {spread.min:.3f} à {spread.max:.3f} "
                f"(médiane {spread.median:.3f})"
            )
        best = best_threshold(result.no_answer)
        if best is not None:
            line += (
                f"\nSeuil « pas de réponse » {best.threshold:.2f} : précision "
                f"{best.precision:.2f}, rappel {best.recall:.2f}, "
                f"{best.answerable_refused:.0%} des questions avec réponse refusées"
            )
    return line


def _spread_row(name: str, spread: ScoreSpread | None) -> str:
    if spread is None:
        return f"| {name} | 0 | — | — | — | — |"
    return (
        f"| {name} | {spread.count} | {spread.min:.3f} | {spread.median:.3f} | "
        f"{spread.mean:.3f} | {spread.max:.3f} |"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(result: KnowledgeEval) -> str:
    lines = [
        "# Knowledge search evaluation",
        "",
        f"Run {result.run_at} with `{result.model}`: {result.documents} documents, "
        f"{result.chunks} passages, {result.questions} answerable questions and "
        f"{result.unanswerable} unanswerable ones; ingestion {result.ingest_seconds:.1f} s, "
        f"search {result.search_ms_mean:.0f} ms per question (embedding included).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        *(f"| recall@{k} | {v:.2f} |" for k, v in result.recall.items()),
        f"| MRR (first {DEPTH}) | {result.mrr:.2f} |",
        "",
        "## Best score per question",
        "",
        "| questions | count | min | median | mean | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        _spread_row("answerable", result.answerable_top_scores),
        _spread_row("unanswerable", result.unanswerable_top_scores),
        "",
    ]
    if result.no_answer:
        lines += [
            "## « No answer » below a threshold",
            "",
            "| threshold | precision | recall | answerable refused |",
            "| ---: | ---: | ---: | ---: |",
            *(
                f"| {p.threshold:.2f} | {p.precision:.2f} | {p.recall:.2f} | "
                f"{p.answerable_refused:.0%} |"
                for p in result.no_answer
            ),
            "",
        ]
    lines += [
        "## Answerable questions",
        "",
        "| question | expected section | rank | best score | top sections |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for r in result.results:
        if r.expected_section is None:
            continue
        top = " · ".join(s or "—" for s in r.top_sections)
        score = f"{r.top_score:.3f}" if r.top_score is not None else "—"
        lines.append(
            f"| {_cell(r.question)} | {_cell(r.expected_section)} | {r.rank or '—'} | "
            f"{score} | {_cell(top)} |"
        )
    unanswerable = [r for r in result.results if r.expected_section is None]
    if unanswerable:
        lines += [
            "",
            "## Unanswerable questions",
            "",
            "| question | best score | best section |",
            "| --- | ---: | --- |",
        ]
        for r in sorted(unanswerable, key=lambda r: -(r.top_score or 0.0)):
            score = f"{r.top_score:.3f}" if r.top_score is not None else "—"
            best = r.top_sections[0] if r.top_sections else "—"
            lines.append(f"| {_cell(r.question)} | {score} | {_cell(best or '—')} |")
    return "\n".join(lines) + "\n"


def write_reports(result: KnowledgeEval, directory: Path) -> tuple[Path, Path]:
    """``knowledge.json`` and ``knowledge.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "knowledge.json"
    md_path = directory / "knowledge.md"
    json_path.write_text(json.dumps(asdict(result), ensure_ascii=False, indent=2), "utf-8")
    md_path.write_text(markdown(result), "utf-8")
    return json_path, md_path
