"""Splitting a parsed document into passages that respect its headings and sentences."""

import re
from dataclasses import dataclass
from itertools import groupby

from app.services.knowledge.parsing import ParsedDocument

MAX_CHARS = 800
_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+(?=[«\"(\[]?[A-ZÀ-ÖØ-Þ])")
_ABBREVIATION = re.compile(r"(?:^|\s)(?:M|Mme|Mlle|Dr|Pr|Me|Tél|tél|St|Ste|cf|p|art)\.$")


@dataclass(frozen=True)
class Chunk:
    """One passage of a document: its heading path, its text and its order in the document."""

    position: int
    section: str
    text: str


def split_sentences(text: str) -> list[str]:
    """Sentences, with each line (paragraph, list item, table row) ending one."""
    out: list[str] = []
    for line in text.splitlines():
        parts = [part.strip() for part in _SENTENCE_END.split(line) if part.strip()]
        for n, part in enumerate(parts):
            if n and _ABBREVIATION.search(parts[n - 1]):  # "Dr. Martin" is one sentence
                out[-1] = f"{out[-1]} {part}"
            else:
                out.append(part)
    return out


def _pieces(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than a passage, cut between words."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces, current = [], ""
    for word in sentence.split():
        while len(word) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _pack(sentences: list[str], max_chars: int) -> list[str]:
    """Consecutive sentences up to ``max_chars``; a passage repeats the previous one's last
    sentence when it is short, so that an answer cut in two still reads in one passage."""
    passages: list[list[str]] = []
    current: list[str] = []
    size = 0
    for sentence in (p for s in sentences for p in _pieces(s, max_chars)):
        if current and size + 1 + len(sentence) > max_chars:
            passages.append(current)
            last = current[-1]
            carry = len(last) <= max_chars // 4 and len(last) + 1 + len(sentence) <= max_chars
            current = [last] if carry else []
            size = len(last) if carry else 0
        current.append(sentence)
        size += len(sentence) + (1 if len(current) > 1 else 0)
    if current:
        passages.append(current)
    return [" ".join(p) for p in passages]


def _split_section(paragraphs: list[list[str]], max_chars: int) -> list[str]:
    """A section's passages: the whole section when it fits; else whole paragraphs (or list
    items, table rows) gathered up to ``max_chars``, so that a cut falls where the text
    changes subject, and a paragraph longer than a passage packed sentence by sentence."""
    sentences = [s for paragraph in paragraphs for s in paragraph]
    if len(" ".join(sentences)) <= max_chars:
        return [" ".join(sentences)] if sentences else []
    passages: list[str] = []
    current = ""
    for paragraph in paragraphs:
        text = " ".join(paragraph)
        if len(text) > max_chars:
            if current:
                passages.append(current)
                current = ""
            passages.extend(_pack(paragraph, max_chars))
        elif current and len(current) + 1 + len(text) > max_chars:
            passages.append(current)
            current = text
        else:
            current = f"{current} {text}" if current else text
    if current:
        passages.append(current)
    return passages


def chunk_document(document: ParsedDocument, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """Passages in reading order; a passage never spans two sections, and a long section is
    cut between its paragraphs before its sentences."""
    chunks: list[Chunk] = []
    for heading, group in groupby(document.sections, key=lambda s: s.heading):
        paragraphs = [
            sentences
            for section in group
            for line in section.text.splitlines()
            if (sentences := split_sentences(line))
        ]
        for text in _split_section(paragraphs, max_chars):
            chunks.append(Chunk(position=len(chunks), section=heading, text=text))
    return chunks


def embedding_input(title: str, chunk: Chunk) -> str:
    """The text embedded for a passage: its document title and section give it context."""
    context = " — ".join(part for part in (title, chunk.section) if part)
    return f"{context}\n{chunk.text}" if context else chunk.text
