"""Patients: registration, reading, changes and search, each audited."""

import unicodedata
from datetime import date

from sqlalchemy import or_
from sqlmodel import Session, col, select

from app.services import audit
from app.services.errors import Conflict, NotFound
from models.patients import Patient, PatientCreate, PatientUpdate
from models.types import utcnow


def fold(text: str) -> str:
    """Lower-case text without accents, for accent- and case-insensitive search."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().replace("-", " ").replace("'", " ").split())


def _search_key(patient: Patient) -> str:
    names = [patient.birth_name, patient.used_name or "", patient.first_name]
    return fold(" ".join(n for n in names if n))


def _nir_taken(session: Session, nir: str | None, except_id: int | None = None) -> bool:
    if not nir:
        return False
    query = select(Patient.id).where(Patient.nir == nir)
    if except_id is not None:
        query = query.where(Patient.id != except_id)
    return session.exec(query).first() is not None


def create_patient(session: Session, actor: audit.Actor, data: PatientCreate) -> Patient:
    """Register a patient; a NIR already on file is refused."""
    if _nir_taken(session, data.nir):
        raise Conflict(
            "Un patient avec ce numéro de sécurité sociale existe déjà.",
            "A patient with this social security number already exists.",
        )
    patient = Patient(**data.model_dump())
    patient.search_key = _search_key(patient)
    session.add(patient)
    session.flush()
    audit.record(
        session,
        actor,
        "patient.create",
        record_type="patient",
        record_id=patient.id,
        patient_id=patient.id,
    )
    return patient


def get_patient(session: Session, actor: audit.Actor, patient_id: int) -> Patient:
    """Read one patient's record (audited as a read)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    audit.record(
        session,
        actor,
        "patient.read",
        record_type="patient",
        record_id=patient.id,
        patient_id=patient.id,
    )
    return patient


def update_patient(
    session: Session, actor: audit.Actor, patient_id: int, change: PatientUpdate
) -> Patient:
    """Apply the fields given; the audit event names the fields changed, not their values."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    values = change.model_dump(exclude_unset=True)
    if "nir" in values and _nir_taken(session, values["nir"], except_id=patient_id):
        raise Conflict(
            "Un autre patient a ce numéro de sécurité sociale.",
            "Another patient has this social security number.",
        )
    changed = sorted(k for k, v in values.items() if getattr(patient, k) != v)
    for key in changed:
        setattr(patient, key, values[key])
    if changed:
        patient.search_key = _search_key(patient)
        patient.updated_at = utcnow()
        session.add(patient)
    audit.record(
        session,
        actor,
        "patient.update",
        record_type="patient",
        record_id=patient.id,
        patient_id=patient.id,
        details={"fields": changed},
    )
    return patient


def search_patients(
    session: Session,
    actor: audit.Actor,
    *,
    text: str = "",
    birth_date: date | None = None,
    phone: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[Patient]:
    """Find patients by name words (any order, accents ignored), birth date or phone."""
    query = select(Patient)
    for word in fold(text).split():
        query = query.where(col(Patient.search_key).contains(word))
    if birth_date is not None:
        query = query.where(Patient.birth_date == birth_date)
    if phone:
        digits = "".join(ch for ch in phone if ch.isdigit())
        if digits.startswith("0"):
            digits = digits[1:]
        if digits:
            query = query.where(or_(col(Patient.phone).contains(digits)))
    rows = list(
        session.exec(
            query.order_by(Patient.birth_name, Patient.first_name, Patient.id)
            .offset(offset)
            .limit(limit)
        ).all()
    )
    audit.record(
        session,
        actor,
        "patient.search",
        record_type="patient",
        details={"results": len(rows), "patient_ids": [p.id for p in rows]},
    )
    return rows
