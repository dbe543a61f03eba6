"""The demo shows every feature (issue 17): submitted pre-consultations with urgent and
`à vérifier` flags and free text, their structured summaries, a letter draft and an approved
letter, a waiting list with an offer, messages in the outbox; and the seed stays idempotent."""

import pytest
from sqlmodel import Session, func, select

from app.services.flows import letter_jobs, summary_jobs
from app.services.operations.demo import seed_demo
from app.services.preconsultation import summaries
from models.appointments import WaitingOffer
from models.documents import DocumentKind, GeneratedDocument, ReviewStatus
from models.notifications import OutboxMessage
from models.patients import Patient
from models.questionnaires import PreConsultation, PreConsultationStatus
from tests.support.jobs_helpers import run_jobs


def count(db: Session, model: type) -> int:
    return db.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def no_model(monkeypatch) -> None:
    monkeypatch.setattr(summary_jobs, "model_for", lambda settings: None)
    monkeypatch.setattr(letter_jobs, "model_for", lambda settings: None)


def test_the_demo_holds_every_feature_and_seeds_once(db: Session, settings, job_queue, no_model):
    seeded = seed_demo(db, settings, patients=40)
    db.commit()
    assert (seeded.preconsultations, seeded.letters, seeded.offers) == (4, 2, 1)
    assert seeded.messages >= 1

    submitted = db.exec(
        select(PreConsultation).where(PreConsultation.status == PreConsultationStatus.submitted)
    ).all()
    assert len(submitted) == 4
    severities = {f["severity"] for p in submitted for f in p.red_flags}
    assert severities == {"urgence", "à vérifier"}
    assert any(f["evidence"] for p in submitted for f in p.red_flags)  # words from free text
    for p in submitted:
        document = summaries.summary_document(db, p.id or 0)
        assert document is not None and document.text
        sentences = [s for sec in document.content["sections"] for s in sec["sentences"]]
        assert sentences and all(set(s["sources"]) <= set(p.answers) for s in sentences)
        assert all(s["sources"] for s in sentences)
    first = summaries.summary_document(db, submitted[0].id or 0)
    assert first is not None and first.content["sections"][1]["key"] == "flags"
    assert first.content["sections"][1]["sentences"][0]["text"].startswith("URGENCE : ")

    approved_summaries = db.exec(
        select(GeneratedDocument).where(
            GeneratedDocument.kind == DocumentKind.summary,
            GeneratedDocument.status == ReviewStatus.approved,
        )
    ).all()
    assert len(approved_summaries) == 1
    letter_rows = db.exec(
        select(GeneratedDocument).where(GeneratedDocument.kind == DocumentKind.letter)
    ).all()
    assert sorted(d.status for d in letter_rows) == [ReviewStatus.approved, ReviewStatus.draft]
    patient = db.get(Patient, letter_rows[0].patient_id)
    assert patient is not None
    for letter in letter_rows:
        assert patient.first_name in letter.text and "Cabinet" in letter.text
    assert count(db, WaitingOffer) == 1 and count(db, OutboxMessage) >= 1

    # The queued jobs change nothing without a model, and a second seed adds nothing.
    documents = count(db, GeneratedDocument)
    run_jobs(job_queue)
    db.expire_all()
    assert count(db, GeneratedDocument) == documents
    assert seed_demo(db, settings, patients=40).already_seeded
    assert count(db, GeneratedDocument) == documents and count(db, PreConsultation) == 4
