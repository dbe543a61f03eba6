"""Timing helpers and the Markdown report that every benchmark adds its rows to."""

import os
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


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (zeros where the system has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


@dataclass
class Report:
    """The measures (one table, goals beside values) and longer sections after it."""

    title: str
    measures: list[Measure] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    load_at_start: tuple[float, float, float] = field(default_factory=load_average)

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
            f"Machine: {os.cpu_count()} cores; load average (1/5/15 min) "
            f"{loads_text(self.load_at_start)} at the start, "
            f"{loads_text(load_average())} at the end. "
            "This machine is shared with other work: timings are noisy, compare them with care.",
            "",
            "| measure | value | goal | met |",
            "| --- | ---: | --- | --- |",
        ]
        for m in self.measures:
            met = {True: "yes", False: "**no**", None: ""}[m.met]
            lines.append(f"| {m.name} | {m.value:.2f} {m.unit} | {m.goal} | {met} |")
        for section in self.sections:
            lines += ["", section.rstrip("\n")]
        return "\n".join(lines) + "\n"

    def write(self, path: Path | None = None) -> Path:
        path = path or REPORTS_DIR / "latest.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(), encoding="utf-8")
        return path


def loads_text(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


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
