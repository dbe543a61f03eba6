"""The public booking page under load (issue 20).

A server process (uvicorn, one worker, SQLite) serves a practice of 3 practitioners open to
online booking, with half of the next month already booked. Against it, on loopback:

1. throughput: ``CLIENTS`` patients (each its own address, via ``X-Forwarded-For`` from a
   trusted proxy) load the slot page ``/rendez-vous/creneaux`` back to back for a few
   seconds; goal ≥ 200 req/s at p99 ≤ 100 ms;
2. an abusive client: one address hammers the page as fast as it can while a few polite
   patients load it at a human pace; the abuser is answered 429 at once (token bucket per
   address), and the polite patients' p99 stays close to their p99 alone.

``python -m benchmarks booking_page`` (``ACCUEIL_BENCH_BOOKING_SECONDS`` changes the length
of each phase, 10 s by default).
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.report import Measure, Report, percentile

SECRET = "benchmark-secret"  # noqa: S105 (a throwaway database)
CLIENTS = 16
POLITE = 4
PAGE = "/rendez-vous/creneaux?praticien=premier&motif=consultation"


def serve() -> None:
    """The server process: migrate, seed the practice, serve until stopped."""
    from datetime import time as clock

    import uvicorn
    from sqlmodel import Session

    from app.config.settings import Settings
    from app.main import create_app, freeze_startup_objects
    from app.services.booking import rules as booking_rules
    from app.services.core.audit import Actor
    from models.appointments import Appointment
    from models.audit import ActorKind
    from models.migrate import upgrade
    from models.patients import Patient, Sex
    from models.practice import Practitioner, VisitType, WorkingHours

    port = int(sys.argv[1])
    settings = Settings(_env_file=None)
    upgrade(settings.resolved_database_url)
    app = create_app(settings)
    with Session(app.state.engine) as session:
        ids = []
        for n in range(3):
            p = Practitioner(first_name="Claire", last_name=f"Praticien{n}")
            session.add(p)
            session.flush()
            ids.append(p.id or 0)
            for weekday in range(6):
                for start, end in (("08:30", "12:30"), ("14:00", "19:00")):
                    session.add(
                        WorkingHours(
                            practitioner_id=p.id or 0,
                            weekday=weekday,
                            start_time=clock.fromisoformat(start),
                            end_time=clock.fromisoformat(end),
                        )
                    )
        session.add(VisitType(code="consultation", label="Consultation", duration_minutes=20))
        patient = Patient(
            birth_name="Durand", first_name="Marie", birth_date=datetime(1980, 1, 2).date(),
            sex=Sex.female,
        )  # fmt: skip
        session.add(patient)
        session.flush()
        # Every other slot of the next month booked, for each practitioner.
        tz = settings.tz
        today = datetime.now(tz).date()
        for offset in range(1, 31):
            day = today + timedelta(days=offset)
            if day.weekday() == 6:
                continue
            for pid in ids:
                moment = datetime.combine(day, clock(8, 30), tzinfo=tz)
                while moment.time() < clock(19, 0):
                    if clock(12, 30) <= moment.time() < clock(14, 0):
                        moment += timedelta(minutes=40)
                        continue
                    session.add(
                        Appointment(
                            practitioner_id=pid,
                            patient_id=patient.id or 0,
                            starts_at=moment.astimezone(UTC),
                            ends_at=(moment + timedelta(minutes=20)).astimezone(UTC),
                        )
                    )
                    moment += timedelta(minutes=40)
        booking_rules.save(
            session,
            Actor(kind=ActorKind.system, name="benchmark"),
            booking_rules.RulesInput(
                enabled=True,
                allow_new_patients=True,
                min_notice_hours=2,
                horizon_days=30,
                max_future_bookings=2,
                visit_types=["consultation"],
                practitioner_ids=ids,
            ),
        )
        session.commit()
    freeze_startup_objects()
    uvicorn.run(
        app, host="127.0.0.1", port=port, proxy_headers=True, access_log=False,
        log_level="warning",
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(data_dir: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "ACCUEIL_DATABASE_URL": f"sqlite:///{data_dir / 'accueil.db'}",
        "ACCUEIL_DATA_DIR": str(data_dir),
        "ACCUEIL_SECRET_KEY": SECRET,
        "ACCUEIL_OLLAMA_URL": "http://127.0.0.1:9",
        "ACCUEIL_JOBS_IN_PROCESS": "false",
        "ACCUEIL_TRUSTED_PROXIES": "127.0.0.1",
        "ACCUEIL_BOOKING_PAGE_RATE": "5",
        "ACCUEIL_BOOKING_PAGE_BURST": "30",
    }
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 (our own code)
            [sys.executable, "-c", "from benchmarks.booking_page import serve; serve()",
             str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def _client(
    base: str,
    address: str,
    seconds: float,
    pause: float,
    out: list[tuple[float, int]],
    *,
    many: bool = False,
) -> None:
    """Load the slot page until time is up; ``(latency ms, status)``. With ``many``, each
    request comes from another address of a /24 (many patients behind one client)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        end = time.monotonic() + seconds
        count = 0
        while time.monotonic() < end:
            count += 1
            who = f"{address}.{count % 250 + 1}" if many else address
            start = time.perf_counter()
            response = await client.get(PAGE, headers={"x-forwarded-for": who})
            out.append(((time.perf_counter() - start) * 1000, response.status_code))
            if pause:
                await asyncio.sleep(pause)


