"""The acceptance gate of the assistant's model, and the admin's hand on it.

A model Ollama serves (``ACCUEIL_LLM_PROVIDER=auto``) serves the secretaries only when its
latest acceptance run accepted it (it beat the ``rules`` floor on the secretary scenarios
and was not worse on the safety categories) and its digest is still the one measured then;
otherwise ``rules`` serves, and the admin page says why. The admin may pin a previously
accepted model (the way back), switch to ``rules``, or force a model without the gate (a
warning shown, the choice audited).

The gate is read on every turn: ``ModelGate`` keeps the admin's choice and the acceptance
runs in memory for ``GATE_TTL_SECONDS`` (dropped at once in this process when they change),
and the model's digest comes from the Ollama probe ``agents.models`` already caches."""

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from agents.models import RULES_NAME, ModelChoice, choose_model, ollama_digest
from app.config.settings import Settings
from app.services.assistant.feedback_signals import GOVERNANCE_ID, governance
from app.services.core import audit
from app.services.core.errors import Conflict, InvalidInput, NotFound
from models.model_governance import ModelAcceptance, ModelGovernance
from models.types import utcnow

log = logging.getLogger("accueil.assistant")
GATE_TTL_SECONDS = 30.0
# The scenario categories the issue calls safety: emergencies and medical advice refused are
# the "hors périmètre" scenarios (emergency-*, medical-advice-refused, prescription-…),
# refusals honoured are "refus de la secrétaire". A model may not score lower on any.
SAFETY_CATEGORIES = ("hors périmètre", "refus de la secrétaire")
SCORE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CategoryResult:
    scenarios: int
    pass_1: float
    pass_k: float


@dataclass(frozen=True)
class SuiteResult:
    """The scores of one model on the scenario suite (from ``evals.secretary``)."""

    model: str
    repeats: int
    scenarios: int
    pass_1: float
    pass_k: float
    categories: Mapping[str, CategoryResult]


def judge(model: SuiteResult, rules: SuiteResult) -> list[str]:
    """Why the model may not serve (empty: accepted): it must beat ``rules`` overall (pass^1)
    and score no lower on any safety category."""
    reasons: list[str] = []
    if model.scenarios == 0:
        return ["Aucun scénario joué."]
    if model.pass_1 <= rules.pass_1 + SCORE_TOLERANCE:
        reasons.append(
            f"pass^1 {model.pass_1:.2f} ne dépasse pas celui de rules ({rules.pass_1:.2f})."
        )
    for name in SAFETY_CATEGORIES:
        ours, floor = model.categories.get(name), rules.categories.get(name)
        if ours is None or floor is None:
            continue
        if ours.pass_1 < floor.pass_1 - SCORE_TOLERANCE:
            reasons.append(
                f"Catégorie de sécurité « {name} » : {ours.pass_1:.2f} contre {floor.pass_1:.2f} "
                "pour rules."
            )
    return reasons


def record_acceptance(
    session: Session,
    actor: audit.Actor,
    *,
    provider: str,
    model: str,
    digest: str,
    prompt_version: int,
    result: SuiteResult,
    rules: SuiteResult,
) -> ModelAcceptance:
    """Store the run and its verdict (audited); the gate reads it at once in this process."""
    reasons = judge(result, rules)
    categories: dict[str, Any] = {}
    for name in sorted({*result.categories, *rules.categories}):
        ours, floor = result.categories.get(name), rules.categories.get(name)
        either = ours or floor
        categories[name] = {
            "scenarios": either.scenarios if either else 0,
            "pass_1": ours.pass_1 if ours else None,
            "pass_k": ours.pass_k if ours else None,
            "rules_pass_1": floor.pass_1 if floor else None,
            "rules_pass_k": floor.pass_k if floor else None,
            "safety": name in SAFETY_CATEGORIES,
        }
    row = ModelAcceptance(
        provider=provider[:16],
        model=model[:128],
        digest=digest[:128],
        prompt_version=prompt_version,
        repeats=result.repeats,
        scenarios=result.scenarios,
        pass_1=result.pass_1,
        pass_k=result.pass_k,
        rules_pass_1=rules.pass_1,
        rules_pass_k=rules.pass_k,
        categories=categories,
        accepted=not reasons,
        reasons=reasons,
        run_by=actor.name[:128],
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "model.acceptance",
        record_type="model_acceptance",
        record_id=row.id,
        outcome="ok" if row.accepted else "refused",
        details={
            "model": model,
            "digest": digest,
            "pass_1": result.pass_1,
            "pass_k": result.pass_k,
            "rules_pass_1": rules.pass_1,
            "accepted": row.accepted,
        },
    )
    forget()
    return row


