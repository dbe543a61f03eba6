"""How the rules assistant says things: dates and times in French, people by their names."""

from datetime import date, datetime
from typing import Any

from app.services.core.calendar_names import MONTHS_FR, WEEKDAYS_FR

CAPABILITIES = (
    "Je sais chercher un patient, trouver des créneaux libres, réserver, déplacer ou annuler un "
    "rendez-vous, dire les prochains rendez-vous d'un patient ou l'agenda d'un médecin, gérer "
    "la liste d'attente, créer la fiche d'un patient, envoyer un lien de pré-consultation et "
    "répondre aux questions pratiques d'après les documents du cabinet."
)


def day_label(day: date) -> str:
    return f"{WEEKDAYS_FR[day.weekday()]} {day.day} {MONTHS_FR[day.month - 1]}"


def moment(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def clock(value: str) -> str:
    found = moment(value)
    return f"{found:%H:%M}" if found else value


def when_label(value: str) -> str:
    """ "jeudi 18 mars à 14:15" for a tool's ISO time."""
    found = moment(value)
    return f"{day_label(found.date())} à {found:%H:%M}" if found else value


def born(patient: dict[str, Any]) -> str:
    day = patient.get("birth_date")
    try:
        return f"{date.fromisoformat(str(day)):%d/%m/%Y}"
    except ValueError:
        return str(day)


def period(first: date, last: date) -> str:
    if first == last:
        return f"le {day_label(first)}"
    return f"du {day_label(first)} au {day_label(last)}"
