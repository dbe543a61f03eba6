"""The patient's pre-consultation pages at ``/p/<token>``: identity, steps, review, submit.

Public routes: the signed link is the credential, the birth date the second factor, and every
form and autosave request carries a token bound to the link.
"""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.requests import ClientDisconnect

from app.services.core.audit import Actor
from app.services.core.errors import InvalidInput
from app.services.preconsultation import links as pc
from app.services.preconsultation import questionnaires
from app.web.deps import SessionDep, client_address, public, run_in_session
from app.web.forms import PostedForm, page_language
from app.web.i18n import translate
from app.web.speech_upload import transcribe_upload
from app.web.templating import render
from models.appointments import Appointment
from models.audit import ActorKind
from models.questionnaires import PreConsultation

router = APIRouter(prefix="/p", tags=["patient"], dependencies=[Depends(public)])
Token = Annotated[str, Path(max_length=128)]
LINK_CSRF_FIELD = "link_csrf"
LINK_CSRF_HEADER = "x-link-csrf"
VERIFIED_KEY = "pc_verified"
SUBMITTED_KEY = "pc_submitted"
ALERTED_KEY = "pc_alerted"
PROBLEM_STATUS = {"invalid": 404, "expired": 410, "revoked": 410, "submitted": 410, "locked": 423}
MAX_AUTOSAVE_FIELDS = 50
CLIENT_CLOSED_REQUEST = 499  # the access log's code for a request its client abandoned
MAX_REDISPLAY = 20_000  # characters of a refused answer shown back to the patient
# C0 control characters other than tab and line breaks: PostgreSQL refuses NUL in JSON, and
# none of them is anything a patient meant to type.
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON pairs them up: what is left is alone


Link = PreConsultation | pc.AutosaveLink  # the ORM row, or what an autosave reads of it


def _actor(request: Request, p: Link | None = None) -> Actor:
    return Actor(
        kind=ActorKind.patient_link,
        id=str(p.id) if p and p.id else None,
        name="lien patient",
        address=client_address(request),
    )


def _secret(request: Request) -> str:
    return request.app.state.settings.resolved_secret_key()


def _open(
    request: Request, session: Session, token: str, *, write: bool = False, audit_open: bool = True
):
    return pc.open_link(
        session,
        _actor(request),
        token,
        secret=_secret(request),
        for_update=write,
        audit_open=audit_open,
    )


def _verified(request: Request, p: Link) -> bool:
    return p.id in request.session.get(VERIFIED_KEY, [])


def _remember(request: Request, key: str, p: Link) -> None:
    ids = [i for i in request.session.get(key, []) if i != p.id][-9:]
    request.session[key] = [*ids, p.id]


def _readable(text: str) -> str:
    """Posted text as the database and the page can hold it: control characters dropped, and
    a lone surrogate (half an emoji, from a JSON client) replaced, so that nothing the patient
    typed turns into a server error on save or on display."""
    return _LONE_SURROGATE.sub("\ufffd", text.translate(_CONTROL))


