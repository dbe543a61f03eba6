"""Quality feedback on generated documents: ratings, rejections and edit distances per model
and prompt version, and a pseudonymised dataset to evaluate a new model before switching."""

import difflib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.documents.pseudonymise import Pseudonymiser
from app.services.preconsultation import summaries
from models.documents import DocumentKind, DocumentVersion, GeneratedDocument, ReviewStatus
from models.questionnaires import PreConsultation

EXPORT_FORMAT = "accueil-feedback/1"


def edit_distance(before: str, after: str) -> int:
    """Words inserted, deleted or replaced to go from one text to the other."""
    a, b = before.split(), after.split()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(
        max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"
    )


@dataclass
class FeedbackRow:
    """One model and prompt version, for one kind of document."""

    kind: str
    model: str
    prompt: str
    documents: int = 0
    approved: int = 0
    rejected: int = 0
    drafts: int = 0
    ratings: list[int] = field(default_factory=list)
    distances: list[int] = field(default_factory=list)  # reviewed documents only
    reasons: list[str] = field(default_factory=list)  # pseudonymised, newest first

    @property
    def mean_rating(self) -> float | None:
        return round(sum(self.ratings) / len(self.ratings), 2) if self.ratings else None

    @property
    def mean_distance(self) -> float | None:
        return round(sum(self.distances) / len(self.distances), 1) if self.distances else None

    @property
    def edited_share(self) -> float | None:
        if not self.distances:
            return None
        return round(sum(1 for d in self.distances if d) / len(self.distances), 2)


def generated_documents(session: Session) -> list[GeneratedDocument]:
    """Every document a model wrote (letters still being written left out), newest first."""
    return list(
        session.exec(
            select(GeneratedDocument)
            .where(GeneratedDocument.model != "")
            .order_by(col(GeneratedDocument.id).desc())
        ).all()
    )


def first_texts(session: Session, ids: list[int]) -> dict[int, str]:
    """The text each document had when the model wrote it (its version 1)."""
    if not ids:
        return {}
    rows = session.exec(
        select(DocumentVersion.document_id, DocumentVersion.text).where(
            col(DocumentVersion.document_id).in_(ids), DocumentVersion.number == 1
        )
    ).all()
    return {document_id: text for document_id, text in rows}


def feedback_table(session: Session, pseudonymiser: Pseudonymiser) -> list[FeedbackRow]:
    """Aggregates per kind, model and prompt version (distances on reviewed documents)."""
    docs = generated_documents(session)
    first = first_texts(session, [d.id or 0 for d in docs])
    rows: dict[tuple[str, str, str], FeedbackRow] = {}
    for d in docs:
        prompt = f"{d.prompt_id} v{d.prompt_version}"
        key = (str(d.kind), d.model, prompt)
        row = rows.setdefault(key, FeedbackRow(*key))
        row.documents += 1
        if d.status == ReviewStatus.approved:
            row.approved += 1
        elif d.status == ReviewStatus.rejected:
            row.rejected += 1
            if d.rejection_reason and len(row.reasons) < 5:
                row.reasons.append(pseudonymiser.text(d.rejection_reason, d.patient_id))
        else:
            row.drafts += 1
        if d.rating is not None:
            row.ratings.append(d.rating)
        if d.status != ReviewStatus.draft:
            row.distances.append(edit_distance(first.get(d.id or 0, d.text), d.text))
    return sorted(rows.values(), key=lambda r: (r.kind, r.model, r.prompt))


def _inputs(session: Session, d: GeneratedDocument) -> dict[str, Any]:
    """What the model was given, so another model can be run on the same inputs."""
    if d.kind == DocumentKind.summary:
        p = session.get(PreConsultation, d.preconsultation_id or 0)
        if p is None:
            return {}
        title, answers = summaries.answers_for_summary(session, p)
        return {
            "questionnaire": title,
            "answers": [
                {"linkId": a.link_id, "question": a.question, "answer": a.answer} for a in answers
            ],
        }
    content = d.content
    summary_text = ""
    if content.get("summary_id"):
        summary = session.get(GeneratedDocument, int(content["summary_id"]))
        summary_text = summary.text if summary is not None else ""
    return {
        "template": d.template,
        "instruction": content.get("instruction", ""),
        "summary": summary_text,
    }


def export_dataset(session: Session, actor: audit.Actor) -> dict[str, Any]:
    """Every generated document with its inputs, first and final texts, review and rating,
    pseudonymised (audited as one export naming the documents)."""
    pseudonymiser = Pseudonymiser.from_session(session)
    docs = generated_documents(session)
    first = first_texts(session, [d.id or 0 for d in docs])
    items = []
    for d in docs:
        pid = d.patient_id
        final = {k: v for k, v in d.content.items() if k not in ("signatory_id", "parts")}
        items.append(
            {
                "id": d.id,
                "kind": str(d.kind),
                "patient": pseudonymiser.code(pid),
                "model": d.model,
                "prompt_id": d.prompt_id,
                "prompt_version": d.prompt_version,
                "prompt_hash": d.prompt_hash,
                "timings": d.timings,
                "status": str(d.status),
                "rating": d.rating,
                "comment": pseudonymiser.text(d.review_comment, pid),
                "rejection_reason": pseudonymiser.text(d.rejection_reason, pid),
                "inputs": pseudonymiser.data(_inputs(session, d), pid),
                "generated_text": pseudonymiser.text(first.get(d.id or 0, ""), pid),
                "final_text": pseudonymiser.text(d.text, pid),
                "final_content": pseudonymiser.data(final, pid),
                "edit_distance": edit_distance(first.get(d.id or 0, d.text), d.text),
            }
        )
    audit.record(
        session,
        actor,
        "feedback.export",
        record_type="generated_document",
        details={"documents": len(items), "pseudonymised": True},
    )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pseudonymised": [
            "names",
            "birth_dates",
            "nir",
            "phone_numbers",
            "emails",
            "addresses",
        ],
        "documents": items,
    }
