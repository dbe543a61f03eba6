"""Patient instruction sheets ("consignes au patient", preparation for an exam): drafted from
the practice's knowledge base, every paragraph citing the passage it quotes, reviewed by a
physician, and only then printed (PDF) or handed to the patient.

Why quoted and not written: the sheet tells a patient what to do, so each paragraph must be
the practice's own text (or the physician's edit of it), traceable to its passage. No language
model reads or writes it: a sentence in the knowledge base that looks like an instruction
("ignore…", "approve…") is quoted as text, and nothing acts on it.

Who: a secretary or a physician drafts one for a patient (optionally for an appointment); only
a physician edits, approves or rejects it; an unapproved sheet never leaves the box (the PDF
is refused with 409). Every step is audited without the sheet's content."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.services.core import audit
from app.services.core.calendar_names import MONTHS_FR
from app.services.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.services.documents.practice_pdf import start_pdf
from app.services.knowledge import library as knowledge
from app.services.notifications import consent as notification_consent
from app.services.notifications import planning as notification_planning
from app.services.notifications import practice_settings
from models.appointments import Appointment
from models.documents import ReviewStatus
from models.instruction_sheets import InstructionSheet
from models.knowledge import IngestionStatus, KnowledgeDocument
from models.notifications import Channel, MessageKind, OutboxMessage
from models.patients import Patient
from models.types import utcnow
from models.users import Role, User

RECORD_TYPE = "instruction_sheet"
MIN_TOPIC_CHARS = 2
MAX_TOPIC_CHARS = 200
MAX_TITLE_CHARS = 200
MAX_PARAGRAPH_CHARS = 2000
MAX_REASON_CHARS = 500
SEARCH_K = 8  # passages read from the knowledge base for one draft
MAX_PARAGRAPHS = 5
NEAR_TIE = 0.015  # a passage of another section this close to the best one is kept too
SECTION_SEPARATOR = " › "  # how the knowledge base joins a passage's heading path

# Topics offered on the drafting form (any other topic can be typed).
SUGGESTED_TOPICS: tuple[tuple[str, str], ...] = (
    ("Prise de sang à jeun", "Fasting blood test"),
    ("Échographie abdominale", "Abdominal ultrasound"),
    ("Préparation à une coloscopie", "Colonoscopy preparation"),
    ("Électrocardiogramme (ECG)", "Electrocardiogram (ECG)"),
    ("Après une vaccination", "After a vaccination"),
    ("Recueil d'urines (ECBU)", "Urine sample"),
    ("Soins d'une plaie suturée", "Care of a stitched wound"),
    ("MAPA : mesure de la tension sur 24 heures", "24-hour blood pressure monitoring"),
)


class SheetNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Fiche de consignes introuvable.", "Instruction sheet not found.")


class PatientStaffOnly(PermissionDenied):
    def __init__(self) -> None:
        super(PermissionDenied, self).__init__(
            "Vous n'avez pas accès à cette action : seuls le secrétariat et les médecins "
            "préparent une fiche de consignes.",
            "You do not have access to this action: only the secretariat and the physicians "
            "prepare an instruction sheet.",
        )


class PhysicianOnly(PermissionDenied):
    def __init__(self) -> None:
        super(PermissionDenied, self).__init__(
            "Vous n'avez pas accès à cette action : seul un médecin modifie, approuve ou rejette "
            "une fiche de consignes.",
            "You do not have access to this action: only a physician edits, approves or "
            "rejects an instruction sheet.",
        )


class SheetNotApproved(Conflict):
    """A draft (or a rejected sheet) never reaches a patient."""

    def __init__(self) -> None:
        super().__init__(
            "Cette fiche n'est pas approuvée par un médecin : elle ne peut être ni imprimée ni "
            "remise au patient.",
            "This sheet has not been approved by a physician: it can be neither printed nor "
            "given to the patient.",
        )


class SheetReviewed(Conflict):
    def __init__(self, status: str) -> None:
        fr = "approuvée" if status == ReviewStatus.approved else "rejetée"
        en = "approved" if status == ReviewStatus.approved else "rejected"
        super().__init__(
            f"Cette fiche est déjà {fr} : elle ne peut plus être modifiée.",
            f"This sheet is already {en}: it can no longer be changed.",
        )


class NothingFound(InvalidInput):
    def __init__(self, topic: str) -> None:
        super().__init__(
            f"Aucun passage de la base de connaissances ne traite de « {topic} » : ajoutez une "
            "fiche au livret du cabinet ou reformulez le sujet.",
            f"No passage of the knowledge base covers '{topic}': add it to the practice "
            "handbook or rephrase the topic.",
            field="topic",
        )


class SourceGone(Conflict):
    def __init__(self, titles: list[str]) -> None:
        names = ", ".join(f"« {t} »" for t in titles)
        super().__init__(
            f"Une source citée n'est plus dans la base de connaissances ({names}) : retirez "
            "le paragraphe ou préparez une nouvelle fiche.",
            f"A cited source is no longer in the knowledge base ({names}): remove the "
            "paragraph or prepare a new sheet.",
        )


@dataclass(frozen=True)
class Citation:
    """Where a paragraph comes from, and whether its passage is still the one quoted."""

    document_id: int
    title: str
    section: str
    position: int
    passage: str
    state: str  # "ok", "changed" (the document has a newer version) or "missing"

    @property
    def link(self) -> str:
        return f"/connaissances/{self.document_id}#c{self.position}"


@dataclass(frozen=True)
class ParagraphView:
    index: int
    heading: str
    text: str
    edited: bool
    citation: Citation


def _require_patient_staff(user: User) -> None:
    if user.role not in (Role.secretary, Role.physician) or not user.is_active:
        raise PatientStaffOnly()


def _require_physician(user: User) -> None:
    if user.role != Role.physician or not user.is_active:
        raise PhysicianOnly()


def get_sheet(session: Session, sheet_id: int) -> InstructionSheet:
    sheet = session.get(InstructionSheet, sheet_id)
    if sheet is None:
        raise SheetNotFound()
    return sheet


def _ensure_draft(sheet: InstructionSheet) -> None:
    if sheet.status != ReviewStatus.draft:
        raise SheetReviewed(sheet.status)


def _draft_under_review(session: Session, user: User, sheet_id: int) -> InstructionSheet:
    """The opening of every review step: a physician, a sheet that exists, still a draft."""
    _require_physician(user)
    sheet = get_sheet(session, sheet_id)
    _ensure_draft(sheet)
    return sheet


def _record(
    session: Session,
    actor: audit.Actor,
    sheet: InstructionSheet,
    action: str,
    details: dict[str, Any] | None = None,
) -> None:
    """The audit event of a step: names the sheet, never its text."""
    audit.record(
        session,
        actor,
        f"instruction_sheet.{action}",
        record_type=RECORD_TYPE,
        record_id=sheet.id,
        patient_id=sheet.patient_id,
        details=details,
    )


def _chosen(passages: list[knowledge.Passage]) -> list[knowledge.Passage]:
    """The passages a sheet quotes: those of the best passage's document and top heading (a
    topic's sub-sections, e.g. before/during/after a colonoscopy), plus near ties from
    elsewhere, in the documents' reading order."""
    if not passages:
        return []
    best = passages[0]
    top = best.section.split(SECTION_SEPARATOR)[0]
    kept = [
        p
        for p in passages
        if (p.document_id == best.document_id and p.section.split(SECTION_SEPARATOR)[0] == top)
        or p.score >= best.score - NEAR_TIE
    ]
    unique = {(p.document_id, p.position): p for p in kept}
    return sorted(unique.values(), key=lambda p: (p.document_id, p.position))[:MAX_PARAGRAPHS]


