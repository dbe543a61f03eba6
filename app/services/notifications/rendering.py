"""Rendering patient messages from the template files in ``app/services/notifications/templates``
(``<kind>.<lang>.txt``: blocks ``subject``, ``body`` and ``sms``), French or English."""

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.services.core.calendar_names import MONTHS, WEEKDAYS

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("fr", "en")
_URL = re.compile(r"(https?://[^\s<>\"]+)")


@dataclass(frozen=True)
class RenderedMessage:
    """A message in one language: email subject and bodies, and the SMS text."""

    subject: str
    text: str
    html: str
    sms: str


def language_of(value: str | None) -> str:
    return value if value in LANGUAGES else "fr"


def long_date(moment: datetime, tz: ZoneInfo, language: str) -> str:
    """``lundi 30 mars 2026`` / ``Monday 30 March 2026`` in the practice's time zone."""
    local = moment.astimezone(tz)
    lang = language_of(language)
    weekday, month = WEEKDAYS[lang][local.weekday()], MONTHS[lang][local.month - 1]
    return f"{weekday} {local.day} {month} {local.year}"


def clock(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M")


def short_date(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%d/%m")


@cache
def _text_env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=False,  # noqa: S701 (plain text and SMS, never read as HTML)
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


@cache
def _html_env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _block(template: Any, name: str, context: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(context))).strip()


def _paragraphs(text: str) -> list[list[tuple[str, str]]]:
    """Paragraphs of ``(kind, value)`` pieces: plain text, or a link."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        pieces: list[tuple[str, str]] = []
        for index, part in enumerate(_URL.split(paragraph)):
            if part:
                pieces.append(("link" if index % 2 else "text", part))
        out.append(pieces)
    return out


def render(kind: str, language: str, context: dict[str, Any]) -> RenderedMessage:
    """Render one kind of message; every value in ``context`` is already plain text."""
    lang = language_of(language)
    template = _text_env().get_template(f"{kind}.{lang}.txt")
    values = {**context, "lang": lang}
    subject = " ".join(_block(template, "subject", values).split())
    text = template.render(values).strip() + "\n"
    sms = " ".join(_block(template, "sms", values).split())
    html = (
        _html_env()
        .get_template("_message.html")
        .render(lang=lang, subject=subject, paragraphs=_paragraphs(text))
    )
    return RenderedMessage(subject=subject, text=text, html=html, sms=sms)
