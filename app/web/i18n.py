"""User-facing text in French (first) and English, and the choice of language per request."""

import json
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request

from app.services.core import validation

LANGUAGES = ("fr", "en")
LANGUAGE_COOKIE = "accueil_lang"
_LOCALES = Path(__file__).parent / "locales"


@cache
def catalog(language: str) -> dict[str, str]:
    """``locales/<lang>.json`` merged with every ``locales/<lang>/*.json`` (one per feature),
    and the ``validation.*`` sentences, which the domain owns (MCP tools word bad arguments
    the same way as the web forms)."""
    merged: dict[str, str] = {
        f"validation.{key}": validation.MESSAGES[key][1 if language == "en" else 0]
        for key in validation.MESSAGES
    }
    merged.update(json.loads((_LOCALES / f"{language}.json").read_text("utf-8")))
    for part in sorted((_LOCALES / language).glob("*.json")):
        merged.update(json.loads(part.read_text("utf-8")))
    return merged


def translate(language: str, key: str, **params: Any) -> str:
    """The text for a key; French when the key is missing in English, the key itself last."""
    text = catalog(language).get(key) or catalog("fr").get(key) or key
    return text.format(**params) if params else text


def request_language(request: Request, default: str = "fr") -> str:
    """``?lang=`` first, then the language cookie, then the browser's preference."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    accept = request.headers.get("accept-language", "")
    for part in accept.split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return default
