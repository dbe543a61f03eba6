"""Patient instruction sheets for the secretariat and the physicians: draft one from the
knowledge base for a patient, review it (physician: edit, remove a paragraph, approve,
reject) and download the approved sheet as PDF."""

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.services.documents import instruction_sheets as sheets
from app.services.patients.records import display_names, get_patient, search_patients
from app.services.scheduling.agenda import list_appointments
from app.web.deps import (
    MAX_RECORD_ID,
    PatientStaffUser,
    PhysicianUser,
    SessionDep,
    SettingsDep,
    user_actor,
)
from app.web.forms import page_language
from app.web.templating import render
from models.appointments import Appointment, AppointmentStatus

router = APIRouter(prefix="/consignes", tags=["instruction sheets"])
OPEN_STATUSES = frozenset({AppointmentStatus.booked, AppointmentStatus.confirmed})
NOTICES = frozenset({"drafted", "edited", "removed", "approved", "rejected", "sent"})


def _back(sheet_id: int, notice: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/consignes/{sheet_id}?fait={notice}{anchor}", status_code=303)


@router.get("", response_class=HTMLResponse, summary="Instruction sheets: drafts and approved")
def list_page(request: Request, user: PatientStaffUser, session: SessionDep) -> Response:
    drafts = sheets.list_sheets(session, status="draft")
    recent = [s for s in sheets.list_sheets(session, limit=30) if s.status != "draft"]
    names = display_names(session, {s.patient_id for s in drafts + recent})
    return render(
        request,
        "instruction_sheets/list.html",
        {"drafts": drafts, "recent": recent, "names": names},
    )


@router.get("/nouvelle", response_class=HTMLResponse, summary="Draft an instruction sheet")
def new_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    patient_id: Annotated[int | None, Query(ge=1, le=MAX_RECORD_ID)] = None,
    appointment_id: Annotated[int | None, Query(ge=1, le=MAX_RECORD_ID)] = None,
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Choose the patient (search by name), then the topic."""
    actor = user_actor(request, user)
    patient = get_patient(session, actor, patient_id) if patient_id is not None else None
    found = search_patients(session, actor, text=q, limit=20) if q.strip() and not patient else []
    appointments: list[Appointment] = []
    if patient is not None and patient.id is not None:
        since = datetime.now(settings.tz) - timedelta(days=1)
        views = list_appointments(session, actor, start=since, patient_id=patient.id, limit=10)
        appointments = [v.appointment for v in views if v.appointment.status in OPEN_STATUSES]
    language = page_language(request)
    topics = [fr if language == "fr" else en for fr, en in sheets.SUGGESTED_TOPICS]
    return render(
        request,
        "instruction_sheets/new.html",
        {
            "patient": patient,
            "found": found,
            "q": q,
            "appointments": appointments,
            "appointment_id": appointment_id,
            "topics": topics,
            "max_topic": sheets.MAX_TOPIC_CHARS,
        },
    )


@router.post("", summary="Draft a sheet from the knowledge base")
def create(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    patient_id: Annotated[int, Form(ge=1, le=MAX_RECORD_ID)],
    topic: Annotated[str, Form(max_length=sheets.MAX_TOPIC_CHARS * 2)],
    appointment_id: Annotated[int | None, Form(ge=1, le=MAX_RECORD_ID)] = None,
) -> Response:
    sheet = sheets.draft_sheet(
        session,
        user_actor(request, user),
        settings,
        user,
        patient_id=patient_id,
        topic=topic,
        appointment_id=appointment_id,
    )
    return _back(sheet.id or 0, "drafted")


@router.get("/{sheet_id}", response_class=HTMLResponse, summary="One instruction sheet")
def sheet_page(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    sheet_id: int,
    fait: str | None = None,
) -> Response:
    sheet = sheets.read_sheet(session, user_actor(request, user), sheet_id)
    context: dict[str, Any] = {
        "sheet": sheet,
        "patient": sheets.sheet_patient(session, sheet),
        "paragraphs": sheets.citations(session, sheet),
        "people": sheets.sheet_people(session, sheet),
        "notice": fait if fait in NOTICES else None,
        "editable": sheet.status == "draft" and user.role == "physician",
        "sendable": sheets.can_be_sent(sheet),
        "sendings": sheets.sendings(session, sheet_id),
    }
    return render(request, "instruction_sheets/sheet.html", context)


@router.post("/{sheet_id}/titre", summary="Edit a draft sheet's title (physician)")
def edit_title(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    sheet_id: int,
    title: Annotated[str, Form(max_length=sheets.MAX_TITLE_CHARS * 2)],
) -> Response:
    sheets.edit_title(session, user_actor(request, user), user, sheet_id, title)
    return _back(sheet_id, "edited")


@router.post("/{sheet_id}/paragraphes/{index}", summary="Edit a paragraph (physician)")
def edit_paragraph(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    sheet_id: int,
    index: int,
    text: Annotated[str, Form(max_length=sheets.MAX_PARAGRAPH_CHARS * 2)],
) -> Response:
    sheets.edit_paragraph(session, user_actor(request, user), user, sheet_id, index, text)
    return _back(sheet_id, "edited", f"#p-{index}")


@router.post("/{sheet_id}/paragraphes/{index}/retirer", summary="Remove a paragraph (physician)")
def remove_paragraph(
    request: Request, user: PhysicianUser, session: SessionDep, sheet_id: int, index: int
) -> Response:
    sheets.remove_paragraph(session, user_actor(request, user), user, sheet_id, index)
    return _back(sheet_id, "removed")


@router.post("/{sheet_id}/approuver", summary="Approve a sheet (physician)")
def approve(request: Request, user: PhysicianUser, session: SessionDep, sheet_id: int) -> Response:
    sheets.approve(session, user_actor(request, user), user, sheet_id)
    return _back(sheet_id, "approved")


@router.post("/{sheet_id}/rejeter", summary="Reject a sheet with a reason (physician)")
def reject(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    sheet_id: int,
    reason: Annotated[str, Form(max_length=sheets.MAX_REASON_CHARS * 2)] = "",
) -> Response:
    sheets.reject(session, user_actor(request, user), user, sheet_id, reason)
    return _back(sheet_id, "rejected")


@router.post("/{sheet_id}/envoyer", summary="Email an approved sheet to its patient")
def send(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    sheet_id: int,
) -> Response:
    sheets.send_to_patient(session, user_actor(request, user), settings, user, sheet_id)
    return _back(sheet_id, "sent")


@router.get(
    "/{sheet_id}/pdf",
    summary="Download an approved sheet as PDF",
    responses={200: {"content": {"application/pdf": {}}}},
)
def sheet_pdf(
    request: Request,
    user: PatientStaffUser,
    session: SessionDep,
    settings: SettingsDep,
    sheet_id: int,
) -> Response:
    content = sheets.sheet_pdf(session, user_actor(request, user), settings, sheet_id)
    return Response(
        content,
        media_type="application/pdf",
        headers={
            "content-disposition": f'attachment; filename="consignes-{sheet_id}.pdf"',
            "cache-control": "no-store",
        },
    )
