"""Letters: asking for a draft (a background job), what the drafter is given, storing its
draft, the physician's edits, rendering with the practice letterhead, and the rule that a
letter not approved is never exported or sent."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.jobs import store as jobs
from app.services.core import audit, job_actions
from app.services.core.calendar_names import MONTHS_FR
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.documents import generated as documents
from app.services.documents import letter_templates
from models.appointments import Appointment
from models.documents import DocumentKind, GeneratedDocument, ReviewStatus
from models.jobs import Job, JobStatus
from models.patients import Patient, Sex
from models.practice import Practitioner
from models.types import utcnow
from models.users import Role, User

JOB_KIND = "letters.draft"
PROMPT_ID = "letter_draft"
MAX_INSTRUCTION_CHARS = 2000
MAX_BODY_CHARS = 6000
DRAFT_ATTEMPTS = 5  # a model that is down is retried with back-off


class LetterNotApproved(Conflict):
    """A draft (or a rejected letter) never leaves the box."""

    def __init__(self) -> None:
        super().__init__(
            "Ce courrier n'est pas approuvé par le médecin : un brouillon ne peut être ni "
            "exporté ni envoyé.",
            "This letter has not been approved by the physician: a draft can be neither "
            "exported nor sent.",
        )


class NotALetter(NotFound):
    def __init__(self) -> None:
        super().__init__("Courrier introuvable.", "Letter not found.")


def job_key(document_id: int) -> str:
    return f"letter:draft:{document_id}"


def get_letter(session: Session, document_id: int) -> GeneratedDocument:
    document = session.get(GeneratedDocument, document_id)
    if document is None or document.kind != DocumentKind.letter:
        raise NotALetter()
    return document


def approved_summary(
    session: Session, patient_id: int, summary_id: int | None = None
) -> GeneratedDocument | None:
    """The named approved summary of the patient, else the patient's latest approved one."""
    query = select(GeneratedDocument).where(
        GeneratedDocument.patient_id == patient_id,
        GeneratedDocument.kind == DocumentKind.summary,
        GeneratedDocument.status == ReviewStatus.approved,
    )
    if summary_id is not None:
        found = session.exec(query.where(GeneratedDocument.id == summary_id)).first()
        if found is None:
            raise InvalidInput(
                "Seul un résumé approuvé de ce patient peut servir à un courrier.",
                "Only an approved summary of this patient can be used for a letter.",
            )
        return found
    return session.exec(query.order_by(col(GeneratedDocument.reviewed_at).desc())).first()


def request_letter(
    session: Session,
    actor: audit.Actor,
    *,
    patient_id: int,
    template_id: str,
    instruction: str,
    requested_by: User | None = None,
    appointment_id: int | None = None,
    summary_id: int | None = None,
) -> GeneratedDocument:
    """Create the letter (a draft still being written) and queue its drafting job."""
    template = letter_templates.get_template(template_id)
    instruction = instruction.strip()
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise InvalidInput(
            f"La consigne dépasse {MAX_INSTRUCTION_CHARS} caractères.",
            f"The instruction is longer than {MAX_INSTRUCTION_CHARS} characters.",
        )
    if session.get(Patient, patient_id) is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    if appointment_id is not None:
        appointment = session.get(Appointment, appointment_id)
        if appointment is None or appointment.patient_id != patient_id:
            raise NotFound(
                "Rendez-vous introuvable pour ce patient.", "Appointment not found for patient."
            )
    summary = approved_summary(session, patient_id, summary_id)
    signatory = requested_by.id if requested_by and requested_by.role == Role.physician else None
    refs: list[Any] = [f"patient:{patient_id}", f"template:{template.id}"]
    if summary is not None:
        refs.append(f"summary:{summary.id}")
    if appointment_id is not None:
        refs.append(f"appointment:{appointment_id}")
    if instruction:
        refs.append("instruction")
    document = GeneratedDocument(
        kind=DocumentKind.letter,
        patient_id=patient_id,
        appointment_id=appointment_id,
        template=template.id,
        content={
            "fields": {f.name: "" for f in template.fields},
            "body": "",
            "instruction": instruction,
            "summary_id": summary.id if summary else None,
            "signatory_id": signatory,
        },
        model="",  # set when the draft is written
        prompt_id=PROMPT_ID,
        prompt_version="",
        prompt_hash="",
        input_refs=refs,
    )
    session.add(document)
    session.flush()
    jobs.enqueue(
        session,
        JOB_KIND,
        {"document_id": document.id},
        key=job_key(document.id or 0),
        record_type=documents.RECORD_TYPE,
        record_id=document.id,
        max_attempts=DRAFT_ATTEMPTS,
    )
    audit.record(
        session,
        actor,
        "letter.request",
        record_type=documents.RECORD_TYPE,
        record_id=document.id,
        patient_id=patient_id,
        details={"template": template.id, "summary_id": summary.id if summary else None},
    )
    return document


