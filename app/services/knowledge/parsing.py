"""Text and headings out of uploaded practice documents: PDF, DOCX, Markdown, text and HTML."""

import io
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

from app.services.core.errors import InvalidInput

if TYPE_CHECKING:  # the parsers are imported lazily: they are heavy and only needed on upload
    from docx.document import Document as DocxDocument
    from docx.table import Table
    from docx.text.paragraph import Paragraph
    from pypdf import PdfReader

MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
}
ACCEPTED = "PDF, Word (.docx), Markdown (.md), texte (.txt), HTML"
SECTION_SEPARATOR = " › "
MAX_PDF_PAGES = 2000
DOCX_MAX_UNCOMPRESSED = 100 * 1024 * 1024  # bytes, all members together
DOCX_MAX_RATIO = 100  # uncompressed / compressed: text XML stays far below
DOCX_MAX_MEMBERS = 2000
_BINARY_MAGIC = (b"%PDF-", b"PK\x03\x04", b"\x7fELF", b"MZ", b"\x89PNG", b"\xff\xd8\xff", b"GIF8")


class InvalidDocument(InvalidInput):
    """The file cannot be read as a practice document."""


class DocumentTooLarge(InvalidDocument):
    status_code = 413


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path (``""`` before any heading)."""

    heading: str
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    """What a document says: its title and its text section by section."""

    title: str
    media_type: str
    sections: list[Section]


def safe_filename(name: str) -> str:
    """The uploaded name if it is a plain file name with an accepted extension."""
    cleaned = unicodedata.normalize("NFC", (name or "").strip())
    if (
        not cleaned
        or len(cleaned) > 255
        or any(ch in cleaned for ch in "/\\\x00")
        or any(unicodedata.category(ch) == "Cc" for ch in cleaned)
        or cleaned.startswith(".")
        or ".." in PurePath(cleaned).parts
    ):
        raise InvalidDocument(
            "Nom de fichier invalide : donnez un nom simple, sans chemin ni « ../ ».",
            "Invalid file name: use a plain name, without a path or '../'.",
        )
    if PurePath(cleaned).suffix.lower() not in MEDIA_TYPES:
        raise InvalidDocument(
            f"Format non pris en charge. Formats acceptés : {ACCEPTED}.",
            "Unsupported format. Accepted formats: PDF, Word (.docx), Markdown, text, HTML.",
        )
    return cleaned


def check_size(size: int, max_bytes: int) -> None:
    """Refuse empty files and files over the upload limit."""
    if size == 0:
        raise InvalidDocument("Le fichier est vide.", "The file is empty.")
    if size > max_bytes:
        limit = max_bytes / 1024 / 1024
        raise DocumentTooLarge(
            f"Fichier trop volumineux : {limit:g} Mo au plus.",
            f"File too large: {limit:g} MB at most.",
        )


def parse_document(filename: str, content: bytes, *, max_bytes: int) -> ParsedDocument:
    """Check the name, size and real content type, then extract the title and sections."""
    name = safe_filename(filename)
    check_size(len(content), max_bytes)
    suffix = PurePath(name).suffix.lower()
    parser = _PARSERS[suffix]
    title, sections = parser(content)
    sections = [s for s in (_clean_section(s) for s in sections) if s.text]
    return ParsedDocument(
        title=_clean_line(title)[:200] or PurePath(name).stem[:200],
        media_type=MEDIA_TYPES[suffix],
        sections=sections,
    )


_TEXT_KINDS = {".md": "Markdown", ".markdown": "Markdown", ".txt": "texte"}


def check_upload(filename: str, content: bytes, *, max_bytes: int) -> str:
    """The checks quick enough for the upload request (name, size, real type, a DOCX that
    would inflate out of proportion); reading the text is the indexing job's. Returns the
    checked file name."""
    name = safe_filename(filename)
    check_size(len(content), max_bytes)
    suffix = PurePath(name).suffix.lower()
    if suffix == ".pdf":
        if not content[:1024].lstrip().startswith(b"%PDF-"):
            raise _mismatch("PDF")
    elif suffix == ".docx":
        _check_zip(content)
    elif suffix in _TEXT_KINDS:
        _decode_text(content, _TEXT_KINDS[suffix])
    else:
        text = _decode_text(content, "HTML")
        if not _HTML_TAG.search(text):
            raise _mismatch("HTML")
    return name


def _mismatch(kind: str) -> InvalidDocument:
    return InvalidDocument(
        f"Le contenu du fichier ne correspond pas à un document {kind} : "
        "vérifiez le fichier ou son extension.",
        f"The file's content is not a {kind} document: check the file or its extension.",
    )


def _unreadable(kind: str) -> InvalidDocument:
    return InvalidDocument(
        f"Document {kind} illisible ou endommagé.", f"Unreadable or damaged {kind} document."
    )


def _clean_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00ad", "")).strip()


def _clean_section(section: Section) -> Section:
    lines = [_clean_line(line) for line in section.text.splitlines()]
    return Section(_clean_line(section.heading), "\n".join(line for line in lines if line))


def _decode_text(content: bytes, kind: str) -> str:
    """UTF-8 (or Windows-1252) text; binary content is refused."""
    if content.startswith(_BINARY_MAGIC) or b"\x00" in content[:8192]:
        raise _mismatch(kind)
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return content.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise _mismatch(kind) from exc


class _Outline:
    """Collects sections while walking a document's blocks in order."""

    def __init__(self) -> None:
        self.title = ""
        self.path: list[tuple[int, str]] = []
        self.sections: list[Section] = []
        self.lines: list[str] = []
        self.title_level: int | None = None

    def heading(self, level: int, text: str) -> None:
        text = _clean_line(text)
        if not text:
            return
        self.flush()
        if not self.title and not self.sections and self.title_level is None and level == 1:
            self.title, self.title_level = text, level
            return
        self.path = [(lvl, t) for lvl, t in self.path if lvl < level] + [(level, text)]

    def text(self, text: str) -> None:
        if text.strip():
            self.lines.append(text.strip())

    def flush(self) -> None:
        if self.lines:
            heading = SECTION_SEPARATOR.join(t for _, t in self.path)
            self.sections.append(Section(heading, "\n".join(self.lines)))
            self.lines = []


