"""Knowledge search evaluation: recall@k and MRR of the hybrid search and of the embedding
search alone, and the precision, recall and F1 of "no answer", on a question set; reported
as JSON and Markdown. The documents are ingested into a throw-away knowledge base with the
configured embedding model, through the same service as the app.

By default it measures the handbooks the demo seeds (shipped in the repository) against the
question sets beside this module. Two are *fitted* on: the question set the search was tuned
on (``questions.yaml``) and the calibration questions written apart from the code
(``calibration.yaml``), on which the "no answer" decision is calibrated. Three are *held out*,
never fitted on, to estimate how it does on questions it has not seen: paraphrases of the
set (``paraphrases.yaml``) and two sets written apart from the code by people who read only
the handbooks (``independent.yaml`` and ``unseen.yaml``, whose misses have since been read:
the test half of the sample handbook, in ``tests/knowledge/data/``, is the one only measured).
Questions the handbooks do not answer (``expected_section: null``) stay out of recall and
MRR and measure "no answer". The "no answer" decision is a logistic model calibrated on the
fitted sets: its scores on them are also given by 5-fold cross-validation (fitted on four
fifths, measured on the fifth left out), the honest estimate; ``calibrate=True`` (``accueil eval
knowledge --calibrate``) fits it on all of them and writes the model the app ships.
"""

import json
import random
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import Session

from app.config.settings import Settings
from app.services.core.audit import Actor
from app.services.knowledge import library as knowledge
from app.services.knowledge import no_answer
from app.services.knowledge.analysis import embedding_query, vocabulary
from app.services.knowledge.embeddings import get_embedder
from app.services.knowledge.index import embedder_for, open_collection
from app.services.knowledge.parsing import MEDIA_TYPES, SECTION_SEPARATOR
from app.services.knowledge.retrieval import Mode, hybrid_search
from app.services.operations.demo import HANDBOOKS_DIR
from models.db import make_engine
from models.migrate import upgrade

DATA = Path(__file__).resolve().parent / "data" / "knowledge"
QUESTIONS = DATA / "questions.yaml"
CALIBRATION = DATA / "calibration.yaml"
PARAPHRASES = DATA / "paraphrases.yaml"
INDEPENDENT = DATA / "independent.yaml"
UNSEEN = DATA / "unseen.yaml"
DOCUMENTS = HANDBOOKS_DIR
REPORTS = Path(__file__).resolve().parent / "reports"
KS = (1, 3, 4, 5)
DEPTH = 10  # MRR looks this far
FOLDS = 5
MODES: tuple[Mode, ...] = ("hybrid", "embedding")


@dataclass(frozen=True)
class Question:
    question: str
    expected_section: str | None  # None: the documents do not answer it
    expected_phrase: str

    @property
    def answerable(self) -> bool:
        return self.expected_section is not None


@dataclass(frozen=True)
class QuestionSet:
    """A question file and its role: ``fitted`` sets tune the search and calibrate "no
    answer"; the others are held out and only measured."""

    key: str
    label: str  # French, for the summary
    title: str  # English, for the Markdown report
    path: Path
    fitted: bool


FITTED = (
    QuestionSet("questions", "Jeu de questions", "Question set", QUESTIONS, True),
    QuestionSet(
        "calibration",
        "Questions de calibrage (écrites à part)",
        "Calibration questions (written apart from the code, calibrated on)",
        CALIBRATION,
        True,
    ),
)
HELD_OUT = (
    QuestionSet(
        "paraphrases",
        "Paraphrases jamais vues",
        "Held-out paraphrases (never fitted on)",
        PARAPHRASES,
        False,
    ),
    QuestionSet(
        "independent",
        "Questions écrites à part",
        "Held-out questions written apart from the code (not fitted on; misses read)",
        INDEPENDENT,
        False,
    ),
    QuestionSet(
        "unseen",
        "Questions écrites à part (2)",
        "Held-out questions written apart from the code (not fitted on; misses read)",
        UNSEEN,
        False,
    ),
)


