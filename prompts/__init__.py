"""Prompts as versioned files; each generated artifact stores the prompt id, version and hash.

A prompt file is Markdown with a small YAML header (``id``, ``version``, ``description``)
between ``---`` lines; the body is a ``str.format`` template.
"""

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROMPTS_DIR = Path(__file__).parent


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready to send, with what identifies it in an artifact's provenance."""

    id: str
    version: int
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class Prompt:
    """A prompt template read from its file."""

    id: str
    version: int
    description: str
    template: str

    def render(self, **values: Any) -> RenderedPrompt:
        return RenderedPrompt(self.id, self.version, self.template.format(**values).strip())


class PromptFileError(ValueError):
    """A prompt file lacks its header or its id does not match its file name."""


@lru_cache
def load_prompt(prompt_id: str) -> Prompt:
    """The prompt stored in ``prompts/<id>.md``."""
    path = PROMPTS_DIR / f"{prompt_id}.md"
    raw = path.read_text(encoding="utf-8")
    _, sep, rest = raw.partition("---\n")
    header, sep2, body = rest.partition("\n---\n")
    if not sep or not sep2:
        raise PromptFileError(f"{path.name}: missing '---' header")
    meta = yaml.safe_load(header) or {}
    if meta.get("id") != prompt_id or not isinstance(meta.get("version"), int):
        raise PromptFileError(f"{path.name}: header needs id: {prompt_id} and an integer version")
    return Prompt(prompt_id, meta["version"], str(meta.get("description", "")), body)
