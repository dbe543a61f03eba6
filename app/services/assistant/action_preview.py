"""Plain-French descriptions of the write actions the assistant proposes, so the secretary
confirms what will really happen (names and local times, not ids)."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from app.services.core.calendar_names import MONTHS_FR, WEEKDAYS_FR
from app.services.scheduling import time_expressions
from models.appointments import Appointment
from models.patients import Patient
from models.practice import Practitioner

TITLES = {
    "book_appointment": "Réserver un rendez-vous",
    "move_appointment": "Déplacer un rendez-vous",
    "cancel_appointment": "Annuler un rendez-vous",
    "register_patient": "Enregistrer un nouveau patient",
    "add_to_waiting_list": "Inscrire sur la liste d'attente",
    "send_preconsultation": "Envoyer un lien de pré-consultation",
    "draft_letter": "Demander un brouillon de courrier",
}
LABELS = {
    "patient_id": "Patient",
    "practitioner_id": "Praticien",
    "start": "Début",
    "new_start": "Nouvel horaire",
    "when": "Horaire",
    "appointment_id": "Rendez-vous",
    "reason": "Motif",
    "duration_minutes": "Durée (minutes)",
    "earliest": "À partir du",
    "latest": "Jusqu'au",
    "part_of_day": "Moment",
    "birth_name": "Nom de naissance",
    "used_name": "Nom d'usage",
    "first_name": "Prénom",
    "birth_date": "Date de naissance",
    "sex": "Sexe",
    "phone": "Téléphone",
    "email": "E-mail",
    "questionnaire_slug": "Questionnaire",
    "days": "Validité (jours)",
    "confirm_not_duplicate": "Pas un doublon",
    "template": "Modèle de courrier",
    "instruction": "Consigne",
}
TEMPLATES = {
    "adressage": "lettre d'adressage",
    "certificat": "certificat médical",
    "compte_rendu": "compte-rendu de consultation",
    "consignes": "consignes au patient",
}
PARTS = {"any": "indifférent", "morning": "matin", "afternoon": "après-midi"}


@dataclass
class ActionPreview:
    """What the confirmation card shows for one proposed tool call."""

    name: str
    title: str
    details: list[tuple[str, str]] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def fields(self) -> list[dict[str, Any]]:
        """The arguments as editable fields (name, French label, current value)."""
        return [
            {"name": key, "label": LABELS.get(key, key), "value": value}
            for key, value in self.args.items()
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "details": [list(d) for d in self.details],
            "fields": self.fields,
        }


def long_date(day: date) -> str:
    return f"{WEEKDAYS_FR[day.weekday()]} {day.day} {MONTHS_FR[day.month - 1]} {day.year}"


def local_moment(value: Any, tz: ZoneInfo) -> str:
    """``mardi 16 mars 2027 à 08:50`` for an ISO datetime (naive = practice local time)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    moment = moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)
    return f"{long_date(moment.date())} à {moment:%H:%M}"


def _row_id(value: Any) -> int | None:
    """A tool argument as a row id, or None (the model may send anything)."""
    text = str(value)
    if text.isascii() and text.isdigit() and len(text) < 10:
        return int(text)
    return None


def _patient(session: Session, value: Any) -> str:
    row = _row_id(value)
    patient = session.get(Patient, row) if row is not None else None
    if patient is None:
        return f"patient n° {value} (introuvable)"
    return f"{patient.display_name}, né(e) le {patient.birth_date:%d/%m/%Y}"


def _practitioner(session: Session, value: Any) -> str:
    row = _row_id(value)
    practitioner = session.get(Practitioner, row) if row is not None else None
    return practitioner.display_name if practitioner else f"praticien n° {value} (introuvable)"


def _appointment(session: Session, value: Any, tz: ZoneInfo) -> str:
    row = _row_id(value)
    appointment = session.get(Appointment, row) if row is not None else None
    if appointment is None:
        return f"rendez-vous n° {value} (introuvable)"
    return (
        f"{_patient(session, appointment.patient_id)} — "
        f"{_practitioner(session, appointment.practitioner_id)}, "
        f"{local_moment(appointment.starts_at.isoformat(), tz)}"
    )


def describe(session: Session, name: str, args: dict[str, Any], tz: ZoneInfo) -> ActionPreview:
    """The card for one proposed call: every argument, in words."""
    details: list[tuple[str, str]] = []
    for key, value in args.items():
        if value is None or value == "":
            continue
        label = LABELS.get(key, key)
        if key == "patient_id":
            text = _patient(session, value)
        elif key == "practitioner_id":
            text = _practitioner(session, value)
        elif key == "appointment_id":
            text = _appointment(session, value, tz)
        elif key in {"start", "new_start"}:
            text = local_moment(value, tz)
        elif key == "when":  # the secretary's words: show the time the tool will resolve
            found = time_expressions.parse(str(value), datetime.now(UTC), tz)
            moment = found.instant if found else None
            text = f"{local_moment(moment.isoformat(), tz)} (« {value} »)" if moment else str(value)
        elif key in {"earliest", "latest", "birth_date"}:
            try:
                text = long_date(date.fromisoformat(str(value)))
            except ValueError:
                text = str(value)
        elif key == "part_of_day":
            text = PARTS.get(str(value), str(value))
        elif key == "template":
            text = TEMPLATES.get(str(value), str(value))
        elif isinstance(value, bool):
            text = "oui" if value else "non"
        else:
            text = str(value)
        details.append((label, text))
    return ActionPreview(name, TITLES.get(name, name), details, dict(args))
