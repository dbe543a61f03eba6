"""RGPD pages for the admin: find a patient, export their data (JSON, PDF), erase them."""

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.services.core.errors import DomainError, InvalidInput
from app.services.patients import records as patient_service
from app.services.privacy import rgpd, rgpd_pdf
from app.web.deps import AdminUser, SessionDep, SettingsDep, user_actor
from app.web.forms import PostedForm
from app.web.i18n import request_language
from app.web.templating import render

router = APIRouter(prefix="/admin/rgpd", tags=["admin"])


@router.get("", response_class=HTMLResponse, summary="RGPD: find a patient")
def search_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    results = (
        patient_service.search_patients(session, user_actor(request, user), text=q, limit=50)
        if q.strip()
        else []
    )
    return render(request, "admin/rgpd_search.html", {"q": q, "results": results})


def _patient_page(
    request: Request, session: SessionDep, user: AdminUser, patient_id: int, error: str, status: int
) -> Response:
    patient = patient_service.get_patient(session, user_actor(request, user), patient_id)
    return render(
        request,
        "admin/rgpd.html",
        {
            "patient": patient,
            "erased": rgpd.is_erased(patient),
            "reasons": list(rgpd.EraseReason),
            "error": error,
        },
        status_code=status,
    )


@router.get("/{patient_id}", response_class=HTMLResponse, summary="RGPD: one patient")
def patient_page(
    request: Request, user: AdminUser, session: SessionDep, patient_id: int
) -> Response:
    return _patient_page(request, session, user, patient_id, "", 200)


def _download(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "cache-control": "no-store",
        },
    )


@router.get(
    "/{patient_id}/export.json",
    summary="RGPD: everything about a patient (JSON)",
    responses={200: {"content": {"application/json": {}}}},
)
def export_json(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep, patient_id: int
) -> Response:
    data = rgpd.export_patient(session, user_actor(request, user), patient_id, "json", settings)
    body = json.dumps(data, ensure_ascii=False, indent=2).encode()
    return _download(body, "application/json", f"patient-{patient_id}-rgpd.json")


@router.get(
    "/{patient_id}/export.pdf",
    summary="RGPD: everything about a patient (PDF)",
    responses={200: {"content": {"application/pdf": {}}}},
)
def export_pdf(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep, patient_id: int
) -> Response:
    data = rgpd.export_patient(session, user_actor(request, user), patient_id, "pdf", settings)
    content = rgpd_pdf.export_pdf(data, practice=settings.practice_name)
    return _download(content, "application/pdf", f"patient-{patient_id}-rgpd.pdf")


@router.post("/{patient_id}/erase", summary="RGPD: erase (anonymise) a patient")
def erase(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    patient_id: int,
    form: PostedForm,
) -> Response:
    confirmation = form.get("confirm_name")
    reason = form.get("reason")
    try:
        if reason not in {r.value for r in rgpd.EraseReason}:
            raise InvalidInput(
                "Choisissez le motif de l'effacement.", "Choose the reason for the erasure."
            )
        rgpd.erase_patient(
            session,
            user_actor(request, user),
            patient_id,
            confirmation=confirmation if isinstance(confirmation, str) else "",
            reason=rgpd.EraseReason(str(reason)),
            settings=settings,
        )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        session.rollback()
        message = exc.message(request_language(request))
        return _patient_page(request, session, user, patient_id, message, exc.status_code)
    return RedirectResponse(f"/admin/rgpd/{patient_id}?erased=1", status_code=303)