def _heading(section: str, fallback: str) -> str:
    return section.split(SECTION_SEPARATOR)[-1].strip() or fallback


def draft_sheet(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    user: User,
    *,
    patient_id: int,
    topic: str,
    appointment_id: int | None = None,
) -> InstructionSheet:
    """A draft sheet on ``topic`` for the patient: the knowledge base's passages on it, each
    quoted word for word with its citation. A topic nothing covers is refused (422)."""
    _require_patient_staff(user)
    topic = " ".join(topic.split())
    if not MIN_TOPIC_CHARS <= len(topic) <= MAX_TOPIC_CHARS:
        raise InvalidInput(
            f"Le sujet de la fiche fait de {MIN_TOPIC_CHARS} à {MAX_TOPIC_CHARS} caractères.",
            f"The sheet's topic is {MIN_TOPIC_CHARS} to {MAX_TOPIC_CHARS} characters long.",
            field="topic",
        )
    if session.get(Patient, patient_id) is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    if appointment_id is not None:
        appointment = session.get(Appointment, appointment_id)
        if appointment is None or appointment.patient_id != patient_id:
            raise NotFound(
                "Rendez-vous introuvable pour ce patient.", "Appointment not found for patient."
            )
    passages = _chosen(knowledge.search(session, actor, settings, topic, k=SEARCH_K))
    if not passages:
        raise NothingFound(topic)
    shas = dict(
        session.exec(
            select(KnowledgeDocument.id, KnowledgeDocument.sha256).where(
                col(KnowledgeDocument.id).in_({p.document_id for p in passages})
            )
        ).all()
    )
    paragraphs = [
        {
            "text": p.text,
            "edited": False,
            "source": {
                "document_id": p.document_id,
                "sha256": shas.get(p.document_id, ""),
                "title": p.title,
                "section": p.section,
                "position": p.position,
                "passage": p.text,
            },
        }
        for p in passages
    ]
    sheet = InstructionSheet(
        patient_id=patient_id,
        appointment_id=appointment_id,
        topic=topic,
        title=topic[:1].upper() + topic[1:],
        paragraphs=paragraphs,
        status=ReviewStatus.draft,
        created_by_id=user.id,
    )
    session.add(sheet)
    session.flush()
    _record(
        session,
        actor,
        sheet,
        "draft",
        {
            "paragraphs": len(paragraphs),
            "sources": sorted({p.document_id for p in passages}),
        },
    )
    return sheet


