"""Non-LLM request latency through the full HTTP stack on the demo practice.

Goal (issue 8): p99 ≤ 200 ms for non-LLM requests on the 2-core reference machine.
"""

import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.config.settings import Settings
from app.main import create_app
from app.services.operations.demo import seed_demo
from benchmarks.report import Measure, Report, latencies_ms, percentile
from models.db import make_engine
from models.migrate import upgrade


def run(report: Report, patients: int = 2000, repeats: int = 200) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            secret_key="benchmark",
            ollama_url="http://127.0.0.1:9",
        )
        upgrade(settings.resolved_database_url)
        engine = make_engine(settings.resolved_database_url)
        with Session(engine) as session:
            credentials = seed_demo(session, settings, patients=patients).credentials
            session.commit()
        engine.dispose()
        app = create_app(settings)
        with TestClient(app) as client:
            page = client.get("/login", headers={"accept": "text/html"}).text
            marker = 'name="csrf_token" value="'
            token = page[page.index(marker) + len(marker) :].split('"', 1)[0]
            client.post(
                "/login",
                data={
                    "username": "secretaire",
                    "password": credentials["secretaire"],
                    "csrf_token": token,
                },
                follow_redirects=False,
            )
            cases = {
                "GET /api/patients?q=martin": lambda: client.get("/api/patients?q=martin"),
                "GET /api/patients/{id}": lambda: client.get("/api/patients/17"),
                "GET / (today's agenda page)": lambda: client.get(
                    "/", headers={"accept": "text/html"}
                ),
            }
            for name, call in cases.items():
                assert call().status_code == 200, name
                values = latencies_ms(call, repeats)
                p99 = percentile(values, 99)
                report.add(
                    Measure(f"{name} p50 ({patients} patients)", percentile(values, 50), "ms")
                )
                report.add(
                    Measure(f"{name} p99 ({patients} patients)", p99, "ms", "≤ 200 ms", p99 <= 200)
                )
        app.state.engine.dispose()
