"""The shared secretary scenarios (``evals/scenarios/secretary``) end to end through the real
HTTP clients: the eval runner drives the assistant (agent graph, MCP tools, confirmations,
memory) with ``ChatOllama`` or ``ChatOpenAI`` as ``agents/models.py`` builds them, talking to
a loopback Ollama or vLLM whose model is the scenario's own script (a model that replays the
expected tool calls) or the rules assistant. A representative set runs by default, all 50
with the ``slow`` marker."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel

from agents.models import choose_model, make_chat_model
from agents.rules.model import RulesChatModel
from app.config.settings import Settings
from evals.secretary import SCENARIOS
from evals.secretary_models import ModelSource
from evals.secretary_runner import run_scenario
from evals.secretary_scenarios import load_scenarios
from models.migrate import upgrade
from tests.assistant.test_model_protocols import pointed_at
from tests.support.model_servers import ChatModelPlayer, OllamaServer, OpenAIServer
from tests.support.model_servers.base import ModelServer

# One or two of each kind: booking with edits and refusals, moving, cancelling with the
# waiting list, a slot taken meanwhile, an ambiguous patient, registering, the knowledge base,
# out-of-scope and emergency requests.
REPRESENTATIVE = [
    "book-edit-time",
    "move-one-of-two",
    "cancel-offers-waiting-list",
    "slot-taken-meanwhile",
    "ambiguous-patient",
    "register-then-book",
    "practice-questions-knowledge",
    "emergency-chest-pain",
]
ALL = [s.id for s in load_scenarios(SCENARIOS)]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protocol-scenarios") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["ollama", "openai"])
def model_server(request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    server = OllamaServer() if request.param == "ollama" else OpenAIServer()
    with server:
        yield server


def served(server: ModelServer, settings: Settings, player: str) -> ModelSource:
    """Each scenario's model behind ``server``; the runner drives the real client."""
    client_settings = pointed_at(settings, server, llm_hybrid=False)
    client = make_chat_model(client_settings, choose_model(client_settings))

    def serve(model: BaseChatModel) -> BaseChatModel:
        behind = RulesChatModel() if player == "rules" else model
        server.play(ChatModelPlayer(behind))
        return client

    # The source hands ``serve`` each scenario's script; the rules player leaves it unused.
    return ModelSource(f"{player} over {server.protocol}", serve=serve)


def play(scenario_ids: list[str], server: ModelServer, template: Path, player: str) -> None:
    settings = Settings(_env_file=None, health_probe_timeout_seconds=0.2)
    source = served(server, settings, player)

    async def run_all() -> dict[str, list[str]]:  # one event loop: the clients keep theirs
        failures: dict[str, list[str]] = {}
        for scenario in load_scenarios(SCENARIOS, scenario_ids):
            record = await run_scenario(scenario, source, settings, template)
            if not record.passed:
                failures[scenario.id] = record.failures
        return failures

    assert asyncio.run(run_all()) == {}
    assert server.errors == []


@pytest.mark.parametrize("player", ["scripted", "rules"])
def test_representative_scenarios_through_the_http_clients(
    model_server: ModelServer, template: Path, player: str
) -> None:
    play(REPRESENTATIVE, model_server, template, player)


@pytest.mark.slow
@pytest.mark.parametrize("player", ["scripted", "rules"])
def test_all_scenarios_through_the_http_clients(
    model_server: ModelServer, template: Path, player: str
) -> None:
    play(ALL, model_server, template, player)