def read_sheet(session: Session, actor: audit.Actor, sheet_id: int) -> InstructionSheet:
    """One sheet, its read audited."""
    sheet = get_sheet(session, sheet_id)
    _record(session, actor, sheet, "read")
    return sheet


def citations(session: Session, sheet: InstructionSheet) -> list[ParagraphView]:
    """The paragraphs with their citations, each checked against the knowledge base's
    documents: still there (``ok``), replaced by a newer version (``changed``) or gone."""
    sources = [p.get("source", {}) for p in sheet.paragraphs]
    ids = {int(s.get("document_id", 0)) for s in sources}
    current = {
        row.id: row
        for row in session.exec(
            select(KnowledgeDocument).where(col(KnowledgeDocument.id).in_(ids))
        ).all()
    }
    views = []
    for index, paragraph in enumerate(sheet.paragraphs):
        source = paragraph.get("source", {})
        document = current.get(int(source.get("document_id", 0)))
        if document is None or document.status != IngestionStatus.indexed:
            state = "missing"
        elif document.sha256 != source.get("sha256"):
            state = "changed"
        else:
            state = "ok"
        section = str(source.get("section", ""))
        views.append(
            ParagraphView(
                index=index,
                heading=_heading(section, sheet.title),
                text=str(paragraph.get("text", "")),
                edited=bool(paragraph.get("edited")),
                citation=Citation(
                    document_id=int(source.get("document_id", 0)),
                    title=str(source.get("title", "")),
                    section=section,
                    position=int(source.get("position", 0)),
                    passage=str(source.get("passage", "")),
                    state=state,
                ),
            )
        )
    return views


def _paragraph(sheet: InstructionSheet, index: int) -> dict[str, Any]:
    if not 0 <= index < len(sheet.paragraphs):
        raise NotFound("Paragraphe introuvable.", "Paragraph not found.")
    return dict(sheet.paragraphs[index])


