"""Pseudonymisation: names, birth dates, NIR, phone numbers, e-mails and addresses replaced by
codes, consistently (the same person or value always gets the same code within one run).

Used by the quality export; made for reuse (logs, RGPD exports)::

    p = Pseudonymiser.from_session(session)       # every patient of the practice
    p.text("Mme DURAND, 06 12 34 56 78", patient_id=12)  # -> "Mme [NOM-P0012], [TEL-P0012]"
    scrub("écrire à jean@example.org")              # generic patterns only, no database

What is replaced: for the patient a text is about, every identifier of the record (names in any
case, with or without accents; the birth date in the usual French and ISO forms; NIR, phone,
e-mail, street address, postal code and city); anywhere, any e-mail address, French phone
number or NIR-shaped number, and the full name ("first last" or "last first") of any patient.
A bare surname of another patient is not recognised (it may be an ordinary word).
"""

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from app.services.core.calendar_names import MONTHS_FR
from models.patients import Patient

SEP = r"[\s.\-]?"
EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+", re.UNICODE)
PHONE = re.compile(
    r"(?<![\w+])(?:\+|00)?(?:33"
    + SEP
    + r"\(?0?\)?|0)"
    + SEP
    + r"[1-9](?:"
    + SEP
    + r"\d{2}){4}(?!\d)"
)
NIR = re.compile(r"(?<!\d)[12378]" + r"(?:\s?\d){5}\s?[\dAB](?:\s?\d){6}(?:\s?\d{2})?(?!\d)", re.I)


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _phone_key(text: str) -> str:
    """A phone number reduced to its national significant digits (``612345678``)."""
    digits = _digits(text)
    for prefix in ("0033", "33"):
        if digits.startswith(prefix) and len(digits) > 10:
            digits = digits[len(prefix) :]
    return digits.lstrip("0")


def _nir_key(text: str) -> str:
    return re.sub(r"\s", "", text).upper()[:13]


def _words(value: str) -> str:
    """A name as a regex: any case, parts joined by spaces, hyphens or apostrophes."""
    parts = [re.escape(p) for p in re.split(r"[\s\-']+", value.strip()) if p]
    return r"[\s\-']+".join(parts)


def _name_pattern(value: str) -> str:
    variants = {value, strip_accents(value)}
    body = "|".join(_words(v) for v in sorted(variants, key=len, reverse=True) if v.strip())
    return rf"(?<!\w)(?:{body})(?!\w)"


def _date_forms(day: date) -> list[str]:
    month = MONTHS_FR[day.month - 1]
    forms = {
        f"{day:%d/%m/%Y}",
        f"{day.day}/{day.month}/{day.year}",
        f"{day:%d/%m/%y}",
        f"{day:%Y-%m-%d}",
        f"{day:%d.%m.%Y}",
        f"{day:%d-%m-%Y}",
        f"{day.day} {month} {day.year}",
        f"{day:%d} {month} {day.year}",
        f"{day.day} {strip_accents(month)} {day.year}",
    }
    if day.day == 1:
        forms.add(f"1er {month} {day.year}")
    return sorted(forms, key=len, reverse=True)


@dataclass
class _PatientRules:
    """One patient's compiled identifiers, each with its replacement."""

    rules: list[tuple[re.Pattern[str], str]] = field(default_factory=list)