def _parse_markdown(content: bytes) -> tuple[str, list[Section]]:
    from markdown_it import MarkdownIt

    text = _decode_text(content, "Markdown")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    outline = _Outline()
    heading_level: int | None = None
    for token in tokens:
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "heading_close":
            heading_level = None
        elif token.type == "inline":
            plain = "".join(
                child.content
                if child.type in ("text", "code_inline")
                else "\n"
                if child.type in ("softbreak", "hardbreak")
                else ""
                for child in token.children or []
            )
            if heading_level is not None:
                outline.heading(heading_level, plain)
            else:
                outline.text(plain)
        elif token.type in ("fence", "code_block"):
            outline.text(token.content)
    outline.flush()
    return outline.title, outline.sections


def _parse_text(content: bytes) -> tuple[str, list[Section]]:
    text = _decode_text(content, "texte")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    title = ""
    first = paragraphs[0] if paragraphs else ""
    if (
        len(paragraphs) > 1
        and "\n" not in first
        and len(first) <= 120
        and not first.endswith((".", "!", "?", ":", ";"))
    ):
        title, paragraphs = first, paragraphs[1:]  # a short first line is the title
    return title, [Section("", p) for p in paragraphs]


_HTML_TAG = re.compile(r"<\s*(html|body|head|p|h[1-6]|div|ul|ol|table)\b", re.IGNORECASE)
_HTML_BLOCKS = ("p", "li", "td", "th", "pre", "blockquote", "dt", "dd", "figcaption", "caption")


def _parse_html(content: bytes) -> tuple[str, list[Section]]:
    from bs4 import BeautifulSoup

    text = _decode_text(content, "HTML")
    if not _HTML_TAG.search(text):
        raise _mismatch("HTML")
    soup = BeautifulSoup(text, "lxml")
    for tag in soup(["script", "style", "noscript", "template", "nav", "iframe", "svg"]):
        tag.decompose()
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    outline = _Outline()
    root = soup.body or soup
    for element in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", *_HTML_BLOCKS]):
        if element.find_parent(_HTML_BLOCKS):
            continue  # its text is read with the enclosing block
        if element.name.startswith("h") and element.name[1:].isdigit():
            outline.heading(int(element.name[1]), element.get_text(" ", strip=True))
        else:
            outline.text(element.get_text(" ", strip=True))
    outline.flush()
    return outline.title or page_title, outline.sections


