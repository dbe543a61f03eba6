"""A walk through the demo in a real browser (issue 17), on a test database seeded exactly as
`make run` seeds it (``accueil demo seed``: the practice, then the shipped handbooks):

- the physician sees the flags first, opens a summary, hovers a line and sees its answers
  highlighted (the red-flag lines styled apart, not by colour alone), approves it;
- opens the letter draft, edits it, approves it and downloads the PDF (patient's name and
  letterhead checked with pypdf);
- the secretary asks the knowledge base a question and gets a cited passage, and finds the
  demo's draft instruction sheet waiting for the physician.

Time is fixed to a Monday morning, so that the physician's day holds the demo's
pre-consultations whatever the day the suite runs. Every wait is on a condition.

And the fresh clone: the demo seeds from a copy of the repository with no ``../shared``
beside it."""

import io
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
import time_machine
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlmodel import Session, select

from app.config.settings import Settings
from app.services.flows import letter_jobs, summary_jobs
from app.services.operations.demo import seed_demo, seed_knowledge
from models.documents import DocumentKind, GeneratedDocument, ReviewStatus
from models.instruction_sheets import InstructionSheet
from models.patients import Patient
from tests.support.browser import sign_in

REPOSITORY = Path(__file__).resolve().parents[2]
EDIT = "Merci de me tenir informée de votre avis."


def next_monday_morning(settings: Settings) -> datetime:
    """Next Monday at 7:30, practice time: the demo physician works that day and the next."""
    today = datetime.now(settings.tz).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    return datetime.combine(monday, time(7, 30), tzinfo=settings.tz)


@pytest.fixture
def no_model(monkeypatch) -> None:
    monkeypatch.setattr(summary_jobs, "model_for", lambda settings: None)
    monkeypatch.setattr(letter_jobs, "model_for", lambda settings: None)


@pytest.fixture
def monday(settings: Settings):
    with time_machine.travel(next_monday_morning(settings), tick=True):
        yield


def pdf_text(data: bytes) -> str:
    return " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages
    )


