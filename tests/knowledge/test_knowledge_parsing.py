"""Reading practice documents: every format, headings kept, bad files refused in French."""

import io
import zipfile

import pytest

from app.services.knowledge.chunking import Chunk, chunk_document, embedding_input, split_sentences
from app.services.knowledge.parsing import (
    DocumentTooLarge,
    InvalidDocument,
    ParsedDocument,
    Section,
    parse_document,
    safe_filename,
)
from tests.support.knowledge_files import BLOOD, FEES, FORMATS, HOURS, make_zip_bomb

MB = 1024 * 1024


@pytest.mark.parametrize("filename", sorted(FORMATS))
def test_each_format_gives_title_sections_and_text(filename: str) -> None:
    parsed = parse_document(filename, FORMATS[filename], max_bytes=MB)
    text = " ".join(s.text for s in parsed.sections)
    for sentence in (HOURS, FEES, BLOOD):
        assert sentence in text
    assert parsed.title and parsed.title != filename
    if not filename.endswith(".txt"):
        headings = {s.heading.split(" › ")[-1] for s in parsed.sections}
        assert {"Horaires", "Tarifs", "Prise de sang"} <= headings


def test_markdown_keeps_the_heading_path_and_drops_markup() -> None:
    parsed = parse_document("livret.md", FORMATS["livret.md"], max_bytes=MB)
    assert parsed.title == "Livret du cabinet"
    assert [s.heading for s in parsed.sections] == [
        "",
        "Horaires",
        "Tarifs",
        "Tarifs › Prise de sang",
    ]
    assert "#" not in "".join(s.text for s in parsed.sections)


def test_html_ignores_scripts_and_navigation() -> None:
    parsed = parse_document("infos.html", FORMATS["infos.html"], max_bytes=MB)
    text = " ".join(s.text for s in parsed.sections)
    assert "alert" not in text and "menu" not in text


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("../../etc/passwd.md", b"# x", "Nom de fichier invalide"),
        ("..\\secret.md", b"# x", "Nom de fichier invalide"),
        (".cache.md", b"# x", "Nom de fichier invalide"),
        ("programme.exe", b"MZ\x90\x00", "Format non pris en charge"),
        ("sans-extension", b"texte", "Format non pris en charge"),
        ("vide.txt", b"", "Le fichier est vide"),
        ("faux.pdf", b"Ceci n'est pas un PDF", "ne correspond pas à un document PDF"),
        ("faux.docx", b"%PDF-1.7 ...", "ne correspond pas à un document Word"),
        ("image.md", b"\x89PNG\r\n\x1a\n\0\0\0", "ne correspond pas à un document Markdown"),
        ("binaire.txt", b"abc\x00\x01\x02", "ne correspond pas à un document texte"),
        ("page.html", b"juste du texte, aucune balise", "ne correspond pas à un document HTML"),
        ("casse.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "illisible"),
        ("casse.docx", b"PK\x03\x04" + b"\0" * 64, "illisible"),
    ],
)
def test_bad_files_are_refused_with_a_french_message(filename, content, message) -> None:
    with pytest.raises(InvalidDocument) as caught:
        parse_document(filename, content, max_bytes=MB)
    assert message in caught.value.fr
    assert caught.value.en and caught.value.en != caught.value.fr


def test_a_zip_without_word_parts_is_not_a_docx() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "bonjour")
    with pytest.raises(InvalidDocument, match="Word"):
        parse_document("notes.docx", out.getvalue(), max_bytes=MB)


def test_zip_bombs_are_refused_before_inflating() -> None:
    bomb = make_zip_bomb()
    assert len(bomb) < MB
    with pytest.raises(InvalidDocument, match="anormalement volumineux"):
        parse_document("piege.docx", bomb, max_bytes=MB)


def test_oversized_files_are_refused() -> None:
    with pytest.raises(DocumentTooLarge, match="1 Mo au plus") as caught:
        parse_document("gros.txt", b"a" * (MB + 1), max_bytes=MB)
    assert caught.value.status_code == 413


def test_safe_filename_keeps_plain_names() -> None:
    assert safe_filename("  Livret d'accueil 2026.PDF ") == "Livret d'accueil 2026.PDF"


def test_windows_1252_text_is_read() -> None:
    parsed = parse_document(
        "ancien.txt", "Tarifs\n\nConsultation à 30 €.".encode("cp1252"), max_bytes=MB
    )
    assert parsed.title == "Tarifs" and parsed.sections[0].text == "Consultation à 30 €."


def test_sentences_split_on_punctuation_and_lines() -> None:
    assert split_sentences("Ouvert le samedi. Fermé le dimanche !\nTél. 04 00. Dr. Martin") == [
        "Ouvert le samedi.",
        "Fermé le dimanche !",
        "Tél. 04 00.",
        "Dr. Martin",
    ]


def test_chunks_respect_sections_sentences_and_size() -> None:
    long_text = " ".join(f"Phrase numéro {n} du protocole de vaccination." for n in range(60))
    parsed = ParsedDocument(
        title="Protocoles",
        media_type="text/markdown",
        sections=[Section("Vaccins", long_text), Section("Accès", "Métro ligne B.")],
    )
    chunks = chunk_document(parsed, max_chars=300)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[-1] == Chunk(len(chunks) - 1, "Accès", "Métro ligne B.")
    vaccine = [c for c in chunks if c.section == "Vaccins"]
    assert len(vaccine) > 5 and all(len(c.text) <= 300 for c in vaccine)
    assert all(c.text.endswith("vaccination.") for c in vaccine)  # never cut mid-sentence
    assert "Phrase numéro 59 du" in vaccine[-1].text
    assert embedding_input("Protocoles", chunks[-1]) == "Protocoles — Accès\nMétro ligne B."


def test_a_long_section_is_cut_between_paragraphs_not_inside_one() -> None:
    def paragraph(topic: str) -> str:
        return " ".join(f"Consigne {n} sur {topic} pour les patients." for n in range(5))

    topics = ["le jeûne", "les médicaments", "le retour à domicile"]
    text = "\n".join(paragraph(t) for t in topics)
    parsed = ParsedDocument("Coloscopie", "text/markdown", [Section("Préparation", text)])
    chunks = chunk_document(parsed, max_chars=520)  # room for a sentence of the third
    assert [c.text for c in chunks] == [
        f"{paragraph(topics[0])} {paragraph(topics[1])}",
        paragraph(topics[2]),
    ]
    assert all(c.section == "Préparation" for c in chunks)
    short = ParsedDocument("C", "text/markdown", [Section("Jeûne", "À jeun.\nSans café.")])
    assert [c.text for c in chunk_document(short)] == ["À jeun. Sans café."]


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    parsed = ParsedDocument("T", "text/plain", [Section("", "mot " * 200)])
    chunks = chunk_document(parsed, max_chars=100)
    assert all(len(c.text) <= 100 for c in chunks)
    assert sum(c.text.count("mot") for c in chunks) == 200