def _check_zip(content: bytes) -> zipfile.ZipFile:
    """Open a DOCX container, refusing archives that would inflate out of proportion."""
    if not content.startswith(b"PK\x03\x04"):
        raise _mismatch("Word (DOCX)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _unreadable("Word (DOCX)") from exc
    names = {m.filename for m in members}
    if "word/document.xml" not in names or "[Content_Types].xml" not in names:
        raise _mismatch("Word (DOCX)")
    inflated = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    if (
        len(members) > DOCX_MAX_MEMBERS
        or inflated > DOCX_MAX_UNCOMPRESSED
        or inflated / packed > DOCX_MAX_RATIO
    ):
        raise InvalidDocument(
            "Fichier Word refusé : son contenu décompressé est anormalement volumineux.",
            "Word file refused: its uncompressed content is abnormally large.",
        )
    # The sizes above are the archive's own claims. Inflate each member once, a chunk at a
    # time: zipfile never yields more than a member's declared size, and a member that
    # would inflate further (a lying header) or is damaged fails its CRC check here.
    try:
        damaged = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
        raise _unreadable("Word (DOCX)") from exc
    if damaged is not None:
        raise _unreadable("Word (DOCX)")
    return archive


def _docx_blocks(document: "DocxDocument") -> Iterable["Paragraph | Table"]:
    """Paragraphs and tables in reading order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            yield Paragraph(child, document)
        elif tag == "tbl":
            yield Table(child, document)


def _heading_level(style_name: str) -> int | None:
    name = style_name.lower()
    if name == "title":
        return 1
    match = re.fullmatch(r"(heading|titre)\s*(\d)", name)
    return int(match.group(2)) if match else None


def _parse_docx(content: bytes) -> tuple[str, list[Section]]:
    import docx
    from docx.text.paragraph import Paragraph

    _check_zip(content)
    try:
        document = docx.Document(io.BytesIO(content))
    except Exception as exc:  # damaged package or XML (lxml, zipfile, KeyError...)
        raise _unreadable("Word (DOCX)") from exc
    outline = _Outline()
    for block in _docx_blocks(document):
        if isinstance(block, Paragraph):
            style = block.style.name if block.style is not None else ""
            level = _heading_level(style or "")
            if level is not None:
                outline.heading(level, block.text)
            else:
                outline.text(block.text)
        else:
            for row in block.rows:
                cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                outline.text(" | ".join(cells))
    outline.flush()
    title = outline.title or (document.core_properties.title or "")
    return title, outline.sections


def _parse_pdf(content: bytes) -> tuple[str, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not content[:1024].lstrip().startswith(b"%PDF-"):
        raise _mismatch("PDF")
    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted:
            raise InvalidDocument(
                "PDF protégé par un mot de passe : enregistrez-le sans protection.",
                "Password-protected PDF: save it without protection.",
            )
        if len(reader.pages) > MAX_PDF_PAGES:
            raise InvalidDocument(
                f"PDF trop long : {MAX_PDF_PAGES} pages au plus.",
                f"PDF too long: {MAX_PDF_PAGES} pages at most.",
            )
        headings = _pdf_outline(reader)
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except InvalidDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise _unreadable("PDF") from exc
    sections = []
    current = ""
    for number, text in enumerate(pages, start=1):
        current = headings.get(number, current)
        sections.append(Section(current or f"Page {number}", text))
    return title, sections


def _pdf_outline(reader: "PdfReader") -> dict[int, str]:
    """First-level bookmarks by page number (1-based), when the PDF has an outline."""
    found: dict[int, str] = {}
    try:
        for item in reader.outline:
            if isinstance(item, list):
                continue
            index = reader.get_destination_page_number(item)
            if index is None:  # a bookmark to no page of this file names nothing
                continue
            found.setdefault(index + 1, str(item.title))
    except Exception:  # a damaged outline only loses the section names
        return {}
    return found


_PARSERS: dict[str, Callable[[bytes], tuple[str, list[Section]]]] = {
    ".pdf": _parse_pdf,
    ".docx": _parse_docx,
    ".md": _parse_markdown,
    ".markdown": _parse_markdown,
    ".txt": _parse_text,
    ".html": _parse_html,
    ".htm": _parse_html,
}