@dataclass
class QuestionResult:
    question: str
    expected_section: str | None
    rank: int | None  # hybrid: 1-based rank of the first passage that answers, within DEPTH
    embedding_rank: int | None  # the same with the embedding search alone
    top_score: float | None  # the best passage's similarity, whatever it says
    top_sections: list[str]
    answer: str  # found, none or urgent (with the shipped "no answer" model)
    probability: float | None  # the shipped model's p(answered)
    signals: dict[str, float] = field(default_factory=dict)
    cv_no_answer: bool | None = None  # the decision of the model fitted without its fold
    doubtful: bool = False  # answered, in the band where a reader checks (``no_answer``)
    cv_doubtful: bool | None = None  # the same, by the model fitted without its fold


@dataclass(frozen=True)
class Scores:
    """Ranking and "no answer" scores of one question set."""

    questions: int  # answerable questions: recall and MRR are computed on them
    unanswerable: int
    recall: dict[int, float]
    mrr: float
    embedding_recall: dict[int, float]
    embedding_mrr: float
    no_answer_precision: float
    no_answer_recall: float
    no_answer_f1: float
    answerable_refused: int  # answerable questions wrongly turned away
    correct_first: float  # answerable questions answered (not refused) with a right 1st passage
    doubtful: int = 0  # questions answered as doubtful (a reader checks the passages)
    doubtful_unanswerable: int = 0  # of which the documents do not answer
    # "No answer" F1 if a reader (an LLM, the secretary) decided every doubtful question
    # right: what the doubt band can give at best, not a measure of any reader.
    reader_f1: float = 0.0


@dataclass
class SetResult:
    """The scores of one question set and each of its questions."""

    key: str
    label: str
    title: str
    fitted: bool
    scores: Scores
    results: list[QuestionResult] = field(default_factory=list)


@dataclass
class KnowledgeEval:
    """The scores of one run, and what they were measured on."""

    model: str
    documents: int
    chunks: int
    ingest_seconds: float
    search_ms_mean: float
    scores: Scores  # the fitted sets together
    cross_validated: Scores | None = None  # "no answer" by 5-fold cross-validation on them
    sets: list[SetResult] = field(default_factory=list)  # each set, fitted then held out
    no_answer_model: str = ""  # what the model that decided "no answer" was calibrated on
    calibrated: bool = False
    calibration_file: str = ""  # where the model fitted by this run was written
    results: list[QuestionResult] = field(default_factory=list)  # the fitted sets' questions
    run_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    # compatibility with the former report's fields
    @property
    def questions(self) -> int:
        return self.scores.questions

    @property
    def unanswerable(self) -> int:
        return self.scores.unanswerable

    @property
    def recall(self) -> dict[int, float]:
        return self.scores.recall

    @property
    def mrr(self) -> float:
        return self.scores.mrr

    def set(self, key: str) -> SetResult | None:
        return next((s for s in self.sets if s.key == key), None)


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


def _rank(found: list[knowledge.Passage], question: Question) -> int | None:
    return next((n for n, p in enumerate(found, 1) if answers(p.section, p.text, question)), None)


def _ask(
    session: Session,
    settings: Settings,
    asked: list[Question],
    durations: list[float],
    decider: no_answer.NoAnswerModel | None = None,
) -> list[QuestionResult]:
    embedder = embedder_for(settings)
    collection = open_collection(settings, embedder)
    vocab = vocabulary(settings.data_dir)
    results = []
    for q in asked:
        start = time.perf_counter()
        vector = embedder.embed_query([embedding_query(q.question, vocab)])[0]
        outcome = {
            mode: hybrid_search(
                session, settings, collection, vector, q.question, DEPTH, mode=mode, model=decider
            )
            for mode in MODES
        }
        durations.append((time.perf_counter() - start) * 1000)
        hybrid = outcome["hybrid"]
        signals = hybrid.signals
        results.append(
            QuestionResult(
                q.question,
                q.expected_section,
                _rank(hybrid.passages, q),
                _rank(outcome["embedding"].passages, q),
                hybrid.passages[0].score if hybrid.passages else None,
                [p.section for p in hybrid.passages[:4]],
                hybrid.answer,
                hybrid.probability,
                asdict(signals) if signals is not None else {},
                doubtful=hybrid.doubtful,
            )
        )
    return results


def _signals(result: QuestionResult) -> no_answer.Signals:
    return no_answer.Signals(**result.signals)


