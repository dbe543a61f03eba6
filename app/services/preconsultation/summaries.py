"""Pre-consultation summaries: the answers they are made from, the structured summary stored
the moment the patient submits (no model needed), a model's narrative added beside it, and the
state a physician sees."""

import copy
import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from app.jobs import store as jobs
from app.services.core import audit
from app.services.core.errors import NotFound
from app.services.preconsultation import questionnaires, structured_summary
from models.appointments import Appointment
from models.documents import DocumentKind, DocumentVersion, GeneratedDocument, ReviewStatus
from models.jobs import Job, JobStatus
from models.questionnaires import PreConsultation, PreConsultationStatus, Questionnaire
from models.types import utcnow

logger = logging.getLogger(__name__)

JOB_KIND = "preconsultation.summarize"
RECORD_TYPE = "preconsultation"
NARRATIVE_TITLE = "Synthèse du modèle"


def job_key(preconsultation_id: int) -> str:
    return f"summary:preconsultation:{preconsultation_id}"


def request_summary(session: Session, p: PreConsultation) -> Job:
    """Store the structured summary at once (the physician's page shows it straight after
    submit), then queue the job that adds a model's narrative where one serves (once: the key
    is per submission). A builder fault never blocks the patient's submission: it is logged,
    and the job builds the summary again (and fails visibly if it still cannot)."""
    try:
        content = structured_content(session, p)
    except (KeyError, TypeError, ValueError):
        logger.exception("structured summary of pre-consultation %s not built", p.id)
    else:
        store_structured(session, p, content)
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


def structured_content(session: Session, p: PreConsultation) -> dict[str, Any]:
    """The structured summary of a pre-consultation's answers and stored flags (fr and en)."""
    row = session.get(Questionnaire, p.questionnaire_id)
    if row is None:
        raise NotFound("Questionnaire introuvable.", "Questionnaire not found.")
    form_fr = questionnaires.form_of(questionnaires.translation(session, row, "fr"))
    form_en = questionnaires.form_of(questionnaires.translation(session, row, "en"))
    sections = structured_summary.build(form_fr, p.answers, p.red_flags, form_en)
    return structured_summary.as_content(sections)


def store_structured(
    session: Session, p: PreConsultation, content: dict[str, Any] | None = None
) -> GeneratedDocument:
    """Build (unless given) and store the structured summary (idempotent: a summary already
    stored for this submission is kept)."""
    existing = summary_document(session, p.id or 0)
    if existing is not None:
        return existing
    content = content if content is not None else structured_content(session, p)
    cited = {link for sec in content["sections"] for s in sec["sentences"] for link in s["sources"]}
    return store_summary(
        session,
        p,
        content=content,
        text=structured_summary.as_text(content),
        model=structured_summary.BUILDER_LABEL,
        prompt_id=structured_summary.BUILDER_ID,
        prompt_version=structured_summary.BUILDER_VERSION,
        prompt_hash=structured_summary.builder_hash(),
        input_refs=sorted(cited),
        timings={"generation_ms": 0, "unsupported": 0},
    )


def has_narrative(document: GeneratedDocument) -> bool:
    return bool(document.content.get("narrative"))


def add_narrative(
    session: Session,
    document: GeneratedDocument,
    *,
    sections: list[dict[str, Any]],
    model: str,
    prompt_id: str,
    prompt_version: int,
    prompt_hash: str,
    unsupported: int,
    generation_ms: float,
) -> bool:
    """Add a model's narrative after the structured sections, never instead of them. Only a
    draft gets it (an approved or rejected summary is the physician's and stays as it is);
    returns whether it was added. A new version and an audit event record it."""
    if document.status != ReviewStatus.draft or has_narrative(document):
        return False
    content = copy.deepcopy(document.content)
    for section in sections:
        section["origin"] = "model"
        section["title"] = f"{NARRATIVE_TITLE} — {section.get('title', '')}"
    content["sections"] = [*content.get("sections", []), *sections]
    content["narrative"] = {"model": model[:128], "unsupported": unsupported}
    document.content = content
    document.text = structured_summary.as_text(content)
    document.model = model[:128]
    document.prompt_id = prompt_id
    document.prompt_version = str(prompt_version)
    document.prompt_hash = prompt_hash
    document.timings = {
        **document.timings,
        "generation_ms": round(generation_ms, 1),
        "unsupported": unsupported,
        "structured": f"{structured_summary.BUILDER_ID}@{structured_summary.BUILDER_VERSION}",
    }
    document.updated_at = utcnow()
    session.add(document)
    versions = session.exec(
        select(DocumentVersion)
        .where(DocumentVersion.document_id == document.id)
        .order_by(col(DocumentVersion.number))
    ).all()
    if len(versions) == 1:
        # Nobody has touched it yet: the generated version is the structured summary and the
        # narrative together (what a review measures its edits against).
        versions[0].text = document.text
        versions[0].content = content
        session.add(versions[0])
    else:
        session.add(
            DocumentVersion(
                document_id=document.id or 0,
                number=len(versions) + 1,
                text=document.text,
                content=content,
                change="narrative",
            )
        )
    audit.record(
        session,
        audit.Actor.system("résumeur"),
        "summary.narrative",
        record_type="generated_document",
        record_id=document.id,
        patient_id=document.patient_id,
        details={"model": model[:64], "prompt": f"{prompt_id}@{prompt_version}"},
    )
    return True


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