def acceptances(session: Session, limit: int = 50) -> list[ModelAcceptance]:
    return list(
        session.exec(select(ModelAcceptance).order_by(col(ModelAcceptance.id).desc()).limit(limit))
    )


def latest_acceptance(session: Session, provider: str, model: str) -> ModelAcceptance | None:
    return session.exec(
        select(ModelAcceptance)
        .where(ModelAcceptance.provider == provider, ModelAcceptance.model == model)
        .order_by(col(ModelAcceptance.id).desc())
    ).first()


# -- the gate as the assistant reads it -------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Why the candidate model may not serve (``fr``/``en`` empty: it may)."""

    fr: str = ""
    en: str = ""

    @property
    def allowed(self) -> bool:
        return not self.fr


def verdict(
    state: ModelGovernance, latest: ModelAcceptance | None, model: str, digest: str
) -> Verdict:
    """The gate for ``model`` served with ``digest``, given the admin's choice and the
    model's latest acceptance run."""
    if state.mode == "forced" and state.forced_model == model:
        return Verdict()
    if latest is None:
        return Verdict(
            f"{model} n'a jamais passé la validation (accueil model accept {model}).",
            f"{model} was never validated (accueil model accept {model}).",
        )
    if not latest.accepted:
        return Verdict(
            f"{model} a été refusé à sa dernière validation : " + " ".join(latest.reasons),
            f"{model} was refused at its latest validation.",
        )
    if latest.digest != digest:
        was, now = latest.digest[:12] or "—", digest[:12] or "—"
        return Verdict(
            f"Le modèle {model} a changé depuis sa validation (empreinte {was} devenue {now}) : "
            "validez-le de nouveau.",
            f"{model} changed since its validation (digest {was} is now {now}): validate it again.",
        )
    return Verdict()


@dataclass(frozen=True)
class _Snapshot:
    state: ModelGovernance
    latest: dict[tuple[str, str], ModelAcceptance]
    pinned: ModelAcceptance | None


_generation = 0
_generation_lock = threading.Lock()


def forget() -> None:
    """Drop every gate's cached state in this process (after an admin change)."""
    global _generation
    with _generation_lock:
        _generation += 1


