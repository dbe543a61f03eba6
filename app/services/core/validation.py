"""Pydantic validation errors worded for people (and models), French first, then English.

The domain owns this wording so that every face of the app says the same thing about bad
input: the web layer's 422 answers and the MCP tools' argument errors, which may not import
the web layer. The web catalogs serve these sentences as their ``validation.*`` entries.
"""

from collections.abc import Mapping, Sequence
from typing import Any

# pydantic error kind (exact, or prefix when it ends with "*") -> (French, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "missing": ("Champ obligatoire.", "This field is required."),
    "date": ("Date invalide (format AAAA-MM-JJ).", "Invalid date (format YYYY-MM-DD)."),
    "datetime": ("Date et heure invalides.", "Invalid date and time."),
    "int": ("Nombre entier attendu.", "A whole number is expected."),
    "number": ("Nombre attendu.", "A number is expected."),
    "too_long": (
        "Texte trop long (au plus {max} caractères).",
        "Text too long (at most {max} characters).",
    ),
    "too_short": (
        "Texte trop court (au moins {min} caractères).",
        "Text too short (at least {min} characters).",
    ),
    "choice": (
        "Valeur non autorisée. Choix possibles : {choices}.",
        "Value not allowed. Possible values: {choices}.",
    ),
    "extra": ("Champ inconnu.", "Unknown field."),
    "pattern": ("Format invalide.", "Invalid format."),
    "bool": ("Oui ou non attendu.", "Yes or no expected."),
    "range": ("Valeur hors limites.", "Value out of range."),
    "other": ("Valeur invalide.", "Invalid value."),
}
# Where FastAPI found a value, not part of the field's name.
HTTP_LOCATIONS = ("body", "query", "path")
_RANGES = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def message(language: str, key: str, **params: Any) -> str:
    """One validation sentence (English when asked for, French otherwise)."""
    french, english = MESSAGES[key]
    text = english if language == "en" else french
    return text.format(**params) if params else text


def message_key(error: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The ``MESSAGES`` key and parameters that word one pydantic error."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "missing", {}
    if kind.startswith("date"):
        return "date", {}
    if kind.startswith(("datetime", "time")):
        return "datetime", {}
    if kind.startswith("int"):
        return "int", {}
    if kind.startswith(("float", "decimal")):
        return "number", {}
    if kind.startswith("bool"):
        return "bool", {}
    if kind == "string_too_long":
        return "too_long", {"max": ctx.get("max_length", "?")}
    if kind == "string_too_short":
        return "too_short", {"min": ctx.get("min_length", "?")}
    if kind in ("enum", "literal_error"):
        return "choice", {"choices": ctx.get("expected", "")}
    if kind == "extra_forbidden":
        return "extra", {}
    if kind == "string_pattern_mismatch":
        return "pattern", {}
    if kind in _RANGES:
        return "range", {}
    return "other", {}


def error_message(language: str, error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence; a validator's own message is kept as it is."""
    if error.get("type") == "value_error":
        ctx = error.get("ctx") or {}
        return str(ctx.get("error", error.get("msg", "")))
    key, params = message_key(error)
    return message(language, key, **params)


def field_errors(language: str, errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors as ``{field, message}`` pairs in the user's language; the field drops
    FastAPI's location (``body``, ``query``, ``path``)."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in HTTP_LOCATIONS]
        out.append({"field": ".".join(loc), "message": error_message(language, error)})
    return out