@dataclass
class LetterState:
    """``pending`` (being written), ``failed`` (with the job to retry) or ``ready``."""

    state: str
    job: Job | None = None


def letter_state(session: Session, document: GeneratedDocument) -> LetterState:
    """The draft's state, read from the document and its job, never guessed."""
    if documents.is_generated(document):
        return LetterState("ready")
    job = jobs.find_job(session, job_key(document.id or 0))
    if job is not None and job.status in {JobStatus.failed, JobStatus.cancelled}:
        return LetterState("failed", job)
    return LetterState("pending", job)


def retry_draft(session: Session, actor: audit.Actor, document_id: int) -> Job:
    """Ask again for a draft whose job failed."""
    document = get_letter(session, document_id)
    job = jobs.find_job(session, job_key(document.id or 0))
    if job is None or documents.is_generated(document):
        raise NotFound("Aucune rédaction à relancer.", "No drafting to retry.")
    return job_actions.retry(session, actor, job.id or 0)


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class DraftingInputs:
    """What the drafting job hands to the drafter (no names, no contact details)."""

    template: letter_templates.LetterTemplate
    facts: dict[str, Any]
    summary: str
    instruction: str


def drafting_inputs(session: Session, document: GeneratedDocument) -> DraftingInputs:
    """The template, the patient's facts (age, sex, the appointment's reason), the approved
    summary's text and the instruction."""
    template = letter_templates.get_template(document.template or "")
    patient = session.get(Patient, document.patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    sex = {Sex.female: "femme", Sex.male: "homme"}.get(patient.sex, "non précisé")
    facts: dict[str, Any] = {"age": age_on(patient.birth_date, date.today()), "sexe": sex}
    if document.appointment_id is not None:
        appointment = session.get(Appointment, document.appointment_id)
        if appointment is not None and appointment.reason:
            facts["motif_du_rendez_vous"] = appointment.reason
    summary_text = ""
    summary_id = document.content.get("summary_id")
    if summary_id:
        summary = session.get(GeneratedDocument, int(summary_id))
        if summary is not None and summary.status == ReviewStatus.approved:
            summary_text = summary.text
    return DraftingInputs(template, facts, summary_text, str(document.content.get("instruction")))


PREFILL_LABEL = "préremplissage du dossier (sans modèle)"
PREFILL_PROMPT_VERSION = 1
# The approved summary's structured sections a letter quotes, by template (in this order).
SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "adressage": ("flags", "symptoms", "treatments", "allergies", "history"),
    "compte_rendu": ("flags", "symptoms", "treatments", "allergies", "history", "lifestyle"),
    "certificat": (),
    "consignes": (),
}


@dataclass(frozen=True)
class Prefill:
    """A letter's fields and body filled from the record, the appointment and the approved
    summary, without any model: the draft when no model serves, the fallback for any field a
    model leaves empty."""

    fields: dict[str, str]
    body: str


def _structured_lines(summary: GeneratedDocument | None, keys: tuple[str, ...]) -> list[str]:
    """The approved summary's lines (as the physician approved them) of the given sections."""
    if summary is None:
        return []
    sections = {str(s.get("key")): s for s in summary.content.get("sections", []) if s.get("key")}
    return [
        str(sentence.get("text", ""))
        for key in keys
        for sentence in sections.get(key, {}).get("sentences", [])
    ]


def _summary_reason(summary: GeneratedDocument | None) -> str:
    """The reason the patient gave, from the approved structured summary (label removed)."""
    for line in _structured_lines(summary, ("reason",)):
        return line.split(" : ", 1)[-1].strip().strip("«» ").strip()
    return ""


