"""Staff actions on pre-consultations from the appointment page: send a link, revoke it."""

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import PatientStaffUser, SessionDep, user_actor
from app.services import preconsultation as pc
from app.templating import render

router = APIRouter(prefix="/agenda/appointments", tags=["pre-consultation"])


@router.post(
    "/{appointment_id}/preconsultation",
    response_class=HTMLResponse,
    summary="Send a pre-consultation link (shown once, with its QR code)",
)
def send_link(
    request: Request, user: PatientStaffUser, session: SessionDep, appointment_id: int
) -> Response:
    sent = pc.send_preconsultation(
        session,
        user_actor(request, user),
        appointment_id,
        secret=request.app.state.settings.resolved_secret_key(),
        lifetime=timedelta(days=7),
    )
    url = str(request.base_url).rstrip("/") + sent.path
    return render(
        request,
        "preconsultation/sent.html",
        {
            "appointment_id": appointment_id,
            "url": url,
            "qr": pc.qr_svg_data_uri(url),
            "sent": sent,
        },
    )


@router.post(
    "/{appointment_id}/preconsultation/revoke", summary="Cancel the appointment's open link"
)
def revoke_link(
    request: Request, user: PatientStaffUser, session: SessionDep, appointment_id: int
) -> Response:
    pc.revoke_preconsultation(session, user_actor(request, user), appointment_id)
    return RedirectResponse(f"/agenda/appointments/{appointment_id}", status_code=303)
