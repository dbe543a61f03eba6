"""Online quality signals of the assistant's model, without labels: what the secretaries do
with each action it proposes (approved as is, edited, refused), how many turns and tool
errors it took to get there, and how long she took to decide; per week and per model, with
drift alerts when a rate crosses the thresholds the admin set.

``ProposalTracker`` counts the turns and tool errors of the task under way in each
conversation (in memory: after a restart a task's count starts again from the next turn)."""

import functools
import logging
import statistics
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from agents.models import ModelChoice, ollama_digest
from app.config.settings import Settings
from app.services.core import audit
from app.services.core.errors import InvalidInput
from models.model_governance import AssistantProposal, ModelGovernance
from models.types import utcnow
from prompts import load_prompt

log = logging.getLogger("accueil.assistant")

GOVERNANCE_ID = 1
DECISIONS = ("approve", "edit", "reject")
DEFAULT_REFUSAL = "La secrétaire a refusé cette action."  # what the page sends without a reason


def governance(session: Session) -> ModelGovernance:
    """The admin's choices (the defaults until an admin saves some); not added here."""
    return session.get(ModelGovernance, GOVERNANCE_ID) or ModelGovernance(id=GOVERNANCE_ID)


# -- recording --------------------------------------------------------------------------------


@dataclass
class _Task:
    turns: int = 0
    tool_errors: int = 0


class ProposalTracker:
    """The turns and tool errors since the last proposal, per conversation thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}

    def turn_ended(self, thread_id: str, tool_errors: int) -> tuple[int, int]:
        """Count one more turn; the task's turns and tool errors so far."""
        with self._lock:
            task = self._tasks.setdefault(thread_id, _Task())
            task.turns += 1
            task.tool_errors += tool_errors
            return task.turns, task.tool_errors

    def proposed(self, thread_id: str) -> None:
        """A proposal ends the task: the next one starts from zero."""
        with self._lock:
            self._tasks.pop(thread_id, None)


@dataclass(frozen=True)
class ServingModel:
    """The model that made a proposal, as the figures group it."""

    provider: str
    name: str
    digest: str = ""
    prompt_version: int = 0


def record_proposals(
    session: Session,
    *,
    conversation_id: int,
    user_id: int | None,
    actions: Sequence[Mapping[str, Any]],
    model: ServingModel,
    turns: int,
    tool_errors: int,
) -> list[AssistantProposal]:
    """One waiting row per proposed action (the confirmation cards of a turn)."""
    rows = [
        AssistantProposal(
            conversation_id=conversation_id,
            user_id=user_id,
            tool=str(action.get("name", ""))[:64],
            provider=model.provider[:16],
            model=model.name[:128],
            model_digest=model.digest[:128],
            prompt_version=model.prompt_version,
            turns=max(1, turns),
            tool_errors=tool_errors,
        )
        for action in actions
    ]
    session.add_all(rows)
    return rows


def edited_names(proposed: Mapping[str, Any], edited: Mapping[str, Any] | None) -> list[str]:
    """The arguments the secretary changed (sent with a value other than the proposed one)."""
    return sorted(k for k, v in (edited or {}).items() if proposed.get(k) != v)


def resolve_proposals(
    session: Session,
    conversation_id: int,
    decisions: Sequence[tuple[Mapping[str, Any], str, Mapping[str, Any] | None, str]],
    *,
    now: datetime | None = None,
) -> int:
    """Record the secretary's decisions on the conversation's waiting proposals, in the
    order they were proposed; ``decisions`` holds (proposed action, ``approve`` | ``edit`` |
    ``reject``, edited arguments, reason). Returns how many rows were resolved (none for a
    proposal made before the recording existed)."""
    now = now or utcnow()
    waiting = list(
        session.exec(
            select(AssistantProposal)
            .where(
                AssistantProposal.conversation_id == conversation_id,
                AssistantProposal.decision == "",
            )
            .order_by(col(AssistantProposal.id))
        )
    )
    resolved = 0
    for proposed, kind, args, reason in decisions:
        row = next((r for r in waiting if r.tool == proposed.get("name")), None)
        if row is None:
            continue
        waiting.remove(row)
        changed = edited_names(proposed.get("args", {}), args) if kind == "edit" else []
        row.decision = "edit" if kind == "edit" and changed else kind
        if kind == "edit" and not changed:
            row.decision = "approve"  # the card was sent back unchanged
        row.edited_args = changed
        row.refusal_reason = reason.strip()[:500] if kind == "reject" else ""
        if row.refusal_reason == DEFAULT_REFUSAL:
            row.refusal_reason = ""
        row.decided_at = now
        proposed_at = row.proposed_at.astimezone(UTC)
        row.seconds_to_decision = max(0.0, (now.astimezone(UTC) - proposed_at).total_seconds())
        session.add(row)
        resolved += 1
    return resolved