def _saved(session: Session, sheet: InstructionSheet) -> None:
    sheet.version += 1
    sheet.updated_at = utcnow()
    session.add(sheet)
    session.flush()


def edit_paragraph(
    session: Session, actor: audit.Actor, user: User, sheet_id: int, index: int, text: str
) -> InstructionSheet:
    """The physician's wording of one paragraph; its citation (and the passage quoted) stays."""
    sheet = _draft_under_review(session, user, sheet_id)
    paragraph = _paragraph(sheet, index)
    text = "\n".join(" ".join(line.split()) for line in text.strip().splitlines()).strip()
    if not text:
        raise InvalidInput("Le paragraphe est vide.", "The paragraph is empty.", field="text")
    if len(text) > MAX_PARAGRAPH_CHARS:
        raise InvalidInput(
            f"Le paragraphe dépasse {MAX_PARAGRAPH_CHARS} caractères.",
            f"The paragraph is longer than {MAX_PARAGRAPH_CHARS} characters.",
            field="text",
        )
    if text == paragraph.get("text"):
        return sheet
    paragraph["text"] = text
    paragraph["edited"] = text != paragraph.get("source", {}).get("passage")
    sheet.paragraphs = [*sheet.paragraphs[:index], paragraph, *sheet.paragraphs[index + 1 :]]
    _saved(session, sheet)
    _record(session, actor, sheet, "edit", {"paragraph": index, "version": sheet.version})
    return sheet


def remove_paragraph(
    session: Session, actor: audit.Actor, user: User, sheet_id: int, index: int
) -> InstructionSheet:
    """Leave a paragraph out of the sheet (at least one stays)."""
    sheet = _draft_under_review(session, user, sheet_id)
    _paragraph(sheet, index)
    if len(sheet.paragraphs) == 1:
        raise Conflict(
            "Une fiche garde au moins un paragraphe : rejetez-la plutôt.",
            "A sheet keeps at least one paragraph: reject it instead.",
        )
    sheet.paragraphs = [p for i, p in enumerate(sheet.paragraphs) if i != index]
    _saved(session, sheet)
    _record(session, actor, sheet, "remove", {"paragraph": index, "version": sheet.version})
    return sheet


def edit_title(
    session: Session, actor: audit.Actor, user: User, sheet_id: int, title: str
) -> InstructionSheet:
    sheet = _draft_under_review(session, user, sheet_id)
    title = " ".join(title.split())
    if not title or len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(
            f"Le titre fait de 1 à {MAX_TITLE_CHARS} caractères.",
            f"The title is 1 to {MAX_TITLE_CHARS} characters long.",
            field="title",
        )
    if title != sheet.title:
        sheet.title = title
        _saved(session, sheet)
        _record(session, actor, sheet, "edit", {"title": True, "version": sheet.version})
    return sheet


def sheet_text(session: Session, sheet: InstructionSheet) -> str:
    """The sheet as plain text, each paragraph followed by its source."""
    parts = [sheet.title, ""]
    for view in citations(session, sheet):
        source = f"[Source : {view.citation.title} — {view.citation.section}]"
        parts += [view.heading, view.text, source, ""]
    return "\n".join(parts).strip()


def approve(session: Session, actor: audit.Actor, user: User, sheet_id: int) -> InstructionSheet:
    """A physician approves the sheet as it reads now; a paragraph whose source left the
    knowledge base must be removed first."""
    sheet = _draft_under_review(session, user, sheet_id)
    missing = [v.citation.title for v in citations(session, sheet) if v.citation.state == "missing"]
    if missing:
        raise SourceGone(sorted(set(missing)))
    sheet.status = ReviewStatus.approved
    sheet.reviewer_id = user.id
    sheet.reviewed_at = utcnow()
    sheet.approved_text = sheet_text(session, sheet)
    _saved(session, sheet)
    _record(session, actor, sheet, "approve", {"version": sheet.version})
    return sheet


