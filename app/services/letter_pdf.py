"""Approved letters as PDF (fpdf2): practice header, date, recipient, subject, body and a
signature block, in an embedded Unicode font so French text prints exactly."""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fpdf import FPDF

from app.services.letter_templates import RenderedLetter

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


class LetterPDF(FPDF):
    """An A4 page with the practice's name in the footer and page numbers."""

    practice = ""

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(self.font_family, "", 8)
        self.set_text_color(110)
        self.cell(0, 8, f"{self.practice} · {self.page_no()}/{{nb}}", align="C")


def letter_pdf(letter: RenderedLetter, *, practice: str, title: str) -> bytes:
    """The PDF of an approved letter."""
    font = find_font()
    clean = (lambda s: s) if font.unicode else latin1
    pdf = LetterPDF(format="A4")
    pdf.practice = clean(practice)
    pdf.set_title(clean(title))
    pdf.set_creator("Accueil")
    if font.unicode:
        pdf.add_font(font.family, "", str(font.regular))
        pdf.add_font(font.family, "B", str(font.bold))
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=22)
    pdf.add_page()
    parts = letter.parts

    def block(text: str, *, size: float = 10.5, style: str = "", align: str = "L") -> None:
        if not text:
            return
        pdf.set_font(font.family, style, size)
        pdf.multi_cell(0, size * 0.5, clean(text), align=align, new_x="LMARGIN", new_y="NEXT")

    header = parts.get("letterhead", "").split("\n")
    block(header[0], size=13, style="B")
    block("\n".join(header[1:]), size=9.5)
    pdf.set_draw_color(60)
    pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.w - pdf.r_margin, pdf.get_y() + 2)
    pdf.ln(8)
    block(parts.get("recipient", ""), align="R")
    pdf.ln(4)
    block(parts.get("dateline", ""), align="R")
    pdf.ln(6)
    block(parts.get("subject", ""), style="B")
    pdf.ln(4)
    block(parts.get("body", ""))
    pdf.ln(10)
    signature = parts.get("signature", "")
    if pdf.get_y() > pdf.h - 60:
        pdf.add_page()
    x = pdf.w / 2
    pdf.set_x(x)
    pdf.set_font(font.family, "B", 10.5)
    lines = signature.split("\n")
    pdf.multi_cell(0, 5.5, clean(lines[0]), new_x="LMARGIN", new_y="NEXT")
    for line in lines[1:]:
        pdf.set_x(x)
        pdf.set_font(font.family, "", 9.5)
        pdf.multi_cell(0, 5, clean(line), new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(150)
    pdf.rect(x, pdf.get_y() + 2, pdf.w - pdf.r_margin - x, 22)  # room for the signature
    return bytes(pdf.output())
