"""One scenario run: a fresh practice database, the ``Assistant`` driven turn by turn as the
secretariat page drives it (messages, then the secretary's decisions), and the checks."""

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from sqlalchemy.engine import Engine
from sqlmodel import Session

from agents.scripted_model import ScriptedChatModel
from agents.turns import TurnEvent, tool_summary
from app.config.settings import Settings
from app.services.assistant.runtime import Assistant, ConfirmationPending, TurnInProgress
from evals.secretary_checks import CallRecord, check_calls, check_reply, check_state
from evals.secretary_clock import practice_clock
from evals.secretary_models import ModelSource, PlayedModel
from evals.secretary_practice import (
    References,
    UnknownReference,
    book,
    seed_practice,
    seeded_appointments,
    snapshot,
)
from evals.secretary_scenarios import (
    Decision,
    EditDecision,
    RejectDecision,
    Scenario,
    ScenarioError,
    Turn,
)
from mcp_servers.local import LocalServers
from models.db import make_engine, session_scope
from models.users import User

MAX_CONFIRMATIONS = 4  # per turn: a model that keeps proposing actions is stopped
REFUSED = "La secrétaire a refusé cette action."  # what the secretariat page sends
UNASKED = "Action non demandée : la secrétaire refuse."
ASSISTANT_LOG = "accueil.assistant"
log = logging.getLogger("accueil.evals")


@dataclass
class TurnRecord:
    """What happened in one turn."""

    user: str
    calls: list[CallRecord] = field(default_factory=list)
    answer: str = ""
    confirmations: int = 0


@dataclass
class RunRecord:
    """One run of one scenario."""

    scenario: str
    repeat: int
    passed: bool
    failures: list[str]
    turns: list[TurnRecord]
    seconds: float


class _Collected(logging.Handler):
    """Keeps the assistant's warnings (why a turn failed: the exception's type)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def take(self) -> str:
        lines, self.lines = self.lines, []
        return "; ".join(lines)


@contextmanager
def _assistant_log() -> Iterator[_Collected]:
    handler = _Collected()
    logger = logging.getLogger(ASSISTANT_LOG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _decision(decision: Decision, action: dict[str, Any], refs: References) -> dict[str, Any]:
    """A scenario's decision as LangChain's human-in-the-loop middleware takes it (an edit
    merges into the proposed arguments, as the secretariat page does)."""
    if decision == "approve":
        return {"type": "approve"}
    if decision == "reject":
        return {"type": "reject", "message": REFUSED}
    if isinstance(decision, RejectDecision):
        return {"type": "reject", "message": decision.reject}
    assert isinstance(decision, EditDecision)
    args = {**action["args"], **refs.tool_args(decision.edit)}
    return {"type": "edit", "edited_action": {"name": action["name"], "args": args}}


def calls_since(
    messages: list[BaseMessage], first: int, decided: dict[str, dict[str, Any]]
) -> list[CallRecord]:
    """The tool calls of the messages from ``first`` on, with their decision and outcome."""
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    calls: list[CallRecord] = []
    for message in messages[first:]:
        if not isinstance(message, AIMessage):
            continue
        for tool_call in message.tool_calls:
            decision = decided.get(tool_call["id"] or "", {})
            edited = decision.get("edited_action", {}).get("args")
            result = results.get(tool_call["id"] or "")
            status = result.status if result is not None else "not run"
            calls.append(
                CallRecord(
                    name=tool_call["name"],
                    args=edited if edited is not None else dict(tool_call["args"]),
                    proposed=dict(tool_call["args"]) if edited is not None else None,
                    decision=decision.get("type", ""),
                    status="rejected" if decision.get("type") == "reject" else status,
                    result=tool_summary(result) if result is not None else "",
                )
            )
    return calls


class Conversation:
    """One conversation with the assistant, played as the secretary would."""

    def __init__(
        self, assistant: Assistant, user: User, engine: Engine, refs: References, log: _Collected
    ) -> None:
        self.assistant = assistant
        self.user = user
        self.engine = engine
        self.refs = refs
        self.log = log
        self.thread = "eval-secretary"

    async def messages(self) -> list[BaseMessage]:
        saver = self.assistant.checkpointer
        saved = (
            await saver.aget_tuple({"configurable": {"thread_id": self.thread}}) if saver else None
        )
        return list(saved.checkpoint.get("channel_values", {}).get("messages", [])) if saved else []

    async def _stream(
        self, *, message: str | None = None, decisions: list[dict[str, Any]] | None = None
    ) -> list[TurnEvent]:
        await self.assistant.begin(self.user, self.thread, decisions=decisions)
        return [
            event
            async for event in self.assistant.turn(
                self.user, self.thread, message=message, decisions=decisions
            )
        ]

    async def _pending_ids(self, actions: list[dict[str, Any]]) -> list[str]:
        """The ids of the proposed calls, in the order of the confirmation's actions."""
        last = next(
            (
                m
                for m in reversed(await self.messages())
                if isinstance(m, AIMessage) and m.tool_calls
            ),
            None,
        )
        calls = list(last.tool_calls) if last else []
        ids: list[str] = []
        for action in actions:
            index = next((i for i, c in enumerate(calls) if c["name"] == action["name"]), None)
            ids.append((calls.pop(index)["id"] or "") if index is not None else "")
        return ids

    def _script_hint(self) -> str:
        model = self.assistant.model_override
        if isinstance(model, ScriptedChatModel) and model.remaining == 0:
            return "no scripted step left: the turn needs more steps"
        return ""

    def _meanwhile(self, turn: Turn) -> None:
        assert turn.meanwhile is not None
        with session_scope(self.engine) as session:
            for spec in turn.meanwhile.appointments:
                book(session, self.refs.tz, spec)

    async def play(self, turn: Turn, number: int) -> tuple[TurnRecord, list[str], bool]:
        """Send the turn's message, answer each confirmation with the turn's decisions.
        Returns the record, the problems seen, and whether the conversation must stop."""
        problems: list[str] = []
        first = len(await self.messages())
        if turn.meanwhile and turn.confirm is None:
            self._meanwhile(turn)
        events = await self._stream(message=turn.user)
        waiting, decided, answers = list(turn.decisions), {}, []
        rounds, stop = 0, False
        while True:
            answers += [e.data.get("text", "") for e in events if e.type == "answer"]
            if any(e.type == "error" for e in events):
                hints = [self.log.take(), *self.refs.errors, self._script_hint()]
                reason = "; ".join(filter(None, hints)) or "error event"
                problems.append(f"turn {number}: the assistant failed ({reason})")
                stop = True
                break
            confirm = next((e for e in events if e.type == "confirm"), None)
            if confirm is None:
                break
            rounds += 1
            actions = confirm.data["actions"]
            names = ", ".join(a["name"] for a in actions)
            if rounds > MAX_CONFIRMATIONS:
                problems.append(f"turn {number}: more than {MAX_CONFIRMATIONS} confirmations")
                stop = True
                break
            if turn.meanwhile and turn.confirm is not None and rounds == 1:
                self._meanwhile(turn)
            if waiting:
                decision: Decision = waiting.pop(0)
            else:
                problems.append(f"turn {number}: unexpected confirmation of {names}")
                decision = RejectDecision(reject=UNASKED)
            built = [_decision(decision, action, self.refs) for action in actions]
            for call_id, made in zip(await self._pending_ids(actions), built, strict=True):
                decided[call_id] = made
            events = await self._stream(decisions=built)
        if waiting and not stop:
            problems.append(
                f"turn {number}: {len(waiting)} confirmation(s) expected, none was proposed"
            )
        record = TurnRecord(
            user=turn.user,
            calls=calls_since(await self.messages(), first, decided),
            answer=answers[-1] if answers else "",
            confirmations=rounds,
        )
        return record, problems, stop