@pytest.mark.browser
@pytest.mark.slow  # the seed embeds the two shipped handbooks
def test_walk_through_the_demo(
    monday, no_model, settings: Settings, db: Session, job_queue, app, browser_page
) -> None:
    seeded = seed_demo(db, settings, patients=40)
    db.commit()
    notes = seed_knowledge(db, settings)
    assert notes.count("Base de connaissances : « ") == 2, notes
    assert "Fiche de consignes" in notes, notes
    passwords = seeded.credentials
    page = browser_page

    # The physician's day: urgent flags first.
    sign_in(page, "/medecin", "medecin", passwords["medecin"], landing="**/medecin")
    first_row = page.locator("table.md-day tbody tr").first
    expect(first_row).to_have_class(re.compile(r"\brow-urgent\b"))
    expect(first_row.locator("li.flag-urgence").first).to_contain_text("Urgence")
    tables = page.locator("table.md-day")  # today's, then the next working day's
    for index in range(tables.count()):
        classes = (
            tables.nth(index).locator("tbody tr").evaluate_all("rows => rows.map(r => r.className)")
        )
        flagged = [c for c in classes if "row-urgent" in c or "row-check" in c]
        assert classes[: len(flagged)] == flagged  # no plain row before a flagged one

    # Its summary: the red-flag line stands out (mark and border, not colour alone), and
    # hovering a line highlights the answers it cites.
    first_row.get_by_role("link", name="Brouillon à relire").click()
    page.wait_for_url(re.compile(r"/medecin/documents/\d+$"))
    summary_id = int(page.url.rsplit("/", 1)[1])
    urgent = page.locator("li.sentence.flag-urgent").first
    expect(urgent).to_contain_text("URGENCE")
    expect(urgent.locator(".flag-mark")).to_be_visible()
    assert urgent.evaluate("e => getComputedStyle(e).borderLeftStyle") == "double"
    motif = page.locator("#a-motif")
    expect(motif).not_to_have_class(re.compile(r"\bcited\b"))
    page.locator("#s-0-0").hover()  # the reason, in the patient's words
    expect(motif).to_have_class(re.compile(r"\bcited\b"))
    cited = urgent.get_attribute("data-sources") or ""
    assert cited
    urgent.hover()
    for link_id in cited.split():
        expect(page.locator(f"#a-{link_id}")).to_have_class(re.compile(r"\bcited\b"))
    answers = page.locator(".answer[data-link-id]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.linkId)"
    )
    others = [a for a in answers if a not in cited.split()]
    assert others  # the flag cites some answers, not all of them
    for link_id in others:
        expect(page.locator(f"#a-{link_id}")).not_to_have_class(re.compile(r"\bcited\b"))
    page.get_by_role("button", name="Approuver", exact=True).click()
    expect(page.get_by_text("Document approuvé.")).to_be_visible()
    db.expire_all()
    approved = db.get(GeneratedDocument, summary_id)
    assert approved is not None and approved.status == ReviewStatus.approved

    # The referral letter waiting for review: edit, approve, download.
    page.get_by_role("link", name="Retour à l'espace médecin").click()
    page.wait_for_url("**/medecin")
    drafts = page.locator("section[aria-labelledby=drafts-title]")
    drafts.get_by_role("link", name=re.compile(r"^Lettre d'adressage — ")).click()
    page.wait_for_url(re.compile(r"/medecin/documents/\d+$"))
    letter_id = int(page.url.rsplit("/", 1)[1])
    letter = db.get(GeneratedDocument, letter_id)
    assert letter is not None and letter.kind == DocumentKind.letter
    patient = db.get(Patient, letter.patient_id)
    assert patient is not None
    expect(page.get_by_role("link", name="Télécharger le PDF")).to_have_count(0)
    body = page.get_by_label("Corps du courrier")
    expect(body).to_contain_text("Je vous adresse")  # prefilled from the record
    body.fill(f"{body.input_value()}\n\n{EDIT}")
    page.get_by_label("Destinataire").fill("Dr Élise Dupont, pneumologue")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    expect(page.get_by_text("Modification enregistrée")).to_be_visible()
    expect(page.locator("pre.letter-preview")).to_contain_text(EDIT)
    page.get_by_role("button", name="Approuver", exact=True).click()
    expect(page.get_by_text("Document approuvé.")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le PDF").click()
    text = pdf_text(Path(download.value.path()).read_bytes())
    assert f"{patient.first_name} {patient.used_name or patient.birth_name}" in text
    assert settings.practice_name in text
    assert settings.practice_address.split("\n")[0] in text
    assert EDIT in text and "Dr Élise Dupont" in text

    # The secretary: a cited passage from the knowledge base, and the draft sheet waiting.
    page.context.clear_cookies()
    secretary = passwords["secretaire"]
    sign_in(page, "/connaissances", "secretaire", secretary, landing="**/connaissances")
    page.get_by_label("Question").fill("Faut-il être à jeun pour une prise de sang ?")
    page.get_by_role("button", name="Chercher").click()
    best = page.locator("ol.passages > li").first
    expect(best).to_contain_text("12 heures")
    expect(best).to_contain_text("Prise de sang")
    source = best.get_by_role("link", name=re.compile(r"^Source"))
    href = source.get_attribute("href") or ""
    assert re.fullmatch(r"/connaissances/\d+#c\d+", href), href
    source.click()
    expect(page.locator(f"#{href.split('#')[1]}")).to_contain_text("12 heures")

    sheet = db.exec(select(InstructionSheet)).one()
    assert sheet.status == "draft"
    page.get_by_role("link", name="Consignes patients").click()
    drafts = page.locator("section[aria-labelledby=drafts-title]")
    drafts.get_by_role("link", name=re.compile(r"^Prise de sang à jeun — ")).click()
    expect(page.locator("blockquote.sheet-text").first).to_contain_text("à jeun")
    expect(page.get_by_role("button", name="Approuver la fiche")).to_have_count(0)
    assert page.off_box.urls == []  # type: ignore[attr-defined]


def _tree_files() -> list[str]:
    """The repository's files as a fresh clone has them (tracked and not ignored)."""
    git = shutil.which("git") or "/usr/bin/git"
    listed = subprocess.run(  # noqa: S603 - fixed arguments
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPOSITORY / name).is_file()]


@pytest.mark.slow  # copies the tree and seeds in a subprocess (two handbooks embedded)
def test_a_fresh_clone_seeds_the_same_demo_without_shared(tmp_path, empty_database_url) -> None:
    clone = tmp_path / "workspace" / "accueil"
    for name in _tree_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, target)
    assert not (clone.parent / "shared").exists()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ACCUEIL_") and key != "PYTHONPATH"
    }
    env.update(
        PYTHONPATH=str(clone),
        ACCUEIL_DATABASE_URL=empty_database_url,
        ACCUEIL_DATA_DIR=str(tmp_path / "data"),
        ACCUEIL_SECRET_KEY="fresh-clone-secret-key-for-tests",
        ACCUEIL_OLLAMA_URL="http://127.0.0.1:9",
    )
    command = [sys.executable, "-c", "from app.cli import cli; cli()"]

    def run(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [*command, *args], cwd=clone, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run("db", "upgrade")
    out = run("demo", "seed", "--patients", "30")
    assert out.count("Base de connaissances : « ") == 2, out
    assert "introuvable" not in out and "non importé" not in out, out
    assert "Fiche de consignes « Prise de sang à jeun » préparée" in out, out
    assert "Démo créée : 3 praticiens, 30 patients" in out, out
