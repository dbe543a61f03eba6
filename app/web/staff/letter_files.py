"""Approved letters as PDF files, for the physician and the secretary (a draft: 409)."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.services.documents import letter_pdf, letters
from app.web.deps import PatientStaffUser, SessionDep, SettingsDep, user_actor

router = APIRouter(prefix="/courriers", tags=["letters"])


@router.get(
    "/{document_id}.pdf",
    summary="Download an approved letter as PDF",
    responses={200: {"content": {"application/pdf": {}}}},
)
def letter_pdf_file(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    document_id: int,
) -> Response:
    document, rendered = letters.pdf_parts(
        session, user_actor(request, user), settings, document_id
    )
    content = letter_pdf.letter_pdf(
        rendered, practice=settings.practice_name, title=f"Courrier {document.id}"
    )
    return Response(
        content,
        media_type="application/pdf",
        headers={
            "content-disposition": f'attachment; filename="courrier-{document.id}.pdf"',
            "cache-control": "no-store",
        },
    )
