"""The red-flag case corpus (issue 15): through the evaluator, and through the real patient
routes (link, identity check, autosave, submit) for a sample of every kind of case."""

from collections import defaultdict
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from evals import red_flags as corpus
from models.patients import Patient
from models.questionnaires import PreConsultation, PreConsultationStatus
from tests.support.preconsultation import (
    autosave,
    book,
    link_csrf,
    send,
    session_csrf,
    verify,
)

CASES = corpus.load_cases()
HTML = {"accept": "text/html"}


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CASES) >= 150
    kinds = {c.kind for c in CASES}
    assert kinds == {"urgent", "review", "negative", "hard-negative"}
    for kind in ("urgent", "negative", "hard-negative"):
        assert {c.lang for c in CASES if c.kind == kind} == {"fr", "en"}, kind
    assert {c.style for c in CASES if c.kind == "urgent"} == {"text", "ticks", "both"}
    assert sum(1 for c in CASES if c.kind == "urgent" and c.style == "text") >= 40
    assert sum(1 for c in CASES if c.kind == "urgent" and c.style == "ticks") >= 15
    assert sum(1 for c in CASES if c.kind in ("negative", "hard-negative")) >= 60


def test_acceptance_sensitivity_and_specificity() -> None:
    report = corpus.evaluate(CASES)
    for style in ("text", "ticks"):
        correct, total = report.rate(("urgent",), style=style)
        assert total and correct == total, corpus.summary(report)
    correct, total = report.rate(("negative", "hard-negative"))
    assert correct / total >= 0.95, corpus.summary(report)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case: corpus.Case) -> None:
    flags = corpus.flags_for(case)
    outcome = corpus.Outcome(case, tuple(flags))
    raised = [(f.rule, f.severity) for f in flags]
    assert outcome.correct, (case.kind, raised)
    if case.rule:
        assert case.rule in {f.rule for f in flags}, raised
    for flag in flags:
        for words in flag.evidence:  # the patient's exact words, where they wrote them
            assert case.answers[words.field][words.start : words.end] == words.text


def test_every_shared_rule_has_a_positive_case() -> None:
    from app.services.preconsultation import red_flags

    covered = {c.rule for c in CASES if c.rule}
    fired = {f.rule for c in CASES if c.kind in ("urgent", "review") for f in corpus.flags_for(c)}
    shared = {r.id for r in red_flags.rulesets()[red_flags.SHARED].rules}
    assert shared <= covered | fired


def _sample() -> list[corpus.Case]:
    """Two cases of every (kind, style, language): the routes are slower than the
    evaluator, and every path through them is the same."""
    groups: dict[tuple[str, str, str, str], list[corpus.Case]] = defaultdict(list)
    for case in CASES:
        groups[(case.questionnaire, case.kind, case.style, case.lang)].append(case)
    return [case for group in groups.values() for case in group[:2]]


VISIT_TYPES = {
    "consultation-generale": "consultation",
    "renouvellement-ordonnance": "renouvellement",
    "vaccination": "vaccination",
}


@pytest.mark.parametrize("case", _sample(), ids=lambda c: c.id)
def test_case_through_the_patient_routes(client: TestClient, db: Session, case) -> None:
    booked = book(db, visit_type=VISIT_TYPES[case.questionnaire])
    patient = db.get(Patient, booked.patient_id)
    assert patient is not None
    birth = date.today() - timedelta(days=round(case.age_months * 30.44) + 3)
    patient.birth_date = birth
    db.add(patient)
    db.commit()
    sent = send(db, booked.appointment_id)
    assert sent.questionnaire.slug == case.questionnaire
    assert verify(client, sent.path, birth.isoformat()).status_code == 303
    answers = dict(case.answers)
    if case.questionnaire == "consultation-generale":
        answers.setdefault("motif", "Consultation")
    if case.questionnaire == "renouvellement-ordonnance":
        answers.setdefault("medicaments", "Mon traitement habituel")
    saved = autosave(client, sent.path, answers)
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["errors"] == {}
    if case.kind == "urgent":
        assert body["urgent"], "the guidance is returned at the autosave"
    if case.kind in ("negative", "hard-negative"):
        assert not body["urgent"]
    review = client.get(f"{sent.path}/relecture", headers=HTML)
    client.post(
        f"{sent.path}/envoyer",
        data={"link_csrf": link_csrf(review.text), "csrf_token": session_csrf(review.text)},
        headers=HTML,
    )
    db.expire_all()
    row = db.exec(select(PreConsultation)).one()
    assert row.status == PreConsultationStatus.submitted, row.answers
    severities = {f["severity"] for f in row.red_flags}
    if case.kind == "urgent":
        assert "urgence" in severities
        assert all(f["guidance"] for f in row.red_flags if f["severity"] == "urgence")
    elif case.kind == "review":
        assert row.red_flags
    else:
        assert row.red_flags == []
    for flag in row.red_flags:  # the staff see the patient's own words
        for words in flag["evidence"]:
            assert row.answers[words["field"]][words["start"] : words["end"]] == words["text"]


def test_the_staff_see_the_patients_words_highlighted(logged_in, db: Session) -> None:
    from app.services.preconsultation import links as pc
    from tests.support.practice import ACTOR

    booked = book(db)
    sent = send(db, booked.appointment_id)
    words = "je crache du sang <b>depuis hier</b> et j'ai du mal à respirer"
    pc.save_answers(db, ACTOR, sent.preconsultation, {"motif": words})
    db.commit()
    page = logged_in("secretaire").get(
        f"/agenda/appointments/{booked.appointment_id}", headers=HTML
    )
    assert page.status_code == 200
    assert "<mark>crache du sang</mark>" in page.text
    assert "<mark>du mal à respirer</mark>" in page.text
    assert "<b>depuis hier</b>" not in page.text  # the patient's text is escaped
