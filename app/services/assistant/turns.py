"""One secretary turn, from the secretary's request to the last event the page receives.

Before the stream starts: the conversation must be the user's, within the message rate and
the token budget, with no other turn running and no action waiting (answered as 4xx errors,
since nothing has been sent yet); what the secretary sent or decided is audited and committed
at once, so that the rate limit counts it even if the turn then fails. While it runs, the
turn's events pass through as they come, except the closing ones (``confirm``, ``answer``,
``done``, ``error``): those are held until the conversation is released, the tokens the turn
consumed are stored and the conversation is touched (title, model, recency). A page acts on
a closing event at once (retry, confirm, reload, next message, budget line): it must find the
turn ended and counted. The tokens are stored even when the turn fails or the page goes away
mid-answer.

The web layer validates the request, calls ``begin_*`` and streams ``events``; every database
session here comes from the factory it is given, so the turn never borrows the request's."""

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import anyio
from sqlmodel import Session

from agents.turns import Decision, TurnEvent
from agents.usage import TokenMeter, TurnUsage
from app.config.settings import Settings
from app.services.assistant import conversations, feedback_signals, token_budget
from app.services.assistant.runtime import (
    CLOSING_EVENTS,
    Assistant,
    ConfirmationPending,
    TurnInProgress,
)
from app.services.core import audit
from app.services.core.errors import Conflict
from models.conversations import Conversation
from models.users import User

SessionFactory = Callable[[], Session]
BudgetView = Callable[[token_budget.Budget], Any]
REFUSED = "La secrétaire a refusé cette action."
in_thread = anyio.to_thread.run_sync  # database work never runs on the event loop


@dataclass(frozen=True)
class ActionDecision:
    """The secretary's decision on one proposed action: approve it, run it with edited
    arguments (merged over the proposed ones), or refuse it (with a reason for the model)."""

    type: Literal["approve", "edit", "reject"]
    args: dict[str, Any] | None = None
    message: str = ""


@dataclass(frozen=True)
class BegunTurn:
    """A turn whose checks passed: it owns its conversation until ``events`` has ended."""

    user: User
    conversation_id: int
    thread_id: str
    message: str | None = None
    decisions: list[Decision] | None = None


def graph_decisions(
    pending: Sequence[dict[str, Any]], decided: Sequence[ActionDecision]
) -> list[Decision]:
    """The decisions as the agent's human-in-the-loop step takes them, one per proposed
    action in the order they were proposed."""
    decisions: list[Decision] = []
    for proposed, decision in zip(pending, decided, strict=True):
        if decision.type == "edit":
            args = {**proposed["args"], **(decision.args or {})}
            decisions.append(
                {"type": "edit", "edited_action": {"name": proposed["name"], "args": args}}
            )
        elif decision.type == "reject":
            decisions.append({"type": "reject", "message": decision.message or REFUSED})
        else:
            decisions.append({"type": "approve"})
    return decisions


