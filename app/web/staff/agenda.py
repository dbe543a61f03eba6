"""Agenda pages: day and week views (time grid + list fallback), the grid's JSON data and
moves, the printable day sheet, the booking form, and one appointment's page."""

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from app.services.core.errors import DomainError, InvalidInput
from app.services.flows import agenda_changes
from app.services.preconsultation.links import staff_view
from app.services.scheduling.agenda import (
    LIVE_STATUSES,
    AppointmentView,
    SlotTaken,
    book_appointment,
    get_appointment,
    list_appointments,
    set_attendance,
)
from app.services.scheduling.agenda_grid import (
    FLAG_STATUSES,
    AgendaGrid,
    GridAppointment,
    agenda_grid,
    day_span,
    latest_preconsultations,
)
from app.services.scheduling.practice_setup import list_visit_types
from app.services.scheduling.slot_answers import SlotAnswer, search_slots
from app.services.scheduling.slots import (
    Slot,
    SlotQuery,
    active_practitioners,
    find_slots,
)
from app.services.scheduling.waiting_list import offered_patient
from app.web.deps import PatientStaffUser, SessionDep, SettingsDep, user_actor
from app.web.forms import (
    FormCheck,
    PostedForm,
    local_iso,
    page_language,
    parse_local,
    patient_choices,
    values_of,
)
from app.web.i18n import translate
from app.web.templating import render
from models.appointments import AppointmentStatus
from models.practice import Practitioner
from models.users import User

router = APIRouter(prefix="/agenda", tags=["pages"])

BOOK_FIELDS = (
    "patient_id",
    "practitioner",
    "date",
    "time",
    "start",
    "reason",
    "visit_type",
    "duration",
    "q",
)
MOVE_FIELDS = ("date", "time", "start", "practitioner")
NOTICES = frozenset({"moved", "cancelled", "attendance"})
SUGGESTION_DAYS = 14
SUGGESTIONS = 6
# Texts the grid's script shows (agenda.grid.<key> in the catalogs).
GRID_MESSAGES = (
    "confirm_move",
    "confirm_resize",
    "moved",
    "failed",
    "load_failed",
    "pre",
    "flag",
    "free_click",
    "show_list",
    "hide_list",
    "minutes",
)


@dataclass(frozen=True)
class AgendaRow:
    """One line of a day: an appointment or a free slot."""

    starts_at: datetime
    ends_at: datetime
    item: AppointmentView | None = None
    slot: Slot | None = None


@dataclass(frozen=True)
class AgendaColumn:
    """One practitioner's day: appointments and free slots in time order."""

    practitioner: Practitioner
    day: date
    rows: list[AgendaRow]
    no_slot: SlotAnswer | None = None  # why nothing is free that day, and the next free slot


def _column(
    session: Session,
    tz: ZoneInfo,
    practitioner: Practitioner,
    day: date,
    grid: AgendaGrid,
) -> AgendaColumn:
    """One practitioner's day for the list view, from the grid's appointments and free slots
    (computed once for both views of the page)."""
    start, end = day_span(day, 1, tz)
    slots = [
        s
        for s in grid.free_slots
        if s.practitioner_id == practitioner.id and start <= s.starts_at < end
    ]
    rows = [
        AgendaRow(v.appointment.starts_at, v.appointment.ends_at, item=v)
        for v in (a.view for a in grid.appointments)
        if v.practitioner.id == practitioner.id and start <= v.appointment.starts_at < end
    ]
    rows += [AgendaRow(s.starts_at, s.ends_at, slot=s) for s in slots]
    rows.sort(key=lambda row: (row.starts_at, row.slot is not None))
    no_slot = None
    if not slots and end > datetime.now(tz):  # past days need no explanation
        query = SlotQuery(start=start, end=end, practitioner_id=practitioner.id, limit=1)
        no_slot = search_slots(session, tz, query)
    return AgendaColumn(practitioner, day, rows, no_slot)


