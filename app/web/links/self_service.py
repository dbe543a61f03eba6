"""The patient's pages reached from a message: the appointment's self-service link at
``/rdv/<token>`` (confirm, cancel, questionnaire, opt out) and a waiting-list offer at
``/offre/<token>`` (accept or decline).

Public routes: the signed link is the credential; every form carries a token bound to the
link (and the session's CSRF token when there is a session)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session
from starlette.datastructures import FormData

from app.services.core.audit import Actor
from app.services.core.errors import DomainError
from app.services.flows import agenda_changes
from app.services.notifications import consent as notification_consent
from app.services.scheduling import offer_links, self_service
from app.web.deps import SessionDep, client_address, public
from app.web.forms import PostedForm, page_language
from app.web.templating import render
from models.audit import ActorKind
from models.notifications import Channel, ConsentSource

router = APIRouter(tags=["patient"], dependencies=[Depends(public)])
Token = Annotated[str, Path(max_length=128)]
LINK_CSRF_FIELD = "link_csrf"
PROBLEM_STATUS = {
    "invalid": 404,
    "expired": 410,
    "used": 410,
    "cancelled": 410,
    "form_expired": 403,
}
PROBLEM_STATUS |= {"offer_invalid": 404, "offer_expired": 410, "offer_taken": 409}
PROBLEM_STATUS |= {"offer_accepted": 409, "offer_declined": 409, "offer_closed": 409}
DONE = frozenset({"confirmed", "cancelled", "opted_out"})


def _actor(request: Request, record_id: int | None = None) -> Actor:
    return Actor(
        kind=ActorKind.patient_link,
        id=str(record_id) if record_id else None,
        name="lien patient",
        address=client_address(request),
    )


def _secret(request: Request) -> str:
    return request.app.state.settings.resolved_secret_key()


def _problem(request: Request, problem: str, message: str = "", status: int = 0) -> Response:
    code = status or PROBLEM_STATUS.get(problem, 400)
    return render(
        request, "selfservice/problem.html", {"problem": problem, "message": message}, code
    )


def _link_csrf_of(form: FormData) -> str | None:
    value = form.get(LINK_CSRF_FIELD)
    return value if isinstance(value, str) else None


# -- appointment self-service ----------------------------------------------------------------


def _open(request: Request, session: Session, token: str, *, write: bool = False):
    return self_service.open_link(
        session, _actor(request), token, secret=_secret(request), for_update=write
    )


def _open_posted(
    request: Request, session: Session, token: str, form: FormData
) -> tuple[self_service.LinkAccess, Actor] | Response:
    """For a form posted from the appointment page: the link opened for a write and the actor
    it stands for, or the problem page to answer with (unusable link, stale form)."""
    access = _open(request, session, token, write=True)
    if not access.usable or access.link is None:
        return _problem(request, access.problem or "invalid")
    if not self_service.csrf_ok(_secret(request), access.link, _link_csrf_of(form)):
        return _problem(request, "form_expired")
    return access, _actor(request, access.link.id)


def _appointment_page(
    request: Request,
    session: Session,
    token: str,
    access: self_service.LinkAccess,
    *,
    template: str = "selfservice/appointment.html",
    done: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    assert access.link is not None
    return render(
        request,
        template,
        {
            "token": token,
            "view": self_service.view(session, access),
            "link_csrf": self_service.csrf_for(_secret(request), access.link),
            "done": done if done in DONE else "",
            "error": error,
        },
        status,
    )


@router.get("/rdv/{token}", summary="Self-service page of one appointment (patient link)")
def appointment_page(
    request: Request,
    session: SessionDep,
    token: Token,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    access = _open(request, session, token)
    if not access.usable:
        return _problem(request, access.problem or "invalid")
    return _appointment_page(request, session, token, access, done=done)


@router.post("/rdv/{token}/confirmer", summary="The patient confirms they will come")
def confirm(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    opened = _open_posted(request, session, token, form)
    if isinstance(opened, Response):
        return opened
    access, actor = opened
    self_service.confirm(session, actor, access)
    return RedirectResponse(f"/rdv/{token}?done=confirmed", status_code=303)


@router.get("/rdv/{token}/annuler", summary="Ask the patient to confirm the cancellation")
def cancel_page(request: Request, session: SessionDep, token: Token) -> Response:
    access = _open(request, session, token)
    if not access.usable:
        return _problem(request, access.problem or "invalid")
    return _appointment_page(request, session, token, access, template="selfservice/cancel.html")


@router.post("/rdv/{token}/annuler", summary="The patient cancels (before the cut-off)")
def cancel(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    opened = _open_posted(request, session, token, form)
    if isinstance(opened, Response):
        return opened
    access, actor = opened
    try:
        agenda_changes.cancel_from_patient_link(
            session, actor, request.app.state.settings.tz, access
        )
    except DomainError as exc:
        message = exc.message(page_language(request))
        return _appointment_page(
            request, session, token, access, error=message, status=exc.status_code
        )
    return render(request, "selfservice/cancelled.html", {})


@router.post("/rdv/{token}/questionnaire", summary="Open the pending pre-consultation form")
def questionnaire(
    request: Request, session: SessionDep, token: Token, form: PostedForm
) -> Response:
    opened = _open_posted(request, session, token, form)
    if isinstance(opened, Response):
        return opened
    access, actor = opened
    try:
        path = self_service.questionnaire_path(session, actor, access, secret=_secret(request))
    except DomainError as exc:
        message = exc.message(page_language(request))
        return _appointment_page(
            request, session, token, access, error=message, status=exc.status_code
        )
    return RedirectResponse(path, status_code=303)


@router.post("/rdv/{token}/desinscription", summary="The patient stops messages (RGPD)")
def opt_out(request: Request, session: SessionDep, token: Token, form: PostedForm) -> Response:
    opened = _open_posted(request, session, token, form)
    if isinstance(opened, Response):
        return opened
    access, actor = opened
    if access.appointment is None:  # not reached: a usable link has its appointment
        return _problem(request, "invalid")
    for channel in Channel:
        notification_consent.record_choice(
            session,
            actor,
            access.appointment.patient_id,
            channel,
            opted_out=True,
            source=ConsentSource.patient,
        )
    return RedirectResponse(f"/rdv/{token}?done=opted_out", status_code=303)


# -- waiting-list offers ---------------------------------------------------------------------


def _open_offer(request: Request, session: Session, token: str) -> offer_links.OfferAccess:
    return offer_links.open_offer(session, _actor(request), token, secret=_secret(request))


@router.get("/offre/{token}", summary="A freed slot offered to a waiting patient")
def offer_page(
    request: Request,
    session: SessionDep,
    token: Token,
    reponse: Annotated[str, Query(max_length=12)] = "",
) -> Response:
    access = _open_offer(request, session, token)
    if access.problem is not None or access.offer is None:
        return _problem(request, f"offer_{access.problem or 'invalid'}")
    return render(
        request,
        "selfservice/offer.html",
        {
            "token": token,
            "offer": access.offer,
            "practitioner": offer_links.practitioner(session, access.offer),
            "choice": reponse if reponse in ("accepter", "refuser") else "",
            "link_csrf": offer_links.csrf_for(_secret(request), access.offer),
        },
    )


@router.post("/offre/{token}/{choice}", summary="Accept or decline a waiting-list offer")
def answer_offer(
    request: Request,
    session: SessionDep,
    token: Token,
    choice: Annotated[str, Path(pattern="^(accepter|refuser)$")],
    form: PostedForm,
) -> Response:
    access = _open_offer(request, session, token)
    if access.problem is not None or access.offer is None:
        return _problem(request, f"offer_{access.problem or 'invalid'}")
    if not offer_links.csrf_ok(_secret(request), access.offer, _link_csrf_of(form)):
        return _problem(request, "form_expired")
    tz = request.app.state.settings.tz
    actor = _actor(request, access.offer.id)
    try:
        if choice == "accepter":
            appointment = offer_links.accept(session, actor, tz, access)
            return render(
                request,
                "selfservice/offer_done.html",
                {"accepted": True, "starts_at": appointment.starts_at},
            )
        offer_links.decline(session, actor, tz, access)
    except DomainError as exc:
        problem = "offer_closed"
        if isinstance(exc, offer_links.SlotGone):
            problem = "offer_taken"
        elif isinstance(exc, offer_links.OfferExpired):
            problem = "offer_expired"
        return _problem(request, problem, exc.message(page_language(request)), exc.status_code)
    return render(request, "selfservice/offer_done.html", {"accepted": False, "starts_at": None})
