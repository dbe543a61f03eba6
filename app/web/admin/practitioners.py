"""Practitioner pages: the list, one practitioner's details, weekly hours, visit-type durations
and absences (secretaries manage absences too; the rest is for admins)."""

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.services.core.errors import DomainError, NotFound
from app.services.scheduling import practice_setup as setup
from app.web.deps import AdminUser, RoleGuard, SessionDep, SettingsDep, user_actor
from app.web.forms import FormCheck, PostedForm, page_language, values_of
from app.web.i18n import translate
from app.web.practice_forms import (
    PERIOD_FIELDS,
    domain_errors,
    hours_columns,
    hours_field,
    hours_field_names,
    hours_from_form,
    hours_values,
    optional_minutes,
    period_from_form,
    period_text,
)
from app.web.templating import render
from models.appointments import Appointment
from models.practice import Absence
from models.users import Role, User

router = APIRouter(prefix="/admin/praticiens", tags=["admin"])

# Secretaries keep the practitioners' absences up to date; admins set everything else.
ABSENCE_STAFF = RoleGuard(Role.secretary, Role.admin)
AbsenceStaffUser = Annotated[User, Depends(ABSENCE_STAFF)]

DETAIL_FIELDS = (
    "title",
    "first_name",
    "last_name",
    "specialty",
    "rpps",
    "default_duration_minutes",
)
HOURS_FIELD = re.compile(r"h(\d)_(\d+)_(start|end)")
NOTICES = frozenset(
    {
        "created",
        "details",
        "hours",
        "durations",
        "absence_added",
        "absence_deleted",
        "deactivated",
        "reactivated",
    }
)


@dataclass(frozen=True)
class AbsenceRow:
    """An absence as listed: its period in words and the live appointments it covers."""

    absence: Absence
    period: str
    kept: int


def _page_url(practitioner_id: int, done: str, **params: int) -> str:
    return f"/admin/praticiens/{practitioner_id}?" + urlencode({"fait": done, **params})


def _details_from_form(check: FormCheck) -> setup.PractitionerDetails | None:
    minutes = check.integer("default_duration_minutes", required=True)
    if check.errors or minutes is None:
        return None
    values = check.values
    return setup.PractitionerDetails(
        title=values.get("title", ""),
        first_name=values.get("first_name", ""),
        last_name=values.get("last_name", ""),
        specialty=values.get("specialty", ""),
        rpps=values.get("rpps"),
        default_duration_minutes=minutes,
    )


def _details_values(details: setup.PractitionerDetails) -> dict[str, str]:
    """Details as form field values (the defaults for a new practitioner, or stored ones)."""
    return {name: "" if value is None else str(value) for name, value in asdict(details).items()}


def _list_page(
    request: Request,
    session: Session,
    user: User,
    *,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "practice/practitioners.html",
        {
            "practitioners": setup.list_practitioners(session),
            "can_edit": user.role == Role.admin,
            "values": values or _details_values(setup.PractitionerDetails("", "")),
            "errors": errors or [],
        },
        status_code=status,
    )


def _hours_errors(
    language: str, errors: list[dict[str, str]]
) -> tuple[list[dict[str, str]], set[str]]:
    """Errors of the hours editor labelled by weekday and range, and the fields to mark."""
    labelled, invalid = [], set()
    for error in errors:
        field = error["field"]
        invalid.add(field)
        if match := HOURS_FIELD.fullmatch(field):
            day, column, edge = match.groups()
            label = translate(
                language,
                f"practice.hours.{edge}_label",
                day=translate(language, f"agenda.weekday.{int(day) + 1}"),
                n=int(column) + 1,
            )
            error = {**error, "label": label}
        labelled.append(error)
    return labelled, invalid


