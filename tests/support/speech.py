"""Speech test helpers: clips spoken by Debian's espeak-ng, the bundled model joined once per
run, and keyword checks (a synthetic voice is never transcribed word for word).

Without espeak-ng the speech tests skip with a reason, except under ``CI=true`` where a missing
espeak-ng is a failure (``.ci/run`` installs it with apt-get).
"""

import os
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest

from app.config.settings import Settings
from app.services.speech.models import ensure_bundled_model

FRENCH = "Bonjour docteur. J'ai mal à la tête et mal au ventre depuis lundi."
FRENCH_WORDS = ("docteur", "tete", "ventre")
ENGLISH = "I have had a headache for three days and a fever."
ENGLISH_WORDS = ("headache", "three", "fever")
LONG_FRENCH = (
    "Bonjour docteur. J'ai mal à la tête depuis lundi. "
    "Hier soir, j'avais mal au ventre et je n'ai pas dormi. "
    "Ce matin, je me sens un peu mieux, mais je suis très fatigué. "
    "Je voudrais savoir si je dois prendre un médicament."
)


def require_espeak() -> str:
    found = shutil.which("espeak-ng")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("Debian's espeak-ng is missing under CI (.ci/run installs it with apt-get)")
    pytest.skip("Debian's espeak-ng is not installed (apt-get install espeak-ng)")
    raise AssertionError("unreachable")


def speak(text: str, path: Path, *, voice: str = "fr", speed: int = 130) -> Path:
    """A WAV clip of ``text`` (espeak-ng, 22 kHz mono)."""
    command = [require_espeak(), "-v", voice, "-s", str(speed), "-w", str(path), text]
    subprocess.run(command, check=True, capture_output=True, timeout=60)  # noqa: S603
    return path


def plain(text: str) -> str:
    """Lower case without accents, for keyword checks."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def heard(text: str, words: tuple[str, ...]) -> list[str]:
    return [word for word in words if word in plain(text)]


@pytest.fixture(scope="session")
def speech_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model joined once for the whole run (a second join reuses it)."""
    return ensure_bundled_model(tmp_path_factory.getbasetemp() / "speech-model")


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The French, English and longer French clips, spoken once per run."""
    folder = tmp_path_factory.mktemp("speech-clips")
    return {
        "fr": speak(FRENCH, folder / "fr.wav"),
        "en": speak(ENGLISH, folder / "en.wav", voice="en"),
        "long": speak(LONG_FRENCH, folder / "long.wav"),
    }


def with_model(settings: Settings, model_dir: Path, **changes: object) -> Settings:
    """The test settings using the joined model from a local path (the production way)."""
    return settings.model_copy(update={"speech_model": str(model_dir), **changes})