class Pseudonymiser:
    """Consistent replacement of patients' identifiers in texts and JSON-like data."""

    def __init__(self, patients: Iterable[Patient] = ()) -> None:
        self._patients: dict[int, Patient] = {}
        self._codes: dict[int, str] = {}
        self._by_email: dict[str, str] = {}
        self._by_phone: dict[str, str] = {}
        self._by_nir: dict[str, str] = {}
        self._by_name: dict[str, str] = {}
        self._generic: dict[tuple[str, str], str] = {}
        self._rules: dict[int, _PatientRules] = {}
        self._names: re.Pattern[str] | None = None
        for patient in sorted(patients, key=lambda p: p.id or 0):
            self.add_patient(patient)

    @classmethod
    def from_session(cls, session: Session) -> "Pseudonymiser":
        """Every patient of the practice, coded in id order."""
        return cls(session.exec(select(Patient).order_by(col(Patient.id))).all())

    def add_patient(self, patient: Patient) -> str:
        """Register a patient; returns the patient's code (``P0001``…)."""
        pid = patient.id or 0
        if pid in self._codes:
            return self._codes[pid]
        code = f"P{len(self._codes) + 1:04d}"
        self._codes[pid] = code
        self._patients[pid] = patient
        if patient.email:
            self._by_email[patient.email.casefold()] = code
        if patient.phone:
            self._by_phone[_phone_key(patient.phone)] = code
        if patient.nir:
            self._by_nir[_nir_key(patient.nir)] = code
        for last in {patient.birth_name, patient.used_name or patient.birth_name}:
            for full in (f"{patient.first_name} {last}", f"{last} {patient.first_name}"):
                self._by_name[self._name_key(full)] = code
        self._names = None
        return code

    def code(self, patient_id: int | None) -> str | None:
        """The patient's code, or None for an unknown patient."""
        return self._codes.get(patient_id or 0)

    @staticmethod
    def _name_key(text: str) -> str:
        return " ".join(re.split(r"[\s\-']+", strip_accents(text).casefold()))

    def _full_names(self) -> re.Pattern[str] | None:
        if self._names is None and self._by_name:
            parts: set[str] = set()
            for patient in self._patients.values():
                for last in {patient.birth_name, patient.used_name or patient.birth_name}:
                    for full in (f"{patient.first_name} {last}", f"{last} {patient.first_name}"):
                        parts.add(_words(full))
                        parts.add(_words(strip_accents(full)))
            body = "|".join(sorted(parts, key=len, reverse=True))
            self._names = re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.I)
        return self._names

    def _patient_rules(self, patient_id: int) -> _PatientRules:
        cached = self._rules.get(patient_id)
        if cached is not None:
            return cached
        rules = _PatientRules()
        patient = self._patients.get(patient_id)
        if patient is not None:
            code = self._codes[patient_id]

            def add(pattern: str, replacement: str) -> None:
                rules.rules.append((re.compile(pattern, re.I), replacement))

            if patient.address_line:
                add(_name_pattern(patient.address_line), f"[ADRESSE-{code}]")
            if patient.postal_code:
                add(rf"(?<!\d){re.escape(patient.postal_code)}(?!\d)", f"[CP-{code}]")
            dates = "|".join(re.escape(f) for f in _date_forms(patient.birth_date))
            add(rf"(?<![\w/.\-])(?:{dates})(?![\w/])", f"[NAISSANCE-{code}]")
            names = [
                (patient.used_name, f"[NOM-{code}]"),
                (patient.birth_name, f"[NOM-{code}]"),
                (patient.first_name, f"[PRENOM-{code}]"),
                (patient.city, f"[VILLE-{code}]"),
            ]
            for value, replacement in sorted(
                ((v, r) for v, r in names if v), key=lambda item: -len(item[0] or "")
            ):
                add(_name_pattern(value or ""), replacement)
        self._rules[patient_id] = rules
        return rules

    def _generic_code(self, kind: str, key: str) -> str:
        found = self._generic.get((kind, key))
        if found is None:
            found = f"{kind}-X{sum(1 for k, _ in self._generic if k == kind) + 1:03d}"
            self._generic[(kind, key)] = found
        return found

    def _email(self, match: re.Match[str]) -> str:
        value = match.group(0).casefold()
        code = self._by_email.get(value)
        return f"[EMAIL-{code}]" if code else f"[{self._generic_code('EMAIL', value)}]"

    def _phone(self, match: re.Match[str]) -> str:
        key = _phone_key(match.group(0))
        code = self._by_phone.get(key)
        return f"[TEL-{code}]" if code else f"[{self._generic_code('TEL', key)}]"

    def _nir(self, match: re.Match[str]) -> str:
        key = _nir_key(match.group(0))
        code = self._by_nir.get(key)
        return f"[NIR-{code}]" if code else f"[{self._generic_code('NIR', key)}]"

    def _name(self, match: re.Match[str]) -> str:
        code = self._by_name.get(self._name_key(match.group(0)))
        return f"[PATIENT-{code}]" if code else "[PATIENT]"

    def text(self, text: str, patient_id: int | None = None) -> str:
        """The text with identifiers replaced: the named patient's in every form, any
        e-mail, phone number, NIR and patient full name anywhere."""
        if not text:
            return text
        text = EMAIL.sub(self._email, text)
        text = NIR.sub(self._nir, text)
        text = PHONE.sub(self._phone, text)
        names = self._full_names()
        if names is not None:
            text = names.sub(self._name, text)
        if patient_id is not None:
            for pattern, replacement in self._patient_rules(patient_id).rules:
                text = pattern.sub(replacement, text)
        return text

    def data(self, value: Any, patient_id: int | None = None) -> Any:
        """Every string in a JSON-like value (keys kept) pseudonymised."""
        if isinstance(value, str):
            return self.text(value, patient_id)
        if isinstance(value, list):
            return [self.data(v, patient_id) for v in value]
        if isinstance(value, dict):
            return {k: self.data(v, patient_id) for k, v in value.items()}
        return value


def scrub(text: str) -> str:
    """Generic patterns only (e-mails, phone numbers, NIR), for text with no known patient,
    e.g. a log line."""
    return Pseudonymiser().text(text)
