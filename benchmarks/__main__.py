"""Run every benchmark and write ``benchmarks/reports/latest.md``."""

from benchmarks import web
from benchmarks.report import Report


def main() -> None:
    report = Report("Accueil benchmarks")
    print("web: non-LLM request latency")
    web.run(report)
    path = report.write()
    print(f"report written to {path}")


if __name__ == "__main__":
    main()