def _script_fits(played: PlayedModel, turn: int, before: int) -> list[str]:
    """With the scripted model, each turn must use exactly its own steps."""
    if played.steps is None or not isinstance(played.model, ScriptedChatModel):
        return []
    used, planned = before - played.model.remaining, played.steps[turn - 1]
    if used == planned:
        return []
    return [f"turn {turn}: the scripted model answered {used} time(s), the turn scripts {planned}"]


async def _play(
    scenario: Scenario, source: ModelSource, settings: Settings, engine: Engine
) -> tuple[list[str], list[TurnRecord]]:
    with session_scope(engine) as session:
        user = seed_practice(session, settings, scenario.practice)
    with Session(engine) as session:
        seeded, before = seeded_appointments(session), snapshot(session)
    refs = References(engine, seeded, settings.tz)
    played = source.for_scenario(scenario, refs)
    assistant = Assistant(settings, engine, LocalServers(engine, settings))
    assistant.model_override = played.model
    assistant.clock = lambda: scenario.now
    failures: list[str] = []
    turns: list[TurnRecord] = []
    with practice_clock(scenario.now), _assistant_log() as log:
        async with assistant.running():
            conversation = Conversation(assistant, user, engine, refs, log)
            for number, turn in enumerate(scenario.turns, 1):
                remaining = (
                    played.model.remaining if isinstance(played.model, ScriptedChatModel) else 0
                )
                try:
                    record, problems, stop = await conversation.play(turn, number)
                except (TurnInProgress, ConfirmationPending) as exc:
                    failures.append(f"turn {number}: {type(exc).__name__}")
                    break
                turns.append(record)
                failures += problems
                misfit = _script_fits(played, number, remaining)
                failures += misfit
                if turn.expect_calls is not None:
                    failures += check_calls(number, turn.expect_calls, record.calls, refs)
                failures += check_reply(f"turn {number}", turn.expect_reply_contains, record.answer)
                if stop or misfit:
                    break
    with Session(engine) as session:
        failures += check_state(session, scenario.expect_state, refs, before)
    final = turns[-1].answer if len(turns) == len(scenario.turns) else ""
    failures += check_reply("final answer", scenario.expect_reply_contains, final)
    return failures, turns


async def run_scenario(
    scenario: Scenario, source: ModelSource, settings: Settings, template: Path, repeat: int = 1
) -> RunRecord:
    """Play one scenario in its own database (a copy of the migrated ``template``)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(
        prefix="accueil-secretary-", ignore_cleanup_errors=True
    ) as tmp:
        root = Path(tmp)
        shutil.copyfile(template, root / "accueil.db")
        local = settings.model_copy(
            update={
                "data_dir": root,
                "database_url": f"sqlite:///{root / 'accueil.db'}",
                "chroma_url": None,
                "timezone": "Europe/Paris",
            }
        )
        engine = make_engine(local.resolved_database_url)
        try:
            failures, turns = await _play(scenario, source, local, engine)
        except (ScenarioError, UnknownReference) as exc:
            failures, turns = [str(exc)], []
        except Exception as exc:  # one broken run must not end a long evaluation
            log.exception("scenario %s: harness error", scenario.id)
            failures, turns = [f"harness error: {type(exc).__name__}: {exc}"], []
        finally:
            engine.dispose()
    return RunRecord(
        scenario=scenario.id,
        repeat=repeat,
        passed=not failures,
        failures=failures,
        turns=turns,
        seconds=round(time.perf_counter() - started, 2),
    )