def _shown_days(shown_day: date, view: Literal["day", "week"]) -> list[date]:
    """The day shown, or the Monday-to-Sunday week around it."""
    if view == "day":
        return [shown_day]
    return [shown_day - timedelta(days=shown_day.weekday() - i) for i in range(7)]


def _agenda_url(**params: Any) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "", False)}
    return "/agenda" + ("?" + urlencode(kept) if kept else "")


def _week_practitioner(user: User, practitioners: list[Practitioner]) -> int | None:
    ids = [p.id for p in practitioners]
    if user.practitioner_id in ids:
        return user.practitioner_id
    return ids[0] if ids else None


@router.get("", response_class=HTMLResponse, summary="Agenda page: one day or one week")
def agenda_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    practitioner: Annotated[str, Query(max_length=12)] = "",
    day: Annotated[str, Query(alias="date", max_length=10)] = "",
    view: Literal["day", "week"] = "day",
    cancelled: Annotated[str, Query(max_length=1)] = "",
    booked: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    tz = settings.tz
    language = page_language(request)
    check = FormCheck(language, {"practitioner": practitioner, "date": day})
    chosen_id = check.integer("practitioner")
    today = datetime.now(tz).date()
    shown_day = (check.day("date") if day else None) or today
    practitioners = active_practitioners(session)
    grid_params = {"practitioner": chosen_id, "view": view, "date": shown_day.isoformat()}
    if cancelled == "1":
        grid_params["cancelled"] = "1"
    # The grid shows every practitioner in week view too, unless one was chosen; its first
    # week's data travels in the page, so the grid draws without a second request. The list
    # view shows a part of the same grid (in week view, one practitioner): the appointments
    # are read (and audited) once and the free slots computed once.
    grid = (
        _grid(request, user, session, tz, chosen_id, shown_day, view, cancelled == "1", language)
        if practitioners
        else None
    )
    if chosen_id is not None and grid is None:
        active_practitioners(session, chosen_id)  # an unknown practitioner is a clear 404
    elif chosen_id is None and view == "week":
        chosen_id = _week_practitioner(user, practitioners)
    week = _shown_days(shown_day, "week")
    days = _shown_days(shown_day, view)
    shown = [p for p in practitioners if chosen_id in (None, p.id)] if grid else []
    step = timedelta(days=len(days))
    base = {"practitioner": chosen_id, "view": view, "cancelled": cancelled == "1" and "1"}

    def link(**changes: Any) -> str:
        params = {**base, "date": shown_day.isoformat(), **changes}
        if isinstance(params["date"], date):
            params["date"] = params["date"].isoformat()
        return _agenda_url(**params)

    return render(
        request,
        "agenda/index.html",
        {
            "view": view,
            "shown_day": shown_day,
            "today": today,
            "week": week,
            "columns": [_column(session, tz, p, d, grid) for d in days for p in shown if grid],
            "practitioners": practitioners,
            "chosen_id": chosen_id,
            "show_cancelled": cancelled == "1",
            "booked": booked,
            "errors": check.errors,
            "link": link,
            "previous_day": shown_day - step,
            "next_day": shown_day + step,
            "grid_query": urlencode({k: v for k, v in grid_params.items() if v}),
            "grid_data": grid_json_data(grid, tz, language) if grid else None,
            "grid_messages": json.dumps(
                {key: translate(language, f"agenda.grid.{key}") for key in GRID_MESSAGES}
            ),
        },
    )


def _book_form(
    request: Request,
    session: Session,
    user: User,
    values: dict[str, str],
    errors: list[dict[str, str]],
    status: int = 200,
    alternatives: list[Slot] | None = None,
) -> Response:
    patient_id = values.get("patient_id", "")
    patients = patient_choices(
        session,
        user_actor(request, user),
        values.get("q", ""),
        int(patient_id)
        if patient_id.isascii() and patient_id.isdigit() and len(patient_id) < 10
        else None,
    )
    return render(
        request,
        "agenda/new.html",
        {
            "values": values,
            "errors": errors,
            "patients": patients,
            "practitioners": active_practitioners(session),
            "visit_types": list_visit_types(session, active_only=True),
            "alternatives": alternatives or [],
        },
        status_code=status,
    )