def _detail_page(
    request: Request,
    session: Session,
    user: User,
    practitioner_id: int,
    *,
    section: str = "",
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    invalid: set[str] | None = None,
    notice: str = "",
    absence_id: int | None = None,
    status: int = 200,
) -> Response:
    tz = request.app.state.settings.tz
    language = page_language(request)
    practitioner = setup.get_practitioner(session, practitioner_id)
    now = datetime.now(UTC)
    week = setup.weekly_hours(session, practitioner_id)
    columns = hours_columns(week)
    values = values or {}
    covered: list[Appointment] = []
    if absence_id is not None and notice == "absence_added":
        try:
            covered = setup.absence_appointments(
                session, setup.get_absence(session, absence_id, practitioner_id)
            )
        except NotFound:
            covered = []
    absences = [
        AbsenceRow(
            absence,
            period_text(absence.starts_at, absence.ends_at, tz, language),
            len(setup.absence_appointments(session, absence)),
        )
        for absence in setup.list_absences(session, practitioner_id, ending_after=now)
    ]
    visit_types = setup.list_visit_types(session, active_only=True)
    durations = setup.practitioner_visit_durations(session, practitioner_id)
    return render(
        request,
        "practice/practitioner.html",
        {
            "p": practitioner,
            "can_edit": user.role == Role.admin,
            "can_open_appointments": user.role in (Role.secretary, Role.physician),
            "section": section,
            "errors": errors or [],
            "invalid": invalid or set(),
            "notice": notice if notice in NOTICES else "",
            "details": values
            if section == "details"
            else _details_values(setup.practitioner_details(practitioner)),
            "hours": values if section == "hours" else hours_values(week),
            "week": week,
            "columns": columns,
            "hours_field": hours_field,
            "absence_values": values if section == "absence" else {},
            "absences": absences,
            "covered": covered,
            "visit_types": visit_types,
            "durations": values
            if section == "durations"
            else {f"vt_{k}": str(v) for k, v in durations.items()},
            "upcoming": []
            if practitioner.is_active
            else setup.live_appointments_between(session, now, None, practitioner_id),
        },
        status_code=status,
    )


@router.get("", response_class=HTMLResponse, summary="Practitioners page")
def practitioners_page(request: Request, user: AbsenceStaffUser, session: SessionDep) -> Response:
    return _list_page(request, session, user)


@router.post("", summary="Create a practitioner")
def create_from_form(
    request: Request, user: AdminUser, session: SessionDep, form: PostedForm
) -> Response:
    check = FormCheck(page_language(request), values_of(form, DETAIL_FIELDS))
    details = _details_from_form(check)
    if details is None:
        return _list_page(
            request, session, user, values=check.values, errors=check.errors, status=422
        )
    try:
        practitioner = setup.create_practitioner(session, user_actor(request, user), details)
    except DomainError as exc:
        errors = domain_errors(check, exc)
        return _list_page(
            request, session, user, values=check.values, errors=errors, status=exc.status_code
        )
    return RedirectResponse(_page_url(practitioner.id or 0, "created"), status_code=303)


