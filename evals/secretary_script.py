"""The ``scripted:`` steps of a scenario as a ``ScriptedChatModel``: what a perfect assistant
would answer at each model call, names resolved to ids when the step is played."""

from functools import partial

from langchain_core.messages import AIMessage, BaseMessage

from agents.scripted_model import ScriptedChatModel, call, say
from evals.secretary_practice import References
from evals.secretary_scenarios import Scenario, ScenarioError, ScriptStep


def _tool_call(step: ScriptStep, refs: References, messages: list[BaseMessage]) -> AIMessage:
    return call(step.call or "", step.text, **refs.tool_args(step.args))


def scripted_model(scenario: Scenario, refs: References) -> tuple[ScriptedChatModel, list[int]]:
    """One model playing every turn's ``scripted`` steps in order, and the number of model
    calls each turn should use."""
    script: list[object] = []
    steps: list[int] = []
    for number, turn in enumerate(scenario.turns, 1):
        if not turn.scripted:
            raise ScenarioError(
                f"{scenario.id} : tour {number} sans « scripted » ; "
                "ce scénario ne peut pas être joué avec --model scripted"
            )
        for step in turn.scripted:
            script.append(
                say(step.reply) if step.reply is not None else partial(_tool_call, step, refs)
            )
        steps.append(len(turn.scripted))
    return ScriptedChatModel(script=script), steps
