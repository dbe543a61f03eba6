"""Speech transcription, fully offline: check and decode an audio file, then transcribe it with
Whisper (faster-whisper) all at once or segment by segment with its progress."""

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from sqlmodel import Session

from app.config.settings import Settings
from app.services.core import audit
from app.services.core.errors import DomainError, InvalidInput
from app.services.speech.models import LoadedModel, load_model

SAMPLE_RATE = 16_000
# Shared with the benchmark's raw faster-whisper run, so both do the same work.
TRANSCRIBE_OPTIONS: dict[str, Any] = {"beam_size": 5, "vad_filter": True}
SILENCE_PEAK = 0.002  # below about -54 dBFS everywhere: nothing to hear
DECODE_ERRORS = (av.FFmpegError, ValueError, IndexError, EOFError, OSError, RuntimeError)
NOTHING_HEARD = (
    "Rien n'a été entendu dans l'enregistrement. Parlez plus près du micro et réessayez, "
    "ou écrivez votre texte.",
    "Nothing was heard in the recording. Speak closer to the microphone and try again, "
    "or type your text.",
)
AudioSource = bytes | Path


class AudioRejected(DomainError):
    """An audio file that cannot be transcribed; the message tells the user why."""

    status_code = 422


class EmptyAudio(AudioRejected):
    def __init__(self) -> None:
        super().__init__(
            "L'enregistrement est vide : aucun son n'a été reçu. Réessayez.",
            "The recording is empty: no sound was received. Try again.",
        )