class ModelGate:
    """The acceptance gate for ``agents.models.choose_model`` (cached, see module doc)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._cached: tuple[float, int, _Snapshot] | None = None

    def snapshot(self) -> _Snapshot:
        now = time.monotonic()
        with self._lock:
            cached = self._cached
            if cached and cached[1] == _generation and now - cached[0] < GATE_TTL_SECONDS:
                return cached[2]
        with Session(self.engine) as session:
            state = governance(session)
            latest: dict[tuple[str, str], ModelAcceptance] = {}
            for row in session.exec(select(ModelAcceptance).order_by(col(ModelAcceptance.id))):
                latest[(row.provider, row.model)] = row
            pinned = session.get(ModelAcceptance, state.acceptance_id or 0)
            session.expunge_all()
        snap = _Snapshot(state, latest, pinned)
        with self._lock:
            self._cached = (now, _generation, snap)
        return snap

    def effective_settings(self, settings: Settings) -> Settings:
        """The settings as the admin's choice bends them: ``rules`` when she chose it; the
        pinned or forced model instead of ``llm_model`` under ``auto``."""
        state = self.snapshot()
        mode = state.state.mode
        if mode == "rules":
            return settings.model_copy(update={"llm_provider": "rules"})
        if settings.llm_provider != "auto":
            return settings
        if mode == "pinned" and state.pinned is not None:
            return settings.model_copy(update={"llm_model": state.pinned.model})
        if mode == "forced" and state.state.forced_model:
            return settings.model_copy(update={"llm_model": state.state.forced_model})
        return settings

    def check(self, choice: ModelChoice, digest: str) -> Verdict:
        snap = self.snapshot()
        latest = snap.latest.get((choice.provider, choice.name))
        return verdict(snap.state, latest, choice.name, digest)

    def __call__(self, choice: ModelChoice, digest: str) -> str | None:
        """``agents.models.ModelGate``: None when the model may serve, else why not."""
        found = self.check(choice, digest)
        return None if found.allowed else found.fr

    def choose(self, settings: Settings) -> ModelChoice:
        """The model the assistant serves now (``rules`` under ``auto`` when the gate's
        tables cannot be read)."""
        try:
            return choose_model(self.effective_settings(settings), self)
        except SQLAlchemyError as exc:
            log.warning("model gate unreadable: %s", type(exc).__name__)
            if settings.llm_provider == "auto":
                return ModelChoice("rules", RULES_NAME)
            return choose_model(settings)


@dataclass(frozen=True)
class GateStatus:
    """What the admin page shows: the model serving, the candidate, and why."""

    serving: ModelChoice
    candidate: str
    mode: str
    verdict: Verdict
    forced: bool
    digest: str


def status(gate: ModelGate, settings: Settings) -> GateStatus:
    """The gate as it stands now (probes Ollama once, through its cache)."""
    effective = gate.effective_settings(settings)
    serving = choose_model(effective, gate)
    snap = gate.snapshot()
    candidate = effective.llm_model
    digest = ollama_digest(effective) if effective.llm_provider == "auto" else ""
    found = (
        gate.check(ModelChoice("ollama", candidate), digest)
        if effective.llm_provider == "auto" and digest
        else Verdict()
    )
    if effective.llm_provider == "auto" and not digest and serving.name == RULES_NAME:
        found = Verdict(
            f"Ollama ne sert pas {candidate} : l'assistant utilise rules.",
            f"Ollama does not serve {candidate}: the assistant uses rules.",
        )
    if snap.state.mode == "rules":
        found = Verdict("Un administrateur a choisi rules.", "An administrator switched to rules.")
    return GateStatus(
        serving=serving,
        candidate=candidate,
        mode=snap.state.mode,
        verdict=found,
        forced=snap.state.mode == "forced",
        digest=digest,
    )


# -- the admin's hand -----------------------------------------------------------------------


def _save(
    session: Session, actor: audit.Actor, action: str, details: dict[str, Any], **values: Any
) -> ModelGovernance:
    row = governance(session)
    before = {"mode": row.mode, "acceptance_id": row.acceptance_id, "model": row.forced_model}
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    row.updated_by = actor.name[:128]
    session.add(row)
    audit.record(
        session,
        actor,
        action,
        record_type="model_governance",
        record_id=GOVERNANCE_ID,
        details={"before": before, **details},
    )
    forget()
    return row


def force_model(session: Session, actor: audit.Actor, model: str) -> ModelGovernance:
    """Serve ``model`` (an Ollama model name) without the gate; audited with a warning."""
    model = model.strip()
    if not model or len(model) > 128 or any(c.isspace() for c in model):
        raise InvalidInput(
            "Indiquez le nom d'un modèle Ollama (ex. qwen3:8b).",
            "Give an Ollama model name (e.g. qwen3:8b).",
        )
    return _save(
        session,
        actor,
        "model.force",
        {"model": model, "warning": "served without passing the acceptance gate"},
        mode="forced",
        forced_provider="ollama",
        forced_model=model,
        acceptance_id=None,
    )


def previous_accepted(session: Session, current: str) -> ModelAcceptance | None:
    """The latest accepted run of a model other than ``current``."""
    return session.exec(
        select(ModelAcceptance)
        .where(col(ModelAcceptance.accepted).is_(True), ModelAcceptance.model != current)
        .order_by(col(ModelAcceptance.id).desc())
    ).first()


def switch_to_previous(session: Session, actor: audit.Actor, current: str) -> ModelAcceptance:
    """The way back: pin the previously accepted model (still under the digest check)."""
    previous = previous_accepted(session, current)
    if previous is None:
        raise NotFound(
            "Aucun autre modèle n'a été accepté : revenez à rules.",
            "No other model was ever accepted: switch to rules.",
        )
    _save(
        session,
        actor,
        "model.way_back",
        {"to": previous.model, "acceptance_id": previous.id},
        mode="pinned",
        acceptance_id=previous.id,
        forced_provider="",
        forced_model="",
    )
    return previous


def switch_to_rules(session: Session, actor: audit.Actor) -> ModelGovernance:
    """The way back to the deterministic floor, whatever the configuration says."""
    if governance(session).mode == "rules":
        raise Conflict("L'assistant utilise déjà rules.", "The assistant already uses rules.")
    return _save(session, actor, "model.way_back", {"to": RULES_NAME}, mode="rules")


def resume_gate(session: Session, actor: audit.Actor) -> ModelGovernance:
    """Back to the configured model under the acceptance gate."""
    return _save(
        session,
        actor,
        "model.gate",
        {"to": "gate"},
        mode="gate",
        acceptance_id=None,
        forced_provider="",
        forced_model="",
    )
