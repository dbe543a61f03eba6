"""Waiting-list pages: open entries with their offers, and the form to add a patient."""

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.services.core.errors import DomainError
from app.services.scheduling import waiting_list
from app.services.scheduling.slots import active_practitioners
from app.web.deps import PatientStaffUser, SessionDep, SettingsDep, user_actor
from app.web.forms import (
    FormCheck,
    PostedForm,
    page_language,
    patient_choices,
    values_of,
)
from app.web.templating import render
from models.appointments import PartOfDay
from models.users import User

router = APIRouter(prefix="/liste-attente", tags=["pages"])

ADD_FIELDS = (
    "patient_id",
    "practitioner",
    "earliest",
    "latest",
    "part_of_day",
    "duration",
    "reason",
    "q",
)
NOTICES = frozenset({"added", "booked", "declined", "withdrawn"})


def _page(
    request: Request,
    session: Session,
    user: User,
    *,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    action_errors: list[dict[str, str]] | None = None,
    notice: str = "",
    offer_id: int | None = None,
    appointment_id: int | None = None,
    status: int = 200,
) -> Response:
    actor = user_actor(request, user)
    values = values or {}
    rows = waiting_list.list_waiting(session, actor)
    patient_id = values.get("patient_id", "")
    practitioners = active_practitioners(session)
    return render(
        request,
        "waiting/index.html",
        {
            "rows": rows,
            "values": values,
            "errors": errors or [],
            "action_errors": action_errors or [],
            "notice": notice if notice in NOTICES else "",
            "offered": next(
                (r.patient for r in rows if r.offer is not None and r.offer.id == offer_id), None
            ),
            "appointment_id": appointment_id,
            "practitioners": practitioners,
            "practitioner_names": {p.id: p.display_name for p in practitioners},
            "patients": patient_choices(
                session,
                actor,
                values.get("q", ""),
                int(patient_id)
                if patient_id.isascii() and patient_id.isdigit() and len(patient_id) < 10
                else None,
            ),
            "parts": [part.value for part in PartOfDay],
        },
        status_code=status,
    )


def _list_url(done: str, **params: int | None) -> str:
    kept = {k: v for k, v in params.items() if v is not None}
    return "/liste-attente?" + urlencode({"done": done, **kept})


@router.get("", response_class=HTMLResponse, summary="Waiting-list page")
def waiting_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
    done: Annotated[str, Query(max_length=20)] = "",
    offer: Annotated[int | None, Query(ge=1)] = None,
    appointment: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return _page(
        request,
        session,
        user,
        values={"q": q} if q else {},
        notice=done,
        offer_id=offer,
        appointment_id=appointment,
    )


@router.post("", summary="Add a patient to the waiting list")
def add_from_form(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    form: PostedForm,
) -> Response:
    check = FormCheck(page_language(request), values_of(form, ADD_FIELDS))
    patient_id = check.integer("patient_id", required=True, missing="agenda.error.patient")
    practitioner_id = check.integer("practitioner")
    earliest, latest = check.day("earliest"), check.day("latest")
    part = check.choice("part_of_day", [p.value for p in PartOfDay], PartOfDay.any.value)
    duration = check.integer("duration")
    if check.errors or patient_id is None or earliest is None or latest is None:
        return _page(request, session, user, values=check.values, errors=check.errors, status=422)
    try:
        waiting_list.add_to_waiting_list(
            session,
            user_actor(request, user),
            patient_id=patient_id,
            earliest=earliest,
            latest=latest,
            practitioner_id=practitioner_id,
            part_of_day=PartOfDay(part),
            duration_minutes=duration,
            reason=check.values.get("reason", ""),
            created_by_id=user.id,
            today=datetime.now(settings.tz).date(),
        )
    except DomainError as exc:
        errors = check.domain_error(exc)
        return _page(
            request, session, user, values=check.values, errors=errors, status=exc.status_code
        )
    return RedirectResponse(_list_url("added"), status_code=303)


def _refused(request: Request, session: Session, user: User, exc: DomainError) -> Response:
    """The list again, with why an action on it (accept, decline, withdraw) was refused."""
    errors = [{"field": "", "message": exc.message(page_language(request))}]
    return _page(request, session, user, action_errors=errors, status=exc.status_code)


@router.post("/offers/{offer_id}/accept", summary="Book the slot offered to a waiting patient")
def accept(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    offer_id: int,
) -> Response:
    try:
        appointment = waiting_list.accept_offer(
            session, user_actor(request, user), settings.tz, offer_id, created_by_id=user.id
        )
    except DomainError as exc:
        return _refused(request, session, user, exc)
    return RedirectResponse(_list_url("booked", appointment=appointment.id), status_code=303)


@router.post("/offers/{offer_id}/decline", summary="Decline an offer; the next patient gets it")
def decline(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    offer_id: int,
) -> Response:
    try:
        following = waiting_list.decline_offer(
            session, user_actor(request, user), settings.tz, offer_id
        )
    except DomainError as exc:
        return _refused(request, session, user, exc)
    return RedirectResponse(_list_url("declined", offer=following.id if following else None), 303)


@router.post("/{entry_id}/withdraw", summary="Take a patient off the waiting list")
def withdraw(
    request: Request, user: PatientStaffUser, session: SessionDep, entry_id: int
) -> Response:
    try:
        waiting_list.withdraw(session, user_actor(request, user), entry_id)
    except DomainError as exc:
        return _refused(request, session, user, exc)
    return RedirectResponse(_list_url("withdrawn"), status_code=303)
