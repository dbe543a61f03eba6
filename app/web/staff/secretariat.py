"""The secretary assistant: the chat page at ``/secretariat`` and its streaming JSON API.
Each turn streams newline-delimited JSON events; write actions wait for a decision. The turn
itself (checks, audit, token usage, the order of its closing events) is
``app.services.assistant.turns``: these routes validate, call it and stream."""

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlmodel import Session

from agents.turns import TurnEvent
from app.services.assistant import conversations, token_budget
from app.services.assistant.action_preview import describe
from app.services.assistant.runtime import Assistant
from app.services.assistant.turns import ActionDecision, AssistantTurns, BegunTurn
from app.web.deps import PatientStaffUser, SessionDep, user_actor
from app.web.forms import page_language
from app.web.i18n import translate
from app.web.templating import render
from models.users import User

router = APIRouter(tags=["assistant"])
in_thread = anyio.to_thread.run_sync  # database work never runs on the event loop

Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class MessageIn(BaseModel):
    """A secretary's message to the assistant."""

    message: Message


class DecisionIn(BaseModel):
    """The decision on one proposed action: approve, edit (with the new arguments) or refuse."""

    type: Literal["approve", "edit", "reject"]
    args: dict[str, Any] | None = None
    message: Annotated[str, Field(max_length=500)] = ""

    @model_validator(mode="after")
    def _edit_has_args(self) -> "DecisionIn":
        if self.type == "edit" and not self.args:
            raise ValueError("une modification doit donner les nouveaux arguments")
        return self


class DecisionsIn(BaseModel):
    """One decision per proposed action, in the order they were proposed."""

    decisions: Annotated[list[DecisionIn], Field(min_length=1, max_length=10)]


def _assistant(request: Request) -> Assistant:
    return request.app.state.assistant


def _budget(request: Request, session: Session, user: User) -> token_budget.Budget:
    per_day = request.app.state.settings.assistant_tokens_per_day
    return token_budget.budget(session, user, per_day=per_day)


def budget_line(language: str, budget: token_budget.Budget) -> str:
    """The sentence under the chat box: tokens left today, or that the budget is spent."""
    if budget.spent:
        return translate(language, "chat.budget_spent")
    sep = " " if language == "fr" else ","
    return translate(
        language,
        "chat.budget",
        remaining=f"{budget.remaining:,}".replace(",", sep),
        limit=f"{budget.limit:,}".replace(",", sep),
    )


def _turns(request: Request) -> AssistantTurns:
    engine = request.app.state.engine
    return AssistantTurns(
        _assistant(request),
        lambda: Session(engine, expire_on_commit=False),
        request.app.state.settings,
    )


def _stream(request: Request, turn: BegunTurn) -> StreamingResponse:
    """The turn's events as JSON lines; ``done`` and ``error`` carry the budget line."""
    language = page_language(request)

    def show_budget(budget: token_budget.Budget) -> dict[str, Any]:
        return {"text": budget_line(language, budget), "spent": budget.spent}

    events: AsyncIterator[TurnEvent] = _turns(request).events(turn, show_budget)

    async def lines() -> AsyncIterator[str]:
        async for event in events:
            yield event.as_json() + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/secretariat", include_in_schema=False)
def chat_home(request: Request, session: SessionDep, user: PatientStaffUser) -> Response:
    """The latest conversation, or a new one."""
    latest = conversations.recent(session, user, limit=1)
    if latest:
        return RedirectResponse(f"/secretariat/c/{latest[0].id}", status_code=303)
    conversation = conversations.start(session, user_actor(request, user), user)
    return RedirectResponse(f"/secretariat/c/{conversation.id}", status_code=303)


@router.post("/secretariat/conversations", include_in_schema=False)
def new_conversation(request: Request, session: SessionDep, user: PatientStaffUser) -> Response:
    conversation = conversations.start(session, user_actor(request, user), user)
    return RedirectResponse(f"/secretariat/c/{conversation.id}", status_code=303)


@router.get("/secretariat/c/{conversation_id}", include_in_schema=False)
async def chat_page(
    request: Request, conversation_id: int, session: SessionDep, user: PatientStaffUser
) -> Response:
    conversation = await in_thread(conversations.owned, session, user, conversation_id)
    assistant = _assistant(request)
    choice = await assistant.amodel_choice()
    history = await assistant.history(conversation.thread_id)
    pending = await assistant.pending(user, conversation.thread_id)
    tz = request.app.state.settings.tz

    def described() -> tuple[list[Any], list[Any], token_budget.Budget]:
        cards = [describe(session, a["name"], a["args"], tz) for a in pending]
        return cards, conversations.recent(session, user), _budget(request, session, user)

    cards, recent, budget = await in_thread(described)
    return render(
        request,
        "secretariat/chat.html",
        {
            "conversation": conversation,
            "conversations": recent,
            "history": history,
            "cards": cards,
            "model": choice,
            "budget": budget,
            "budget_line": budget_line(page_language(request), budget),
        },
    )


@router.get("/api/secretariat/c/{conversation_id}")
async def conversation_state(
    request: Request, conversation_id: int, session: SessionDep, user: PatientStaffUser
) -> dict[str, Any]:
    """A conversation's messages and the actions waiting for a decision (with their
    plain-French descriptions)."""
    conversation = await in_thread(conversations.owned, session, user, conversation_id)
    assistant = _assistant(request)
    tz = request.app.state.settings.tz
    pending = await assistant.pending(user, conversation.thread_id)
    cards = await in_thread(
        lambda: [describe(session, a["name"], a["args"], tz).as_dict() for a in pending]
    )
    budget = await in_thread(_budget, request, session, user)
    return {
        "id": conversation.id,
        "title": conversation.title,
        "model": (await assistant.amodel_choice()).label,
        "messages": [item.__dict__ for item in await assistant.history(conversation.thread_id)],
        "pending": cards,
        "budget": budget.as_dict(),
    }


@router.post("/api/secretariat/c/{conversation_id}/messages")
async def send_message(
    request: Request, conversation_id: int, body: MessageIn, user: PatientStaffUser
) -> StreamingResponse:
    """Send a message; the answer streams back as JSON lines."""
    actor = user_actor(request, user)
    turn = await _turns(request).begin_message(user, actor, conversation_id, body.message)
    return _stream(request, turn)


@router.post("/api/secretariat/c/{conversation_id}/decisions")
async def decide(
    request: Request, conversation_id: int, body: DecisionsIn, user: PatientStaffUser
) -> StreamingResponse:
    """Approve, edit or refuse the proposed actions; approved ones run, then the turn goes on."""
    decided = [ActionDecision(d.type, d.args, d.message) for d in body.decisions]
    actor = user_actor(request, user)
    turn = await _turns(request).begin_decisions(user, actor, conversation_id, decided)
    return _stream(request, turn)


@router.post("/api/secretariat/c/{conversation_id}/retry")
async def retry(
    request: Request, conversation_id: int, user: PatientStaffUser
) -> StreamingResponse:
    """Go on from the last saved step after a failure (the model was down)."""
    turn = await _turns(request).begin_retry(user, conversation_id)
    return _stream(request, turn)
