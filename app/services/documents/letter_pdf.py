"""Approved letters as PDF (fpdf2): practice header, date, recipient, subject, body and a
signature block, in the practice's PDF font (``practice_pdf``)."""

from app.services.documents.letter_templates import RenderedLetter
from app.services.documents.practice_pdf import start_pdf


def letter_pdf(letter: RenderedLetter, *, practice: str, title: str) -> bytes:
    """The PDF of an approved letter."""
    pdf, font, clean = start_pdf(practice=practice, title=title)
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
