"""Letter templates as files (``templates/*.j2`` beside this module): a YAML header declaring
the template's structured fields, then Jinja2 text extending the practice letterhead."""

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import BaseLoader, Environment, StrictUndefined, TemplateNotFound

from app.services.core.errors import NotFound

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
LETTERHEAD = "_letterhead.j2"
PARTS = ("letterhead", "recipient", "dateline", "subject", "body", "signature")
MAX_FIELD_CHARS = 300


class LetterTemplateError(ValueError):
    """A template file lacks its header, or its header is malformed."""


@dataclass(frozen=True)
class LetterField:
    """One structured field a template needs (filled by the drafter, edited by the physician)."""

    name: str
    label: str
    label_en: str = ""
    hint: str = ""

    def label_in(self, language: str) -> str:
        return self.label_en if language == "en" and self.label_en else self.label


@dataclass(frozen=True)
class LetterTemplate:
    """A letter template: its id, titles, fields and Jinja2 source (header removed)."""

    id: str
    title: str
    title_en: str
    description: str
    fields: tuple[LetterField, ...] = field(default_factory=tuple)
    source: str = ""

    def title_in(self, language: str) -> str:
        return self.title_en if language == "en" and self.title_en else self.title


@dataclass(frozen=True)
class RenderedLetter:
    """A letter's parts (letterhead, recipient, date, subject, body, signature) and full text."""

    parts: dict[str, str]
    text: str


def split_header(raw: str, name: str) -> tuple[dict[str, Any], str]:
    """The YAML header between ``---`` lines and the template body after it."""
    if not raw.startswith("---\n"):
        return {}, raw
    header, sep, body = raw[4:].partition("\n---\n")
    if not sep:
        raise LetterTemplateError(f"{name}: unterminated '---' header")
    meta = yaml.safe_load(header) or {}
    if not isinstance(meta, dict):
        raise LetterTemplateError(f"{name}: the header must be a mapping")
    return meta, body


def _parse(path: Path) -> LetterTemplate:
    meta, body = split_header(path.read_text(encoding="utf-8"), path.name)
    if meta.get("id") != path.stem or not meta.get("title"):
        raise LetterTemplateError(f"{path.name}: header needs id: {path.stem} and a title")
    fields = tuple(
        LetterField(
            name=str(f["name"]),
            label=str(f.get("label", f["name"])),
            label_en=str(f.get("label_en", "")),
            hint=str(f.get("hint", "")),
        )
        for f in meta.get("fields") or []
    )
    return LetterTemplate(
        id=path.stem,
        title=str(meta["title"]),
        title_en=str(meta.get("title_en", "")),
        description=str(meta.get("description", "")),
        fields=fields,
        source=body,
    )


@lru_cache
def all_templates() -> dict[str, LetterTemplate]:
    """Every letter template, by id (files starting with ``_`` are shared parts)."""
    return {
        p.stem: _parse(p) for p in sorted(TEMPLATES_DIR.glob("*.j2")) if not p.name.startswith("_")
    }


def get_template(template_id: str) -> LetterTemplate:
    template = all_templates().get(template_id)
    if template is None:
        known = ", ".join(all_templates())
        raise NotFound(
            f"Modèle de lettre inconnu : {template_id[:64]} (modèles : {known}).",
            f"Unknown letter template: {template_id[:64]} (templates: {known}).",
        )
    return template


class _FileLoader(BaseLoader):
    """Loads templates from the folder, without their YAML header."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        path = TEMPLATES_DIR / template
        if not path.is_file() or path.parent != TEMPLATES_DIR:
            raise TemplateNotFound(template)
        _, body = split_header(path.read_text(encoding="utf-8"), path.name)
        mtime = path.stat().st_mtime
        return body, str(path), lambda: path.stat().st_mtime == mtime


@lru_cache
def _environment() -> Environment:
    # Plain text, not HTML: the pages escape the result when they show it.
    return Environment(  # noqa: S701
        loader=_FileLoader(),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=False,
    )


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue  # at most one blank line in a row
        out.append(line)
    return "\n".join(out)


def render(template_id: str, values: dict[str, Any]) -> RenderedLetter:
    """Render a letter: each part alone (for the PDF layout) and the whole text."""
    env = _environment()
    template = env.get_template(f"{template_id}.j2")
    letterhead = env.get_template(LETTERHEAD)
    parts = {}
    for name in PARTS:
        block = template.blocks.get(name) or letterhead.blocks[name]
        parts[name] = _tidy("".join(block(template.new_context(values))))
    text = "\n\n".join(parts[name] for name in PARTS if parts[name])
    return RenderedLetter(parts, text)
