"""RGPD rights on one patient: export everything held about them, and erase (anonymise) them
while the appointments stay countable and the append-only audit trail stays coherent."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, SQLModel, col, select

from app.config.settings import Settings
from app.services.assistant import memory as conversation_memory
from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput, NotFound
from app.services.documents import instruction_sheets
from app.services.patients.records import fold
from models.appointments import (
    Appointment,
    AppointmentStatus,
    OfferStatus,
    WaitingListEntry,
    WaitingOffer,
    WaitingStatus,
)
from models.audit import AuditEvent
from models.documents import DocumentVersion, GeneratedDocument
from models.notifications import (
    AppointmentLink,
    MessageStatus,
    NotificationConsent,
    OutboxMessage,
)
from models.patients import Patient
from models.practice import Practitioner
from models.questionnaires import PreConsultation, PreConsultationStatus, Questionnaire
from models.types import utcnow

EXPORT_FORMAT = "accueil-rgpd/1"
ERASED_NAME = "ANONYMISÉ"
ERASED_CANCEL_REASON = "Patient anonymisé (RGPD)"
SECRET_FIELDS = {"token_hash", "nonce", "search_key"}  # never exported: link secrets, indexes


class EraseReason(StrEnum):
    """Why a patient is erased (a code, so that the audit trail holds no free text)."""

    patient_request = "patient_request"  # droit à l'effacement (article 17)
    duplicate = "duplicate"  # fiche en double
    retention_expired = "retention_expired"  # durée de conservation dépassée
    other = "other"


def _json_value(value: Any) -> Any:
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return value


def _row(row: SQLModel) -> dict[str, Any]:
    """A table row as JSON-ready data, without link secrets."""
    # SQLModel gives table models their __table__ at runtime but does not declare it.
    names = [c.key for c in row.__table__.columns]  # type: ignore[attr-defined]
    return {n: _json_value(getattr(row, n)) for n in names if n not in SECRET_FIELDS}


def _patient(session: Session, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    return patient


def is_erased(patient: Patient) -> bool:
    return patient.birth_name == ERASED_NAME


def _appointments(session: Session, patient_id: int) -> list[Appointment]:
    return list(
        session.exec(
            select(Appointment)
            .where(Appointment.patient_id == patient_id)
            .order_by(col(Appointment.starts_at))
        ).all()
    )


def _preconsultations(session: Session, appointment_ids: list[int]) -> list[PreConsultation]:
    if not appointment_ids:
        return []
    return list(
        session.exec(
            select(PreConsultation)
            .where(col(PreConsultation.appointment_id).in_(appointment_ids))
            .order_by(col(PreConsultation.id))
        ).all()
    )


def _documents(session: Session, patient_id: int) -> list[GeneratedDocument]:
    return list(
        session.exec(
            select(GeneratedDocument)
            .where(GeneratedDocument.patient_id == patient_id)
            .order_by(col(GeneratedDocument.id))
        ).all()
    )


def _versions(session: Session, document_ids: list[int]) -> list[DocumentVersion]:
    if not document_ids:
        return []
    return list(
        session.exec(
            select(DocumentVersion)
            .where(col(DocumentVersion.document_id).in_(document_ids))
            .order_by(col(DocumentVersion.document_id), col(DocumentVersion.number))
        ).all()
    )


def _waiting(session: Session, patient_id: int) -> list[WaitingListEntry]:
    return list(
        session.exec(
            select(WaitingListEntry)
            .where(WaitingListEntry.patient_id == patient_id)
            .order_by(col(WaitingListEntry.id))
        ).all()
    )


def export_patient(
    session: Session, actor: audit.Actor, patient_id: int, fmt: str, settings: Settings
) -> dict[str, Any]:
    """Everything held about one patient, as JSON-ready data (audited as an export),
    the assistant's conversations that mention them included."""
    patient = _patient(session, patient_id)
    conversations = conversation_memory.conversations_about(session, settings, patient)
    appointments = _appointments(session, patient_id)
    appointment_ids = [a.id or 0 for a in appointments]
    practitioners = {
        p.id: f"{p.title} {p.first_name} {p.last_name}".strip()
        for p in session.exec(select(Practitioner)).all()
    }
    questionnaires = {
        q.id: {"slug": q.slug, "version": q.version, "title": q.title}
        for q in session.exec(select(Questionnaire)).all()
    }
    documents = _documents(session, patient_id)
    versions = _versions(session, [d.id or 0 for d in documents])
    waiting = _waiting(session, patient_id)
    offers = (
        session.exec(
            select(WaitingOffer).where(col(WaitingOffer.entry_id).in_([w.id for w in waiting]))
        ).all()
        if waiting
        else []
    )
    events = session.exec(
        select(AuditEvent).where(AuditEvent.patient_id == patient_id).order_by(col(AuditEvent.id))
    ).all()
    data = {
        "format": EXPORT_FORMAT,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "patient": _row(patient),
        "erased": is_erased(patient),
        "appointments": [
            {**_row(a), "practitioner": practitioners.get(a.practitioner_id, "")}
            for a in appointments
        ],
        "waiting_list": [_row(w) for w in waiting],
        "waiting_offers": [_row(o) for o in offers],
        "preconsultations": [
            {**_row(p), "questionnaire": questionnaires.get(p.questionnaire_id, {})}
            for p in _preconsultations(session, appointment_ids)
        ],
        "documents": [
            {**_row(d), "versions": [_row(v) for v in versions if v.document_id == d.id]}
            for d in documents
        ],
        "instruction_sheets": [
            _row(sheet) for sheet in instruction_sheets.sheets_for_patient(session, patient_id)
        ],
        "notifications": [
            _row(m)
            for m in session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.patient_id == patient_id)
                .order_by(col(OutboxMessage.id))
            ).all()
        ],
        "notification_consents": [
            _row(c)
            for c in session.exec(
                select(NotificationConsent).where(NotificationConsent.patient_id == patient_id)
            ).all()
        ],
        "assistant_conversations": conversations,
        "audit_events": [_row(e) for e in events],
    }
    audit.record(
        session,
        actor,
        "patient.export",
        record_type="patient",
        record_id=patient_id,
        patient_id=patient_id,
        details={"format": fmt},
    )
    return data