class AssistantTurns:
    """Runs the secretary's turns against the app's assistant and database, with the app's
    current settings (message rate, token budget)."""

    def __init__(self, assistant: Assistant, sessions: SessionFactory, settings: Settings) -> None:
        self.assistant = assistant
        self.sessions = sessions
        self.settings = settings

    # -- beginning a turn -----------------------------------------------------------------
    async def begin_message(
        self, user: User, actor: audit.Actor, conversation_id: int, message: str
    ) -> BegunTurn:
        """Check and audit a new message. Raises ``NotFound`` (not the user's conversation),
        ``TooManyAttempts`` (rate or token budget) or ``Conflict``."""
        settings = self.settings

        def limits(session: Session) -> None:
            conversations.check_rate(
                session,
                user,
                per_minute=settings.assistant_messages_per_minute,
                per_day=settings.assistant_messages_per_day,
            )
            self._check_budget(session, user)

        conversation = await self._conversation(user, conversation_id, limits)
        turn = BegunTurn(user, conversation_id, conversation.thread_id, message=message)
        await self._begin(turn)
        await self._audit(turn, [(actor, "assistant.message", None)])
        return turn

    async def begin_decisions(
        self,
        user: User,
        actor: audit.Actor,
        conversation_id: int,
        decided: Sequence[ActionDecision],
    ) -> BegunTurn:
        """Check and audit the decisions on the proposed actions (approved ones run when the
        turn goes on). A spent token budget does not stop them: a proposal is never stranded.
        Raises ``NotFound`` or ``Conflict`` (not one decision per proposed action)."""
        conversation = await self._conversation(user, conversation_id)
        pending = await self.assistant.pending(user, conversation.thread_id)
        if len(decided) != len(pending):
            raise Conflict(
                "Le nombre de décisions ne correspond pas aux actions proposées.",
                "The number of decisions does not match the proposed actions.",
            )
        turn = BegunTurn(
            user,
            conversation_id,
            conversation.thread_id,
            decisions=graph_decisions(pending, decided),
        )
        await self._begin(turn)
        events = [
            (actor, f"assistant.{decision.type}", {"tool": proposed["name"]})
            for proposed, decision in zip(pending, decided, strict=True)
        ]
        await self._audit(turn, events)
        outcomes = [
            (proposed, decision.type, decision.args, decision.message)
            for proposed, decision in zip(pending, decided, strict=True)
        ]
        await in_thread(feedback_signals.record_decisions, self.sessions, conversation_id, outcomes)
        return turn

    async def begin_retry(self, user: User, conversation_id: int) -> BegunTurn:
        """Go on from the last saved step after a failure (the model was down). Raises
        ``NotFound``, ``TooManyAttempts`` (token budget) or ``Conflict``."""
        conversation = await self._conversation(
            user, conversation_id, lambda session: self._check_budget(session, user)
        )
        turn = BegunTurn(user, conversation_id, conversation.thread_id)
        await self._begin(turn)
        return turn

    async def _conversation(
        self,
        user: User,
        conversation_id: int,
        limits: Callable[[Session], None] | None = None,
    ) -> Conversation:
        """The user's conversation (404 for anyone else's, before any limit is looked at),
        then the ``limits`` checks, in one session in a worker thread."""

        def read() -> Conversation:
            with self.sessions() as session:
                conversation = conversations.owned(session, user, conversation_id)
                if limits is not None:
                    limits(session)
                return conversation

        return await in_thread(read)

    def _check_budget(self, session: Session, user: User) -> None:
        """429 when the user's daily token budget is spent (before anything is saved)."""
        settings = self.settings
        token_budget.check(session, user, per_day=settings.assistant_tokens_per_day, tz=settings.tz)

    async def _begin(self, turn: BegunTurn) -> None:
        try:
            await self.assistant.begin(turn.user, turn.thread_id, decisions=turn.decisions)
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

    async def _audit(
        self, turn: BegunTurn, events: Sequence[tuple[audit.Actor, str, dict[str, Any] | None]]
    ) -> None:
        """Record and commit what the secretary did; if that fails, the turn never starts
        and the conversation is released at once instead of staying busy until it is stale."""

        def record() -> None:
            with self.sessions() as session:
                for actor, action, details in events:
                    audit.record(
                        session,
                        actor,
                        action,
                        record_type="conversation",
                        record_id=turn.conversation_id,
                        details=details,
                    )
                session.commit()

        try:
            await in_thread(record)
        except BaseException:
            self.assistant.release(turn.thread_id)
            raise

    # -- running it -----------------------------------------------------------------------
    async def events(self, turn: BegunTurn, show_budget: BudgetView) -> AsyncIterator[TurnEvent]:
        """The turn's events for the page. ``done`` and ``error`` carry the user's budget
        after the turn, as ``show_budget`` presents it (the page updates its budget line)."""
        assistant = self.assistant
        try:
            choice = await assistant.amodel_choice()
            label = choice.label
        except BaseException:
            assistant.release(turn.thread_id)  # the turn never ran: nothing else releases it
            raise
        meter = TokenMeter()
        closing: list[TurnEvent] = []
        tool_errors = 0
        try:
            async for event in assistant.turn(
                turn.user,
                turn.thread_id,
                message=turn.message,
                decisions=turn.decisions,
                callbacks=[meter],
            ):
                if event.type in CLOSING_EVENTS:
                    closing.append(event)
                else:
                    tool_errors += event.type == "tool" and event.data.get("status") == "error"
                    yield event
        finally:
            with anyio.CancelScope(shield=True):
                await in_thread(self._record_usage, turn.user, meter.usage, label)
        await in_thread(
            partial(
                feedback_signals.record_turn,
                self.sessions,
                assistant.proposals,
                self.settings,
                conversation_id=turn.conversation_id,
                user_id=turn.user.id,
                thread_id=turn.thread_id,
                choice=choice,
                actions=[a for e in closing if e.type == "confirm" for a in e.data["actions"]],
                tool_errors=tool_errors,
                decided=turn.decisions is not None,
            )
        )
        budget = await in_thread(self._touch, turn, label)
        for event in closing:
            if event.type in ("done", "error"):
                event.data["budget"] = show_budget(budget)
        for event in closing:
            yield event

    def _record_usage(self, user: User, usage: TurnUsage, model: str) -> None:
        with self.sessions() as session:
            if token_budget.record(
                session,
                user,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                model_calls=usage.calls,
                estimated=usage.estimated,
                model=model,
            ):
                session.commit()

    def _touch(self, turn: BegunTurn, model: str) -> token_budget.Budget:
        """Record the conversation's use; the user's budget as it stands after the turn."""
        with self.sessions() as session:
            conversation = conversations.owned(session, turn.user, turn.conversation_id)
            conversations.touch(session, conversation, first_message=turn.message, model=model)
            session.commit()
            per_day = self.settings.assistant_tokens_per_day
            return token_budget.budget(session, turn.user, per_day=per_day)
