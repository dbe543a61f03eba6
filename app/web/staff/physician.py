"""The physician's pages: the dashboard, the review of a generated document (summary or letter)
and the review actions: edit, approve, reject, rate."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.services.core.errors import InvalidInput, NotFound
from app.services.documents import generated as documents
from app.services.documents import letter_templates, letters, physician_day, review
from app.web.deps import PhysicianUser, SessionDep, SettingsDep, user_actor
from app.web.forms import PostedForm, page_language
from app.web.templating import render
from models.documents import DocumentKind
from models.patients import Patient
from models.users import User

router = APIRouter(prefix="/medecin", tags=["physician"])
NOTICES = frozenset({"edited", "approved", "rejected", "rated", "requested", "retried"})


def _back(document_id: int, notice: str) -> RedirectResponse:
    return RedirectResponse(f"/medecin/documents/{document_id}?fait={notice}", status_code=303)


@router.get("", response_class=HTMLResponse, summary="Physician dashboard")
def dashboard(
    request: Request, user: PhysicianUser, session: SessionDep, settings: SettingsDep
) -> Response:
    language = page_language(request)
    actor = user_actor(request, user)
    now = datetime.now(settings.tz)
    day = physician_day.dashboard(session, actor, user, now, settings.tz, language=language)
    drafts = physician_day.waiting_drafts(session, actor, language=language)
    approvals = physician_day.recent_approvals(session, actor, language=language)
    return render(
        request,
        "physician/dashboard.html",
        {
            "today": day.today,
            "rows": day.today_rows,
            "day": day,
            "drafts": drafts,
            "approvals": approvals,
            "letter_states": physician_day.letter_states(session, drafts),
        },
    )


def _people(session: SessionDep, ids: set[int | None]) -> dict[int, str]:
    out = {}
    for uid in ids:
        person = session.get(User, uid) if uid else None
        if person is not None and person.id is not None:
            out[person.id] = person.full_name
    return out


@router.get("/documents/{document_id}", response_class=HTMLResponse, summary="Review a document")
def document_page(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    settings: SettingsDep,
    document_id: int,
    fait: str | None = None,
) -> Response:
    language = page_language(request)
    actor = user_actor(request, user)
    document = documents.read(session, actor, document_id)
    patient = session.get(Patient, document.patient_id)
    history = documents.versions(session, document_id)
    context: dict[str, Any] = {
        "document": document,
        "patient": patient,
        "history": history,
        "people": _people(session, {v.author_id for v in history} | {document.reviewer_id}),
        "notice": fait if fait in NOTICES else None,
        "editable": documents.is_generated(document) and document.status == "draft",
    }
    if document.kind == DocumentKind.summary:
        context["review"] = review.summary_review(session, actor, document)
        return render(request, "physician/summary.html", context)
    template = letter_templates.get_template(document.template or "")
    context.update(
        template=template,
        template_title=template.title_in(language),
        state=letters.letter_state(session, document),
        preview=document.text,
    )
    return render(request, "physician/letter.html", context)


@router.get("/documents/{document_id}/etat", summary="A letter draft's state (JSON)")
def document_state(user: PhysicianUser, session: SessionDep, document_id: int) -> JSONResponse:
    document = documents.load(session, document_id)
    state = (
        letters.letter_state(session, document).state
        if document.kind == DocumentKind.letter
        else "ready"
    )
    return JSONResponse({"state": state, "review": str(document.status)})


@router.post("/documents/{document_id}/phrases/{section}/{index}", summary="Edit a sentence")
def edit_sentence(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    document_id: int,
    section: int,
    index: int,
    text: Annotated[str, Form(max_length=review.MAX_SENTENCE_CHARS * 2)],
) -> Response:
    review.edit_sentence(
        session,
        user_actor(request, user),
        user,
        document_id,
        section=section,
        index=index,
        text=text,
    )
    response = _back(document_id, "edited")
    response.headers["location"] += f"#s-{section}-{index}"
    return response


@router.post("/documents/{document_id}/courrier", summary="Edit a letter's fields and body")
def edit_letter(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    settings: SettingsDep,
    document_id: int,
    form: PostedForm,
) -> Response:
    body = form.get("body")
    if not isinstance(body, str):
        raise InvalidInput("Le corps du courrier est vide.", "The letter's body is empty.")
    fields = {
        str(name)[6:]: value[: letter_templates.MAX_FIELD_CHARS]
        for name, value in form.items()
        if str(name).startswith("field-") and isinstance(value, str)
    }
    letters.edit_letter(
        session,
        user_actor(request, user),
        user,
        settings,
        document_id,
        fields=fields,
        body=body[: letters.MAX_BODY_CHARS * 2],
    )
    return _back(document_id, "edited")


@router.post("/documents/{document_id}/approuver", summary="Approve a draft")
def approve(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    settings: SettingsDep,
    document_id: int,
) -> Response:
    review.approve(session, user_actor(request, user), user, settings, document_id)
    return _back(document_id, "approved")


@router.post("/documents/{document_id}/rejeter", summary="Reject a draft with a reason")
def reject(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    document_id: int,
    reason: Annotated[str, Form(max_length=review.MAX_REASON_CHARS * 2)] = "",
) -> Response:
    review.reject(session, user_actor(request, user), user, document_id, reason=reason)
    return _back(document_id, "rejected")


@router.post("/documents/{document_id}/note", summary="Rate a document (1 to 5) and comment")
def rate(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    document_id: int,
    rating: Annotated[int, Form(ge=1, le=5)],
    comment: Annotated[str, Form(max_length=review.MAX_COMMENT_CHARS * 2)] = "",
) -> Response:
    review.rate(
        session, user_actor(request, user), user, document_id, rating=rating, comment=comment
    )
    return _back(document_id, "rated")


@router.post("/documents/{document_id}/relancer", summary="Retry a letter draft that failed")
def retry(request: Request, user: PhysicianUser, session: SessionDep, document_id: int) -> Response:
    letters.retry_draft(session, user_actor(request, user), document_id)
    return _back(document_id, "retried")


@router.get("/courriers/nouveau", response_class=HTMLResponse, summary="Ask for a letter draft")
def new_letter(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    patient_id: int,
    summary_id: int | None = None,
    appointment_id: int | None = None,
    template: str = "adressage",
) -> Response:
    language = page_language(request)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient introuvable.", "Patient not found.")
    summary = letters.approved_summary(session, patient_id, summary_id)
    templates = [(t.id, t.title_in(language)) for t in letter_templates.all_templates().values()]
    return render(
        request,
        "physician/letter_new.html",
        {
            "patient": patient,
            "summary": summary,
            "appointment_id": appointment_id,
            "templates": templates,
            "chosen": template,
        },
    )


@router.post("/courriers", summary="Queue a letter draft (background job)")
def create_letter(
    request: Request,
    user: PhysicianUser,
    session: SessionDep,
    patient_id: Annotated[int, Form()],
    template: Annotated[str, Form(max_length=64)],
    instruction: Annotated[str, Form(max_length=letters.MAX_INSTRUCTION_CHARS * 2)] = "",
    summary_id: Annotated[int | None, Form()] = None,
    appointment_id: Annotated[int | None, Form()] = None,
) -> Response:
    document = letters.request_letter(
        session,
        user_actor(request, user),
        patient_id=patient_id,
        template_id=template,
        instruction=instruction,
        requested_by=user,
        appointment_id=appointment_id,
        summary_id=summary_id,
    )
    return _back(document.id or 0, "requested")
