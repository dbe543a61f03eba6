"""Which chat model plays the scenarios: ``scripted`` (each scenario's own script) or a real
model (``rules``, ``ollama:NAME``, ``openai:NAME``, ``embedded``, or the configured one)."""

from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel

from agents.models import (
    ModelChoice,
    ModelUnavailable,
    choose_model,
    make_chat_model,
    ollama_serves,
)
from app.config.settings import Settings
from evals.secretary_practice import References
from evals.secretary_scenarios import Scenario
from evals.secretary_script import scripted_model

SCRIPTED = "scripted"
CONFIGURED = "configured"


@dataclass
class PlayedModel:
    """The model of one scenario run; ``steps`` (scripted only): model calls per turn."""

    model: BaseChatModel
    steps: list[int] | None = None


@dataclass
class ModelSource:
    """Gives each scenario run its chat model (a real model is built once and shared)."""

    label: str
    shared: BaseChatModel | None = field(default=None, repr=False)

    def for_scenario(self, scenario: Scenario, refs: References) -> PlayedModel:
        if self.shared is not None:
            return PlayedModel(self.shared)
        model, steps = scripted_model(scenario, refs)
        return PlayedModel(model, steps)


def parse_model(spec: str, settings: Settings) -> ModelChoice | None:
    """``scripted`` -> None; ``rules``, ``ollama:qwen3:8b``, ``openai:NAME``, ``embedded``,
    or ``configured`` (what ``ACCUEIL_LLM_PROVIDER`` picks) -> a model choice."""
    spec = spec.strip()
    if spec == SCRIPTED:
        return None
    if spec in ("", CONFIGURED, "auto"):
        return choose_model(settings)
    if spec == "rules":
        return choose_model(settings.model_copy(update={"llm_provider": "rules"}))
    if spec == "embedded":
        return choose_model(settings.model_copy(update={"llm_provider": "embedded"}))
    provider, _, name = spec.partition(":")
    if provider == "ollama" and name:
        return ModelChoice("ollama", name)
    if provider == "openai" and name:
        return ModelChoice("openai", name)
    raise ValueError(
        f"modèle « {spec} » inconnu : scripted, rules, configured, embedded, ollama:NOM ou "
        "openai:NOM"
    )


def model_source(spec: str, settings: Settings) -> ModelSource:
    """The model source for ``--model``; a real model must answer now (ModelUnavailable)."""
    choice = parse_model(spec, settings)
    if choice is None:
        return ModelSource(SCRIPTED)
    if choice.provider == "ollama" and not ollama_serves(
        settings.model_copy(update={"llm_model": choice.name}), fresh=True
    ):
        raise ModelUnavailable(
            f"Ollama ({settings.ollama_url}) ne sert pas le modèle {choice.name}"
        )
    return ModelSource(choice.label, make_chat_model(settings, choice))