def reject(
    session: Session, actor: audit.Actor, user: User, sheet_id: int, reason: str
) -> InstructionSheet:
    sheet = _draft_under_review(session, user, sheet_id)
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput(
            "Indiquez la raison du rejet.", "Give the reason for the rejection.", field="reason"
        )
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(
            f"La raison dépasse {MAX_REASON_CHARS} caractères.",
            f"The reason is longer than {MAX_REASON_CHARS} characters.",
            field="reason",
        )
    sheet.status = ReviewStatus.rejected
    sheet.reviewer_id = user.id
    sheet.reviewed_at = utcnow()
    sheet.rejection_reason = reason
    _saved(session, sheet)
    _record(session, actor, sheet, "reject", {"version": sheet.version})
    return sheet


def sheet_patient(session: Session, sheet: InstructionSheet) -> Patient | None:
    """The patient a sheet is for (the sheet page's heading)."""
    return session.get(Patient, sheet.patient_id)


def sheet_people(session: Session, sheet: InstructionSheet) -> dict[int, str]:
    """The staff members named on a sheet (who drafted it, who reviewed it), by id."""
    people: dict[int, str] = {}
    for uid in {sheet.created_by_id, sheet.reviewer_id}:
        person = session.get(User, uid) if uid else None
        if person is not None and person.id is not None:
            people[person.id] = person.full_name
    return people


def list_sheets(
    session: Session, *, status: str | None = None, limit: int = 50
) -> list[InstructionSheet]:
    query = select(InstructionSheet)
    if status is not None:
        query = query.where(InstructionSheet.status == status)
    return list(session.exec(query.order_by(col(InstructionSheet.id).desc()).limit(limit)).all())


def sheets_for_patient(session: Session, patient_id: int) -> list[InstructionSheet]:
    return list(
        session.exec(
            select(InstructionSheet)
            .where(InstructionSheet.patient_id == patient_id)
            .order_by(col(InstructionSheet.id).desc())
        ).all()
    )


def erase_patient(session: Session, patient_id: int) -> int:
    """RGPD erasure: the patient's sheets keep their place (statistics) but lose their text,
    which a physician may have adapted to the patient. Returns how many were cleared."""
    sheets = sheets_for_patient(session, patient_id)
    for sheet in sheets:
        sheet.paragraphs, sheet.approved_text, sheet.rejection_reason = [], "", ""
        sheet.updated_at = utcnow()
        session.add(sheet)
    return len(sheets)


def _french_date(day: date) -> str:
    return f"{day.day}{'er' if day.day == 1 else ''} {MONTHS_FR[day.month - 1]} {day.year}"


LABELS = {
    "fr": {
        "for": "Consignes pour",
        "born": "né(e) le",
        "source": "Source",
        "approved": "Fiche relue et approuvée par {name} le {day}.",
        "doubt": "En cas de doute, appelez le cabinet. En cas d'urgence, appelez le 15.",
    },
    "en": {
        "for": "Instructions for",
        "born": "born",
        "source": "Source",
        "approved": "Sheet reviewed and approved by {name} on {day}.",
        "doubt": "If in doubt, call the practice. In an emergency, call 15.",
    },
}


