"""The ``rules`` provider's speed (issue 16): every secretary turn it decides takes at most
50 ms p95. Plays the secretary scenarios (``evals/scenarios/secretary``) through the real
assistant, agent graph and MCP tools, and times the provider's own work: each model call
(read the conversation, decide the next step) and, per secretary message, the sum of its
calls. The tools' database work is the same whatever the model, and measured by the
assistant suite."""

import time
from collections import defaultdict
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage

import agents.rules.model as rules_model
from agents.rules.planner import Step
from app.config.settings import Settings
from benchmarks.report import Measure, Report, percentile
from evals.secretary import evaluate

GOAL_MS = 50.0


def run(report: Report) -> None:
    calls: list[float] = []
    turns: dict[tuple[str, int], float] = defaultdict(float)
    decide = rules_model.next_step

    def timed(messages: Sequence[BaseMessage], default_tz: str = "Europe/Paris") -> Step:
        started = time.perf_counter()
        step = decide(messages, default_tz)
        spent = (time.perf_counter() - started) * 1000
        calls.append(spent)
        first = next((m for m in messages if isinstance(m, HumanMessage)), None)
        said = sum(isinstance(m, HumanMessage) for m in messages)
        turns[(str(first.content) if first else "", said)] += spent
        return step

    rules_model.next_step = timed
    try:
        result = evaluate(Settings(_env_file=None), model="rules")
    finally:
        rules_model.next_step = decide
    per_turn = list(turns.values())
    p95 = percentile(per_turn, 95)
    report.add(Measure("rules provider: scenarios passed (pass^1)", result.pass_1, ""))
    report.add(Measure("rules provider: model call p50", percentile(calls, 50), "ms"))
    report.add(Measure("rules provider: model call p95", percentile(calls, 95), "ms"))
    report.add(
        Measure(
            "rules provider: secretary turn p95", p95, "ms", f"≤ {GOAL_MS:g} ms", p95 <= GOAL_MS
        )
    )
    report.add(Measure("rules provider: secretary turn max", max(per_turn), "ms"))


if __name__ == "__main__":
    solo = Report("Rules provider")
    run(solo)
    for measure in solo.measures:
        print(f"{measure.name}: {measure.value:.2f} {measure.unit} {measure.goal}")
