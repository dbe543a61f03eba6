"""The mixed-load benchmark harness: a real server, one secretary, two patients and one
physician for a few seconds; every kind of request is made and succeeds, and the report holds
the numbers beside the goals. No timing is asserted (the machine is shared)."""

import dataclasses

import pytest

from benchmarks import mixed_load
from benchmarks.report import Measure, Report
from tests.conftest import PG_URL

pytestmark = pytest.mark.slow  # each benchmark runs for seconds by design

KINDS = [
    "GET /secretariat",
    "GET /secretariat/c/{id}",
    mixed_load.LLM_KIND,
    "GET /agenda?view=",
    "GET /patients?q=",
    "GET /medecin",
    "GET /medecin/documents/{id}",
    "POST /medecin/documents/{id}/phrases/{s}/{i}",
    "POST /medecin/documents/{id}/approuver",
    "GET /p/{token}",
    "POST /p/{token}/identite",
    "GET /p/{token}/etape/{n}",
    "POST /p/{token}/answers",
]


def test_mixed_load_makes_every_kind_of_request_and_reports_them() -> None:
    config = dataclasses.replace(
        mixed_load.LoadConfig.smoke(duration=3),
        demo_patients=20,
        think=(0.05, 0.1),
        autosave_every=(0.1, 0.2),
        database_url=PG_URL or None,  # the suite's PostgreSQL server, when it runs on one
    )
    report = Report("test")
    run = mixed_load.measure_configured(report, config)

    assert run.database == ("postgresql" if PG_URL else "sqlite")
    for kind in KINDS:
        made = [s for name, s in run.kinds.items() if name.startswith(kind)]
        assert made and sum(s.count for s in made) > 0, f"no {kind} request"
        assert all(s.errors == 0 for s in made), [s.samples for s in made]
    assert run.errors == 0
    assert [s.name for s in run.kinds.values() if s.llm] == [mixed_load.LLM_KIND]
    approvals = run.kinds["POST /medecin/documents/{id}/approuver"].count
    assert run.kinds["POST /p/{token}/answers"].count >= 2 and approvals >= 1

    markdown = report.markdown()
    assert "cores; load average (1/5/15 min)" in markdown
    assert "## Mixed load (" in markdown
    table = "| request | count | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | goal | met |"
    assert table in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(rows) == len(run.kinds)
    assert all(row.endswith(("| PASS |", "| **MISS** |")) for row in rows)
    assert "| **all non-LLM requests** |" in markdown and "(LLM turn)" in markdown
    goals = {m.name.split(": ", 1)[1]: m for m in report.measures}
    assert goals["errors"].goal == "0" and goals["errors"].met is True
    assert goals["non-LLM p99"].goal == "≤ 200 ms" and goals["non-LLM p99"].met is not None
    assert goals["non-LLM throughput"].value > 0


def test_autosave_benchmark_paces_then_saturates_and_reports_both(monkeypatch, tmp_path) -> None:
    from benchmarks import autosave

    for name, value in {
        "PATIENTS": 3,
        "CONCURRENCY": 2,
        "DURATION_SECONDS": 1.0,
        "PACED_RATE": 20.0,
        "PACED_SECONDS": 1.0,
        "PACED_RUNS": 1,
        "REPORTS_DIR": tmp_path / "reports",
    }.items():
        monkeypatch.setattr(autosave, name, value)
    report = Report("test")
    autosave._measure(report, "SQLite", f"sqlite:///{tmp_path / 'bench.db'}", tmp_path)

    measures = {m.name: m for m in report.measures}

    def one(prefix: str) -> Measure:
        found = [m for name, m in measures.items() if name.startswith(prefix)]
        assert len(found) == 1, (prefix, sorted(measures))
        return found[0]

    paced = one("autosave paced at 20/s (SQLite, run 1/1): rate kept")
    assert paced.goal == "≥ 20" and 0 < paced.value <= 20  # never faster than the schedule
    assert one("autosave paced errors (SQLite, run 1/1").value == 0
    assert one("autosave paced p99 (SQLite, run 1/1)").goal == "≤ 100 ms"
    assert one("autosave paced runs meeting the goal (SQLite)").goal == "1 of 1"
    assert one("autosave saturation throughput (SQLite, 2 patients)").value > 0
    assert one("autosave saturation errors (SQLite").value == 0
    # the server's own output is kept beside the report
    assert (tmp_path / "reports" / "autosave-server-sqlite.log").is_file()


def test_a_paced_phase_is_never_faster_than_its_schedule() -> None:
    """Answers that come back at once: the phase still spans its schedule's window, so the
    rate kept is the schedule's, not a fraction of an interval more."""
    import asyncio
    import os

    from benchmarks import load

    async def instant(n: int) -> load.Answer:
        return load.Answer(200, {}, b"")

    phase = asyncio.run(load.paced(50.0, 0.2, instant, os.getpid()))
    assert phase.answered == 10 and phase.statuses == {200: 10}
    assert phase.rate == pytest.approx(50.0) and phase.rate <= 50.0
