"""Who is booking: what the patient types, and matching it to a record without revealing
whether that person is a patient of the practice.

The identity step does no lookup at all: a code is sent to the email typed, whoever it is,
so its answer and its work are the same for a known and an unknown person. The match is made
only once the code is proven, with the look-alike rules of patient registration (same birth
date, a name in common, first names that agree) plus the proven email being the one on file:
someone who types a patient's name with their own address is never matched to that patient.
"""

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import Field as PField
from sqlmodel import Session

from app.services.core import validation
from app.services.patients.records import fold, possible_duplicates
from models.patients import (
    Email,
    Name,
    Patient,
    PatientCreate,
    PatientInputError,
    Phone,
    RegistrationStatus,
    Sex,
)

# What the patient may get wrong on the identity step. The checks (here and in the patient
# record's types) word it in French; the page speaks the patient's language:
# French sentence -> (the field it is about, English).
MESSAGES: dict[str, tuple[str, str]] = {
    "Adresse e-mail obligatoire.": ("email", "Email address required."),
    "Adresse e-mail invalide.": ("email", "Invalid email address."),
    "Numéro de téléphone obligatoire.": ("phone", "Phone number required."),
    "Numéro de téléphone illisible.": ("phone", "Unreadable phone number."),
    "Numéro de téléphone invalide.": ("phone", "Invalid phone number."),
    "La date de naissance est dans le futur.": (
        "birth_date",
        "The date of birth is in the future.",
    ),
    "La date de naissance est trop ancienne.": ("birth_date", "The date of birth is too far back."),
    "Ce nom ne peut pas être vide.": ("", "This name cannot be empty."),
}


class IdentityInput(BaseModel):
    """Name, birth date, sex, phone and email, typed on the public page."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    birth_name: Name = PField(max_length=100)
    first_name: Name = PField(max_length=100)
    birth_date: date
    sex: Sex
    phone: Phone = None
    email: Email = None

    @model_validator(mode="after")
    def _coherent(self) -> "IdentityInput":
        if not self.email:
            raise PatientInputError("Adresse e-mail obligatoire.")
        if not self.phone:
            raise PatientInputError("Numéro de téléphone obligatoire.")
        if self.birth_date > date.today():
            raise PatientInputError("La date de naissance est dans le futur.")
        if self.birth_date.year < 1890:
            raise PatientInputError("La date de naissance est trop ancienne.")
        return self

    def as_patient(self, language: str) -> PatientCreate:
        return PatientCreate(
            birth_name=self.birth_name,
            first_name=self.first_name,
            birth_date=self.birth_date,
            sex=self.sex,
            phone=self.phone,
            email=self.email,
            language=language if language in ("fr", "en") else "fr",
        )


def match_patient(session: Session, data: PatientCreate) -> Patient | None:
    """The patient on file this proven identity is, or None (a new patient)."""
    email = (data.email or "").casefold()
    if not email:
        return None
    found = [
        p
        for p in possible_duplicates(session, data)
        if p.email and p.email.casefold() == email and fold(p.first_name)
    ]
    if not found:
        return None
    # An active record before a pending one, then the oldest.
    found.sort(key=lambda p: (p.registration_status != RegistrationStatus.active, p.id or 0))
    return found[0]


def identity_errors(language: str, errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The identity step's validation errors as ``{field, message}`` pairs in the page's
    language (``fr`` or ``en``), each tied to the field it is about."""
    out = []
    for error in validation.field_errors(language, errors):
        french = error["message"]
        field, english = MESSAGES.get(french, (error["field"], french))
        out.append(
            {
                "field": error["field"] or field,
                "message": english if language == "en" else french,
            }
        )
    return out


__all__ = ["IdentityInput", "identity_errors", "match_patient"]
