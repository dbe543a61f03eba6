"""Secretary assistant evaluation: plays the scenario suite against a model, k times each, and
scores pass^1 (mean success rate) and pass^k (share of scenarios that pass all k runs),
reported as JSON and Markdown. Format of the scenarios: ``evals/README.md``."""

import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.config.settings import Settings
from evals.secretary_models import model_source
from evals.secretary_runner import RunRecord, run_scenario
from evals.secretary_scenarios import Scenario, load_scenarios
from models.migrate import upgrade

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios" / "secretary"
REPORTS = HERE / "reports"

Progress = Callable[[RunRecord], None]


@dataclass
class ScenarioScore:
    """One scenario over its k runs."""

    id: str
    category: str
    description: str
    passes: int
    runs: int
    pass_1: float
    pass_k: bool
    seconds_mean: float
    results: list[RunRecord] = field(default_factory=list)


@dataclass
class CategoryScore:
    category: str
    scenarios: int
    pass_1: float
    pass_k: float


@dataclass
class SecretaryEval:
    """The scores of one evaluation, and what they were measured on."""

    model: str
    repeats: int
    scenarios: int
    pass_1: float
    pass_k: float
    seconds: float
    categories: list[CategoryScore]
    scores: list[ScenarioScore]
    run_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def score(scenario: Scenario, runs: list[RunRecord]) -> ScenarioScore:
    passes = sum(r.passed for r in runs)
    return ScenarioScore(
        id=scenario.id,
        category=scenario.category,
        description=scenario.description,
        passes=passes,
        runs=len(runs),
        pass_1=passes / len(runs),
        pass_k=passes == len(runs),
        seconds_mean=round(sum(r.seconds for r in runs) / len(runs), 2),
        results=runs,
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _categories(scores: list[ScenarioScore]) -> list[CategoryScore]:
    names = sorted({s.category for s in scores})
    return [
        CategoryScore(
            category=name,
            scenarios=len(group),
            pass_1=_mean([s.pass_1 for s in group]),
            pass_k=_mean([float(s.pass_k) for s in group]),
        )
        for name in names
        for group in [[s for s in scores if s.category == name]]
    ]


async def evaluate_async(
    settings: Settings,
    *,
    model: str = "scripted",
    scenarios: Path = SCENARIOS,
    repeats: int = 1,
    only: list[str] | None = None,
    progress: Progress | None = None,
) -> SecretaryEval:
    """Play every scenario ``repeats`` times, each run in its own fresh database."""
    if repeats < 1:
        raise ValueError("repeats >= 1")
    suite = load_scenarios(scenarios, only)
    source = model_source(model, settings)
    scores: list[ScenarioScore] = []
    with tempfile.TemporaryDirectory(prefix="accueil-eval-", ignore_cleanup_errors=True) as tmp:
        template = Path(tmp) / "template.db"
        upgrade(f"sqlite:///{template}")  # migrated once, copied for every run
        for scenario in suite:
            runs: list[RunRecord] = []
            for repeat in range(1, repeats + 1):
                run = await run_scenario(scenario, source, settings, template, repeat)
                runs.append(run)
                if progress:
                    progress(run)
            scores.append(score(scenario, runs))
    return SecretaryEval(
        model=source.label,
        repeats=repeats,
        scenarios=len(scores),
        pass_1=_mean([s.pass_1 for s in scores]),
        pass_k=_mean([float(s.pass_k) for s in scores]),
        seconds=round(sum(r.seconds for s in scores for r in s.results), 1),
        categories=_categories(scores),
        scores=scores,
    )


def evaluate(
    settings: Settings,
    *,
    model: str = "scripted",
    scenarios: Path = SCENARIOS,
    repeats: int = 1,
    only: list[str] | None = None,
    progress: Progress | None = None,
) -> SecretaryEval:
    """``evaluate_async`` from synchronous code (the command line, tests)."""
    return asyncio.run(
        evaluate_async(
            settings,
            model=model,
            scenarios=scenarios,
            repeats=repeats,
            only=only,
            progress=progress,
        )
    )


def summary(result: SecretaryEval) -> str:
    k = result.repeats
    scores = f"pass^1 {result.pass_1:.2f}" + (f", pass^{k} {result.pass_k:.2f}" if k > 1 else "")
    return (
        f"{scores} — {result.scenarios} scénarios × {k}, modèle {result.model}, "
        f"{result.seconds:.0f} s"
    )


def _cell(text: str, limit: int = 400) -> str:
    text = " ".join(text.replace("|", "\\|").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _failures(result: SecretaryEval) -> list[str]:
    lines: list[str] = []
    for run in (r for s in result.scores for r in s.results if not r.passed):
        lines.append(f"### {run.scenario} (run {run.repeat})")
        lines += [f"- {_cell(reason)}" for reason in run.failures]
        for number, turn in enumerate(run.turns, 1):
            calls = "; ".join(c.describe() for c in turn.calls) or "no tool call"
            lines.append(f"- turn {number} calls: {_cell(calls)}")
            lines.append(f"- turn {number} answer: {_cell(turn.answer) or '—'}")
        lines.append("")
    return ["", "## Failures", "", *lines] if lines else []


def markdown(result: SecretaryEval) -> str:
    k = result.repeats
    many = k > 1  # with one run, pass^k is pass^1
    extra = [f"pass^{k}"] if many else []
    lines = [
        "# Secretary assistant evaluation",
        "",
        f"Run {result.run_at} with `{result.model}`: {result.scenarios} scenarios, {k} run(s) "
        f"each, {result.seconds:.0f} s in all.",
        "",
        *_table(
            ["measure", "value"],
            ["---", "---:"],
            [["pass^1", f"{result.pass_1:.2f}"]]
            + ([[f"pass^{k}", f"{result.pass_k:.2f}"]] if many else []),
        ),
        "",
        *_table(
            ["category", "scenarios", "pass^1", *extra],
            ["---", "---:", "---:", *(["---:"] if many else [])],
            [
                [c.category, str(c.scenarios), f"{c.pass_1:.2f}"]
                + ([f"{c.pass_k:.2f}"] if many else [])
                for c in result.categories
            ],
        ),
        "",
        *_table(
            ["scenario", "category", "passed", "pass^1", *extra, "seconds"],
            ["---", "---", "---:", "---:", *([":---:"] if many else []), "---:"],
            [
                [s.id, s.category, f"{s.passes}/{s.runs}", f"{s.pass_1:.2f}"]
                + (["yes" if s.pass_k else "no"] if many else [])
                + [f"{s.seconds_mean:.1f}"]
                for s in result.scores
            ],
        ),
        *_failures(result),
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_reports(result: SecretaryEval, directory: Path) -> tuple[Path, Path]:
    """``secretary.json`` and ``secretary.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "secretary.json"
    md_path = directory / "secretary.md"
    data = asdict(result)
    data[f"pass_{result.repeats}"] = result.pass_k
    json_path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), "utf-8")
    md_path.write_text(markdown(result), "utf-8")
    return json_path, md_path
