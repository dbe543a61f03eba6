"""Timing helpers and the Markdown report that every benchmark adds its rows to."""

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPORTS_DIR = Path(__file__).parent / "reports"


@dataclass
class Measure:
    """One measured quantity with its goal (``None`` when informative only)."""

    name: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None


@dataclass
class Report:
    title: str
    measures: list[Measure] = field(default_factory=list)

    def add(self, measure: Measure) -> None:
        self.measures.append(measure)
        verdict = {True: "ok", False: "MISSED", None: ""}[measure.met]
        print(f"  {measure.name}: {measure.value:.2f} {measure.unit} {measure.goal} {verdict}")

    def markdown(self) -> str:
        lines = [
            f"# {self.title}",
            "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
            f"({platform.processor() or platform.machine()}, Python {platform.python_version()}).",
            "",
            "| measure | value | goal | met |",
            "| --- | ---: | --- | --- |",
        ]
        for m in self.measures:
            met = {True: "yes", False: "**no**", None: ""}[m.met]
            lines.append(f"| {m.name} | {m.value:.2f} {m.unit} | {m.goal} | {met} |")
        return "\n".join(lines) + "\n"

    def write(self) -> Path:
        REPORTS_DIR.mkdir(exist_ok=True)
        path = REPORTS_DIR / "latest.md"
        path.write_text(self.markdown(), encoding="utf-8")
        return path


def latencies_ms(call: Callable[[], object], repeats: int, warmup: int = 5) -> list[float]:
    """Wall-clock duration of each call, in milliseconds."""
    for _ in range(warmup):
        call()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]
