"""Which chat model plays the scenarios: ``scripted`` (each scenario's own script), a real model
(``rules``, ``ollama:NAME``, ``openai:NAME``, ``embedded``, or the configured one), or the
hybrid assistant (``hybrid…``: the rules first, a model when the rules are not sure).

Hybrid specs: ``hybrid`` (the configured LLM), ``hybrid:ollama:NAME``, ``hybrid:openai:NAME``,
``hybrid:embedded``, and two that need no LLM: ``hybrid:scripted`` (the LLM is the scenario's
own script, a perfect model: what the rules' sure answers cost it) and ``hybrid:down`` (an LLM
that never answers: what the rules' sure answers achieve alone).

Tests put a scenario's model behind a protocol server with ``ModelSource.serve`` (the model
the runner drives is then the HTTP client)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agents.hybrid_model import HybridChatModel
from agents.models import (
    ModelChoice,
    ModelUnavailable,
    choose_model,
    make_chat_model,
    ollama_serves,
)
from agents.rules.model import RulesChatModel
from agents.scripted_model import call, say
from app.config.settings import Settings
from evals.secretary_practice import References
from evals.secretary_scenarios import Scenario, ScenarioError, ScriptStep
from evals.secretary_script import scripted_model

SCRIPTED = "scripted"
CONFIGURED = "configured"
HYBRID = "hybrid"
ORACLE = "scripted"  # hybrid:scripted
DOWN = "down"  # hybrid:down


@dataclass
class PlayedModel:
    """The model of one scenario run; ``steps`` (scripted only): model calls per turn."""

    model: BaseChatModel
    steps: list[int] | None = None


Serve = Callable[[BaseChatModel], BaseChatModel]


@dataclass
class ModelSource:
    """Gives each scenario run its chat model (a real model is built once and shared).
    ``hybrid`` (``scripted`` or ``down``): each scenario gets the rules first and that LLM;
    ``serve``: the scenario's model is put behind a protocol server and the runner drives
    the returned client. ``answered`` counts the hybrid's answers by author."""

    label: str
    shared: BaseChatModel | None = field(default=None, repr=False)
    hybrid: str | None = None
    timezone: str = "Europe/Paris"
    serve: Serve | None = field(default=None, repr=False)
    hybrids: list[HybridChatModel] = field(default_factory=list, repr=False)

    def for_scenario(self, scenario: Scenario, refs: References) -> PlayedModel:
        if self.shared is not None:
            if isinstance(self.shared, HybridChatModel) and self.shared not in self.hybrids:
                self.hybrids.append(self.shared)
            return PlayedModel(self._served(self.shared))
        if self.hybrid is not None:
            llm = OracleChatModel.of(scenario, refs) if self.hybrid == ORACLE else DownChatModel()
            hybrid = HybridChatModel(rules=RulesChatModel(timezone=self.timezone), llm=llm)
            self.hybrids.append(hybrid)
            return PlayedModel(self._served(hybrid))
        model, steps = scripted_model(scenario, refs)
        if self.serve is not None:  # the runner cannot count a served script's steps
            return PlayedModel(self.serve(model))
        return PlayedModel(model, steps)

    def _served(self, model: BaseChatModel) -> BaseChatModel:
        return self.serve(model) if self.serve is not None else model

    def answered(self) -> dict[str, int]:
        """Model calls answered by the rules and by the LLM, over every hybrid run."""
        total = {"rules": 0, "llm": 0}
        for model in self.hybrids:
            for author, count in model.answered.items():
                total[author] += count
        return total


class OracleChatModel(BaseChatModel):
    """A scenario's ``scripted`` steps as a perfect model that keeps no state: the turn is
    the number of the secretary's messages, the step the number of answers since her last
    one (whoever wrote them), so it can take over from the rules at any step."""

    turns: list[list[Any]]

    @classmethod
    def of(cls, scenario: Scenario, refs: References) -> "OracleChatModel":
        turns: list[list[Any]] = []
        for number, turn in enumerate(scenario.turns, 1):
            if not turn.scripted:
                raise ScenarioError(f"{scenario.id} : tour {number} sans « scripted »")
            turns.append([_step(step, refs) for step in turn.scripted])
        return cls(turns=turns)

    @property
    def _llm_type(self) -> str:
        return "oracle"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> "OracleChatModel":
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        said = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
        turn = self.turns[min(len(said), len(self.turns)) - 1] if said else self.turns[0]
        since = sum(isinstance(m, AIMessage) for m in messages[said[-1] :]) if said else 0
        step = turn[min(since, len(turn) - 1)]
        message = step(messages) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message.model_copy(deep=True))])


def _step(step: ScriptStep, refs: References) -> Any:
    if step.reply is not None:
        return say(step.reply)

    def play(messages: list[BaseMessage]) -> AIMessage:
        return call(step.call or "", step.text, **refs.tool_args(step.args))

    return play


class DownChatModel(BaseChatModel):
    """An LLM whose server never answers."""

    @property
    def _llm_type(self) -> str:
        return "down"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> "DownChatModel":
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise ModelUnavailable("the language model does not answer (hybrid:down)")


def parse_model(spec: str, settings: Settings) -> ModelChoice | None:
    """``scripted`` -> None; ``rules``, ``ollama:qwen3:8b``, ``openai:NAME``, ``embedded``,
    or ``configured`` (what ``ACCUEIL_LLM_PROVIDER`` picks) -> a model choice; ``hybrid``
    or ``hybrid:`` and one of these -> the same choice in hybrid mode."""
    spec = spec.strip()
    if spec == SCRIPTED:
        return None
    if spec == HYBRID or spec.startswith(HYBRID + ":"):
        inner = spec.partition(":")[2] or CONFIGURED
        choice = parse_model(inner, settings.model_copy(update={"llm_hybrid": False}))
        if choice is None or choice.provider == "rules":
            raise ValueError(f"« {spec} » : le mode hybride associe les règles à un LLM")
        return ModelChoice(choice.provider, choice.name, demo=choice.demo, hybrid=True)
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
        f"modèle « {spec} » inconnu : scripted, rules, configured, embedded, ollama:NOM, "
        "openai:NOM, hybrid, hybrid:scripted, hybrid:down ou hybrid:…"
    )


def model_source(spec: str, settings: Settings) -> ModelSource:
    """The model source for ``--model``; a real model must answer now (ModelUnavailable)."""
    spec = spec.strip()
    if spec in (f"{HYBRID}:{ORACLE}", f"{HYBRID}:{DOWN}"):
        kind = spec.partition(":")[2]
        label = f"rules + {'scripted' if kind == ORACLE else 'LLM down'} (hybrid)"
        return ModelSource(label, hybrid=kind, timezone=settings.timezone)
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