@router.get("/{practitioner_id}", response_class=HTMLResponse, summary="Practitioner page")
def practitioner_page(
    request: Request,
    user: AbsenceStaffUser,
    session: SessionDep,
    practitioner_id: int,
    fait: Annotated[str, Query(max_length=20)] = "",
    absence: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return _detail_page(request, session, user, practitioner_id, notice=fait, absence_id=absence)


@router.post("/{practitioner_id}/details", summary="Update a practitioner's details")
def details_from_form(
    request: Request, user: AdminUser, session: SessionDep, practitioner_id: int, form: PostedForm
) -> Response:
    check = FormCheck(page_language(request), values_of(form, DETAIL_FIELDS))
    details = _details_from_form(check)
    page: dict[str, Any] = {"section": "details", "values": check.values}
    if details is None:
        return _detail_page(
            request, session, user, practitioner_id, errors=check.errors, status=422, **page
        )
    try:
        setup.update_practitioner(session, user_actor(request, user), practitioner_id, details)
    except DomainError as exc:
        errors = domain_errors(check, exc)
        return _detail_page(
            request, session, user, practitioner_id, errors=errors, status=exc.status_code, **page
        )
    return RedirectResponse(_page_url(practitioner_id, "details"), status_code=303)


@router.post("/{practitioner_id}/hours", summary="Set a practitioner's weekly hours")
def hours_from_page(
    request: Request, user: AdminUser, session: SessionDep, practitioner_id: int, form: PostedForm
) -> Response:
    language = page_language(request)
    columns = hours_columns(setup.weekly_hours(session, practitioner_id))
    check = FormCheck(language, values_of(form, hours_field_names(columns)))
    week = hours_from_form(check, columns)
    page: dict[str, Any] = {"section": "hours", "values": check.values}
    if check.errors:
        errors, invalid = _hours_errors(language, check.errors)
        return _detail_page(
            request,
            session,
            user,
            practitioner_id,
            errors=errors,
            invalid=invalid,
            status=422,
            **page,
        )
    try:
        setup.set_week_hours(session, user_actor(request, user), practitioner_id, week)
    except setup.InvalidHours as exc:
        day = int(exc.details.get("weekday", 0)) % 7
        # The message names the day already: it is itself the link to the day's first input.
        errors = [
            {"field": hours_field(day, 0, "start"), "message": exc.message(language), "linked": "1"}
        ]
        invalid = {hours_field(day, c, e) for c in range(columns) for e in ("start", "end")}
        return _detail_page(
            request,
            session,
            user,
            practitioner_id,
            errors=errors,
            invalid=invalid,
            status=exc.status_code,
            **page,
        )
    return RedirectResponse(_page_url(practitioner_id, "hours"), status_code=303)


@router.post("/{practitioner_id}/durations", summary="Set a practitioner's visit-type durations")
def durations_from_form(
    request: Request, user: AdminUser, session: SessionDep, practitioner_id: int, form: PostedForm
) -> Response:
    kinds = setup.list_visit_types(session, active_only=True)
    names = [f"vt_{kind.id}" for kind in kinds]
    check = FormCheck(page_language(request), values_of(form, names))
    durations = {kind.id or 0: optional_minutes(check, f"vt_{kind.id}") for kind in kinds}
    labels = {f"vt_{kind.id}": kind.label for kind in kinds}
    page: dict[str, Any] = {"section": "durations", "values": check.values}
    errors: list[dict[str, str]] = check.errors
    status = 422
    if not errors:
        try:
            setup.set_visit_type_durations(
                session, user_actor(request, user), practitioner_id, durations
            )
        except DomainError as exc:
            errors, status = domain_errors(check, exc), exc.status_code
    if errors:
        labelled = [{**e, "label": labels.get(e["field"], "")} for e in errors]
        return _detail_page(
            request, session, user, practitioner_id, errors=labelled, status=status, **page
        )
    return RedirectResponse(_page_url(practitioner_id, "durations"), status_code=303)


@router.post("/{practitioner_id}/deactivate", summary="Deactivate a practitioner")
def deactivate(
    request: Request, user: AdminUser, session: SessionDep, practitioner_id: int
) -> Response:
    setup.deactivate_practitioner(session, user_actor(request, user), practitioner_id)
    return RedirectResponse(_page_url(practitioner_id, "deactivated"), status_code=303)


@router.post("/{practitioner_id}/reactivate", summary="Reactivate a practitioner")
def reactivate(
    request: Request, user: AdminUser, session: SessionDep, practitioner_id: int
) -> Response:
    setup.reactivate_practitioner(session, user_actor(request, user), practitioner_id)
    return RedirectResponse(_page_url(practitioner_id, "reactivated"), status_code=303)


@router.post("/{practitioner_id}/absences", summary="Add an absence")
def absence_from_form(
    request: Request,
    user: AbsenceStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    practitioner_id: int,
    form: PostedForm,
) -> Response:
    check = FormCheck(page_language(request), values_of(form, PERIOD_FIELDS))
    period = period_from_form(check, settings.tz)
    page: dict[str, Any] = {"section": "absence", "values": check.values}
    if check.errors or period is None:
        return _detail_page(
            request, session, user, practitioner_id, errors=check.errors, status=422, **page
        )
    try:
        absence, _ = setup.add_absence(
            session,
            user_actor(request, user),
            practitioner_id,
            *period,
            reason=check.values.get("reason", ""),
        )
    except DomainError as exc:
        errors = domain_errors(check, exc)
        return _detail_page(
            request, session, user, practitioner_id, errors=errors, status=exc.status_code, **page
        )
    url = _page_url(practitioner_id, "absence_added", absence=absence.id or 0)
    return RedirectResponse(url + "#absences", status_code=303)


@router.post("/{practitioner_id}/absences/{absence_id}/delete", summary="Delete an absence")
def delete_absence(
    request: Request,
    user: AbsenceStaffUser,
    session: SessionDep,
    practitioner_id: int,
    absence_id: int,
) -> Response:
    setup.delete_absence(
        session, user_actor(request, user), absence_id, practitioner_id=practitioner_id
    )
    return RedirectResponse(
        _page_url(practitioner_id, "absence_deleted") + "#absences", status_code=303
    )
