"""A physician, in a real browser: opens a summary, sees the cited answers highlighted, edits a
sentence, approves, drafts a referral letter from it (scripted model), approves it and
downloads the PDF."""

import io

import pytest
from pypdf import PdfReader
from sqlmodel import Session

from agents.scripted_model import ScriptedChatModel
from models.documents import GeneratedDocument, ReviewStatus
from tests.conftest import PASSWORD
from tests.support.browser import sign_in
from tests.support.jobs_helpers import run_jobs
from tests.support.review_helpers import letter_call, narrative_at, scripted_model, summarized

pytestmark = pytest.mark.browser
NEW_SENTENCE = "Fièvre à 38,4 °C depuis deux jours, toux sèche."
BODY = "Patiente de 47 ans, souffle systolique découvert ce jour. Merci pour votre avis."


@pytest.fixture
def model(monkeypatch) -> ScriptedChatModel:
    return scripted_model(monkeypatch)


def test_physician_reviews_a_summary_and_sends_a_referral(
    app, browser_page, db: Session, job_queue, model, staff
) -> None:
    summary = summarized(db, job_queue, model)
    page = browser_page
    sign_in(page, "/medecin", "medecin", PASSWORD, landing="**/medecin")

    page.get_by_role("link", name="Résumé de pré-consultation — Durand Marie").click()
    page.wait_for_url(f"**/medecin/documents/{summary.id}")
    n = narrative_at(summary)  # the structured summary first, then the model's narrative
    # Focusing a sentence highlights exactly the answers it cites.
    page.locator(f"#s-{n}-1").focus()
    assert "cited" in (page.locator("#a-temperature").get_attribute("class") or "")
    assert "cited" in (page.locator("#a-symptomes").get_attribute("class") or "")
    assert "cited" not in (page.locator("#a-motif").get_attribute("class") or "")
    page.locator("#s-0-0").hover()  # the structured reason line
    assert "cited" in (page.locator("#a-motif").get_attribute("class") or "")
    assert "cited" not in (page.locator("#a-temperature").get_attribute("class") or "")
    page.locator(f"#s-{n}-0").hover()
    assert "cited" in (page.locator("#a-motif").get_attribute("class") or "")
    assert "unsupported" in (page.locator(f"#s-{n + 1}-0").get_attribute("class") or "")

    sentence = page.locator(f"#s-{n}-1")
    sentence.get_by_text("Modifier").click()
    sentence.get_by_label("Phrase").fill(NEW_SENTENCE)
    sentence.get_by_role("button", name="Enregistrer la phrase").click()
    page.get_by_text("Modification enregistrée").wait_for()
    assert NEW_SENTENCE in page.locator(f"#s-{n}-1 .sentence-text").inner_text()

    page.get_by_role("button", name="Approuver").click()
    page.get_by_text("Document approuvé.").wait_for()
    page.get_by_role("link", name="Rédiger un courrier à partir de ce résumé").click()
    page.get_by_label("Modèle").select_option("adressage")
    page.get_by_label("Consigne").fill("Adresser au cardiologue pour un souffle.")
    page.get_by_role("button", name="Demander un brouillon").click()
    page.get_by_text("Brouillon en cours de rédaction").wait_for()

    model.extend([letter_call(body=BODY)])
    run_jobs(job_queue)  # the page polls the draft's state and reloads when it is written
    body = page.get_by_label("Corps du courrier")
    body.wait_for(timeout=15_000)
    assert body.input_value() == BODY
    assert page.get_by_role("link", name="Télécharger le PDF").count() == 0
    page.get_by_label("Destinataire").fill("Dr Élise Dupont, cardiologue")
    page.get_by_role("button", name="Enregistrer les modifications").click()
    page.get_by_text("Modification enregistrée").wait_for()
    page.get_by_role("button", name="Approuver").click()
    page.get_by_text("Document approuvé.").wait_for()

    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger le PDF").click()
    data = open(download.value.path(), "rb").read()  # noqa: SIM115
    assert data.startswith(b"%PDF-")
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())
    assert BODY in text and "Dr Élise Dupont, cardiologue" in text
    db.expire_all()
    assert db.get(GeneratedDocument, summary.id).status == ReviewStatus.approved
    assert page.off_box.urls == []