# -- figures ----------------------------------------------------------------------------------


@dataclass
class SignalRow:
    """One model over one week (the week starts on Monday, in the practice's time zone)."""

    week: date
    model: str
    provider: str
    prompt_version: int
    proposals: int = 0
    decided: int = 0
    approved: int = 0
    edited: int = 0
    refused: int = 0
    mean_turns: float = 0.0
    tool_errors: int = 0
    median_seconds: float | None = None
    edited_args: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def rate(self, count: int) -> float | None:
        return count / self.decided if self.decided else None

    @property
    def approval_rate(self) -> float | None:
        return self.rate(self.approved)

    @property
    def edit_rate(self) -> float | None:
        return self.rate(self.edited)

    @property
    def refusal_rate(self) -> float | None:
        return self.rate(self.refused)

    @property
    def errors_per_proposal(self) -> float:
        return self.tool_errors / self.proposals if self.proposals else 0.0


@dataclass(frozen=True)
class DriftAlert:
    """A rate beyond its threshold for one model in one week."""

    week: date
    model: str
    measure: str  # approval | edit | refusal
    rate: float
    threshold: float
    decided: int


def week_of(moment: datetime, tz: ZoneInfo) -> date:
    local = moment.astimezone(tz).date()
    return local - timedelta(days=local.weekday())


def signals(
    session: Session, tz: ZoneInfo, *, weeks: int = 12, now: datetime | None = None
) -> list[SignalRow]:
    """The figures of the last ``weeks`` weeks, newest week first, per model."""
    now = now or utcnow()
    since = datetime.combine(week_of(now, tz) - timedelta(weeks=weeks - 1), datetime.min.time())
    rows = session.exec(
        select(AssistantProposal).where(
            col(AssistantProposal.proposed_at) >= since.replace(tzinfo=tz)
        )
    ).all()
    groups: dict[tuple[date, str, str, int], list[AssistantProposal]] = {}
    for row in rows:
        key = (week_of(row.proposed_at, tz), row.model, row.provider, row.prompt_version)
        groups.setdefault(key, []).append(row)
    table: list[SignalRow] = []
    for (week, model, provider, version), group in groups.items():
        decided = [r for r in group if r.decision]
        seconds = [r.seconds_to_decision for r in decided if r.seconds_to_decision is not None]
        edited: dict[str, int] = {}
        for r in decided:
            for name in r.edited_args or []:
                edited[name] = edited.get(name, 0) + 1
        table.append(
            SignalRow(
                week=week,
                model=model,
                provider=provider,
                prompt_version=version,
                proposals=len(group),
                decided=len(decided),
                approved=sum(r.decision == "approve" for r in decided),
                edited=sum(r.decision == "edit" for r in decided),
                refused=sum(r.decision == "reject" for r in decided),
                mean_turns=round(statistics.fmean(r.turns for r in group), 2),
                tool_errors=sum(r.tool_errors for r in group),
                median_seconds=round(statistics.median(seconds), 1) if seconds else None,
                edited_args=dict(sorted(edited.items(), key=lambda item: -item[1])),
                reasons=[r.refusal_reason for r in decided if r.refusal_reason][:20],
            )
        )
    table.sort(key=lambda r: (r.week, r.model, r.prompt_version), reverse=True)
    return table


