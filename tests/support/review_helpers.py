"""Builders for the review and letter tests: a scripted model for both jobs, a summarized
pre-consultation, and reading review pages."""

import re
from typing import Any

import pytest
from sqlmodel import Session

from agents.scripted_model import ScriptedChatModel, call
from app.services.flows import letter_jobs, summary_jobs
from app.services.preconsultation import summaries
from models.documents import GeneratedDocument
from tests.preconsultation.test_summaries import submitted, summary_call
from tests.support.jobs_helpers import run_jobs

MODEL_LABEL = "scripted (test)"


def scripted_model(monkeypatch: pytest.MonkeyPatch) -> ScriptedChatModel:
    """One scripted model for the summary and the letter jobs (tests wrap it in a fixture)."""
    scripted = ScriptedChatModel(script=[])
    monkeypatch.setattr(summary_jobs, "model_for", lambda settings: (scripted, MODEL_LABEL))
    monkeypatch.setattr(letter_jobs, "model_for", lambda settings: (scripted, MODEL_LABEL))
    return scripted


def summarized(
    db: Session, queue: Any, scripted: ScriptedChatModel, answers: dict | None = None
) -> GeneratedDocument:
    """A submitted pre-consultation whose draft summary the scripted model wrote."""
    p = submitted(db, answers)
    scripted.extend([summary_call()])
    run_jobs(queue)
    db.expire_all()
    document = summaries.summary_document(db, p.id or 0)
    assert document is not None
    return document


def letter_call(body: str = "Patient de 47 ans adressé pour un souffle systolique.", **fields):
    values = {"destinataire": "Dr Dupont, cardiologue", "motif": "Souffle cardiaque", **fields}
    return call("LetterDraft", body=body, **values)


def sentence_html(html: str, anchor: str) -> str:
    """The <li> of one sentence on the review page."""
    match = re.search(rf'<li id="{anchor}"(.*?)</li>', html, re.S)
    assert match, anchor
    return match.group(0)


def narrative_at(document: GeneratedDocument) -> int:
    """The index of the model's first section: the structured summary's come before it."""
    sections = document.content["sections"]
    return next(i for i, s in enumerate(sections) if s.get("origin") == "model")
