"""The iCalendar feed served to calendar apps, and the admin page that hands out its links."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from app.services.core.errors import DomainError, InvalidInput, NotFound
from app.services.scheduling import calendar_feed as feeds
from app.web.deps import AdminUser, SessionDep, SettingsDep, client_address, public, user_actor
from app.web.i18n import request_language
from app.web.templating import render

router = APIRouter(tags=["calendar"])

ICAL_MEDIA_TYPE = "text/calendar; charset=utf-8"
CHECKED = frozenset({"true", "on", "1", "yes"})


@router.get(
    "/ical/{token}.ics",
    dependencies=[Depends(public)],
    summary="A practitioner's agenda as an iCalendar feed",
    response_class=Response,
)
def ical_feed(request: Request, token: str, session: SessionDep, settings: SettingsDep):
    try:
        body = feeds.render_feed(session, token, settings, address=client_address(request))
    except NotFound as exc:
        language = request_language(request, settings.default_language)
        return PlainTextResponse(exc.message(language), status_code=404)
    return Response(
        body,
        media_type=ICAL_MEDIA_TYPE,
        headers={
            "Cache-Control": "private, max-age=300",
            "Content-Disposition": 'inline; filename="agenda.ics"',
        },
    )


def _page(
    request: Request,
    session: SessionDep,
    *,
    new_url: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/agendas.html",
        {
            "groups": feeds.feeds_by_practitioner(session),
            "new_url": new_url,
            "error": error,
        },
        status_code=status_code,
    )


def _error_page(
    request: Request, session: SessionDep, settings: SettingsDep, exc: DomainError
) -> Response:
    message = exc.message(request_language(request, settings.default_language))
    return _page(request, session, error=message, status_code=exc.status_code)


@router.get("/admin/agendas", response_class=HTMLResponse, summary="Calendar feeds page")
def agendas_page(request: Request, user: AdminUser, session: SessionDep) -> Response:
    return _page(request, session)


@router.post("/admin/agendas/feeds", response_class=HTMLResponse, summary="Create a calendar feed")
def create_feed(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    practitioner_id: Annotated[str, Form()] = "",
    include_patient_names: Annotated[str, Form()] = "",
) -> Response:
    # Errors are shown on the page itself: nothing here may fail form validation.
    try:
        practitioner_id = practitioner_id.strip()
        if not (practitioner_id.isascii() and practitioner_id.isdigit()):
            raise InvalidInput("Choisissez un praticien.", "Choose a practitioner.")
        if len(practitioner_id) > 9:  # beyond any id: no such practitioner
            raise NotFound("Praticien introuvable.", "Practitioner not found.")
        _, token = feeds.create_feed(
            session,
            user_actor(request, user),
            int(practitioner_id),
            include_patient_names=include_patient_names.lower() in CHECKED,
            created_by_id=user.id,
            names_allowed=settings.ical_patient_names,
        )
    except DomainError as exc:
        return _error_page(request, session, settings, exc)
    url = str(request.base_url).rstrip("/") + request.app.url_path_for("ical_feed", token=token)
    return _page(request, session, new_url=url)


@router.post("/admin/agendas/feeds/{feed_id:int}/revoke", summary="Revoke a calendar feed")
def revoke_feed(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep, feed_id: int
) -> Response:
    try:
        feeds.revoke_feed(session, user_actor(request, user), feed_id)
    except DomainError as exc:
        return _error_page(request, session, settings, exc)
    return RedirectResponse("/admin/agendas?revoked=1", status_code=303)
