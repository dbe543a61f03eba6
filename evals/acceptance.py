"""The model acceptance gate's run: the secretary scenarios (the shipped ones and the
practice's own) played against a model through its real server, and against the ``rules``
floor, then the verdict stored by ``app.services.assistant.model_gate``.

Run by ``accueil model accept MODEL`` and by the admin page's button (a background job)."""

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from agents.models import ModelUnavailable, ollama_digest
from app.config.settings import Settings
from app.services.assistant import model_gate
from app.services.assistant.feedback_signals import secretary_prompt_version
from app.services.core import audit
from evals.secretary import SCENARIOS, Progress, SecretaryEval, evaluate_async
from models.model_governance import ModelAcceptance

RULES = "rules"


@dataclass(frozen=True)
class ModelSpec:
    """What to accept: an Ollama model (``qwen3:8b`` or ``ollama:qwen3:8b``) or an
    OpenAI-compatible one (``openai:NAME``)."""

    provider: str
    name: str

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        text = text.strip()
        provider, _, name = text.partition(":")
        if provider in ("ollama", "openai") and name:
            return cls(provider, name)
        if not text or text in (RULES, "scripted", "embedded", "configured", "auto"):
            raise ValueError(f"« {text} » : donnez un modèle Ollama (ex. qwen3:8b) ou openai:NOM")
        return cls("ollama", text)

    @property
    def eval_spec(self) -> str:
        return f"{self.provider}:{self.name}"


def practice_scenarios(settings: Settings) -> Path | None:
    """The practice's own scenario folder, when there is one."""
    folder = settings.assistant_scenarios_dir or settings.data_dir / "scenarios"
    return folder if folder.is_dir() and any(folder.glob("*.y*ml")) else None


def suite_folder(target: Path, folders: Sequence[Path]) -> Path:
    """One folder holding every scenario file of ``folders`` (ids must stay unique)."""
    target.mkdir(parents=True, exist_ok=True)
    for number, folder in enumerate(folders):
        files = [folder] if folder.is_file() else [*folder.glob("*.yaml"), *folder.glob("*.yml")]
        for path in files:
            shutil.copyfile(path, target / f"{number}-{path.name}")
    return target


def suite_result(result: SecretaryEval) -> model_gate.SuiteResult:
    return model_gate.SuiteResult(
        model=result.model,
        repeats=result.repeats,
        scenarios=result.scenarios,
        pass_1=result.pass_1,
        pass_k=result.pass_k,
        categories={
            c.category: model_gate.CategoryResult(c.scenarios, c.pass_1, c.pass_k)
            for c in result.categories
        },
    )


def model_digest(settings: Settings, spec: ModelSpec) -> str:
    """The model's digest as its server lists it (Ollama's ``/api/tags``); OpenAI-compatible
    servers give none."""
    if spec.provider != "ollama":
        return ""
    return ollama_digest(settings.model_copy(update={"llm_model": spec.name}), fresh=True)


@dataclass(frozen=True)
class Measured:
    """What one acceptance run measured, before it is stored."""

    spec: ModelSpec
    digest: str
    played: SecretaryEval
    floor: SecretaryEval


async def measure_async(
    settings: Settings,
    model: str,
    *,
    repeats: int = 1,
    scenarios: Sequence[Path] | None = None,
    only: list[str] | None = None,
    progress: Progress | None = None,
) -> Measured:
    """Play the suite against ``model`` (through its server) and against ``rules``. Raises
    ``ModelUnavailable`` (the server does not serve it), ``ScenarioError`` or ``ValueError``."""
    spec = ModelSpec.parse(model)
    digest = model_digest(settings, spec)
    if spec.provider == "ollama" and not digest:
        raise ModelUnavailable(f"Ollama ({settings.ollama_url}) ne sert pas le modèle {spec.name}")
    if scenarios is None:
        own = practice_scenarios(settings)
        scenarios = [SCENARIOS, *([own] if own else [])]
    with tempfile.TemporaryDirectory(prefix="accueil-accept-") as tmp:
        folder = suite_folder(Path(tmp) / "suite", scenarios)
        played = await evaluate_async(
            settings,
            model=spec.eval_spec,
            scenarios=folder,
            repeats=repeats,
            only=only,
            progress=progress,
        )
        # The floor is deterministic: one run per scenario measures it.
        floor = await evaluate_async(settings, model=RULES, scenarios=folder, only=only)
    return Measured(spec, digest, played, floor)


def record(session: Session, actor: audit.Actor, measured: Measured) -> ModelAcceptance:
    """Store the verdict in the caller's transaction."""
    return model_gate.record_acceptance(
        session,
        actor,
        provider=measured.spec.provider,
        model=measured.spec.name,
        digest=measured.digest,
        prompt_version=secretary_prompt_version(),
        result=suite_result(measured.played),
        rules=suite_result(measured.floor),
    )


async def run_acceptance_async(
    settings: Settings,
    engine: Engine,
    model: str,
    actor: audit.Actor,
    *,
    repeats: int = 1,
    scenarios: Sequence[Path] | None = None,
    only: list[str] | None = None,
    progress: Progress | None = None,
) -> ModelAcceptance:
    """Measure, then store the verdict (committed) and return it."""
    measured = await measure_async(
        settings, model, repeats=repeats, scenarios=scenarios, only=only, progress=progress
    )
    with Session(engine) as session:
        row = record(session, actor, measured)
        session.commit()
        session.refresh(row)
        session.expunge(row)
    return row


def run_acceptance(
    settings: Settings,
    engine: Engine,
    model: str,
    actor: audit.Actor,
    *,
    repeats: int = 1,
    scenarios: Sequence[Path] | None = None,
    only: list[str] | None = None,
    progress: Callable[..., None] | None = None,
) -> ModelAcceptance:
    """``run_acceptance_async`` from synchronous code (the command line, a job)."""
    return asyncio.run(
        run_acceptance_async(
            settings,
            engine,
            model,
            actor,
            repeats=repeats,
            scenarios=scenarios,
            only=only,
            progress=progress,
        )
    )
