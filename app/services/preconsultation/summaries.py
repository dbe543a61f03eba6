"""Pre-consultation summaries: the answers they are made from, storing a generated summary
with its provenance, and the state a physician sees (which comes from the job)."""

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from app.jobs import store as jobs
from app.services.core import audit
from app.services.core.errors import NotFound
from app.services.preconsultation import questionnaires
from models.appointments import Appointment
from models.documents import DocumentKind, DocumentVersion, GeneratedDocument
from models.jobs import Job, JobStatus
from models.questionnaires import PreConsultation, PreConsultationStatus, Questionnaire

JOB_KIND = "preconsultation.summarize"
RECORD_TYPE = "preconsultation"


def job_key(preconsultation_id: int) -> str:
    return f"summary:preconsultation:{preconsultation_id}"


def request_summary(session: Session, p: PreConsultation) -> Job:
    """Queue the summary of a submitted pre-consultation (once: the key is per submission)."""
    return jobs.enqueue(
        session,
        JOB_KIND,
        {"preconsultation_id": p.id},
        key=job_key(p.id or 0),
        record_type=RECORD_TYPE,
        record_id=p.id,
    )


@dataclass(frozen=True)
class AnswerText:
    """One enabled answer in words, with its linkId."""

    link_id: str
    question: str
    answer: str


def answers_for_summary(session: Session, p: PreConsultation) -> tuple[str, list[AnswerText]]:
    """The questionnaire's title and the patient's enabled answers, in French words."""
    row = session.get(Questionnaire, p.questionnaire_id)
    if row is None:
        raise NotFound("Questionnaire introuvable.", "Questionnaire not found.")
    shown = questionnaires.translation(session, row, "fr")
    form = questionnaires.form_of(shown)
    kept = questionnaires.enabled_answers(form, p.answers)
    return form.title, [
        AnswerText(
            k, form.questions[k].text, questionnaires.display_answer(form.questions[k], v, "fr")
        )
        for k, v in kept.items()
    ]


def summary_document(session: Session, preconsultation_id: int) -> GeneratedDocument | None:
    """The latest summary generated for a pre-consultation."""
    return session.exec(
        select(GeneratedDocument)
        .where(
            GeneratedDocument.preconsultation_id == preconsultation_id,
            GeneratedDocument.kind == DocumentKind.summary,
        )
        .order_by(col(GeneratedDocument.id).desc())
    ).first()


def store_summary(
    session: Session,
    p: PreConsultation,
    *,
    content: dict[str, Any],
    text: str,
    model: str,
    prompt_id: str,
    prompt_version: int,
    prompt_hash: str,
    input_refs: list[str],
    timings: dict[str, Any],
) -> GeneratedDocument:
    """Save a generated summary (a draft: nothing generated is used before approval) and its
    first version. Idempotent: a summary already stored for this submission is kept."""
    existing = summary_document(session, p.id or 0)
    if existing is not None:
        return existing
    appointment = session.get(Appointment, p.appointment_id)
    if appointment is None:
        raise NotFound("Rendez-vous introuvable.", "Appointment not found.")
    document = GeneratedDocument(
        kind=DocumentKind.summary,
        patient_id=appointment.patient_id,
        appointment_id=appointment.id,
        preconsultation_id=p.id,
        content=content,
        text=text,
        model=model[:128],
        prompt_id=prompt_id,
        prompt_version=str(prompt_version),
        prompt_hash=prompt_hash,
        input_refs=input_refs,
        timings=timings,
    )
    session.add(document)
    session.flush()
    session.add(DocumentVersion(document_id=document.id or 0, number=1, text=text, content=content))
    audit.record(
        session,
        audit.Actor.system("résumeur"),
        "summary.generate",
        record_type="generated_document",
        record_id=document.id,
        patient_id=appointment.patient_id,
        details={"model": model[:64], "prompt": f"{prompt_id}@{prompt_version}"},
    )
    return document


@dataclass
class SummaryState:
    """What the staff see: ``none`` (not submitted), ``pending``, ``failed`` (with the job to
    retry) or ``ready`` (with the document)."""

    state: str
    job: Job | None = None
    document: GeneratedDocument | None = None


def summary_state(session: Session, p: PreConsultation) -> SummaryState:
    """The summary's state, read from the job and the stored document, never guessed."""
    document = summary_document(session, p.id or 0)
    if document is not None:
        return SummaryState("ready", document=document)
    if p.status != PreConsultationStatus.submitted:
        return SummaryState("none")
    job = jobs.find_job(session, job_key(p.id or 0))
    if job is None:
        return SummaryState("none")
    if job.status in {JobStatus.failed, JobStatus.cancelled}:
        return SummaryState("failed", job=job)
    return SummaryState("pending", job=job)