@router.get("/new", response_class=HTMLResponse, summary="New appointment form")
def new_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    practitioner: Annotated[str, Query(max_length=12)] = "",
    start: Annotated[str, Query(max_length=32)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    patient: Annotated[str, Query(max_length=12)] = "",
) -> Response:
    values = {"practitioner": practitioner, "q": q, "patient_id": patient}
    moment = parse_local(start, settings.tz) if start else None
    if moment is not None:
        values["date"], values["time"] = local_iso(moment, settings.tz).split("T")
    return _book_form(request, session, user, values, [])


@router.post("/appointments", summary="Book an appointment from the form")
def book_from_form(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    form: PostedForm,
) -> Response:
    tz = settings.tz
    check = FormCheck(page_language(request), values_of(form, BOOK_FIELDS))
    patient_id = check.integer("patient_id", required=True, missing="agenda.error.patient")
    practitioner_id = check.integer("practitioner", required=True)
    starts_at = check.local_start(tz)
    duration = check.integer("duration")
    values = check.values
    if check.errors or patient_id is None or practitioner_id is None or starts_at is None:
        return _book_form(request, session, user, values, check.errors, 422)
    try:
        appointment = book_appointment(
            session,
            user_actor(request, user),
            tz,
            patient_id=patient_id,
            practitioner_id=practitioner_id,
            starts_at=starts_at,
            duration_minutes=duration,
            visit_type=values.get("visit_type"),
            reason=values.get("reason", ""),
            created_by_id=user.id,
        )
    except SlotTaken as exc:
        errors = check.domain_error(exc)
        return _book_form(request, session, user, values, errors, 409, exc.alternatives)
    except DomainError as exc:
        errors = check.domain_error(exc)
        return _book_form(request, session, user, values, errors, exc.status_code)
    target = _agenda_url(
        practitioner=practitioner_id,
        date=appointment.starts_at.astimezone(tz).date().isoformat(),
        booked=appointment.id,
    )
    return RedirectResponse(target, status_code=303)


