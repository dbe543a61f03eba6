"""Staff actions on pre-consultations from the appointment page: send a link, revoke it, retry
a summary that failed."""

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.jobs import store as jobs
from app.services.core import job_actions
from app.services.core.errors import NotFound
from app.services.preconsultation import links as pc
from app.services.preconsultation import summaries
from app.web.deps import PatientStaffUser, SessionDep, user_actor
from app.web.templating import render

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


@router.post(
    "/{appointment_id}/preconsultation/summary/retry",
    summary="Ask again for a summary whose job failed",
)
def retry_summary(
    request: Request, user: PatientStaffUser, session: SessionDep, appointment_id: int
) -> Response:
    p = pc.status_for_appointment(session, appointment_id)
    job = jobs.find_job(session, summaries.job_key(p.id or 0)) if p else None
    if job is None:
        raise NotFound("Aucun résumé à relancer.", "No summary to retry.")
    job_actions.retry(session, user_actor(request, user), job.id or 0)
    return RedirectResponse(f"/agenda/appointments/{appointment_id}", status_code=303)