@dataclass(frozen=True)
class EraseOutcome:
    """What the erasure changed (counts only)."""

    patient_id: int
    appointments_kept: int
    appointments_cancelled: int
    preconsultations_cleared: int
    documents_cleared: int
    conversations_deleted: int = 0
    instruction_sheets_cleared: int = 0


def confirmation_matches(patient: Patient, typed: str) -> bool:
    """The admin typed the patient's birth or usage name (case and accents ignored)."""
    names = {fold(patient.birth_name)} | ({fold(patient.used_name)} if patient.used_name else set())
    return bool(typed.strip()) and fold(typed) in names


def erase_patient(
    session: Session,
    actor: audit.Actor,
    patient_id: int,
    *,
    confirmation: str,
    reason: EraseReason,
    settings: Settings,
    now: datetime | None = None,
) -> EraseOutcome:
    """Anonymise a patient: identifiers replaced, free texts removed, future appointments
    cancelled, past ones kept (detached from any identity) for statistics, the assistant's
    conversations that mention the patient deleted; one audit event. When the conversation
    store cannot be reached, nothing is changed (``ConversationStoreUnavailable``)."""
    moment = now or utcnow()
    patient = _patient(session, patient_id)
    if is_erased(patient):
        raise Conflict("Ce patient est déjà anonymisé.", "This patient is already anonymised.")
    if not confirmation_matches(patient, confirmation):
        raise InvalidInput(
            "Pour confirmer, saisissez le nom du patient tel qu'il figure sur sa fiche.",
            "To confirm, type the patient's name as it appears on the record.",
        )
    conversations_deleted = conversation_memory.forget_patient(session, settings, patient)
    patient.birth_name = ERASED_NAME
    patient.used_name = None
    patient.first_name = f"Patient {patient_id}"
    patient.birth_date = date(patient.birth_date.year, 1, 1)
    patient.phone = patient.email = patient.nir = None
    patient.address_line = patient.postal_code = patient.city = None
    patient.search_key = fold(ERASED_NAME)
    patient.updated_at = moment
    session.add(patient)

    appointments = _appointments(session, patient_id)
    cancelled = 0
    for appointment in appointments:
        appointment.reason = appointment.notes = appointment.cancel_reason = ""
        live = appointment.status in (AppointmentStatus.booked, AppointmentStatus.confirmed)
        if live and appointment.starts_at > moment:
            appointment.status = AppointmentStatus.cancelled
            appointment.cancelled_at = moment
            appointment.cancel_reason = ERASED_CANCEL_REASON
            cancelled += 1
        appointment.updated_at = moment
        session.add(appointment)
    appointment_ids = [a.id or 0 for a in appointments]

    preconsultations = _preconsultations(session, appointment_ids)
    for pre in preconsultations:
        pre.answers, pre.response, pre.red_flags = {}, None, []
        if pre.status not in (PreConsultationStatus.submitted, PreConsultationStatus.expired):
            pre.status = PreConsultationStatus.revoked
        pre.updated_at = moment
        session.add(pre)

    documents = _documents(session, patient_id)
    for document in documents:
        document.text, document.content = "", {}
        document.review_comment = document.rejection_reason = ""
        document.updated_at = moment
        session.add(document)
    for version in _versions(session, [d.id or 0 for d in documents]):
        version.text, version.content = "", {}
        session.add(version)

    sheets_cleared = instruction_sheets.erase_patient(session, patient_id)

    waiting = _waiting(session, patient_id)
    for entry in waiting:
        entry.reason = ""
        if entry.status in (WaitingStatus.waiting, WaitingStatus.offered):
            entry.status = WaitingStatus.withdrawn
        entry.updated_at = moment
        session.add(entry)
    if waiting:
        for offer in session.exec(
            select(WaitingOffer).where(
                col(WaitingOffer.entry_id).in_([w.id for w in waiting]),
                WaitingOffer.status == OfferStatus.pending,
            )
        ).all():
            offer.status, offer.token_hash, offer.updated_at = OfferStatus.expired, None, moment
            session.add(offer)

    for message in session.exec(
        select(OutboxMessage).where(OutboxMessage.patient_id == patient_id)
    ).all():
        if message.status == MessageStatus.planned:
            message.status = MessageStatus.cancelled
        message.recipient, message.note, message.last_error = None, "", ""
        message.updated_at = moment
        session.add(message)
    session.exec(
        delete(NotificationConsent).where(col(NotificationConsent.patient_id) == patient_id)
    )
    if appointment_ids:
        session.exec(
            delete(AppointmentLink).where(col(AppointmentLink.appointment_id).in_(appointment_ids))
        )

    outcome = EraseOutcome(
        patient_id=patient_id,
        appointments_kept=len(appointments),
        appointments_cancelled=cancelled,
        preconsultations_cleared=len(preconsultations),
        documents_cleared=len(documents),
        conversations_deleted=conversations_deleted,
        instruction_sheets_cleared=sheets_cleared,
    )
    audit.record(
        session,
        actor,
        "patient.erase",
        record_type="patient",
        record_id=patient_id,
        patient_id=patient_id,
        details={
            "reason": reason.value,
            "appointments_kept": outcome.appointments_kept,
            "appointments_cancelled": cancelled,
            "preconsultations_cleared": outcome.preconsultations_cleared,
            "documents_cleared": outcome.documents_cleared,
            "conversations_deleted": outcome.conversations_deleted,
            "instruction_sheets_cleared": sheets_cleared,
        },
    )
    session.flush()
    return outcome
