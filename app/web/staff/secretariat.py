"""The secretary assistant: the chat page at ``/secretariat`` and its streaming JSON API.
Each turn streams newline-delimited JSON events; write actions wait for a decision."""

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, StringConstraints, model_validator
from sqlmodel import Session

from agents.usage import TokenMeter
from app.services.assistant import conversations, token_budget
from app.services.assistant.action_preview import describe
from app.services.assistant.runtime import (
    CLOSING_EVENTS,
    Assistant,
    ConfirmationPending,
    TurnInProgress,
)
from app.services.core import audit
from app.services.core.errors import Conflict
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


def _check_budget(request: Request, session: Session, user: User) -> None:
    """429 when the user's daily token budget is spent (before anything is saved)."""
    settings = request.app.state.settings
    token_budget.check(session, user, per_day=settings.assistant_tokens_per_day, tz=settings.tz)


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


def _stream(events: AsyncIterator[Any]) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        async for event in events:
            yield event.as_json() + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _begin(request: Request, user: User, thread_id: str, decisions=None) -> None:
    try:
        await _assistant(request).begin(user, thread_id, decisions=decisions)
    except TurnInProgress as exc:
        raise Conflict(
            "Une réponse est déjà en cours dans cette conversation.",
            "An answer is already being written in this conversation.",
        ) from exc
    except ConfirmationPending as exc:
        raise Conflict(
            "Confirmez, modifiez ou refusez d'abord l'action proposée.",
            "First confirm, edit or refuse the proposed action.",
        ) from exc


async def _turn(
    request: Request,
    user: User,
    conversation_id: int,
    thread_id: str,
    *,
    message: str | None = None,
    decisions: list[dict[str, Any]] | None = None,
) -> AsyncIterator[Any]:
    """The turn's events; the conversation is touched once the turn has ended. The tokens
    the turn consumed are stored even when it fails or the page goes away mid-answer."""
    assistant = _assistant(request)
    label = (await assistant.amodel_choice()).label
    meter = TokenMeter()

    def record_usage() -> None:
        usage = meter.usage
        with Session(request.app.state.engine) as session:
            if token_budget.record(
                session, user, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                model_calls=usage.calls, estimated=usage.estimated, model=label,
            ):  # fmt: skip
                session.commit()

    # The closing events go out once usage and the conversation are saved: a page that
    # reloads or lists conversations right after them sees the turn counted.
    closing: list[Any] = []
    try:
        async for event in assistant.turn(
            user, thread_id, message=message, decisions=decisions, callbacks=[meter]
        ):
            if event.type in CLOSING_EVENTS:
                closing.append(event)
            else:
                yield event
    finally:
        with anyio.CancelScope(shield=True):
            await in_thread(record_usage)

    def touch() -> token_budget.Budget:
        with Session(request.app.state.engine) as session:
            conversation = conversations.owned(session, user, conversation_id)
            conversations.touch(session, conversation, first_message=message, model=label)
            session.commit()
            return _budget(request, session, user)

    budget = await in_thread(touch)
    language = page_language(request)
    for event in closing:  # the page updates the budget line from the last event
        if event.type in ("done", "error"):
            event.data["budget"] = {"text": budget_line(language, budget), "spent": budget.spent}
    for event in closing:
        yield event


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
    request: Request,
    conversation_id: int,
    body: MessageIn,
    session: SessionDep,
    user: PatientStaffUser,
) -> StreamingResponse:
    """Send a message; the answer streams back as JSON lines."""
    conversation = await in_thread(conversations.owned, session, user, conversation_id)
    settings = request.app.state.settings
    await in_thread(
        lambda: conversations.check_rate(
            session,
            user,
            per_minute=settings.assistant_messages_per_minute,
            per_day=settings.assistant_messages_per_day,
        )
    )
    await in_thread(_check_budget, request, session, user)
    await _begin(request, user, conversation.thread_id)
    actor = user_actor(request, user)

    def record() -> None:
        audit.record(
            session, actor, "assistant.message", record_type="conversation",
            record_id=conversation.id,
        )  # fmt: skip
        session.commit()

    await in_thread(record)
    return _stream(
        _turn(request, user, conversation_id, conversation.thread_id, message=body.message)
    )


@router.post("/api/secretariat/c/{conversation_id}/decisions")
async def decide(
    request: Request,
    conversation_id: int,
    body: DecisionsIn,
    session: SessionDep,
    user: PatientStaffUser,
) -> StreamingResponse:
    """Approve, edit or refuse the proposed actions; approved ones run, then the turn goes on."""
    conversation = await in_thread(conversations.owned, session, user, conversation_id)
    assistant = _assistant(request)
    pending = await assistant.pending(user, conversation.thread_id)
    if len(body.decisions) != len(pending):
        raise Conflict(
            "Le nombre de décisions ne correspond pas aux actions proposées.",
            "The number of decisions does not match the proposed actions.",
        )
    decisions: list[dict[str, Any]] = []
    actor = user_actor(request, user)
    events: list[tuple[str, str]] = []
    for proposed, decision in zip(pending, body.decisions, strict=True):
        if decision.type == "edit":
            args = {**proposed["args"], **(decision.args or {})}
            decisions.append(
                {"type": "edit", "edited_action": {"name": proposed["name"], "args": args}}
            )
        elif decision.type == "reject":
            reason = decision.message or "La secrétaire a refusé cette action."
            decisions.append({"type": "reject", "message": reason})
        else:
            decisions.append({"type": "approve"})
        events.append((f"assistant.{decision.type}", proposed["name"]))
    await _begin(request, user, conversation.thread_id, decisions=decisions)

    def record() -> None:
        for action, tool in events:
            audit.record(
                session, actor, action, record_type="conversation", record_id=conversation.id,
                details={"tool": tool},
            )  # fmt: skip
        session.commit()

    await in_thread(record)
    return _stream(
        _turn(request, user, conversation_id, conversation.thread_id, decisions=decisions)
    )


@router.post("/api/secretariat/c/{conversation_id}/retry")
async def retry(
    request: Request, conversation_id: int, session: SessionDep, user: PatientStaffUser
) -> StreamingResponse:
    """Go on from the last saved step after a failure (the model was down)."""
    conversation = await in_thread(conversations.owned, session, user, conversation_id)
    await in_thread(_check_budget, request, session, user)
    await _begin(request, user, conversation.thread_id)
    return _stream(_turn(request, user, conversation_id, conversation.thread_id))