def _json_answer(value: Any) -> Any:
    """One autosaved value in a shape some question takes (text, number, yes/no, a list of
    codes), its text made readable; ``InvalidInput`` for anything else (an object, nested
    lists), which would otherwise be stored as its Python spelling."""
    if isinstance(value, str):
        return _readable(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [_readable(v) for v in value]
    raise InvalidInput("Réponse illisible.", "Unreadable answer.")


def _urgent(request: Request, p: Link, guidance: list[str], language: str) -> list[str]:
    """What the urgent box shows: the guidance of the urgent flags now, or, once the box has
    been shown on this link, a reminder that stays until the answers are sent (a sign the
    patient unticked or reworded may still be there). Only the link's id is remembered in the
    session, never the sign."""
    if guidance:
        if p.id not in request.session.get(ALERTED_KEY, []):
            _remember(request, ALERTED_KEY, p)
        return guidance
    if p.id in request.session.get(ALERTED_KEY, []):
        return [translate(language, "pc.urgent.earlier")]
    return []


def _flag_guidance(p: PreConsultation, language: str) -> list[str]:
    return [
        f["guidance"].get(language) or f["guidance"]["fr"] for f in p.red_flags if f.get("guidance")
    ]


def _problem(request: Request, problem: str) -> Response:
    return render(
        request, "patient/problem.html", {"problem": problem}, PROBLEM_STATUS.get(problem, 400)
    )


def _context(request: Request, session: Session, token: str, p: PreConsultation) -> dict:
    language = page_language(request)
    row = pc.questionnaire_for(session, p, language)
    form = questionnaires.to_form(row.resource)
    return {
        "token": token,
        "p": p,
        "form": form,
        "answers": p.answers,
        "enabled": {
            k for k, q in form.questions.items() if questionnaires.is_enabled(form, q, p.answers)
        },
        "link_csrf": pc.link_csrf(_secret(request), p),
        "voice_url": f"/p/{token}/voix",
        "urgent": _urgent(request, p, _flag_guidance(p, language), language),
        "display": lambda q, v: questionnaires.display_answer(q, v, language),
    }


def _csrf_ok(request: Request, p: Link, sent: Any) -> bool:
    return pc.csrf_ok(_secret(request), p, sent if isinstance(sent, str) else None)


def _forbidden(request: Request) -> Response:
    return render(request, "patient/problem.html", {"problem": "form_expired"}, 403)


@router.get("/{token}", summary="Pre-consultation link: identity check, then the form")
def link_page(request: Request, session: SessionDep, token: Token) -> Response:
    access = _open(request, session, token)
    if access.usable is None:
        return _problem(request, access.problem or "invalid")
    p = access.usable
    if _verified(request, p):
        return RedirectResponse(f"/p/{token}/etape/1", status_code=303)
    return render(
        request,
        "patient/identity.html",
        {"token": token, "link_csrf": pc.link_csrf(_secret(request), p), "error": None},
    )


@router.post("/{token}/identite", summary="Confirm identity with the birth date")
def identity(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    access = _open(request, session, token, write=True)
    if access.usable is None:
        return _problem(request, access.problem or "invalid")
    p = access.usable
    form = form
    if not _csrf_ok(request, p, form.get(LINK_CSRF_FIELD)):
        return _forbidden(request)
    birth_date = form.get("birth_date")
    text = birth_date if isinstance(birth_date, str) else ""
    if pc.verify_identity(session, _actor(request, p), p, text[:20]):
        _remember(request, VERIFIED_KEY, p)
        return RedirectResponse(f"/p/{token}/etape/1", status_code=303)
    if pc.attempts_left(p) == 0:
        return _problem(request, "locked")
    return render(
        request,
        "patient/identity.html",
        {
            "token": token,
            "link_csrf": pc.link_csrf(_secret(request), p),
            "error": True,
            "attempts_left": pc.attempts_left(p),
        },
        422,
    )


def _step_page(
    request: Request,
    session: Session,
    token: str,
    p: PreConsultation,
    number: int,
    errors: dict[str, str] | None = None,
    status: int = 200,
    typed: dict[str, Any] | None = None,
) -> Response:
    """One step; ``typed`` holds the refused answers as the patient typed them, shown back in
    their fields so that nothing is lost while the message says what to correct."""
    ctx = _context(request, session, token, p)
    steps = ctx["form"].steps
    if not 1 <= number <= len(steps):
        return RedirectResponse(f"/p/{token}/etape/1", status_code=303)
    if typed:
        ctx["answers"] = {**ctx["answers"], **typed}
    ctx.update(
        {"step": steps[number - 1], "number": number, "total": len(steps), "errors": errors or {}}
    )
    return render(request, "patient/step.html", ctx, status)


@router.get("/{token}/etape/{number}", summary="One step of the questionnaire")
def step_page(
    request: Request, session: SessionDep, token: Token, number: Annotated[int, Path(ge=1, le=50)]
) -> Response:
    access = _open(request, session, token)
    if access.usable is None:
        return _problem(request, access.problem or "invalid")
    if not _verified(request, access.usable):
        return RedirectResponse(f"/p/{token}", status_code=303)
    return _step_page(request, session, token, access.usable, number)


@router.post("/{token}/etape/{number}", summary="Save one step (works without JavaScript)")
def save_step(
    request: Request,
    session: SessionDep,
    token: Token,
    number: Annotated[int, Path(ge=1, le=50)],
    form: PostedForm,
) -> Response:
    access = _open(request, session, token, write=True)
    if access.usable is None:
        return _problem(request, access.problem or "invalid")
    p = access.usable
    if not _verified(request, p):
        return RedirectResponse(f"/p/{token}", status_code=303)
    posted = form
    if not _csrf_ok(request, p, posted.get(LINK_CSRF_FIELD)):
        return _forbidden(request)
    language = page_language(request)
    steps = questionnaires.to_form(pc.questionnaire_for(session, p, language).resource).steps
    if not 1 <= number <= len(steps):
        return RedirectResponse(f"/p/{token}/etape/1", status_code=303)
    step = steps[number - 1]
    raw: dict[str, Any] = {}
    for question in step.questions:
        values = [_readable(v) for v in posted.getlist(question.link_id) if isinstance(v, str)]
        raw[question.link_id] = values if question.repeats else (values[0] if values else None)
    move = posted.get("nav")
    _, errors = pc.save_step(
        session, _actor(request, p), p, step, raw, require=move != "back", language=language
    )
    if errors:
        typed = {
            k: v[:MAX_REDISPLAY] if isinstance(v, str) else v
            for k, v in raw.items()
            if k in errors and v not in (None, [])
        }
        return _step_page(request, session, token, p, number, errors, 422, typed)
    if move == "back":
        target = f"/p/{token}/etape/{max(1, number - 1)}"
    elif move == "review" or number >= len(steps):
        target = f"/p/{token}/relecture"
    else:
        target = f"/p/{token}/etape/{number + 1}"
    return RedirectResponse(target, status_code=303)


CLIENT_GONE = object()  # the browser left before its request's body arrived


async def json_body(request: Request) -> Any:
    """The JSON body, read on the event loop (``None`` if unreadable) so the route can run in
    a worker thread; ``CLIENT_GONE`` when the client disconnected before sending it all."""
    try:
        return await request.json()
    except ValueError:
        return None
    except ClientDisconnect:
        return CLIENT_GONE


REFUSAL_STATUS = PROBLEM_STATUS | {"identity": 401, "csrf": 403}


def _refusal(language: str, message_key: str, problem: str) -> JSONResponse:
    """An autosave the link does not allow: the sentence the form shows the patient (in the
    page's language) and the problem's code."""
    return JSONResponse(
        {"detail": translate(language, message_key), "problem": problem},
        status_code=REFUSAL_STATUS.get(problem, 400),
    )


@router.post("/{token}/answers", summary="Autosave changed answers (JSON)")
async def autosave(
    request: Request, token: Token, body: Annotated[Any, Depends(json_body)]
) -> Response:
    """The form sends one per change, so the whole save makes a single worker-thread hop
    (session opened, used and committed there, before the answer leaves) instead of three
    (session dependency in, route, session dependency out)."""
    if body is CLIENT_GONE:
        # Nobody is left to answer (a patient who closed the page, a timed-out client): no
        # save and no error. Under overload this used to log a 500 and its traceback each.
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return await run_in_threadpool(
        run_in_session, request, lambda session: _autosave(request, session, token, body)
    )


def _autosave(request: Request, session: Session, token: str, body: Any) -> Response:
    # Reads first, writes at commit: the database's write lock is held for the commit only.
    # No ORM object on this path: one statement reads the link, one UPDATE writes it.
    language = page_language(request)
    # Audited once: by the save's own event, or as a refusal.
    access = pc.open_for_autosave(session, _actor(request), token, secret=_secret(request))
    if access.link is None:
        problem = access.problem or "invalid"
        return _refusal(language, f"pc.problem.{problem}.text", problem)
    link = access.link
    if not _verified(request, link):
        pc.record_refusal(session, _actor(request, link), link, "identity")
        return _refusal(language, "speech.identity", "identity")
    if not _csrf_ok(request, link, request.headers.get(LINK_CSRF_HEADER)):
        pc.record_refusal(session, _actor(request, link), link, "csrf")
        return _refusal(language, "pc.problem.form_expired.text", "csrf")
    answers = body.get("answers") if isinstance(body, dict) else None
    if not isinstance(answers, dict) or not 0 < len(answers) <= MAX_AUTOSAVE_FIELDS:
        raise InvalidInput("Réponses illisibles.", "Unreadable answers.")
    readable: dict[str, Any] = {}
    unreadable: dict[str, str] = {}
    for link_id, value in answers.items():
        try:
            readable[link_id] = _json_answer(value)
        except InvalidInput as exc:
            unreadable[link_id[:64]] = exc.message(language)
    result, errors = pc.save_valid(session, _actor(request, link), link, readable, language)
    errors = unreadable | errors
    guidance = [
        (f.guidance_en if language == "en" else f.guidance_fr) or ""
        for f in result.flags
        if f.guidance_fr
    ]
    # The box shows what the server says, the latest evaluation of the saved answers:
    # the same list the next page renders without JavaScript.
    return JSONResponse(
        {
            "saved": sorted(k for k in readable if k not in errors),
            "errors": errors,
            "detail": " ".join(errors.values()),
            "enabled": result.enabled,
            "urgent": _urgent(request, link, guidance, language),
        }
    )


@router.post("/{token}/voix", summary="Transcribe a spoken answer (the patient then edits it)")
async def voice_answer(request: Request, session: SessionDep, token: Token) -> Response:
    """Multipart field ``file``; answers ``{text, language, duration_seconds, heard, message}``
    (or NDJSON progress lines). Nothing is saved: the text goes into the field, and the
    patient's review and the autosave keep it."""
    language = page_language(request)
    access = await run_in_threadpool(_open, request, session, token)
    if access.usable is None:
        problem = access.problem or "invalid"
        return JSONResponse(
            {"detail": translate(language, f"pc.problem.{problem}.text")},
            status_code=PROBLEM_STATUS.get(problem, 400),
        )
    p = access.usable
    if not _verified(request, p):
        return JSONResponse({"detail": translate(language, "speech.identity")}, status_code=401)
    if not _csrf_ok(request, p, request.headers.get(LINK_CSRF_HEADER)):
        return JSONResponse({"detail": translate(language, "speech.expired")}, status_code=403)
    appointment = await run_in_threadpool(session.get, Appointment, p.appointment_id)
    return await transcribe_upload(
        request,
        session,
        _actor(request, p),
        patient=True,
        language=pc.questionnaire_for(session, p, language).language,
        purpose="patient_answer",
        record_type="preconsultation",
        record_id=p.id,
        patient_id=appointment.patient_id if appointment else None,
    )


@router.get("/{token}/relecture", summary="Review the answers before sending")
def review_page(request: Request, session: SessionDep, token: Token) -> Response:
    access = _open(request, session, token)
    if access.usable is None:
        return _problem(request, access.problem or "invalid")
    if not _verified(request, access.usable):
        return RedirectResponse(f"/p/{token}", status_code=303)
    ctx = _context(request, session, token, access.usable)
    ctx["missing"] = questionnaires.missing_required(ctx["form"], access.usable.answers)
    return render(request, "patient/review.html", ctx)


@router.post("/{token}/envoyer", summary="Send the answers to the practice")
def submit(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    access = _open(request, session, token, write=True)
    if access.usable is None:
        return _problem(request, access.problem or "invalid")
    p = access.usable
    if not _verified(request, p):
        return RedirectResponse(f"/p/{token}", status_code=303)
    if not _csrf_ok(request, p, form.get(LINK_CSRF_FIELD)):
        return _forbidden(request)
    try:
        pc.submit(session, _actor(request, p), p)
    except pc.AnswersMissing:
        return RedirectResponse(f"/p/{token}/relecture", status_code=303)
    _remember(request, SUBMITTED_KEY, p)
    return RedirectResponse(f"/p/{token}/merci", status_code=303)


@router.get("/{token}/merci", summary="Confirmation after sending")
def done_page(request: Request, session: SessionDep, token: Token) -> Response:
    access = _open(request, session, token)
    p = access.preconsultation
    if (
        access.problem != "submitted"
        or p is None
        or p.id not in request.session.get(SUBMITTED_KEY, [])
    ):
        return _problem(request, access.problem or "invalid")
    language = page_language(request)
    urgent = _urgent(request, p, _flag_guidance(p, language), language)
    return render(request, "patient/done.html", {"urgent": urgent})