def cross_validate(results: list[QuestionResult], folds: int = FOLDS, seed: int = 21) -> None:
    """Set each result's ``cv_no_answer``: the decision of a model fitted on the other
    folds (stratified: each fold has its share of unanswerable questions)."""
    usable = [r for r in results if r.signals and r.answer != "urgent"]
    positives = [r for r in usable if r.expected_section is not None]
    negatives = [r for r in usable if r.expected_section is None]
    if len(negatives) < folds or len(positives) < folds:
        return
    rng = random.Random(seed)  # noqa: S311 (folds, not secrets)
    rng.shuffle(positives)
    rng.shuffle(negatives)
    fold_of = {id(r): n % folds for n, r in enumerate(positives)}
    fold_of.update({id(r): n % folds for n, r in enumerate(negatives)})
    for fold in range(folds):
        train = [r for r in usable if fold_of[id(r)] != fold]
        model = no_answer.fit(
            [_signals(r) for r in train], [r.expected_section is not None for r in train]
        )
        for r in usable:
            if fold_of[id(r)] == fold:
                r.cv_no_answer = model.no_answer(_signals(r))
                r.cv_doubtful = model.doubtful(_signals(r))
    for r in results:
        if r.answer == "urgent":
            r.cv_no_answer = r.cv_doubtful = False


def score(results: list[QuestionResult], *, cross_validated: bool = False) -> Scores:
    answerable = [r for r in results if r.expected_section is not None]
    total = max(1, len(answerable))

    def refused(r: QuestionResult) -> bool:
        return bool(r.cv_no_answer) if cross_validated else r.answer == "none"

    def doubtful(r: QuestionResult) -> bool:
        return bool(r.cv_doubtful) if cross_validated else r.doubtful

    predicted = [refused(r) for r in results]
    actual = [r.expected_section is None for r in results]
    read = [refused(r) or (doubtful(r) and a) for r, a in zip(results, actual, strict=True)]
    tp = sum(1 for p, a in zip(predicted, actual, strict=True) if p and a)
    said = sum(predicted)
    return Scores(
        questions=len(answerable),
        unanswerable=len(results) - len(answerable),
        recall={
            k: round(sum(1 for r in answerable if r.rank and r.rank <= k) / total, 4) for k in KS
        },
        mrr=round(sum(1 / r.rank for r in answerable if r.rank) / total, 4),
        embedding_recall={
            k: round(
                sum(1 for r in answerable if r.embedding_rank and r.embedding_rank <= k) / total, 4
            )
            for k in KS
        },
        embedding_mrr=round(
            sum(1 / r.embedding_rank for r in answerable if r.embedding_rank) / total, 4
        ),
        no_answer_precision=round(tp / said, 4) if said else 1.0,
        no_answer_recall=round(tp / max(1, sum(actual)), 4) if any(actual) else 1.0,
        no_answer_f1=round(no_answer.f1(predicted, actual), 4),
        answerable_refused=sum(1 for r in answerable if refused(r)),
        correct_first=round(
            sum(1 for r in answerable if r.rank == 1 and not refused(r)) / total, 4
        ),
        doubtful=sum(1 for r in results if doubtful(r)),
        doubtful_unanswerable=sum(1 for r in results if doubtful(r) and r.expected_section is None),
        reader_f1=round(no_answer.f1(read, actual), 4),
    )


