"""Speech transcription for staff (dictation, phone-call recordings): JSON, or NDJSON progress
lines for long audio. The upload handling it shares with the patient's voice answers lives in
``app.web.speech_upload``."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.web.deps import PatientStaffUser, SessionDep, user_actor
from app.web.speech_upload import UPLOAD_FIELD, transcribe_upload

router = APIRouter(prefix="/api/speech", tags=["speech"])
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {
                        UPLOAD_FIELD: {"type": "string", "format": "binary"},
                        "language": {"type": "string", "default": "fr"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/transcriptions",
    summary="Transcribe a dictation or a recording (multipart field 'file'; NDJSON progress "
    "with Accept: application/x-ndjson)",
    openapi_extra=_UPLOAD_BODY,
)
async def create_transcription(
    request: Request, user: PatientStaffUser, session: SessionDep
) -> Response:
    return await transcribe_upload(
        request,
        session,
        user_actor(request, user),
        patient=False,
        language=None,
        purpose="dictation",
    )