def drift_alerts(table: Sequence[SignalRow], settings: ModelGovernance) -> list[DriftAlert]:
    """The rates beyond the admin's thresholds, for weeks with enough decisions."""
    alerts: list[DriftAlert] = []
    for row in table:
        if row.decided < settings.min_decisions:
            continue
        checks = (
            ("refusal", row.refusal_rate, settings.max_refusal_rate, True),
            ("edit", row.edit_rate, settings.max_edit_rate, True),
            ("approval", row.approval_rate, settings.min_approval_rate, False),
        )
        for measure, rate, threshold, upper in checks:
            if rate is None:
                continue
            if (upper and rate > threshold) or (not upper and rate < threshold):
                alerts.append(
                    DriftAlert(row.week, row.model, measure, rate, threshold, row.decided)
                )
    return alerts


def _fraction(name_fr: str, name_en: str, percent: float) -> float:
    if not 0 <= percent <= 100:
        raise InvalidInput(
            f"{name_fr} : un pourcentage entre 0 et 100 est attendu.",
            f"{name_en}: a percentage between 0 and 100 is expected.",
        )
    return round(percent / 100, 4)


def update_thresholds(
    session: Session,
    actor: audit.Actor,
    *,
    max_refusal_percent: float,
    max_edit_percent: float,
    min_approval_percent: float,
    min_decisions: int,
) -> ModelGovernance:
    """Save the drift thresholds (percentages), audited; raises ``InvalidInput``."""
    values = {
        "max_refusal_rate": _fraction("Refus", "Refusals", max_refusal_percent),
        "max_edit_rate": _fraction("Modifications", "Edits", max_edit_percent),
        "min_approval_rate": _fraction("Approbations", "Approvals", min_approval_percent),
    }
    if not 1 <= min_decisions <= 10_000:
        raise InvalidInput(
            "Le nombre minimal de décisions doit être entre 1 et 10 000.",
            "The minimum number of decisions must be between 1 and 10,000.",
        )
    row = governance(session)
    before = {k: getattr(row, k) for k in (*values, "min_decisions")}
    for key, value in values.items():
        setattr(row, key, value)
    row.min_decisions = min_decisions
    row.updated_at = utcnow()
    row.updated_by = actor.name[:128]
    session.add(row)
    audit.record(
        session,
        actor,
        "model.thresholds",
        record_type="model_governance",
        record_id=GOVERNANCE_ID,
        details={"before": before, "after": {**values, "min_decisions": min_decisions}},
    )
    return row


# -- what the turns call ----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def secretary_prompt_version() -> int:
    return load_prompt("secretary").version


def serving_model(settings: Settings, choice: ModelChoice) -> ServingModel:
    """The model of a turn, its digest from the (cached) Ollama probe."""
    digest = ""
    if choice.provider == "ollama":
        digest = ollama_digest(settings.model_copy(update={"llm_model": choice.name}))
    return ServingModel(choice.provider, choice.name, digest, secretary_prompt_version())


def record_turn(
    sessions: Callable[[], Session],
    tracker: ProposalTracker,
    settings: Settings,
    *,
    conversation_id: int,
    user_id: int | None,
    thread_id: str,
    choice: ModelChoice,
    actions: Sequence[Mapping[str, Any]],
    tool_errors: int,
    decided: bool = False,
) -> None:
    """Count the turn in its task; when it ends on proposed actions, store them (committed).
    A turn that answers the secretary's decisions without a new proposal ends the task.
    A failure is logged, never raised: the figures must not break the secretary's turn."""
    turns, errors = tracker.turn_ended(thread_id, tool_errors)
    if not actions:
        if decided:
            tracker.proposed(thread_id)
        return
    try:
        with sessions() as session:
            record_proposals(
                session,
                conversation_id=conversation_id,
                user_id=user_id,
                actions=actions,
                model=serving_model(settings, choice),
                turns=turns,
                tool_errors=errors,
            )
            session.commit()
    except Exception as exc:
        log.warning("proposal not recorded: %s", type(exc).__name__)
    tracker.proposed(thread_id)


def record_decisions(
    sessions: Callable[[], Session],
    conversation_id: int,
    decisions: Sequence[tuple[Mapping[str, Any], str, Mapping[str, Any] | None, str]],
) -> None:
    """``resolve_proposals`` in its own committed session; a failure is only logged."""
    try:
        with sessions() as session:
            if resolve_proposals(session, conversation_id, decisions):
                session.commit()
    except Exception as exc:
        log.warning("decision not recorded: %s", type(exc).__name__)
