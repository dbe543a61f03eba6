"""Admin pages on the assistant's model: what the secretaries do with its proposals
(``/admin/retours/assistant``: rates per week and model, drift alerts and their thresholds)
and the acceptance gate (``/admin/modele``: which model serves and why, the validation runs,
forcing a model, the way back). The documents' feedback stays at ``/admin/retours``."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.services.assistant import feedback_signals, model_gate
from app.services.core.errors import DomainError, InvalidInput
from app.services.flows.model_acceptance_jobs import enqueue_acceptance, recent_runs
from app.web.deps import AdminUser, SessionDep, SettingsDep, user_actor
from app.web.i18n import request_language
from app.web.templating import render

router = APIRouter(tags=["admin"])
SIGNALS = "/admin/retours/assistant"
MODEL = "/admin/modele"


def _gate(request: Request) -> model_gate.ModelGate:
    assistant = getattr(request.app.state, "assistant", None)
    gate = getattr(assistant, "gate", None)
    return (
        gate
        if isinstance(gate, model_gate.ModelGate)
        else model_gate.ModelGate(request.app.state.engine)
    )


# -- signals ---------------------------------------------------------------------------------


def _signals_page(
    request: Request, session: Session, settings: SettingsDep, *, error: str = "", status: int = 200
) -> Response:
    table = feedback_signals.signals(session, settings.tz)
    state = feedback_signals.governance(session)
    return render(
        request,
        "admin/model_signals.html",
        {
            "rows": table,
            "alerts": feedback_signals.drift_alerts(table, state),
            "state": state,
            "error": error,
        },
        status_code=status,
    )


@router.get(SIGNALS, response_class=HTMLResponse, summary="Secretaries' decisions on proposals")
def signals_page(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> Response:
    return _signals_page(request, session, settings)


@router.post(
    f"{SIGNALS}/seuils", response_class=HTMLResponse, summary="Set the drift alert thresholds"
)
def save_thresholds(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    max_refusal: Annotated[float, Form()],
    max_edit: Annotated[float, Form()],
    min_approval: Annotated[float, Form()],
    min_decisions: Annotated[int, Form()],
) -> Response:
    try:
        feedback_signals.update_thresholds(
            session,
            user_actor(request, user),
            max_refusal_percent=max_refusal,
            max_edit_percent=max_edit,
            min_approval_percent=min_approval,
            min_decisions=min_decisions,
        )
    except DomainError as exc:
        session.rollback()
        message = exc.message(request_language(request))
        return _signals_page(request, session, settings, error=message, status=exc.status_code)
    session.commit()
    return RedirectResponse(SIGNALS, status_code=303)


# -- the gate ----------------------------------------------------------------------------------


def _model_page(
    request: Request, session: Session, settings: SettingsDep, *, error: str = "", status: int = 200
) -> Response:
    gate = _gate(request)
    now = model_gate.status(gate, settings)
    runs = recent_runs(session)
    return render(
        request,
        "admin/model_gate.html",
        {
            "now": now,
            "acceptances": model_gate.acceptances(session),
            "previous": model_gate.previous_accepted(session, now.serving.name),
            "runs": runs,
            "configured": settings.llm_model,
            "provider": settings.llm_provider,
            "safety": model_gate.SAFETY_CATEGORIES,
            "error": error,
        },
        status_code=status,
    )


@router.get(MODEL, response_class=HTMLResponse, summary="The assistant's model and its gate")
def model_page(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> Response:
    return _model_page(request, session, settings)


def _act(
    request: Request, session: Session, settings: SettingsDep, work: Callable[[], object]
) -> Response:
    try:
        work()
    except DomainError as exc:
        session.rollback()
        message = exc.message(request_language(request))
        return _model_page(request, session, settings, error=message, status=exc.status_code)
    session.commit()
    model_gate.forget()
    return RedirectResponse(MODEL, status_code=303)


@router.post(f"{MODEL}/valider", response_class=HTMLResponse, summary="Validate a model")
def validate(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    model: Annotated[str, Form(max_length=140)],
    repeats: Annotated[int, Form()] = 1,
) -> Response:
    def work() -> None:
        name = model.strip()
        if not name or any(c.isspace() for c in name):
            raise InvalidInput(
                "Indiquez le nom d'un modèle (ex. qwen3:8b).", "Give a model name (e.g. qwen3:8b)."
            )
        if not 1 <= repeats <= 10:
            raise InvalidInput(
                "Le nombre d'exécutions va de 1 à 10.", "The number of runs goes from 1 to 10."
            )
        stamp = datetime.now(settings.tz).strftime("%Y%m%dT%H%M%S%f")
        enqueue_acceptance(session, user_actor(request, user), name, repeats=repeats, stamp=stamp)

    return _act(request, session, settings, work)


@router.post(f"{MODEL}/forcer", response_class=HTMLResponse, summary="Force a model")
def force(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    model: Annotated[str, Form(max_length=140)],
    understood: Annotated[bool, Form()] = False,
) -> Response:
    def work() -> None:
        if not understood:
            raise InvalidInput(
                "Cochez la case pour confirmer que vous forcez un modèle non validé.",
                "Tick the box to confirm you force a model that was not validated.",
            )
        model_gate.force_model(session, user_actor(request, user), model)

    return _act(request, session, settings, work)


@router.post(
    f"{MODEL}/precedent", response_class=HTMLResponse, summary="Back to the previous model"
)
def previous(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> Response:
    current = model_gate.status(_gate(request), settings).serving.name
    return _act(
        request,
        session,
        settings,
        lambda: model_gate.switch_to_previous(session, user_actor(request, user), current),
    )


@router.post(f"{MODEL}/rules", response_class=HTMLResponse, summary="Back to the rules assistant")
def to_rules(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> Response:
    return _act(
        request,
        session,
        settings,
        lambda: model_gate.switch_to_rules(session, user_actor(request, user)),
    )


@router.post(f"{MODEL}/automatique", response_class=HTMLResponse, summary="Back to the gate")
def to_gate(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> Response:
    return _act(
        request,
        session,
        settings,
        lambda: model_gate.resume_gate(session, user_actor(request, user)),
    )
