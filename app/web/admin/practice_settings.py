"""Practice-wide settings pages for admins: closures of the practice and visit types."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.services.core.errors import DomainError, NotFound
from app.services.scheduling import practice_setup as setup
from app.services.scheduling import public_holidays
from app.web.deps import AdminUser, SessionDep, SettingsDep, user_actor
from app.web.forms import FormCheck, PostedForm, page_language, values_of
from app.web.practice_forms import (
    PERIOD_FIELDS,
    domain_errors,
    optional_minutes,
    period_from_form,
    period_text,
)
from app.web.templating import render
from models.appointments import Appointment
from models.practice import PracticeClosure

closures = APIRouter(prefix="/admin/fermetures", tags=["admin"])
visit_types = APIRouter(prefix="/admin/types-de-visite", tags=["admin"])

CLOSURE_NOTICES = frozenset({"added", "deleted", "holiday_opened", "holiday_closed"})
HOLIDAYS_AHEAD = timedelta(days=366)
VISIT_TYPE_FIELDS = ("code", "label", "duration_minutes")
VISIT_TYPE_NOTICES = frozenset({"created", "updated", "deactivated", "reactivated"})


@dataclass(frozen=True)
class ClosureRow:
    """A closure as listed: its period in words and how many live appointments it covers."""

    closure: PracticeClosure
    period: str
    kept: int


def _closures_page(
    request: Request,
    session: Session,
    *,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    notice: str = "",
    closure_id: int | None = None,
    status: int = 200,
) -> Response:
    tz = request.app.state.settings.tz
    language = page_language(request)
    covered: list[Appointment] = []
    if closure_id is not None and notice == "added":
        try:
            covered = setup.closure_appointments(session, setup.get_closure(session, closure_id))
        except NotFound:
            covered = []
    rows = [
        ClosureRow(
            closure,
            period_text(closure.starts_at, closure.ends_at, tz, language),
            len(setup.closure_appointments(session, closure)),
        )
        for closure in setup.list_closures(session, ending_after=datetime.now(UTC))
    ]
    today = datetime.now(tz).date()
    holidays = public_holidays.list_holidays(session, today, today + HOLIDAYS_AHEAD)
    return render(
        request,
        "practice/closures.html",
        {
            "closures": rows,
            "holidays": holidays,
            "language": language,
            "values": values or {},
            "errors": errors or [],
            "notice": notice if notice in CLOSURE_NOTICES else "",
            "covered": covered,
            "names": {p.id: p.display_name for p in setup.list_practitioners(session)},
        },
        status_code=status,
    )


@closures.get("", response_class=HTMLResponse, summary="Practice closures page")
def closures_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    fait: Annotated[str, Query(max_length=20)] = "",
    fermeture: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return _closures_page(request, session, notice=fait, closure_id=fermeture)


@closures.post("", summary="Add a practice closure")
def closure_from_form(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep, form: PostedForm
) -> Response:
    check = FormCheck(page_language(request), values_of(form, PERIOD_FIELDS))
    period = period_from_form(check, settings.tz)
    if check.errors or period is None:
        return _closures_page(
            request, session, values=check.values, errors=check.errors, status=422
        )
    try:
        closure, _ = setup.add_closure(
            session, user_actor(request, user), *period, reason=check.values.get("reason", "")
        )
    except DomainError as exc:
        errors = domain_errors(check, exc)
        return _closures_page(
            request, session, values=check.values, errors=errors, status=exc.status_code
        )
    query = urlencode({"fait": "added", "fermeture": closure.id or 0})
    return RedirectResponse(f"/admin/fermetures?{query}", status_code=303)


@closures.post("/{closure_id}/delete", summary="Delete a practice closure")
def delete_closure(
    request: Request, user: AdminUser, session: SessionDep, closure_id: int
) -> Response:
    setup.delete_closure(session, user_actor(request, user), closure_id)
    return RedirectResponse("/admin/fermetures?fait=deleted", status_code=303)


def _visit_types_page(
    request: Request,
    session: Session,
    *,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    row_id: int | None = None,
    notice: str = "",
    status: int = 200,
) -> Response:
    """The list with one form per visit type; ``row_id`` is the row whose form failed."""
    values = values or {}
    return render(
        request,
        "practice/visit_types.html",
        {
            "visit_types": setup.list_visit_types(session),
            "values": values if row_id is None else {},
            "row_values": values if row_id is not None else {},
            "errors": errors or [],
            "row_id": row_id,
            "notice": notice if notice in VISIT_TYPE_NOTICES else "",
        },
        status_code=status,
    )


@visit_types.get("", response_class=HTMLResponse, summary="Visit types page")
def visit_types_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    fait: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    return _visit_types_page(request, session, notice=fait)


@visit_types.post("", summary="Create a visit type")
def create_visit_type(
    request: Request, user: AdminUser, session: SessionDep, form: PostedForm
) -> Response:
    check = FormCheck(page_language(request), values_of(form, VISIT_TYPE_FIELDS))
    minutes = optional_minutes(check, "duration_minutes")
    page: dict[str, Any] = {"values": check.values}
    if check.errors:
        return _visit_types_page(request, session, errors=check.errors, status=422, **page)
    try:
        setup.create_visit_type(
            session,
            user_actor(request, user),
            check.values.get("code", ""),
            check.values.get("label", ""),
            minutes,
        )
    except DomainError as exc:
        errors = domain_errors(check, exc)
        return _visit_types_page(request, session, errors=errors, status=exc.status_code, **page)
    return RedirectResponse("/admin/types-de-visite?fait=created", status_code=303)


@visit_types.post("/{visit_type_id}", summary="Update a visit type")
def update_visit_type(
    request: Request, user: AdminUser, session: SessionDep, visit_type_id: int, form: PostedForm
) -> Response:
    check = FormCheck(page_language(request), values_of(form, VISIT_TYPE_FIELDS))
    minutes = optional_minutes(check, "duration_minutes")
    page: dict[str, Any] = {"values": check.values, "row_id": visit_type_id}
    if check.errors:
        return _visit_types_page(request, session, errors=check.errors, status=422, **page)
    try:
        setup.update_visit_type(
            session,
            user_actor(request, user),
            visit_type_id,
            label=check.values.get("label", ""),
            duration_minutes=minutes,
        )
    except DomainError as exc:
        errors = domain_errors(check, exc)
        return _visit_types_page(request, session, errors=errors, status=exc.status_code, **page)
    return RedirectResponse("/admin/types-de-visite?fait=updated", status_code=303)


@visit_types.post("/{visit_type_id}/deactivate", summary="Deactivate a visit type")
def deactivate_visit_type(
    request: Request, user: AdminUser, session: SessionDep, visit_type_id: int
) -> Response:
    setup.set_visit_type_active(session, user_actor(request, user), visit_type_id, False)
    return RedirectResponse("/admin/types-de-visite?fait=deactivated", status_code=303)


@visit_types.post("/{visit_type_id}/reactivate", summary="Reactivate a visit type")
def reactivate_visit_type(
    request: Request, user: AdminUser, session: SessionDep, visit_type_id: int
) -> Response:
    setup.set_visit_type_active(session, user_actor(request, user), visit_type_id, True)
    return RedirectResponse("/admin/types-de-visite?fait=reactivated", status_code=303)


@closures.post("/feries/{day}/ouvrir", summary="Open the practice on a public holiday")
def open_holiday(request: Request, user: AdminUser, session: SessionDep, day: date) -> Response:
    public_holidays.open_holiday(session, user_actor(request, user), day)
    return RedirectResponse("/admin/fermetures?fait=holiday_opened", status_code=303)


@closures.post("/feries/{day}/fermer", summary="Close a public holiday opened exceptionally")
def close_holiday(request: Request, user: AdminUser, session: SessionDep, day: date) -> Response:
    public_holidays.close_holiday(session, user_actor(request, user), day)
    return RedirectResponse("/admin/fermetures?fait=holiday_closed", status_code=303)