def sheet_pdf(session: Session, actor: audit.Actor, settings: Settings, sheet_id: int) -> bytes:
    """The approved sheet as a PDF with the practice letterhead, the patient's name and each
    paragraph's source (audited); a draft or a rejected sheet is refused with 409."""
    sheet = get_sheet(session, sheet_id)
    if sheet.status != ReviewStatus.approved:
        raise SheetNotApproved()
    patient = session.get(Patient, sheet.patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    reviewer = session.get(User, sheet.reviewer_id) if sheet.reviewer_id else None
    labels = LABELS["en" if patient.language == "en" else "fr"]
    reviewed = (sheet.reviewed_at or utcnow()).astimezone(settings.tz).date()
    pdf, font, clean = start_pdf(practice=settings.practice_name, title=sheet.title)
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=22)
    pdf.add_page()

    def block(text: str, *, size: float = 10.5, style: str = "", grey: int = 0) -> None:
        if not text:
            return
        pdf.set_text_color(grey)
        pdf.set_font(font.family, style, size)
        pdf.multi_cell(0, size * 0.5, clean(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)

    block(settings.practice_name, size=13, style="B")
    block(settings.practice_address, size=9.5)
    pdf.set_draw_color(60)
    pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.w - pdf.r_margin, pdf.get_y() + 2)
    pdf.ln(8)
    block(sheet.title, size=14, style="B")
    name = f"{patient.first_name} {patient.used_name or patient.birth_name}"
    born = patient.birth_date.strftime("%d/%m/%Y")
    block(f"{labels['for']} {name} ({labels['born']} {born})", size=10.5)
    pdf.ln(4)
    for view in citations(session, sheet):
        block(view.heading, size=11.5, style="B")
        block(view.text)
        block(
            f"{labels['source']} : {view.citation.title} — {view.citation.section}",
            size=8.5,
            grey=110,
        )
        pdf.ln(3)
    pdf.ln(4)
    reviewer_name = reviewer.full_name if reviewer else ""
    block(labels["approved"].format(name=reviewer_name, day=_french_date(reviewed)), size=9.5)
    block(labels["doubt"], size=9.5, style="B")
    _record(session, actor, sheet, "export", {"format": "pdf"})
    return bytes(pdf.output())


class CannotEmail(Conflict):
    """The sheet cannot go to the patient by email (say why, so the secretary can act)."""


def sendings(session: Session, sheet_id: int) -> list[OutboxMessage]:
    """The outbox messages that carried (or will carry) this sheet, newest first."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.instruction_sheet_id == sheet_id)
            .order_by(col(OutboxMessage.id).desc())
        ).all()
    )


def send_to_patient(
    session: Session,
    actor: audit.Actor,
    settings: Settings,
    user: User,
    sheet_id: int,
    *,
    now: datetime | None = None,
) -> OutboxMessage:
    """Queue the approved sheet for its patient by email, through the notifications outbox
    (text rendered and PDF attached when it is sent). Refused (409) before approval, when
    email is off, when the patient has no address or refused email. Sending the same version
    again returns the message already queued (or sent); a failed one is retried from the
    outbox page."""
    _require_patient_staff(user)
    sheet = get_sheet(session, sheet_id)
    if sheet.status != ReviewStatus.approved or not sheet.approved_text:
        raise SheetNotApproved()
    patient = session.get(Patient, sheet.patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    if not practice_settings.current(session).email_enabled:
        raise CannotEmail(
            "L'envoi des e-mails aux patients est désactivé dans les réglages des notifications.",
            "Emails to patients are turned off in the notification settings.",
        )
    if not patient.email:
        raise CannotEmail(
            "Ce patient n'a pas d'adresse e-mail : ajoutez-la sur sa fiche ou imprimez la fiche.",
            "This patient has no email address: add it to the record or print the sheet.",
        )
    if not notification_consent.allowed(session, sheet.patient_id, Channel.email):
        raise CannotEmail(
            "Ce patient a refusé les e-mails du cabinet : remettez-lui la fiche imprimée.",
            "This patient declined emails from the practice: hand them the printed sheet.",
        )
    message = notification_planning.plan_message(
        session,
        key=notification_planning.message_key(
            MessageKind.instructions, Channel.email, sheet.id, f"v{sheet.version}"
        ),
        kind=MessageKind.instructions,
        channel=Channel.email,
        planned_at=now or utcnow(),
        patient_id=sheet.patient_id,
    )
    if message.instruction_sheet_id is None:
        message.instruction_sheet_id = sheet.id
        session.add(message)
        session.flush()
    _record(
        session,
        actor,
        sheet,
        "send",
        {"message_id": message.id, "channel": str(Channel.email), "version": sheet.version},
    )
    return message


def can_be_sent(sheet: InstructionSheet) -> bool:
    return sheet.status == ReviewStatus.approved and bool(sheet.approved_text)