def evaluate(
    settings: Settings,
    *,
    questions: Path | None = None,
    documents: Path = DOCUMENTS,
    limit: int | None = None,
    held_out: Sequence[QuestionSet] | None = None,
    calibrate: bool = False,
    calibration_file: Path | None = None,
) -> KnowledgeEval:
    """Ingest every document of ``documents`` in a temporary base, then ask each question of
    the fitted sets (``questions`` alone when given, else ``FITTED``) and of the held-out sets
    (``held_out``; by default ``HELD_OUT`` with the default sets, none with ``questions``).
    "No answer" is decided by the practice's own calibration when ``settings.data_dir`` holds
    one and ``questions`` is given, else by the shipped model; ``calibrate`` fits a new one on
    the fitted sets and writes it to ``calibration_file`` (default: the shipped model's file)."""
    if questions is None:
        fitted = [q for q in FITTED if q.path.exists()]
        if held_out is None and not limit:
            held_out = HELD_OUT
    else:
        fitted = [replace(FITTED[0], path=questions)]
    chosen = [*fitted, *(q for q in held_out or () if q.path.exists())]
    decider = no_answer.for_practice(settings.data_dir if questions else None)
    asked = {q.key: load_questions(q.path, limit if q.fitted else None) for q in chosen}
    files = sorted(p for p in documents.iterdir() if p.suffix.lower() in MEDIA_TYPES)
    actor = Actor.system("eval")
    durations: list[float] = []
    answered: dict[str, list[QuestionResult]] = {}
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
                for q in chosen:
                    answered[q.key] = _ask(
                        session, local, asked[q.key], durations if q.fitted else [], decider
                    )
        finally:
            engine.dispose()
    results = [r for q in fitted for r in answered[q.key]]
    cross_validate(results)
    calibrated = False
    if calibrate:
        usable = [r for r in results if r.signals and r.answer != "urgent"]
        names = " + ".join(q.path.name for q in fitted)
        model = no_answer.fit(
            [_signals(r) for r in usable],
            [r.expected_section is not None for r in usable],
            calibrated_on=f"{names}: {len(usable)} questions, {datetime.now(UTC):%Y-%m-%d}",
        )
        target = calibration_file or no_answer.MODEL_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(model.to_json(), "utf-8")
        no_answer.shipped.cache_clear()
        decider = model
        for r in (r for rs in answered.values() for r in rs):
            if r.answer != "urgent" and r.signals:
                r.probability = model.probability(_signals(r))
                r.answer = "none" if model.no_answer(_signals(r)) else "found"
                r.doubtful = model.doubtful(_signals(r))
        calibrated = True
    return KnowledgeEval(
        model=get_embedder(settings).model_id,
        documents=len(files),
        chunks=chunks,
        ingest_seconds=round(ingest_seconds, 2),
        search_ms_mean=round(sum(durations) / max(1, len(durations)) / len(MODES), 1),
        scores=score(results),
        cross_validated=score(results, cross_validated=True)
        if any(r.cv_no_answer is not None for r in results)
        else None,
        sets=[
            SetResult(q.key, q.label, q.title, q.fitted, score(answered[q.key]), answered[q.key])
            for q in chosen
        ],
        no_answer_model=decider.calibrated_on if decider else "",
        calibrated=calibrated,
        calibration_file=str(calibration_file or no_answer.MODEL_FILE) if calibrated else "",
        results=results,
    )


def _line(name: str, s: Scores) -> str:
    return (
        f"{name} : recall@1 {s.recall[1]:.2f}, recall@4 {s.recall[4]:.2f}, MRR {s.mrr:.2f} "
        f"(embeddings seuls : {s.embedding_recall[1]:.2f} / {s.embedding_recall[4]:.2f} / "
        f"{s.embedding_mrr:.2f}) ; « pas de réponse » précision {s.no_answer_precision:.2f}, "
        f"rappel {s.no_answer_recall:.2f}, F1 {s.no_answer_f1:.2f} "
        f"({s.questions} + {s.unanswerable} sans réponse) ; douteuses {s.doubtful} "
        f"(dont {s.doubtful_unanswerable} sans réponse ; F1 si un lecteur les tranche : "
        f"{s.reader_f1:.2f})"
    )


