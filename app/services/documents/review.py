"""The physician's review of generated documents: the summary beside the answers it cites,
sentence edits, approval, rejection with a reason, and a rating. Every change is a version
and an audit event; only physicians may make them."""

import copy
from dataclasses import dataclass, field

from sqlmodel import Session

from app.config.settings import Settings
from app.services.core import audit
from app.services.core.errors import InvalidInput, NotFound
from app.services.documents import generated as documents
from app.services.documents import letters
from app.services.preconsultation import summaries
from models.documents import DocumentKind, GeneratedDocument, ReviewStatus
from models.questionnaires import PreConsultation
from models.types import utcnow
from models.users import User

MAX_SENTENCE_CHARS = 600
MAX_REASON_CHARS = 500
MAX_COMMENT_CHARS = 1000


@dataclass(frozen=True)
class Source:
    """A cited answer: its linkId and its question."""

    link_id: str
    question: str


@dataclass
class SentenceView:
    """One sentence with the answers it cites (only those that exist)."""

    section: int
    index: int
    text: str
    sources: list[Source]
    edited: bool = False

    @property
    def supported(self) -> bool:
        return bool(self.sources)

    @property
    def anchor(self) -> str:
        return f"s-{self.section}-{self.index}"


@dataclass
class SectionView:
    title: str
    sentences: list[SentenceView] = field(default_factory=list)


@dataclass
class SummaryReview:
    """What the review page shows: the sections, the patient's answers, the unsupported count."""

    document: GeneratedDocument
    sections: list[SectionView]
    answers: list[summaries.AnswerText]
    questionnaire: str

    @property
    def unsupported(self) -> int:
        return sum(not s.supported for sec in self.sections for s in sec.sentences)


def summary_review(
    session: Session, actor: audit.Actor, document: GeneratedDocument
) -> SummaryReview:
    """The summary's sentences with their valid sources, beside the answers (audited read)."""
    p = session.get(PreConsultation, document.preconsultation_id or 0)
    if p is None:
        raise NotFound("Pré-consultation introuvable.", "Pre-consultation not found.")
    title, answers = summaries.answers_for_summary(session, p)
    audit.record(
        session,
        actor,
        "preconsultation.read",
        record_type="preconsultation",
        record_id=p.id,
        patient_id=document.patient_id,
    )
    questions = {a.link_id: a.question for a in answers}
    sections = []
    for i, section in enumerate(document.content.get("sections", [])):
        view = SectionView(str(section.get("title", "")))
        for j, sentence in enumerate(section.get("sentences", [])):
            cited = [
                Source(link, questions[link])
                for link in dict.fromkeys(sentence.get("sources", []))
                if link in questions
            ]
            view.sentences.append(
                SentenceView(
                    i, j, str(sentence.get("text", "")), cited, bool(sentence.get("edited"))
                )
            )
        sections.append(view)
    return SummaryReview(document, sections, answers, title)


def edit_sentence(
    session: Session,
    actor: audit.Actor,
    user: User,
    document_id: int,
    *,
    section: int,
    index: int,
    text: str,
) -> GeneratedDocument:
    """Replace one sentence of a draft summary (its sources stay): a new version, audited."""
    documents.require_physician(user)
    document = documents.load(session, document_id)
    if document.kind != DocumentKind.summary:
        raise NotFound("Résumé introuvable.", "Summary not found.")
    documents.ensure_editable(document)
    text = " ".join(text.split())
    if not text:
        raise InvalidInput("La phrase est vide.", "The sentence is empty.")
    if len(text) > MAX_SENTENCE_CHARS:
        raise InvalidInput(
            f"La phrase dépasse {MAX_SENTENCE_CHARS} caractères.",
            f"The sentence is longer than {MAX_SENTENCE_CHARS} characters.",
        )
    content = copy.deepcopy(document.content)
    try:
        if section < 0 or index < 0:
            raise IndexError(section, index)
        sentence = content["sections"][section]["sentences"][index]
    except (KeyError, IndexError, TypeError):
        raise NotFound("Phrase introuvable.", "Sentence not found.") from None
    if sentence.get("text") == text:
        return document
    sentence["text"] = text
    sentence["edited"] = True
    document.content = content
    document.text = documents.summary_text(content)
    version = documents.add_version(session, document, user, "edited")
    documents.record_change(
        session, actor, document, "edit", {"version": version.number, "sentence": [section, index]}
    )
    return document


def approve(
    session: Session, actor: audit.Actor, user: User, settings: Settings, document_id: int
) -> GeneratedDocument:
    """Approve a draft: its text is what the record keeps; a letter is signed and dated."""
    documents.require_physician(user)
    document = documents.load(session, document_id)
    documents.ensure_editable(document)
    document.status = ReviewStatus.approved
    document.reviewer_id = user.id
    document.reviewed_at = utcnow()
    if document.kind == DocumentKind.letter:
        letters.finalise_approved(session, settings, document, user)
    version = documents.add_version(session, document, user, "approved")
    documents.record_change(session, actor, document, "approve", {"version": version.number})
    return document


def reject(
    session: Session, actor: audit.Actor, user: User, document_id: int, *, reason: str
) -> GeneratedDocument:
    """Reject a draft with a reason (kept for quality follow-up, never used as text)."""
    documents.require_physician(user)
    document = documents.load(session, document_id)
    documents.ensure_editable(document)
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput(
            "Indiquez la raison du rejet.", "Give the reason for the rejection.", field="reason"
        )
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(
            f"La raison dépasse {MAX_REASON_CHARS} caractères.",
            f"The reason is longer than {MAX_REASON_CHARS} characters.",
        )
    document.status = ReviewStatus.rejected
    document.reviewer_id = user.id
    document.reviewed_at = utcnow()
    document.rejection_reason = reason
    version = documents.add_version(session, document, user, "rejected")
    documents.record_change(session, actor, document, "reject", {"version": version.number})
    return document


def rate(
    session: Session,
    actor: audit.Actor,
    user: User,
    document_id: int,
    *,
    rating: int,
    comment: str = "",
) -> GeneratedDocument:
    """Rate a generated document from 1 to 5, with an optional comment (any review state)."""
    documents.require_physician(user)
    document = documents.load(session, document_id)
    if not documents.is_generated(document):
        raise documents.StillDrafting()
    if not 1 <= rating <= 5:
        raise InvalidInput("La note va de 1 à 5.", "The rating goes from 1 to 5.", field="rating")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(
            f"Le commentaire dépasse {MAX_COMMENT_CHARS} caractères.",
            f"The comment is longer than {MAX_COMMENT_CHARS} characters.",
        )
    document.rating = rating
    document.review_comment = comment
    version = documents.add_version(session, document, user, f"rated:{rating}")
    documents.record_change(
        session, actor, document, "rate", {"version": version.number, "rating": rating}
    )
    return document
