"""Run every benchmark and write ``benchmarks/reports/latest.md``."""

import sys

from benchmarks import (
    agenda_grid,
    assistant,
    autosave,
    booking_page,
    knowledge,
    llm_embedded,
    mixed_load,
    notifications,
    red_flags,
    rules_provider,
    scheduling,
    speech,
    web,
)
from benchmarks.report import Report

SUITES = {
    "agenda_grid": agenda_grid.run,
    "assistant": assistant.run,
    "autosave": autosave.run,
    "booking_page": booking_page.run,
    "mixed_load": mixed_load.run,
    "web": web.run,
    "scheduling": scheduling.run,
    "knowledge": knowledge.run,
    "llm_embedded": llm_embedded.run,
    "speech": speech.run,
    "notifications": notifications.run,
    "red_flags": red_flags.run,
    "rules_provider": rules_provider.run,
}


def main() -> None:
    """``python -m benchmarks [suite ...]``: every suite by default."""
    chosen = sys.argv[1:] or list(SUITES)
    report = Report("Accueil benchmarks")
    for name in chosen:
        print(f"== {name}")
        SUITES[name](report)
    path = report.write()
    print(f"report written to {path}")


if __name__ == "__main__":
    main()
