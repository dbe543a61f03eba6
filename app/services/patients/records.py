"""Patients: registration, reading, changes and search, each audited."""

import unicodedata
from datetime import date

from sqlalchemy import or_
from sqlmodel import Session, col, select

from app.services.core import audit
from app.services.core.errors import Conflict, NotFound
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


class PossibleDuplicate(Conflict):
    """Patients already on file look like the one being registered."""

    def __init__(self, candidates: list[Patient]) -> None:
        listed = "; ".join(
            f"{p.display_name}, né(e) le {p.birth_date:%d/%m/%Y} (n° {p.id})" for p in candidates
        )
        super().__init__(
            f"Ce patient semble déjà enregistré : {listed}. "
            "Vérifiez, puis confirmez s'il s'agit bien d'une autre personne.",
            f"This patient seems to be on file already: {listed}. "
            "Check, then confirm if this really is another person.",
        )
        self.candidates = candidates


def possible_duplicates(session: Session, data: PatientCreate) -> list[Patient]:
    """Patients born the same day whose names match (birth or usage name, accents ignored)."""
    surnames = {fold(data.birth_name)} | ({fold(data.used_name)} if data.used_name else set())
    first = fold(data.first_name)
    same_day = session.exec(select(Patient).where(Patient.birth_date == data.birth_date)).all()
    return [
        p
        for p in same_day
        if ({fold(p.birth_name)} | ({fold(p.used_name)} if p.used_name else set())) & surnames
        and (fold(p.first_name).startswith(first) or first.startswith(fold(p.first_name)))
    ]


def create_patient(
    session: Session,
    actor: audit.Actor,
    data: PatientCreate,
    *,
    confirm_not_duplicate: bool = False,
) -> Patient:
    """Register a patient; a NIR on file is refused, a look-alike needs a confirmation."""
    if _nir_taken(session, data.nir):
        raise Conflict(
            "Un patient avec ce numéro de sécurité sociale existe déjà.",
            "A patient with this social security number already exists.",
        )
    if not confirm_not_duplicate:
        candidates = possible_duplicates(session, data)
        if candidates:
            raise PossibleDuplicate(candidates)
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
        query = query.where(col(Patient.search_key).contains(word, autoescape=True))
    if birth_date is not None:
        query = query.where(Patient.birth_date == birth_date)
    if phone:
        digits = "".join(ch for ch in phone if ch.isdigit())
        if digits.startswith("0"):
            digits = digits[1:]
        if digits:
            query = query.where(or_(col(Patient.phone).contains(digits, autoescape=True)))
    rows = list(
        session.exec(
            query.order_by(Patient.birth_name, Patient.first_name, col(Patient.id))
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


def display_names(session: Session, patient_ids: set[int]) -> dict[int, str]:
    """Patients' names by id, for lists that show whose record a row belongs to (a sheet,
    a job). Names only: the pages that show them are staff pages that already read those
    records."""
    if not patient_ids:
        return {}
    rows = session.exec(select(Patient).where(col(Patient.id).in_(patient_ids))).all()
    return {p.id: p.display_name for p in rows if p.id is not None}