def _detail(
    request: Request,
    session: Session,
    user: User,
    appointment_id: int,
    *,
    notice: str = "",
    offer_id: int | None = None,
    errors: list[dict[str, str]] | None = None,
    move_values: dict[str, str] | None = None,
    alternatives: list[Slot] | None = None,
    status: int = 200,
) -> Response:
    tz = request.app.state.settings.tz
    actor = user_actor(request, user)
    view = get_appointment(session, actor, appointment_id)
    appointment = view.appointment
    live = appointment.status in LIVE_STATUSES
    now = datetime.now(UTC)
    minutes = int((appointment.ends_at - appointment.starts_at).total_seconds() // 60)
    if alternatives is None and live:
        alternatives = find_slots(
            session,
            tz,
            SlotQuery(
                start=now,
                end=now + timedelta(days=SUGGESTION_DAYS),
                practitioner_id=appointment.practitioner_id,
                duration_minutes=minutes,
                limit=SUGGESTIONS,
            ),
        )
    start = local_iso(appointment.starts_at, tz).split("T")
    return render(
        request,
        "agenda/detail.html",
        {
            "view": view,
            "live": live,
            "past": appointment.starts_at <= now
            and appointment.status != AppointmentStatus.cancelled,
            "notice": notice if notice in NOTICES else "",
            "offered": offered_patient(session, actor, offer_id) if offer_id else None,
            "errors": errors or [],
            "move": move_values or {"date": start[0], "time": start[1]},
            "suggestions": alternatives or [],
            "practitioners": active_practitioners(session),
            "preconsultation": staff_view(
                session, actor, appointment_id, language=page_language(request)
            ),
        },
        status_code=status,
    )


def _detail_url(appointment_id: int, done: str, offer_id: int | None = None) -> str:
    query = urlencode({"done": done, **({"offer": offer_id} if offer_id else {})})
    return f"/agenda/appointments/{appointment_id}?{query}"


@router.get(
    "/appointments/{appointment_id}", response_class=HTMLResponse, summary="Appointment page"
)
def appointment_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    appointment_id: int,
    done: Annotated[str, Query(max_length=20)] = "",
    offer: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return _detail(request, session, user, appointment_id, notice=done, offer_id=offer)


@router.post("/appointments/{appointment_id}/move", summary="Move an appointment")
def move_from_form(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    appointment_id: int,
    form: PostedForm,
) -> Response:
    check = FormCheck(page_language(request), values_of(form, MOVE_FIELDS))
    starts_at = check.local_start(settings.tz)
    practitioner_id = check.integer("practitioner")
    page: dict[str, Any] = {"move_values": check.values}
    if check.errors or starts_at is None:
        return _detail(
            request, session, user, appointment_id, errors=check.errors, status=422, **page
        )
    try:
        _, offer = agenda_changes.move(
            session,
            user_actor(request, user),
            settings.tz,
            appointment_id,
            starts_at=starts_at,
            practitioner_id=practitioner_id,
        )
    except SlotTaken as exc:
        errors = check.domain_error(exc)
        page |= {"alternatives": exc.alternatives, "status": 409}
        return _detail(request, session, user, appointment_id, errors=errors, **page)
    except DomainError as exc:
        errors = check.domain_error(exc)
        page["status"] = exc.status_code
        return _detail(request, session, user, appointment_id, errors=errors, **page)
    return RedirectResponse(_detail_url(appointment_id, "moved", offer.id if offer else None), 303)


@router.post("/appointments/{appointment_id}/cancel", summary="Cancel an appointment")
def cancel_from_form(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    appointment_id: int,
    form: PostedForm,
) -> Response:
    check = FormCheck(page_language(request), values_of(form, ("reason",)))
    try:
        _, offer = agenda_changes.cancel(
            session,
            user_actor(request, user),
            settings.tz,
            appointment_id,
            reason=check.values.get("reason", ""),
        )
    except DomainError as exc:
        errors = check.domain_error(exc)
        return _detail(
            request, session, user, appointment_id, errors=errors, status=exc.status_code
        )
    return RedirectResponse(
        _detail_url(appointment_id, "cancelled", offer.id if offer else None), 303
    )


@router.post("/appointments/{appointment_id}/attendance", summary="Mark honoured or missed")
def attendance_from_form(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    appointment_id: int,
    form: PostedForm,
) -> Response:
    check = FormCheck(page_language(request), values_of(form, ("honoured",)))
    honoured = check.choice("honoured", ("1", "0"), "")
    if check.errors:
        return _detail(request, session, user, appointment_id, errors=check.errors, status=422)
    try:
        set_attendance(session, user_actor(request, user), appointment_id, honoured=honoured == "1")
    except DomainError as exc:
        errors = check.domain_error(exc)
        return _detail(
            request, session, user, appointment_id, errors=errors, status=exc.status_code
        )
    return RedirectResponse(_detail_url(appointment_id, "attendance"), 303)


# --- The time grid (day and week, practitioners as columns) ----------------------------------

GRID_SLOT = timedelta(minutes=10)  # one grid row; appointments snap to 5 minutes
VISIT_COLOURS = 6  # visit types are spread over this many colour classes (agenda-grid.css)


def _floating(moment: datetime, tz: ZoneInfo) -> str:
    """The practice's wall-clock time without offset: the grid shows it as is, whatever the
    browser's own time zone, and sends it back in the same form."""
    return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def _visit_colour(code: str) -> str:
    """A stable colour class per visit type code (new types need no CSS change)."""
    return f"vt-{zlib.crc32(code.encode()) % VISIT_COLOURS}"


def _appointment_event(item: GridAppointment, tz: ZoneInfo, language: str) -> dict[str, Any]:
    view = item.view
    a = view.appointment
    pre_status = item.preconsultation
    return {
        "id": f"a{a.id}",
        "resourceId": str(a.practitioner_id),
        "start": _floating(a.starts_at, tz),
        "end": _floating(a.ends_at, tz),
        "title": view.patient.display_name,
        "editable": a.status in LIVE_STATUSES,
        "classNames": [
            "appointment",
            _visit_colour(a.visit_type),
            f"st-{a.status}",
            *(["red-flag"] if item.red_flag else []),
        ],
        "extendedProps": {
            "kind": "appointment",
            "appointmentId": a.id,
            "url": f"/agenda/appointments/{a.id}",
            "patient": view.patient.display_name,
            "practitioner": view.practitioner.display_name,
            "reason": a.reason,
            "visitType": a.visit_type,
            "status": str(a.status),
            "statusLabel": translate(language, f"status.{a.status}"),
            "preconsultation": pre_status,
            "preconsultationLabel": translate(language, f"agenda.grid.pre_{pre_status}")
            if pre_status
            else "",
            "redFlag": item.red_flag,
        },
    }


def _background(
    kind: str, resource: int | None, start: datetime, end: datetime, tz: ZoneInfo, title: str
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "start": _floating(start, tz),
        "end": _floating(end, tz),
        "display": "background",
        "classNames": [kind],
        "title": title,
        "extendedProps": {"kind": kind},
    }
    if resource is not None:
        event["resourceId"] = str(resource)
    return event


def grid_json_data(grid: AgendaGrid, tz: ZoneInfo, language: str) -> dict[str, Any]:
    """The calendar component's view of a grid: resources, events (appointments, shaded
    absences and closures, free bands) and the free slots, labelled in ``language``."""
    default_label = {
        "absence": translate(language, "agenda.grid.absence"),
        "closure": translate(language, "agenda.grid.closure"),
    }
    free = translate(language, "agenda.free")
    events = [_appointment_event(item, tz, language) for item in grid.appointments]
    events += [
        _background(
            s.kind, s.practitioner_id, s.starts_at, s.ends_at, tz, s.label or default_label[s.kind]
        )
        for s in grid.shadings
    ]
    # Back-to-back free slots are drawn as one band (far fewer elements to draw); the slots
    # themselves travel apart, for the click that books one.
    events += [
        _background("free", b.practitioner_id, b.starts_at, b.ends_at, tz, free)
        for b in grid.free_bands
    ]
    return {
        "view": "resourceTimeGridWeek" if len(grid.days) > 1 else "resourceTimeGridDay",
        "date": grid.days[0].isoformat(),
        "slotMinTime": grid.opens.strftime("%H:%M"),
        "slotMaxTime": grid.closes.strftime("%H:%M"),
        "slotDuration": f"00:{GRID_SLOT.seconds // 60:02d}",
        "now": _floating(datetime.now(UTC), tz),
        "resources": [{"id": str(p.id), "title": p.display_name} for p in grid.practitioners],
        "events": events,
        "freeSlots": [
            {
                "resourceId": str(s.practitioner_id),
                "start": _floating(s.starts_at, tz),
                "end": _floating(s.ends_at, tz),
            }
            for s in grid.free_slots
        ],
    }


def _grid(
    request: Request,
    user: User,
    session: Session,
    tz: ZoneInfo,
    chosen_id: int | None,
    shown_day: date,
    view: Literal["day", "week"],
    include_cancelled: bool,
    language: str,
) -> AgendaGrid:
    """The grid of one day or of the week around ``shown_day``, for ``chosen_id`` or every
    practitioner (an unknown practitioner is a clear 404): GET /agenda/grid, and the agenda
    page's list and embedded grid."""
    practitioners = active_practitioners(session, chosen_id)
    return agenda_grid(
        session,
        user_actor(request, user),
        tz,
        practitioners=practitioners,
        days=_shown_days(shown_day, view),
        include_cancelled=include_cancelled,
        language=language,
    )


@router.get("/grid", summary="Time-grid data: practitioners, appointments, free slots")
def grid_json(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    practitioner: Annotated[str, Query(max_length=12)] = "",
    day: Annotated[str, Query(alias="date", max_length=10)] = "",
    view: Literal["day", "week"] = "day",
    cancelled: Annotated[str, Query(max_length=1)] = "",
) -> JSONResponse:
    tz = settings.tz
    language = page_language(request)
    check = FormCheck(language, {"practitioner": practitioner, "date": day})
    chosen_id = check.integer("practitioner")
    shown_day = (check.day("date") if day else None) or datetime.now(tz).date()
    if check.errors:
        raise InvalidInput(
            translate("fr", "agenda.grid.bad_query"), translate("en", "agenda.grid.bad_query")
        )
    grid = _grid(request, user, session, tz, chosen_id, shown_day, view, cancelled == "1", language)
    return JSONResponse(grid_json_data(grid, tz, language), headers={"Cache-Control": "no-store"})


class GridMove(BaseModel):
    """A move or a resize made on the grid (wall-clock time of the practice)."""

    start: str = Field(max_length=32, description="New start, YYYY-MM-DDTHH:MM, local time")
    practitioner: int | None = Field(default=None, ge=1, le=2**31 - 1)
    duration: int | None = Field(default=None, ge=5, le=240, description="New length, minutes")


@router.post(
    "/appointments/{appointment_id}/grid-move",
    summary="Move or resize an appointment from the time grid (JSON)",
)
def grid_move(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    appointment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: GridMove,
) -> JSONResponse:
    """The same scheduling service and checks as the move form: a taken slot is a 409 with
    the service's message ("Créneau déjà pris…"), and the freed time goes to the waiting
    list."""
    tz = settings.tz
    language = page_language(request)
    starts_at = parse_local(body.start, tz)
    if starts_at is None:
        raise InvalidInput(
            translate("fr", "agenda.grid.bad_start"), translate("en", "agenda.grid.bad_start")
        )
    appointment, offer = agenda_changes.move(
        session,
        user_actor(request, user),
        tz,
        appointment_id,
        starts_at=starts_at,
        practitioner_id=body.practitioner,
        duration_minutes=body.duration,
    )
    offered = (
        offered_patient(session, user_actor(request, user), offer.id)
        if offer and offer.id
        else None
    )
    return JSONResponse(
        {
            "message": translate(language, "agenda.done_moved"),
            "offer": translate(language, "agenda.offer_made", patient=offered.display_name)
            if offered
            else None,
            "start": _floating(appointment.starts_at, tz),
            "end": _floating(appointment.ends_at, tz),
            "practitioner": appointment.practitioner_id,
        }
    )


@router.get("/print", response_class=HTMLResponse, summary="Printable day sheet per practitioner")
def print_day(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    practitioner: Annotated[str, Query(max_length=12)] = "",
    day: Annotated[str, Query(alias="date", max_length=10)] = "",
) -> Response:
    """One sheet per practitioner (or only the chosen one), each on its own printed page."""
    tz = settings.tz
    check = FormCheck(page_language(request), {"practitioner": practitioner, "date": day})
    chosen_id = check.integer("practitioner")
    shown_day = (check.day("date") if day else None) or datetime.now(tz).date()
    practitioners = active_practitioners(session, chosen_id)
    start, end = day_span(shown_day, 1, tz)
    ids = [p.id for p in practitioners]
    views = [
        v
        for v in list_appointments(session, user_actor(request, user), start=start, end=end)
        if v.practitioner.id in ids
    ]
    pre = latest_preconsultations(session, [v.appointment.id for v in views if v.appointment.id])
    sheets = [
        (p, [(v, pre.get(v.appointment.id or 0)) for v in views if v.practitioner.id == p.id])
        for p in practitioners
    ]
    return render(
        request,
        "agenda/print.html",
        {"day": shown_day, "sheets": sheets, "errors": check.errors, "flagged": FLAG_STATUSES},
    )
