"""Finding a visit type from what a person or an outside client types: code or label.

"Vaccination", "vaccination" and "VACCINATION" name one type, and so does "Bilan de santé"
typed "bilan de sante": an outside MCP client has no list of codes, and a plain consultation
booked instead of a vaccination loses its duration and its questionnaire.
"""

import unicodedata

from sqlmodel import Session

from app.services.core.errors import InvalidInput
from app.services.scheduling.practice_setup import list_visit_types
from models.practice import VisitType


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(plain.replace("-", " ").replace("_", " ").split())


def find_visit_type(session: Session, name: str) -> VisitType:
    """The active visit type whose code or label matches ``name`` (case and accents ignored).

    Unknown names are refused with the list of choices, so the caller can ask again.
    """
    kinds = list_visit_types(session, active_only=True)
    wanted = _folded(name)
    for kind in kinds:
        if wanted in (_folded(kind.code), _folded(kind.label)):
            return kind
    choices = ", ".join(f"{kind.label} ({kind.code})" for kind in kinds) or "aucun"
    raise InvalidInput(
        f"Type de visite inconnu : « {name.strip()} ». Choix possibles : {choices}.",
        f"Unknown visit type: '{name.strip()}'. Choices: {choices}.",
        field="visit_type",
    )