async def _throughput(base: str, seconds: float) -> tuple[float, list[float], int]:
    results: list[list[tuple[float, int]]] = [[] for _ in range(CLIENTS)]
    began = time.monotonic()
    # Many patients (each request from another address), as fast as the server answers.
    await asyncio.gather(
        *(_client(base, f"10.1.{n}", seconds, 0.0, results[n], many=True) for n in range(CLIENTS))
    )
    elapsed = time.monotonic() - began
    flat = [r for rs in results for r in rs]
    ok = [ms for ms, status in flat if status == 200]
    return len(ok) / elapsed, ok, sum(1 for _, s in flat if s != 200)


async def _polite(base: str, seconds: float, abuse: bool) -> tuple[list[float], int, int]:
    polite: list[list[tuple[float, int]]] = [[] for _ in range(POLITE)]
    abusive: list[tuple[float, int]] = []
    tasks = [_client(base, f"10.2.0.{n + 1}", seconds, 0.5, polite[n]) for n in range(POLITE)]
    if abuse:
        tasks += [_client(base, "10.66.6.6", seconds, 0.0, abusive) for _ in range(4)]
    await asyncio.gather(*tasks)
    latencies = [ms for rs in polite for ms, status in rs if status == 200]
    refused = sum(1 for rs in polite for _, status in rs if status != 200)
    return latencies, refused, sum(1 for _, status in abusive if status == 429)


def run(report: Report) -> None:
    seconds = float(os.environ.get("ACCUEIL_BENCH_BOOKING_SECONDS", "10"))
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as base:
        assert httpx.get(f"{base}{PAGE}").status_code == 200
        # Warm up (templates, caches), from an address of its own.
        for _ in range(20):
            httpx.get(f"{base}{PAGE}", headers={"x-forwarded-for": "10.9.9.9"})
        rate, latencies, refused = asyncio.run(_throughput(base, seconds))
        p99 = percentile(latencies, 99)
        report.add(
            Measure(
                "booking page: throughput (16 concurrent clients)",
                rate,
                "req/s",
                "≥ 200",
                rate >= 200,
            )
        )
        report.add(Measure("booking page: p50", percentile(latencies, 50), "ms"))
        report.add(Measure("booking page: p99", p99, "ms", "≤ 100 ms", p99 <= 100))
        report.add(Measure("booking page: refused during throughput run", refused, "requests"))
        alone, _, _ = asyncio.run(_polite(base, seconds, abuse=False))
        with_abuser, polite_refused, abuser_429 = asyncio.run(_polite(base, seconds, abuse=True))
        alone_p99, abused_p99 = percentile(alone, 99), percentile(with_abuser, 99)
        report.add(Measure("polite patients p99, alone", alone_p99, "ms"))
        report.add(
            Measure(
                "polite patients p99, with an abusive client",
                abused_p99,
                "ms",
                "≤ 100 ms",
                abused_p99 <= 100,
            )
        )
        report.add(
            Measure("polite requests refused", polite_refused, "requests", "0", polite_refused == 0)
        )
        report.add(Measure("abusive client's requests answered 429", abuser_429, "requests"))
        report.sections.append(
            "## Booking page\n\n"
            + json.dumps(
                {
                    "seconds_per_phase": seconds,
                    "throughput_clients": CLIENTS,
                    "polite_clients": POLITE,
                    "page_rate_per_address": "5/s, burst 30",
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    result = Report("Booking page benchmark")
    run(result)
    print(f"report written to {result.write()}")
