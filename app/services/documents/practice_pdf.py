"""What the practice's PDFs share (fpdf2): A4 pages in an embedded Unicode font when the
system has one, so French text prints exactly, with the practice's name and page numbers in
the footer."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpdf import FPDF

# Debian's fonts-dejavu-core (installed with chromium and most desktops); fpdf2 embeds a subset.
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/local/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
)
LATIN1_REPLACEMENTS = {
    "’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...",
    "œ": "oe", "Œ": "OE", "€": "EUR", "\u202f": " ", "\u2009": " ",
}  # fmt: skip


@dataclass(frozen=True)
class FontChoice:
    """The family to write with and, for a TTF, the regular and bold files."""

    family: str
    regular: Path | None = None
    bold: Path | None = None

    @property
    def unicode(self) -> bool:
        return self.regular is not None


@lru_cache
def find_font() -> FontChoice:
    """DejaVu Sans when the system has it, else fpdf2's core Helvetica (Latin-1 only)."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return FontChoice("DejaVu", regular, bold)
    return FontChoice("helvetica")


def latin1(text: str) -> str:
    """Text a core font can print: common typography mapped, anything else replaced."""
    for char, plain in LATIN1_REPLACEMENTS.items():
        text = text.replace(char, plain)
    return text.encode("latin-1", "replace").decode("latin-1")


@lru_cache(maxsize=1)
def practice_pdf_class() -> "type[FPDF]":
    """The PDF class: fpdf2 (with fontTools and Pillow, over a second of CPU) is imported
    with the first PDF made, not when the server starts."""
    from fpdf import FPDF

    class PracticePDF(FPDF):
        """A4 pages with the practice's name and page numbers in the footer."""

        practice = ""

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font(self.font_family, "", 8)
            self.set_text_color(110)
            self.cell(0, 8, f"{self.practice} · {self.page_no()}/{{nb}}", align="C")

    return PracticePDF


def start_pdf(*, practice: str, title: str) -> "tuple[FPDF, FontChoice, Callable[[str], str]]":
    """A new document titled ``title`` with its font registered (no page yet), the font to
    write with, and what makes a text printable in that font."""
    font = find_font()
    clean: Callable[[str], str] = (lambda text: text) if font.unicode else latin1
    pdf = practice_pdf_class()(format="A4")
    pdf.practice = clean(practice)  # type: ignore[attr-defined]  # PracticePDF's own
    pdf.set_title(clean(title))
    pdf.set_creator("Accueil")
    if font.unicode:
        pdf.add_font(font.family, "", str(font.regular))
        pdf.add_font(font.family, "B", str(font.bold))
    return pdf, font, clean
