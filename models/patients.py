"""Patients and the validated shapes in which they are created and updated."""

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator
from pydantic import Field as PField
from sqlalchemy import String
from sqlmodel import Field, SQLModel
from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.fr import nir as stdnum_nir

from models.types import UTCDateTime, utcnow


class Sex(StrEnum):
    """Administrative sex as recorded by French health insurance."""

    female = "F"
    male = "M"
    other = "X"


class RegistrationStatus(StrEnum):
    """Whether the practice has checked the record: patients who registered themselves
    online stay ``pending`` until a secretary does."""

    active = "active"
    pending = "pending"


class Patient(SQLModel, table=True):
    """A patient of the practice."""

    __tablename__ = "patients"

    id: int | None = Field(default=None, primary_key=True)
    birth_name: str = Field(max_length=100, index=True)  # nom de naissance
    used_name: str | None = Field(default=None, max_length=100, index=True)  # nom d'usage
    first_name: str = Field(max_length=100)  # prénom
    birth_date: date = Field(index=True)
    sex: Sex = Field(sa_type=String(1))
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164
    email: str | None = Field(default=None, max_length=254)
    address_line: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=100)
    nir: str | None = Field(default=None, max_length=15, unique=True)  # numéro de sécurité sociale
    language: str = Field(default="fr", max_length=5)
    search_key: str = Field(default="", max_length=400, index=True)
    registration_status: RegistrationStatus = Field(
        default=RegistrationStatus.active, sa_type=String(16)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def display_name(self) -> str:
        """Name as the practice writes it: usage name first, birth name in brackets."""
        if self.used_name and self.used_name != self.birth_name:
            return f"{self.used_name} (née {self.birth_name}) {self.first_name}"
        return f"{self.birth_name} {self.first_name}"


class PatientInputError(ValueError):
    """A patient field is invalid; the message is a French sentence for the user."""


def normalize_phone(value: str | None) -> str | None:
    """Parse a phone number (French by default) and return it in E.164 form."""
    if value is None or not value.strip():
        return None
    try:
        parsed = phonenumbers.parse(value, "FR")
    except phonenumbers.NumberParseException as exc:
        raise PatientInputError("Numéro de téléphone illisible.") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise PatientInputError("Numéro de téléphone invalide.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str | None) -> str | None:
    """Check an email address's syntax (no DNS lookup: the box is offline)."""
    if value is None or not value.strip():
        return None
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PatientInputError("Adresse e-mail invalide.") from exc


def normalize_nir(value: str | None) -> str | None:
    """Validate a NIR (13 digits + 2-digit key, Corsica 2A/2B accepted) and compact it."""
    if value is None or not value.strip():
        return None
    try:
        return stdnum_nir.validate(value)
    except StdnumValidationError as exc:
        raise PatientInputError(
            "Numéro de sécurité sociale invalide (13 chiffres et une clé de 2 chiffres)."
        ) from exc


def _clean_name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise PatientInputError("Ce nom ne peut pas être vide.")
    return value


Name = Annotated[str, AfterValidator(_clean_name)]
OptionalName = Annotated[str | None, AfterValidator(lambda v: _clean_name(v) if v else None)]
Phone = Annotated[str | None, AfterValidator(normalize_phone)]
Email = Annotated[str | None, AfterValidator(normalize_email)]
NIR = Annotated[str | None, AfterValidator(normalize_nir)]


def _check_nir_matches(nir: str | None, sex: Sex | None, birth_date: date | None) -> None:
    if not nir:
        return
    if (
        sex in (Sex.male, Sex.female)
        and nir[0] in "12"
        and nir[0] != ("1" if sex == Sex.male else "2")
    ):
        raise PatientInputError("Le NIR ne correspond pas au sexe indiqué.")
    if birth_date is not None and nir[1:3] != f"{birth_date.year % 100:02d}":
        raise PatientInputError("Le NIR ne correspond pas à l'année de naissance.")


class PatientCreate(BaseModel):
    """What is needed to register a patient."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    birth_name: Name = PField(max_length=100)
    used_name: OptionalName = PField(default=None, max_length=100)
    first_name: Name = PField(max_length=100)
    birth_date: date
    sex: Sex
    phone: Phone = None
    email: Email = None
    address_line: str | None = PField(default=None, max_length=200)
    postal_code: str | None = PField(default=None, max_length=10)
    city: str | None = PField(default=None, max_length=100)
    nir: NIR = None
    language: str = PField(default="fr", pattern="^(fr|en)$")

    @model_validator(mode="after")
    def _coherent(self) -> "PatientCreate":
        if self.birth_date > date.today():
            raise PatientInputError("La date de naissance est dans le futur.")
        if self.birth_date.year < 1890:
            raise PatientInputError("La date de naissance est trop ancienne.")
        _check_nir_matches(self.nir, self.sex, self.birth_date)
        return self


class PatientUpdate(BaseModel):
    """A partial change to a patient; fields left out are kept."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    birth_name: Name | None = PField(default=None, max_length=100)
    used_name: OptionalName = PField(default=None, max_length=100)
    first_name: Name | None = PField(default=None, max_length=100)
    birth_date: date | None = None
    sex: Sex | None = None
    phone: Phone = None
    email: Email = None
    address_line: str | None = PField(default=None, max_length=200)
    postal_code: str | None = PField(default=None, max_length=10)
    city: str | None = PField(default=None, max_length=100)
    nir: NIR = None
    language: str | None = PField(default=None, pattern="^(fr|en)$")


class PatientRead(BaseModel):
    """A patient as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    birth_name: str
    used_name: str | None
    first_name: str
    birth_date: date
    sex: Sex
    phone: str | None
    email: str | None
    address_line: str | None
    postal_code: str | None
    city: str | None
    nir: str | None
    language: str
