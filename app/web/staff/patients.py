"""Patients: JSON API and staff pages, both thin faces over app/services/patients."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.services.core.errors import DomainError
from app.services.patients import records as patient_service
from app.services.scheduling.agenda import list_appointments
from app.web.deps import PatientStaffUser, SessionDep, user_actor
from app.web.errors import field_errors
from app.web.forms import PostedForm
from app.web.i18n import request_language
from app.web.templating import render
from models.patients import Patient, PatientCreate, PatientRead, PatientUpdate

api = APIRouter(prefix="/api/patients", tags=["patients"])
pages = APIRouter(prefix="/patients", tags=["pages"])

FORM_FIELDS = (
    "birth_name",
    "used_name",
    "first_name",
    "birth_date",
    "sex",
    "phone",
    "email",
    "address_line",
    "postal_code",
    "city",
    "nir",
    "language",
)


@api.get("", response_model=list[PatientRead], summary="Search patients")
def search(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    q: Annotated[str, Query(max_length=100, description="Name words, accents ignored")] = "",
    birth_date: date | None = None,
    phone: Annotated[str | None, Query(max_length=30)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[Patient]:
    return patient_service.search_patients(
        session,
        user_actor(request, user),
        text=q,
        birth_date=birth_date,
        phone=phone,
        limit=limit,
        offset=offset,
    )


@api.post("", response_model=PatientRead, status_code=201, summary="Register a patient")
def create(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    data: PatientCreate,
    confirm_not_duplicate: Annotated[
        bool, Query(description="Register even if a look-alike patient is on file")
    ] = False,
) -> Patient:
    return patient_service.create_patient(
        session, user_actor(request, user), data, confirm_not_duplicate=confirm_not_duplicate
    )


@api.get("/{patient_id}", response_model=PatientRead, summary="Read a patient")
def read(request: Request, user: PatientStaffUser, session: SessionDep, patient_id: int) -> Patient:
    return patient_service.get_patient(session, user_actor(request, user), patient_id)


@api.patch("/{patient_id}", response_model=PatientRead, summary="Change a patient")
def update(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    patient_id: int,
    change: PatientUpdate,
) -> Patient:
    return patient_service.update_patient(session, user_actor(request, user), patient_id, change)


def _values_of(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FORM_FIELDS:
        raw = form.get(name)
        if isinstance(raw, str) and raw.strip():
            values[name] = raw.strip()
    return values


def _form_page(
    request: Request, values: dict[str, Any], patient_id: int | None, errors: list, status: int
) -> Response:
    return render(
        request,
        "patients/form.html",
        {"values": values, "patient_id": patient_id, "errors": errors},
        status_code=status,
    )


@pages.get("", response_class=HTMLResponse, summary="Patient search page")
def search_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
    birth_date: Annotated[str, Query(max_length=10)] = "",
    phone: Annotated[str, Query(max_length=30)] = "",
) -> Response:
    parsed_birth: date | None = None
    errors = []
    if birth_date:
        try:
            parsed_birth = date.fromisoformat(birth_date)
        except ValueError:
            errors.append({"field": "birth_date", "message": "Date invalide (AAAA-MM-JJ)."})
    searched = bool(q or parsed_birth or phone)
    results = (
        patient_service.search_patients(
            session,
            user_actor(request, user),
            text=q,
            birth_date=parsed_birth,
            phone=phone,
            limit=50,
        )
        if searched and not errors
        else []
    )
    return render(
        request,
        "patients/search.html",
        {
            "q": q,
            "birth_date": birth_date,
            "phone": phone,
            "results": results,
            "searched": searched,
            "errors": errors,
        },
    )


@pages.get("/new", response_class=HTMLResponse, summary="New patient form")
def new_page(request: Request, user: PatientStaffUser) -> Response:
    return _form_page(request, {"language": "fr"}, None, [], 200)


@pages.post("", summary="Register a patient from the form")
def create_from_form(
    request: Request, user: PatientStaffUser, session: SessionDep, form: PostedForm
):
    values = _values_of(form)
    confirmed = form.get("confirm_not_duplicate") == "1"
    try:
        patient = patient_service.create_patient(
            session,
            user_actor(request, user),
            PatientCreate(**values),
            confirm_not_duplicate=confirmed,
        )
    except ValidationError as exc:
        return _form_page(
            request, values, None, field_errors(request_language(request), exc.errors()), 422
        )
    except DomainError as exc:
        message = exc.message(request_language(request))
        errors = [{"field": "", "message": message}]
        values["possible_duplicate"] = isinstance(exc, patient_service.PossibleDuplicate)
        return _form_page(request, values, None, errors, exc.status_code)
    return RedirectResponse(f"/patients/{patient.id}?created=1", status_code=303)


@pages.get("/{patient_id}", response_class=HTMLResponse, summary="Patient record page")
def detail_page(
    request: Request, user: PatientStaffUser, session: SessionDep, patient_id: int
) -> Response:
    patient = patient_service.get_patient(session, user_actor(request, user), patient_id)
    rows = list_appointments(
        session,
        user_actor(request, user),
        patient_id=patient_id,
        include_cancelled=True,
        newest_first=True,
        limit=50,
    )
    return render(request, "patients/detail.html", {"patient": patient, "rows": rows})


@pages.get("/{patient_id}/edit", response_class=HTMLResponse, summary="Edit patient form")
def edit_page(
    request: Request, user: PatientStaffUser, session: SessionDep, patient_id: int
) -> Response:
    patient = patient_service.get_patient(session, user_actor(request, user), patient_id)
    values = {name: getattr(patient, name) for name in FORM_FIELDS}
    values["birth_date"] = patient.birth_date.isoformat()
    return _form_page(request, values, patient_id, [], 200)


@pages.post("/{patient_id}", summary="Save the patient form")
def update_from_form(
    request: Request, user: PatientStaffUser, session: SessionDep, patient_id: int, form: PostedForm
):
    values = _values_of(form)
    try:
        # The form shows the whole record: validate it whole, then save it.
        full = PatientCreate(**values)
        patient_service.update_patient(
            session, user_actor(request, user), patient_id, PatientUpdate(**full.model_dump())
        )
    except ValidationError as exc:
        return _form_page(
            request,
            values,
            patient_id,
            field_errors(request_language(request), exc.errors()),
            422,
        )
    except DomainError as exc:
        message = exc.message(request_language(request))
        return _form_page(
            request, values, patient_id, [{"field": "", "message": message}], exc.status_code
        )
    return RedirectResponse(f"/patients/{patient_id}?saved=1", status_code=303)
