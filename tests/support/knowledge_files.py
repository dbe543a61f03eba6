"""Small practice documents in every accepted format, made in memory for the knowledge tests."""

import io
import zipfile

import docx
from fpdf import FPDF

HOURS = "Le cabinet est ouvert du lundi au vendredi de 8 h 30 à 19 h et le samedi de 9 h à 12 h."
FEES = "La consultation de médecine générale est facturée 30 euros, carte Vitale acceptée."
BLOOD = "Pour une prise de sang, il faut être à jeun depuis 12 heures ; l'eau est permise."

MARKDOWN = f"""# Livret du cabinet

Cabinet fictif pour les tests.

## Horaires
{HOURS}

## Tarifs
{FEES}

### Prise de sang
{BLOOD}
""".encode()

TEXT = f"Consignes du cabinet\n\n{HOURS}\n\n{FEES}\n\n{BLOOD}\n".encode()

HTML = f"""<!doctype html><html><head><title>Infos pratiques</title>
<script>alert("jamais lu")</script></head><body>
<nav><a href="/">menu</a></nav>
<h1>Infos pratiques</h1>
<h2>Horaires</h2><p>{HOURS}</p>
<h2>Tarifs</h2><ul><li>{FEES}</li></ul>
<h2>Prise de sang</h2><p>{BLOOD}</p>
</body></html>""".encode()


def make_docx(extra_paragraph: str = "") -> bytes:
    document = docx.Document()
    document.add_heading("Protocole d'accueil", 0)
    document.add_heading("Horaires", level=1)
    document.add_paragraph(HOURS)
    document.add_heading("Tarifs", level=1)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Consultation"
    table.rows[0].cells[1].text = FEES
    document.add_heading("Prise de sang", level=1)
    document.add_paragraph(BLOOD)
    if extra_paragraph:
        document.add_paragraph(extra_paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_title("Fiche pratique")
    pdf.set_font("helvetica", size=12)
    for heading, text in (("Horaires", HOURS), ("Tarifs", FEES), ("Prise de sang", BLOOD)):
        pdf.add_page()
        pdf.start_section(heading)
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_zip_bomb() -> bytes:
    """A DOCX-shaped archive whose one member inflates to 60 MB of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("word/media/image1.bin", b"\0" * (60 * 1024 * 1024))
    return out.getvalue()


FORMATS = {
    "livret.md": MARKDOWN,
    "consignes.txt": TEXT,
    "infos.html": HTML,
    "protocole.docx": make_docx(),
    "fiche.pdf": make_pdf(),
}
