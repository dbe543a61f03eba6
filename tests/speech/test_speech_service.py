"""The speech service with the real bundled model: English and French clips, progress, the
two halves joined once (and rebuilt when damaged), clear refusals, local models only, no
network."""

import io
import os
import socket
import wave
from pathlib import Path

import numpy as np
import pytest

from app.config.settings import Settings
from app.services.speech import models as speech_models
from app.services.speech import transcription as speech
from app.services.speech.models import (
    MODEL_FILE,
    SpeechModelUnavailable,
    bundled_model,
    ensure_bundled_model,
)
from tests.support.speech import (
    ENGLISH_WORDS,
    FRENCH_WORDS,
    clips,  # noqa: F401  (fixture)
    heard,
    speech_model_dir,  # noqa: F401  (fixture)
    with_model,
)

pytestmark = pytest.mark.slow  # runs the whisper model


@pytest.fixture
def transcriber(settings: Settings, speech_model_dir: Path) -> speech.Transcriber:  # noqa: F811
    return speech.get_transcriber(with_model(settings, speech_model_dir))


def silent_wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(np.zeros(int(16_000 * seconds), dtype=np.int16).tobytes())
    return buffer.getvalue()


def test_an_english_clip_is_transcribed_with_progress(transcriber, clips) -> None:  # noqa: F811
    steps: list[speech.Progress] = []
    result = transcriber.transcribe(clips["en"], language="en", on_progress=steps.append)
    assert heard(result.text, ENGLISH_WORDS) == list(ENGLISH_WORDS), result.text
    assert result.language == "en" and result.heard and result.message() is None
    assert 2 < result.duration_seconds < 5 and result.segments
    assert result.model == "speech-model"  # the local directory's name
    assert steps and 0 < steps[-1].progress <= 1 and steps[-1].text == result.text


def test_a_french_clip_holds_its_key_words(transcriber, clips) -> None:  # noqa: F811
    result = transcriber.transcribe(clips["fr"].read_bytes(), language="fr")
    assert len(heard(result.text, FRENCH_WORDS)) >= 2, result.text
    assert result.language == "fr"


def test_a_long_clip_streams_increasing_progress_then_the_text(transcriber, clips) -> None:  # noqa: F811
    items = list(transcriber.stream(clips["long"], language="fr"))
    *steps, final = items
    assert isinstance(final, speech.Transcript) and len(steps) >= 2
    values = [step.progress for step in steps]
    assert values == sorted(values) and values[0] < values[-1] <= 1
    assert "docteur" in final.text.lower() and final.text == steps[-1].text


def test_silence_gives_empty_text_and_a_clear_notice(transcriber) -> None:
    result = transcriber.transcribe(silent_wav(2), language="fr")
    assert result.text == "" and not result.heard
    assert "Rien n'a été entendu" in (result.message("fr") or "")
    assert "Nothing was heard" in (result.message("en") or "")


def test_bad_audio_is_refused_with_clear_messages(transcriber, clips) -> None:  # noqa: F811
    limits = speech.Limits(max_seconds=3, max_bytes=1024 * 1024)
    cases = [
        (b"", speech.EmptyAudio, 422, "vide"),
        (b"%PDF-1.7 not a recording" * 40, speech.UnreadableAudio, 415, "pas un enregistrement"),
        (silent_wav(0)[:44], speech.EmptyAudio, 422, "vide"),
        (clips["fr"].read_bytes(), speech.AudioTooLong, 413, "trop long"),
        (b"\0" * (1024 * 1024 + 1), speech.AudioTooLarge, 413, "trop volumineux"),
    ]
    for data, error, status, words in cases:
        with pytest.raises(error) as caught:
            speech.load_audio(data, limits)
        assert caught.value.status_code == status and words in caught.value.fr
        assert caught.value.en != caught.value.fr
    with pytest.raises(speech.UnknownLanguage, match="inconnue"):
        transcriber.transcribe(silent_wav(1), language="klingon")


def test_the_halves_are_joined_once_and_a_damaged_file_is_rebuilt(tmp_path: Path) -> None:
    bundle = bundled_model()
    assert len(bundle.parts) == 2 and bundle.size > 100_000_000
    target = ensure_bundled_model(tmp_path / "whisper-base")
    model_file = target / MODEL_FILE
    first = model_file.stat()
    assert first.st_size == bundle.size
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {
        p.name for p in target.iterdir()
    }

    ensure_bundled_model(target)  # reused as it is
    again = model_file.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)

    with model_file.open("r+b") as damaged:  # truncated
        damaged.truncate(first.st_size // 2)
    ensure_bundled_model(target)
    assert model_file.stat().st_size == bundle.size

    with model_file.open("r+b") as damaged:  # same size, altered bytes
        damaged.write(b"\0" * 4096)
    ensure_bundled_model(target)
    with model_file.open("rb") as rebuilt, bundle.parts[0].path.open("rb") as part:
        assert rebuilt.read(4096) == part.read(4096)
    assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]


def test_only_local_models_are_used(settings: Settings, tmp_path: Path) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for name in ("large-v3", "Systran/faster-whisper-large-v3", str(tmp_path / "absent")):
        with pytest.raises(SpeechModelUnavailable) as caught:
            speech_models.load_model(settings.model_copy(update={"speech_model": name}))
        assert caught.value.status_code == 503
        assert "dossier local" in caught.value.fr and "jamais téléchargé" in caught.value.fr


def test_loading_and_transcribing_never_use_the_network(
    settings: Settings,
    speech_model_dir: Path,  # noqa: F811
    clips,  # noqa: F811
    no_network,
    monkeypatch,
) -> None:
    import faster_whisper.transcribe

    def no_download(*args, **kwargs):
        raise AssertionError("faster-whisper was asked to download a model")

    monkeypatch.setattr(faster_whisper.transcribe, "download_model", no_download)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError, match="blocked"):
        probe.connect(("192.0.2.1", 80))  # the guard really blocks
    probe.close()
    no_network.clear()
    speech_models.forget_loaded_models()  # a real load, under the guard
    local = with_model(settings, speech_model_dir)
    result = speech.transcribe(clips["en"], settings=local, language="en")
    assert speech_models.load_model(local).model is speech_models.load_model(local).model
    assert heard(result.text, ENGLISH_WORDS)
    assert no_network == []
