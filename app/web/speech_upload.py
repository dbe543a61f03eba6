"""Audio uploads turned into transcripts over HTTP, shared by the staff's dictation route and
the patient's voice answers: read and check the upload, audit it, then answer with JSON, or
with NDJSON progress lines for long audio. Not a router: each audience's route does its own
access checks, then hands the request here."""

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.services.core.audit import Actor
from app.services.core.errors import DomainError
from app.services.speech import transcription as speech
from app.web.i18n import request_language

log = logging.getLogger("accueil.speech")
NDJSON = "application/x-ndjson"
UPLOAD_FIELD = "file"


async def read_upload(request: Request, limits: speech.Limits) -> tuple[bytes, dict[str, str]]:
    """The uploaded audio (refused past the size limit) and the form's text fields; read
    only after the route's access checks have passed."""
    form = await request.form()
    upload = form.get(UPLOAD_FIELD)
    if not isinstance(upload, UploadFile):
        raise speech.EmptyAudio()
    data = await upload.read(limits.max_bytes + 1)
    await upload.close()
    if len(data) > limits.max_bytes:
        raise speech.AudioTooLarge(limits.max_bytes)
    fields = {k: v[:20] for k, v in form.items() if isinstance(v, str)}
    return data, fields


def _payload(transcript: speech.Transcript, ui_language: str) -> dict[str, Any]:
    return {
        "text": transcript.text,
        "language": transcript.language,
        "duration_seconds": transcript.duration_seconds,
        "heard": transcript.heard,
        "message": transcript.message(ui_language),
    }


def _lines(
    transcriber: speech.Transcriber, clip: speech.Audio, language: str, ui_language: str
) -> Iterator[bytes]:
    try:
        for item in transcriber.stream(clip, language=language):
            if isinstance(item, speech.Progress):
                line: dict[str, Any] = {"progress": round(item.progress, 3), "text": item.text}
            else:
                line = {"progress": 1.0, "done": True, **_payload(item, ui_language)}
            yield (json.dumps(line, ensure_ascii=False) + "\n").encode()
    except DomainError as exc:
        yield (json.dumps({"error": exc.message(ui_language)}, ensure_ascii=False) + "\n").encode()
    except Exception:
        log.exception("transcription failed while streaming")
        message = (
            "La transcription a échoué. Réessayez."
            if ui_language != "en"
            else "The transcription failed. Try again."
        )
        yield (json.dumps({"error": message}, ensure_ascii=False) + "\n").encode()


async def transcribe_upload(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    patient: bool,
    language: str | None,
    purpose: str,
    record_type: str = "speech",
    record_id: int | None = None,
    patient_id: int | None = None,
) -> Response:
    """Read, check and decode the upload, audit it, then answer with the transcript as JSON,
    or as NDJSON progress lines when the client accepts ``application/x-ndjson``."""
    settings = request.app.state.settings
    ui_language = request_language(request, settings.default_language)
    limits = speech.limits(settings, patient=patient)
    data, fields = await read_upload(request, limits)
    clip = await run_in_threadpool(speech.load_audio, data, limits)
    transcriber = await run_in_threadpool(speech.get_transcriber, settings, patient=patient)
    code = transcriber.check_language(language or fields.get("language") or "fr")

    def record() -> None:
        speech.record_transcription(
            session,
            actor,
            clip,
            language=code,
            model=transcriber.model_id,
            purpose=purpose,
            record_type=record_type,
            record_id=record_id,
            patient_id=patient_id,
        )
        session.commit()  # the audit event is kept, and no lock is held while transcribing

    await run_in_threadpool(record)
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(
            _lines(transcriber, clip, code, ui_language),
            media_type=NDJSON,
            headers={"x-accel-buffering": "no"},  # a reverse proxy must not hold the lines
        )
    transcript = await run_in_threadpool(transcriber.transcribe, clip, language=code)
    return JSONResponse(_payload(transcript, ui_language))
