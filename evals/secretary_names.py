"""How scenarios name people: patients ("Durand Sophie", "Martin Jean 2001-09-03") and
practitioners ("Dr Claire Martin", "Dr Martin"), matched without accents or case."""

import re
from datetime import date

from app.services.patients.records import fold

TITLES = frozenset({"dr", "docteur", "pr", "professeur"})
BIRTH_DATE = re.compile(r"\s*(\d{4}-\d{2}-\d{2})\s*$")

PatientKey = tuple[str, str, date, str | None]  # birth name, first name, birth date, used name


def split_practitioner_name(name: str) -> tuple[str, str, str]:
    """ "Dr Claire Martin" -> ("Dr", "Claire", "Martin"); the last name may have several words."""
    words = name.split()
    title = words.pop(0) if words and fold(words[0]).rstrip(".") in TITLES else ""
    if len(words) < 2:
        raise ValueError(f"« {name} » : nom de praticien attendu « Dr Prénom Nom »")
    return title or "Dr", words[0], " ".join(words[1:])


def _words(text: str) -> set[str]:
    return {w.rstrip(".") for w in fold(text).split()}


def practitioner_matches(ref: str, name: str) -> bool:
    """Whether ``ref`` names the practitioner called ``name`` (title and first name optional)."""
    wanted = _words(ref) - TITLES
    _, _, last = split_practitioner_name(name)
    return bool(wanted) and wanted <= _words(name) - TITLES and bool(wanted & _words(last))


def split_patient_ref(ref: str) -> tuple[str, date | None]:
    """ "Martin Jean 2001-09-03" -> ("Martin Jean", 2001-09-03)."""
    match = BIRTH_DATE.search(ref)
    if match is None:
        return ref, None
    return ref[: match.start()], date.fromisoformat(match[1])


def patient_matches(ref: str, patient: PatientKey) -> bool:
    """Whether ``ref`` (some of the names, a surname among them, and maybe the birth date)
    names this patient."""
    birth_name, first_name, birth_date, used_name = patient
    names, born = split_patient_ref(ref)
    wanted = _words(names)
    surnames = _words(birth_name) | _words(used_name or "")
    return (
        bool(wanted & surnames)
        and wanted <= surnames | _words(first_name)
        and (born is None or born == birth_date)
    )