def summary(result: KnowledgeEval) -> str:
    lines = [f"{result.documents} documents ({result.chunks} passages), modèle {result.model}"]
    lines += [_line(s.label, s.scores) for s in result.sets if s.fitted]
    if sum(s.fitted for s in result.sets) > 1:
        lines.append(_line("Questions calibrées, ensemble", result.scores))
    if result.cross_validated is not None:
        cv = result.cross_validated
        lines.append(
            f"« Pas de réponse » en validation croisée ({FOLDS} plis) : précision "
            f"{cv.no_answer_precision:.2f}, rappel {cv.no_answer_recall:.2f}, "
            f"F1 {cv.no_answer_f1:.2f} ; si un lecteur tranche les douteuses : "
            f"{cv.reader_f1:.2f}"
        )
    lines += [_line(s.label, s.scores) for s in result.sets if not s.fitted]
    if result.calibrated:
        lines.append(f"Modèle « pas de réponse » recalibré : {result.calibration_file}")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _scores_table(title: str, s: Scores) -> list[str]:
    return [
        f"## {title}",
        "",
        f"{s.questions} answerable questions, {s.unanswerable} unanswerable.",
        "",
        "| measure | hybrid | embedding only |",
        "| --- | ---: | ---: |",
        *(f"| recall@{k} | {s.recall[k]:.2f} | {s.embedding_recall[k]:.2f} |" for k in s.recall),
        f"| MRR (first {DEPTH}) | {s.mrr:.2f} | {s.embedding_mrr:.2f} |",
        f"| « no answer » precision | {s.no_answer_precision:.2f} | — |",
        f"| « no answer » recall | {s.no_answer_recall:.2f} | — |",
        f"| « no answer » F1 | {s.no_answer_f1:.2f} | — |",
        f"| answerable questions refused | {s.answerable_refused} | — |",
        f"| answered with the right first passage | {s.correct_first:.2f} | — |",
        f"| answered as doubtful (of which unanswerable) | {s.doubtful} "
        f"({s.doubtful_unanswerable}) | — |",
        f"| « no answer » F1 if a reader decides the doubtful ones | {s.reader_f1:.2f} | — |",
        "",
    ]


def _rows(results: list[QuestionResult]) -> list[str]:
    lines = [
        "| question | expected section | rank | embedding rank | answer | p(answered) "
        "| top sections |",
        "| --- | --- | ---: | ---: | --- | ---: | --- |",
    ]
    for r in results:
        top = " · ".join(s or "—" for s in r.top_sections)
        p = f"{r.probability:.2f}" if r.probability is not None else "—"
        answer = f"{r.answer} (doubtful)" if r.doubtful else r.answer
        lines.append(
            f"| {_cell(r.question)} | {_cell(r.expected_section or '(none)')} | {r.rank or '—'} | "
            f"{r.embedding_rank or '—'} | {answer} | {p} | {_cell(top)} |"
        )
    return lines


def markdown(result: KnowledgeEval) -> str:
    lines = [
        "# Knowledge search evaluation",
        "",
        f"Run {result.run_at} with `{result.model}`: {result.documents} documents, "
        f"{result.chunks} passages; ingestion {result.ingest_seconds:.1f} s, search "
        f"{result.search_ms_mean:.0f} ms per question (embedding included). "
        f"« No answer » model: {result.no_answer_model or 'none calibrated'}.",
        "",
    ]
    for s in (s for s in result.sets if s.fitted):
        lines += _scores_table(s.title, s.scores)
    if sum(s.fitted for s in result.sets) > 1:
        lines += _scores_table("Fitted sets together", result.scores)
    if result.cross_validated is not None:
        cv = result.cross_validated
        lines += [
            f"« No answer » by {FOLDS}-fold cross-validation on the fitted sets (each question "
            f"decided by a model fitted without it): precision {cv.no_answer_precision:.2f}, "
            f"recall {cv.no_answer_recall:.2f}, F1 {cv.no_answer_f1:.2f}, "
            f"{cv.answerable_refused} answerable questions refused; {cv.doubtful} doubtful "
            f"({cv.doubtful_unanswerable} unanswerable), F1 {cv.reader_f1:.2f} if a reader "
            "decides them.",
            "",
        ]
    for s in (s for s in result.sets if not s.fitted):
        lines += _scores_table(s.title, s.scores)
    for s in result.sets:
        lines += [f"## {s.title}: each question", "", *_rows(s.results), ""]
    return "\n".join(lines) + "\n"


def _jsonable(result: KnowledgeEval) -> dict[str, Any]:
    return asdict(result)


def write_reports(result: KnowledgeEval, directory: Path) -> tuple[Path, Path]:
    """``knowledge.json`` and ``knowledge.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "knowledge.json"
    md_path = directory / "knowledge.md"
    json_path.write_text(json.dumps(_jsonable(result), ensure_ascii=False, indent=2), "utf-8")
    md_path.write_text(markdown(result), "utf-8")
    return json_path, md_path