class UnreadableAudio(AudioRejected):
    status_code = 415

    def __init__(self) -> None:
        super().__init__(
            "Ce fichier n'est pas un enregistrement audio lisible (formats acceptés : webm, "
            "ogg, mp3, m4a, wav…).",
            "This file is not a readable audio recording (accepted: webm, ogg, mp3, m4a, wav…).",
        )


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(math.ceil(seconds), 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"


class AudioTooLong(AudioRejected):
    status_code = 413

    def __init__(self, seconds: float, max_seconds: float) -> None:
        super().__init__(
            f"L'enregistrement est trop long ({_minutes(seconds)}) : le maximum est "
            f"{_minutes(max_seconds)}. Coupez-le en plusieurs parties.",
            f"The recording is too long ({_minutes(seconds)}): the maximum is "
            f"{_minutes(max_seconds)}. Split it into several parts.",
            seconds=seconds,
            max_seconds=max_seconds,
        )


class AudioTooLarge(AudioRejected):
    status_code = 413

    def __init__(self, max_bytes: int) -> None:
        megabytes = max_bytes // (1024 * 1024)
        super().__init__(
            f"Le fichier audio est trop volumineux : le maximum est {megabytes} Mo.",
            f"The audio file is too large: the maximum is {megabytes} MB.",
            max_bytes=max_bytes,
        )


class UnknownLanguage(InvalidInput):
    def __init__(self, language: str) -> None:
        super().__init__(
            f"Langue de transcription inconnue : « {language[:10]} ».",
            f"Unknown transcription language: '{language[:10]}'.",
        )


@dataclass(frozen=True)
class Limits:
    """The longest and the largest audio accepted."""

    max_seconds: float
    max_bytes: int


def limits(settings: Settings, *, patient: bool = False) -> Limits:
    """Staff may send a whole phone call; a patient's spoken answer is shorter."""
    seconds = settings.speech_patient_max_seconds if patient else settings.speech_max_seconds
    return Limits(float(seconds), settings.speech_max_upload_mb * 1024 * 1024)


@dataclass(frozen=True)
class Audio:
    """Decoded audio: 16 kHz mono float samples, and the size of the file they came from."""

    samples: np.ndarray
    size_bytes: int

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def silent(self) -> bool:
        return not self.samples.size or float(np.max(np.abs(self.samples))) < SILENCE_PEAK


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    """What was said; empty text when nothing was heard (see ``message``)."""

    text: str
    language: str
    duration_seconds: float
    segments: tuple[Segment, ...]
    model: str = ""

    @property
    def heard(self) -> bool:
        return bool(self.text)

    def message(self, language: str = "fr") -> str | None:
        """The notice to show when nothing was heard, in the user's language."""
        if self.heard:
            return None
        return NOTHING_HEARD[1] if language == "en" else NOTHING_HEARD[0]


@dataclass(frozen=True)
class Progress:
    """How far a transcription has got (0 to 1 of the audio) and the text so far."""

    progress: float
    text: str


def _source(audio: AudioSource) -> io.BytesIO | str:
    return io.BytesIO(audio) if isinstance(audio, bytes) else str(audio)


def _probe_seconds(audio: AudioSource, max_seconds: float) -> float:
    """The audio's duration read from the container, or its packets (a browser's recording
    often has no duration in its header), without decoding; stops once past the limit."""
    with av.open(_source(audio), mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise UnreadableAudio()
        if container.duration:
            return container.duration / av.time_base
        stream = container.streams.audio[0]
        end = 0.0
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if end > max_seconds:
                break
        return end


def load_audio(audio: AudioSource, limits: Limits) -> Audio:
    """Check an uploaded file and decode it, or raise a clear ``AudioRejected``."""
    from faster_whisper import decode_audio

    try:
        size = len(audio) if isinstance(audio, bytes) else audio.stat().st_size
    except OSError as exc:
        raise UnreadableAudio() from exc
    if size == 0:
        raise EmptyAudio()
    if size > limits.max_bytes:
        raise AudioTooLarge(limits.max_bytes)
    try:
        probed = _probe_seconds(audio, limits.max_seconds)
        if probed > limits.max_seconds + 1:
            raise AudioTooLong(probed, limits.max_seconds)
        samples = decode_audio(_source(audio), sampling_rate=SAMPLE_RATE)
    except DECODE_ERRORS as exc:
        raise UnreadableAudio() from exc
    clip = Audio(np.asarray(samples, dtype=np.float32), size)
    if not clip.samples.size:
        raise EmptyAudio()
    if clip.duration_seconds > limits.max_seconds + 1:
        raise AudioTooLong(clip.duration_seconds, limits.max_seconds)
    return clip


class Transcriber:
    """A loaded model with the limits of one kind of use (staff or patient)."""

    def __init__(self, loaded: LoadedModel, limits: Limits) -> None:
        self.loaded = loaded
        self.limits = limits

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    def check_language(self, language: str) -> str:
        code = language.strip().lower()
        if code not in self.loaded.model.supported_languages:
            raise UnknownLanguage(language)
        return code

    def stream(
        self, audio: Audio | AudioSource, *, language: str = "fr"
    ) -> Iterator[Progress | Transcript]:
        """Progress after each transcribed segment (Whisper yields them lazily), then the
        transcript. Stopping the iteration stops the transcription."""
        code = self.check_language(language)
        clip = audio if isinstance(audio, Audio) else load_audio(audio, self.limits)
        duration = clip.duration_seconds
        found: list[Segment] = []
        if not clip.silent:
            segments, _info = self.loaded.model.transcribe(
                clip.samples, language=code, **TRANSCRIBE_OPTIONS
            )
            done = 0.0
            for segment in segments:
                text = segment.text.strip()
                if text:
                    found.append(Segment(round(segment.start, 2), round(segment.end, 2), text))
                done = max(done, min(1.0, segment.end / duration if duration else 1.0))
                yield Progress(done, " ".join(s.text for s in found))
        yield Transcript(
            " ".join(s.text for s in found), code, round(duration, 2), tuple(found), self.model_id
        )

    def transcribe(
        self,
        audio: Audio | AudioSource,
        *,
        language: str = "fr",
        on_progress: Callable[[Progress], None] | None = None,
    ) -> Transcript:
        """The whole transcript; ``on_progress`` is called after each segment."""
        for item in self.stream(audio, language=language):
            if isinstance(item, Transcript):
                return item
            if on_progress is not None:
                on_progress(item)
        raise AssertionError("a transcription always ends with its transcript")


def get_transcriber(settings: Settings, *, patient: bool = False) -> Transcriber:
    """The configured model (loaded once per process) with staff or patient limits."""
    return Transcriber(load_model(settings), limits(settings, patient=patient))


def transcribe(
    audio: AudioSource,
    *,
    settings: Settings,
    language: str = "fr",
    on_progress: Callable[[Progress], None] | None = None,
) -> Transcript:
    """Transcribe an audio file (bytes or a path) with the configured model."""
    return get_transcriber(settings).transcribe(audio, language=language, on_progress=on_progress)


def transcribe_stream(
    audio: AudioSource, *, settings: Settings, language: str = "fr"
) -> Iterator[Progress | Transcript]:
    """Like ``transcribe``, yielding ``Progress`` items before the final ``Transcript``."""
    return get_transcriber(settings).stream(audio, language=language)


def record_transcription(
    session: Session,
    actor: audit.Actor,
    clip: Audio,
    *,
    language: str,
    model: str,
    purpose: str,
    record_type: str = "speech",
    record_id: int | None = None,
    patient_id: int | None = None,
) -> None:
    """Audit a transcription: who, for what, how long; never what was said."""
    audit.record(
        session,
        actor,
        "speech.transcribe",
        record_type=record_type,
        record_id=record_id,
        patient_id=patient_id,
        details={
            "purpose": purpose,
            "language": language,
            "duration_seconds": round(clip.duration_seconds, 1),
            "size_bytes": clip.size_bytes,
            "model": model,
        },
    )
