"""A patient fills the pre-consultation on a phone in a real browser: autosave survives a
reload, the submission is confirmed, no request leaves the box, and axe-core finds no serious
accessibility violation."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from models.questionnaires import PreConsultation, PreConsultationStatus
from tests.support.preconsultation import book, send

pytestmark = pytest.mark.browser
AXE = Path(__file__).resolve().parents[1] / "support" / "vendor" / "axe.min.js"
SERIOUS = """async () => {
  const result = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                                    'best-practice']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(' | '));
}"""
# An upper bound only (every wait is on real page state): the first autosave of a process may
# load the French clinical text pipeline, which takes seconds on a busy machine.
SAVE_MS = 60_000


def _axe(page) -> list[str]:
    # The page's CSP (script-src 'self') refuses an injected <script> (add_script_tag); the
    # DevTools evaluation used here is outside the page's policy and loads the same file.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text("utf-8") + "\n;undefined")
    return page.evaluate(SERIOUS)


def _saved(page) -> None:
    """Every change made so far has reached the server (the offline queue is empty)."""
    page.wait_for_function(
        "() => { const f = document.querySelector('form[data-queue]');"
        " return f && !localStorage.getItem(f.dataset.queue); }",
        timeout=SAVE_MS,
    )
    page.get_by_role("status").filter(has_text="Réponse enregistrée.").wait_for(timeout=SAVE_MS)


def _open_form(page, path: str) -> None:
    page.goto(page.base_url + path)
    page.get_by_label("Date de naissance").fill("1980-01-02")
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url("**/etape/1")


def _autosave_of(*words: str):
    """A predicate for ``page.expect_response``: the autosave whose request carries every word
    (so the test waits for the save of its own change, not an earlier one)."""

    def matches(response) -> bool:
        request = response.request
        return (
            request.method == "POST"
            and request.url.endswith("/answers")
            and all(w in (request.post_data or "") for w in words)
        )

    return matches


def test_urgent_ticks_show_the_guidance_before_leaving_the_step(browser_page, db: Session) -> None:
    page = browser_page
    _open_form(page, send(db, book(db).appointment_id).path)
    notice = page.get_by_role("note")
    expect(notice).to_contain_text("sourdes ou malentendantes")
    expect(notice.get_by_role("link", name="3114")).to_have_attribute("href", "tel:3114")
    page.get_by_label(re.compile("^Pour quelle raison")).fill("Gêne depuis ce matin")
    _saved(page)
    page.get_by_role("button", name="Suivant").click()
    page.wait_for_url("**/etape/2")
    box = page.locator("#urgent")
    expect(box).to_be_hidden()
    page.get_by_role("checkbox", name="Douleur dans la poitrine").check()
    with page.expect_response(
        _autosave_of("douleur-thoracique", "essoufflement"), timeout=SAVE_MS
    ) as saved:
        page.get_by_role("checkbox", name=re.compile("^Essoufflement")).check()
    assert saved.value.ok and saved.value.json()["urgent"]
    expect(box).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("appelez le 15")
    assert page.url.endswith("/etape/2")  # shown while the patient is still on the step
    assert _axe(page) == []  # the notice and the box together

    # Unticked: the box stays until the answers are sent, with a reminder.
    with page.expect_response(_autosave_of("symptomes"), timeout=SAVE_MS) as cleared:
        page.get_by_role("checkbox", name="Douleur dans la poitrine").uncheck()
    assert cleared.value.ok
    page.get_by_role("checkbox", name=re.compile("^Essoufflement")).uncheck()
    _saved(page)
    expect(box).to_contain_text("signalé plus tôt")
    expect(box).to_be_visible()
    assert page.off_box.urls == []


def test_an_urgent_sentence_shows_the_guidance_before_leaving_the_step(
    browser_page, db: Session
) -> None:
    page = browser_page
    _open_form(page, send(db, book(db).appointment_id).path)
    box = page.locator("#urgent")
    expect(box).to_be_hidden()
    sentence = "douleur dans la poitrine qui serre, je suis en sueur, ça irradie dans la mâchoire"
    with page.expect_response(_autosave_of("poitrine"), timeout=SAVE_MS) as saved:
        page.get_by_label(re.compile("^Pour quelle raison")).fill(sentence)  # no blur, no click
    assert saved.value.ok
    expect(box).to_be_visible()
    expect(box).to_contain_text("15")
    assert page.url.endswith("/etape/1")
    assert page.get_by_label(re.compile("^Pour quelle raison")).input_value() == sentence


def test_a_patient_with_nothing_alarming_sees_no_guidance(browser_page, db: Session) -> None:
    page = browser_page
    _open_form(page, send(db, book(db).appointment_id).path)
    page.get_by_label(re.compile("^Pour quelle raison")).fill("Renouvellement, je vais bien")
    _saved(page)  # the answer to this very save has been applied to the page
    expect(page.locator("#urgent")).to_be_hidden()
    page.get_by_role("button", name="Suivant").click()
    page.wait_for_url("**/etape/2")
    page.get_by_role("checkbox", name="Toux", exact=True).check()
    _saved(page)
    expect(page.locator("#urgent")).to_be_hidden()
    expect(page.get_by_role("note")).to_be_visible()  # the numbers are there all the same


def test_patient_fills_the_form_on_a_phone(browser_page, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    page = browser_page
    page.goto(page.base_url + sent.path)
    assert page.locator("html").get_attribute("lang") == "fr"
    assert _axe(page) == []
    page.get_by_label("Date de naissance").fill("1980-01-02")
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url("**/etape/1")
    assert page.evaluate("document.activeElement.id") == "page-title"

    page.get_by_label(re.compile("^Pour quelle raison consultez-vous")).fill("Toux et fièvre")
    _saved(page)
    page.get_by_role("radio", name="Depuis moins de 3 jours").check()
    _saved(page)
    page.get_by_role("button", name="Suivant").click()
    page.wait_for_url("**/etape/2")
    temperature = page.get_by_label(re.compile("température la plus élevée"))
    assert not temperature.is_visible()  # enableWhen: only once fever is ticked
    page.get_by_role("checkbox", name="Fièvre").check()
    temperature.wait_for(state="visible")
    temperature.fill("38,5")
    _saved(page)
    assert _axe(page) == []

    page.reload()  # mid-way: everything typed is still there
    assert page.get_by_role("checkbox", name="Fièvre").is_checked()
    assert page.get_by_label(re.compile("température la plus élevée")).input_value() == "38.5"
    page.get_by_role("button", name="Précédent").click()
    page.wait_for_url("**/etape/1")
    assert page.get_by_label(re.compile("^Pour quelle raison")).input_value() == "Toux et fièvre"
    assert page.get_by_role("radio", name="Depuis moins de 3 jours").is_checked()

    for step in (1, 2, 3, 4, 5):
        page.wait_for_url(f"**/etape/{step}")
        page.get_by_role("button", name=re.compile("^(Suivant|Relire mes réponses)$")).click()
    page.wait_for_url("**/relecture")
    assert "Toux et fièvre" in page.locator("main").inner_text()
    assert _axe(page) == []
    page.get_by_role("button", name="Envoyer mes réponses").click()
    page.wait_for_url("**/merci")
    assert page.get_by_role("heading", level=1).inner_text() == (
        "Merci, vos réponses ont été envoyées"
    )
    db.expire_all()
    row = db.exec(select(PreConsultation)).one()
    assert row.status == PreConsultationStatus.submitted
    assert row.answers["temperature"] == 38.5 and row.answers["debut"] == "moins-3j"
    assert page.off_box.urls == []


def test_answers_typed_offline_are_sent_when_the_network_returns(browser_page, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    page = browser_page
    page.goto(page.base_url + sent.path)
    page.get_by_label("Date de naissance").fill("1980-01-02")
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url("**/etape/1")
    page.context.set_offline(True)
    page.get_by_label(re.compile("^Pour quelle raison")).fill("Écrit hors connexion")
    page.get_by_role("status").filter(has_text="Hors connexion").wait_for()
    page.context.set_offline(False)
    _saved(page)
    db.expire_all()
    assert db.exec(select(PreConsultation)).one().answers["motif"] == "Écrit hors connexion"
    assert page.off_box.urls == []