def prefill(session: Session, settings: Settings, document: GeneratedDocument) -> Prefill:
    """Fill a letter from what the practice already knows: the patient (age, sex: the letter
    head adds name and birth date), the appointment's date and reason, and the approved
    summary's reason, flags and history where the template needs them."""
    template = letter_templates.get_template(document.template or "")
    patient = session.get(Patient, document.patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    appointment = (
        session.get(Appointment, document.appointment_id) if document.appointment_id else None
    )
    summary_id = document.content.get("summary_id")
    summary = session.get(GeneratedDocument, int(summary_id)) if summary_id else None
    if summary is not None and summary.status != ReviewStatus.approved:
        summary = None
    reason = (appointment.reason if appointment else "") or _summary_reason(summary)
    day = french_date(_local_day(appointment.starts_at, settings.tz)) if appointment else ""
    age = age_on(patient.birth_date, date.today())
    who, this = {
        Sex.female: ("patiente", "cette patiente"),
        Sex.male: ("patient", "ce patient"),
    }.get(patient.sex, ("patient(e)", "ce(tte) patient(e)"))
    values = {
        "motif": reason,
        "objet": reason,
        "titre": f"Suite à votre consultation{f' du {day}' if day else ''}",
        "destinataire": "",
        "conclusion": "",
    }
    fields = {
        f.name: values.get(f.name, "")[: letter_templates.MAX_FIELD_CHARS] for f in template.fields
    }
    lines = _structured_lines(summary, SUMMARY_KEYS.get(template.id, ()))
    if summary is not None and not lines and template.id in ("adressage", "compte_rendu"):
        lines = [line.lstrip("- ") for line in summary.text.splitlines() if line.strip()]
    intro = {
        "adressage": f"Je vous adresse {this} de {age} ans"
        + (f" pour {reason}" if reason else "")
        + (f", vu(e) en consultation le {day}" if day else "")
        + ".",
        "compte_rendu": f"{who.capitalize()} de {age} ans vu(e) en consultation"
        + (f" le {day}" if day else "")
        + (f" pour {reason}" if reason else "")
        + ".",
    }.get(template.id, "")
    parts = [intro] if intro else []
    if lines:
        parts.append(
            "Éléments recueillis avant la consultation :\n"
            + "\n".join(f"- {line}" for line in lines)
        )
    return Prefill(fields, "\n\n".join(parts)[:MAX_BODY_CHARS])


def store_prefilled(
    session: Session, document: GeneratedDocument, settings: Settings
) -> GeneratedDocument:
    """No model serves: the prefilled letter is the draft the physician edits and approves."""
    filled = prefill(session, settings, document)
    return store_draft(
        session,
        document,
        settings,
        body=filled.body,
        fields=filled.fields,
        model=PREFILL_LABEL,
        prompt_version=PREFILL_PROMPT_VERSION,
        prompt_hash="",
        timings={"generation_ms": 0, "prefilled": True},
    )


def store_draft(
    session: Session,
    document: GeneratedDocument,
    settings: Settings,
    *,
    body: str,
    fields: dict[str, str],
    model: str,
    prompt_version: int,
    prompt_hash: str,
    timings: dict[str, Any],
) -> GeneratedDocument:
    """Save the drafter's output as the letter's first version (idempotent)."""
    if documents.is_generated(document):
        return document
    template = letter_templates.get_template(document.template or "")
    content = dict(document.content)
    filled = prefill(session, settings, document).fields
    content["fields"] = {
        f.name: (fields.get(f.name) or filled.get(f.name, ""))[: letter_templates.MAX_FIELD_CHARS]
        for f in template.fields
    }
    content["body"] = body[:MAX_BODY_CHARS]
    document.content = content
    document.model = model[:128]
    document.prompt_version = str(prompt_version)
    document.prompt_hash = prompt_hash
    document.timings = timings
    document.text = render(session, settings, document).text
    documents.add_version(session, document, None, "generated")
    audit.record(
        session,
        audit.Actor.system("rédacteur de courriers"),
        "letter.generate",
        record_type=documents.RECORD_TYPE,
        record_id=document.id,
        patient_id=document.patient_id,
        details={"model": model[:64], "prompt": f"{PROMPT_ID}@{prompt_version}"},
    )
    return document


def french_date(day: date) -> str:
    return f"{day.day}{'er' if day.day == 1 else ''} {MONTHS_FR[day.month - 1]} {day.year}"


def _signatory(session: Session, user_id: int | None) -> dict[str, str]:
    user = session.get(User, user_id) if user_id else None
    if user is None:
        return {"name": "Le médecin", "specialty": "", "rpps": ""}
    practitioner = session.get(Practitioner, user.practitioner_id) if user.practitioner_id else None
    if practitioner is None:
        return {"name": user.full_name, "specialty": "", "rpps": ""}
    return {
        "name": practitioner.display_name,
        "specialty": practitioner.specialty,
        "rpps": practitioner.rpps or "",
    }


def _local_day(moment: datetime | None, tz: ZoneInfo) -> date:
    return (moment or utcnow()).astimezone(tz).date()


def render(
    session: Session, settings: Settings, document: GeneratedDocument
) -> letter_templates.RenderedLetter:
    """The letter with the practice letterhead, its date (the approval's once approved) and
    its signatory; a letter not approved says "BROUILLON"."""
    patient = session.get(Patient, document.patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    approved = document.status == ReviewStatus.approved
    day = _local_day(document.reviewed_at if approved else document.created_at, settings.tz)
    content = document.content
    template = letter_templates.get_template(document.template or "")
    fields = content.get("fields", {})
    values = {
        "practice": {"name": settings.practice_name, "address": settings.practice_address},
        "signatory": _signatory(session, content.get("signatory_id")),
        "patient": {
            "name": f"{patient.first_name} {patient.used_name or patient.birth_name}",
            "birth_date": patient.birth_date.strftime("%d/%m/%Y"),
        },
        "dateline": f"Le {french_date(day)}",
        "fields": {f.name: str(fields.get(f.name, "")) for f in template.fields},
        "body": str(content.get("body", "")),
        "approved": approved,
    }
    return letter_templates.render(template.id, values)


def edit_letter(
    session: Session,
    actor: audit.Actor,
    user: User,
    settings: Settings,
    document_id: int,
    *,
    fields: dict[str, str],
    body: str,
) -> GeneratedDocument:
    """The physician's edit of a draft's fields and body: a new version, audited."""
    documents.require_physician(user)
    document = get_letter(session, document_id)
    documents.ensure_editable(document)
    body = body.strip()
    if not body:
        raise InvalidInput("Le corps du courrier est vide.", "The letter's body is empty.")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput(
            f"Le corps du courrier dépasse {MAX_BODY_CHARS} caractères.",
            f"The letter's body is longer than {MAX_BODY_CHARS} characters.",
        )
    template = letter_templates.get_template(document.template or "")
    old = document.content
    new_fields = {
        f.name: str(fields.get(f.name, old.get("fields", {}).get(f.name, ""))).strip()[
            : letter_templates.MAX_FIELD_CHARS
        ]
        for f in template.fields
    }
    changed = sorted(k for k, v in new_fields.items() if v != old.get("fields", {}).get(k, ""))
    if body != old.get("body", ""):
        changed.append("body")
    if not changed:
        return document
    document.content = {**old, "fields": new_fields, "body": body}
    document.text = render(session, settings, document).text
    version = documents.add_version(session, document, user, "edited")
    documents.record_change(
        session, actor, document, "edit", {"version": version.number, "fields": changed}
    )
    return document


def finalise_approved(
    session: Session, settings: Settings, document: GeneratedDocument, approver: User
) -> None:
    """On approval: the approving physician signs, the date is the approval's, no draft mark."""
    document.content = {**document.content, "signatory_id": approver.id}
    rendered = render(session, settings, document)
    document.content = {**document.content, "parts": rendered.parts}
    document.text = rendered.text


def pdf_parts(
    session: Session, actor: audit.Actor, settings: Settings, document_id: int
) -> tuple[GeneratedDocument, letter_templates.RenderedLetter]:
    """An approved letter's parts for its PDF (audited); a draft is refused with 409."""
    document = get_letter(session, document_id)
    if document.status != ReviewStatus.approved:
        raise LetterNotApproved()
    audit.record(
        session,
        actor,
        "letter.export",
        record_type=documents.RECORD_TYPE,
        record_id=document.id,
        patient_id=document.patient_id,
        details={"format": "pdf"},
    )
    parts = document.content.get("parts")
    if isinstance(parts, dict):  # exactly what was approved
        return document, letter_templates.RenderedLetter(parts, document.text)
    return document, render(session, settings, document)


def letters_for_patient(session: Session, patient_id: int) -> list[GeneratedDocument]:
    return list(
        session.exec(
            select(GeneratedDocument)
            .where(
                GeneratedDocument.patient_id == patient_id,
                GeneratedDocument.kind == DocumentKind.letter,
            )
            .order_by(col(GeneratedDocument.id).desc())
        ).all()
    )
