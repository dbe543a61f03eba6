"""Speech transcription speed: our service against raw faster-whisper, same model, same clip,
same options (the bundled Whisper base, int8 on the CPU).

Speed is given as seconds of audio transcribed per second (× real time; the inverse of the
real-time factor). Goal: our service runs at ≥ 0.95× raw faster-whisper's speed, i.e. checking,
decoding and progress reporting cost under 5 %. The clip is French speech from espeak-ng.
The two run back to back in pairs (in alternating order) and the ratio is the median of the
pairs' ratios: on two shared cores the same transcription takes anywhere from 4 to 9 s, and
a pair shares the machine's load of the moment. Speeds are the best run of each.
"""

import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from app.config.settings import Settings
from app.services.speech import models as speech_models
from app.services.speech import transcription as speech
from benchmarks.report import Measure, Report

GOAL = 0.95
REPEATS = 7
CACHE = Path(tempfile.gettempdir()) / "accueil-bench-speech"
TEXT = (
    "Bonjour docteur. Je vous appelle parce que j'ai mal à la tête depuis lundi. "
    "Hier soir, j'avais aussi mal au ventre et je n'ai presque pas dormi. "
    "Ce matin, je me sens un peu mieux, mais je suis très fatigué et j'ai un peu de fièvre. "
    "Je voudrais savoir si je dois prendre un médicament en attendant le rendez-vous. "
    "Je prends déjà un traitement pour la tension, un comprimé le matin. "
    "Pouvez-vous me rappeler cet après-midi, ou dois-je venir au cabinet demain matin ? "
    "Merci beaucoup, et bonne journée."
)


def _clip(folder: Path) -> Path | None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return None
    path = folder / "appel.wav"
    if not path.exists():
        command = [espeak, "-v", "fr", "-s", "130", "-w", str(path), TEXT]
        subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603
    return path


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run(report: Report) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    clip = _clip(CACHE)
    if clip is None:
        print("  espeak-ng is missing (apt-get install espeak-ng): speech benchmark skipped")
        return
    settings = Settings(_env_file=None, data_dir=CACHE / "data", secret_key="benchmark")
    speech_models.forget_loaded_models()
    load_seconds = _seconds(lambda: speech_models.load_model(settings))
    report.add(Measure("speech: join (first run only) + load the bundled model", load_seconds, "s"))
    model = speech_models.load_model(settings).model
    transcriber = speech.get_transcriber(settings)
    duration = speech.load_audio(clip, transcriber.limits).duration_seconds
    checks = min(_seconds(lambda: speech.load_audio(clip, transcriber.limits)) for _ in range(5))
    label = "speech: our check + decode of the clip (raw faster-whisper decodes too)"
    report.add(Measure(label, checks * 1000, "ms"))

    def raw() -> None:
        segments, _ = model.transcribe(str(clip), language="fr", **speech.TRANSCRIBE_OPTIONS)
        list(segments)

    def ours() -> None:
        progress: list[float] = []
        transcriber.transcribe(
            clip, language="fr", on_progress=lambda p: progress.append(p.progress)
        )

    raw()  # warm-up: first-call allocations
    ours()
    raw_times, our_times = [], []
    for n in range(REPEATS):
        pair = (raw, ours) if n % 2 == 0 else (ours, raw)
        times = {call: _seconds(call) for call in pair}
        raw_times.append(times[raw])
        our_times.append(times[ours])
    raw_speed = duration / min(raw_times)
    our_speed = duration / min(our_times)
    label = f"{duration:.0f} s French clip, whisper-base int8 CPU, best of {REPEATS}"
    report.add(Measure(f"speech: raw faster-whisper, {label}", raw_speed, "× real time"))
    report.add(Measure(f"speech: our service, {label}", our_speed, "× real time"))
    ratio = statistics.median(r / o for r, o in zip(raw_times, our_times, strict=True))
    report.add(
        Measure(
            "speech: our service speed / raw faster-whisper speed (median of pairs)",
            ratio,
            "×",
            f"≥ {GOAL:g}×",
            ratio >= GOAL,
        )
    )
