"""A patient answers by voice in a real browser: chromium's fake microphone plays an espeak-ng
clip, the keyboard starts and stops the recording, the text is added after what was typed,
autosave keeps it, and nothing leaves the box."""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, select

from app.config.settings import Settings
from models.questionnaires import PreConsultation
from tests.conftest import PASSWORD
from tests.support.browser import CHROMIUM_ARGS, PHONE, require_chromium
from tests.support.preconsultation import book, send
from tests.support.speech import (
    FRENCH,
    FRENCH_WORDS,
    heard,
    speak,
    speech_model_dir,  # noqa: F401  (fixture)
    with_model,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # chromium, and the whisper model


@pytest.fixture
def settings(settings: Settings, speech_model_dir: Path) -> Settings:  # noqa: F811
    return with_model(settings, speech_model_dir)


@pytest.fixture
def voice_page(live_server: str, tmp_path: Path) -> Iterator:
    """A phone-sized page whose microphone plays a French clip once, then silence."""
    executable = require_chromium()
    clip = speak(FRENCH, tmp_path / "micro.wav")
    from playwright.sync_api import sync_playwright

    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={clip}%noloop",
    ]
    off_box: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        context = browser.new_context(locale="fr-FR", viewport=PHONE, permissions=["microphone"])

        def guard(route) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:")) or host in (
                "127.0.0.1",
                "localhost",
            ):
                route.continue_()
            else:
                off_box.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page = context.new_page()
        page.off_box = off_box  # type: ignore[attr-defined]
        yield page
        context.close()
        browser.close()


def test_a_patient_dictates_an_answer(voice_page, live_server: str, db: Session) -> None:
    sent = send(db, book(db).appointment_id)
    page = voice_page
    page.goto(live_server + sent.path)
    page.get_by_label("Date de naissance").fill("1980-01-02")
    page.get_by_role("button", name="Continuer").click()
    page.wait_for_url("**/etape/1")

    answer = page.get_by_label(re.compile("^Pour quelle raison consultez-vous"))
    answer.fill("Déjà écrit.")
    record = page.get_by_role("button", name="Répondre à voix haute")
    assert record.get_attribute("aria-pressed") == "false"

    record.focus()
    page.keyboard.press("Enter")  # keyboard operable
    stop = page.get_by_role("button", name="Arrêter l'enregistrement")
    stop.wait_for()
    assert stop.get_attribute("aria-pressed") == "true"
    page.get_by_role("status").filter(has_text="Enregistrement en cours").wait_for()
    page.get_by_role("timer").filter(has_text=re.compile(r"^0:0[4-9]$")).wait_for(timeout=15_000)
    page.wait_for_timeout(1500)  # the clip lasts about 4.8 s
    stop.focus()
    page.keyboard.press("Enter")

    page.get_by_role("status").filter(has_text="Texte ajouté").wait_for(timeout=60_000)
    assert record.get_attribute("aria-pressed") == "false"
    value = answer.input_value()
    assert value.startswith("Déjà écrit. ") and len(heard(value, FRENCH_WORDS)) >= 2, value

    # The field fired "input": autosave sends the reviewed text like a typed one.
    page.get_by_role("status").filter(has_text="Réponse enregistrée.").wait_for()
    db.expire_all()
    saved = db.exec(select(PreConsultation)).one().answers["motif"]
    assert saved == value
    assert page.off_box == []  # type: ignore[attr-defined]


STAFF_PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Dictée</title>
<meta name="csrf-token" content="{csrf}"><link rel="stylesheet" href="/static/voice.css">
<script src="/static/js/voice.js" defer></script></head><body><main>
<label for="note">Note</label><textarea id="note">Appel du patient :</textarea>
<div data-voice-box hidden><label>Transcrire un enregistrement <input type="file" accept="audio/*"
  data-voice-target="note" data-voice-url="/api/speech/transcriptions" data-voice-language="fr">
</label></div></main></body></html>"""


def test_a_secretary_transcribes_a_phone_recording(
    voice_page, live_server: str, staff, tmp_path: Path
) -> None:
    """The file mode, as a staff page (e.g. the secretary chat) uses it."""
    page = voice_page
    page.goto(live_server + "/login")
    page.get_by_label("Identifiant").fill("secretaire")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r"127\.0\.0\.1:\d+/$"))
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    page.route(
        live_server + "/essai-dictee",
        lambda route: route.fulfill(content_type="text/html", body=STAFF_PAGE.format(csrf=csrf)),
    )
    page.goto(live_server + "/essai-dictee")
    page.get_by_label("Transcrire un enregistrement").set_input_files(tmp_path / "micro.wav")
    page.get_by_role("status").filter(has_text="Texte ajouté").wait_for(timeout=60_000)
    value = page.locator("#note").input_value()
    assert value.startswith("Appel du patient : ") and len(heard(value, FRENCH_WORDS)) >= 2, value
    assert page.off_box == []  # type: ignore[attr-defined]
