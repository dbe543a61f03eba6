"""The public booking page under load (issue 20).

A server process (uvicorn, one worker, SQLite) serves a practice of 3 practitioners open to
online booking, with half of the next month already booked. Against it, on loopback, from
many patients' addresses (``X-Forwarded-For`` from the trusted proxy, each address keeping
the session cookie it was given):

1. *saturation* (information): ``CLIENTS`` patients load the slot page back to back (a
   closed loop): the most the server sustains; its latency is mostly queueing;
2. *paced* (the goal, three runs): slot pages requested on a fixed schedule of ``RATE`` per
   second whatever the answers' pace (an open loop, as patients do not wait for each other);
   met when the server keeps the pace with p99 ≤ 100 ms and no error, in every run;
3. an abusive client: one address hammers the page as fast as it can while a few polite
   patients load it at a human pace; the abuser is answered 429 at once (token bucket per
   address), and the polite patients' p99 stays close to their p99 alone.

The pages asked for mix "premier disponible", each practitioner, and a later page. Beside
the wall-clock numbers (noisy on a shared machine), the report gives the server process's
CPU time per request (``/proc``) and the client's own, so that a client stealing the
server's core shows. Transport errors are counted by kind, never raised. The server's output
is kept beside the report (``reports/booking-page-server.log``).

``python -m benchmarks booking_page``; ``ACCUEIL_BENCH_BOOKING_SECONDS`` changes the length of
the saturation and abuse phases (10 s by default), ``ACCUEIL_BENCH_BOOKING_PACED_SECONDS``
the length of each paced run (15 s).
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from benchmarks.load import (
    Answer,
    Phase,
    RawClient,
    free_port,
    paced,
    report_paced,
    report_saturation,
    saturation,
    settle,
    timed,
)
from benchmarks.report import REPORTS_DIR, Measure, Report, percentile

SECRET = "benchmark-secret"  # noqa: S105 (a throwaway database)
CLIENTS = 16
RATE = 200.0
PACED_RUNS = 3
POLITE = 4
ABUSER_CONNECTIONS = 4
ADDRESSES = 2000  # patients in the paced and saturation phases
PAGE = "/rendez-vous/creneaux?praticien=premier&motif=consultation"
START_SECONDS = 300.0
LOG_NAME = "booking-page-server.log"


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


@contextmanager
def running_server(data_dir: Path, log_path: Path) -> Iterator[tuple[str, int, int]]:
    """The server's base URL, port and process id, its output written to ``log_path``."""
    port = free_port()
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
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 (our own code)
            [sys.executable, "-c", "from benchmarks.booking_page import serve; serve()",
             str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        # Generous: on a shared, loaded machine importing the app alone took over a minute.
        deadline = time.monotonic() + START_SECONDS
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield base, port, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def pages(today: datetime) -> list[str]:
    """The mix of slot pages patients ask for: mostly "premier disponible", each
    practitioner, and the page of the week after next."""
    later = (today + timedelta(days=14)).date().isoformat()
    specific = [f"/rendez-vous/creneaux?praticien={n}&motif=consultation" for n in (1, 2, 3)]
    return [PAGE] * 5 + specific + [f"{PAGE}&apres={later}", f"{PAGE}&lang=en"]


class Patients:
    """Many patients behind one client: request ``n`` comes from address ``n % count``,
    which keeps the session cookie the server gave it (as a browser does)."""

    def __init__(self, client: RawClient, prefix: str, count: int, paths: list[str]) -> None:
        self.client, self.prefix, self.count, self.paths = client, prefix, count, paths
        self.cookies: dict[int, str] = {}

    def address(self, n: int) -> str:
        k = n % self.count
        return f"{self.prefix}.{k // 250}.{k % 250 + 1}"

    async def load(self, n: int) -> Answer:
        k = n % self.count
        headers = {"X-Forwarded-For": self.address(n)}
        if k in self.cookies:
            headers["Cookie"] = self.cookies[k]
        answer = await self.client.get(self.paths[n % len(self.paths)], headers)
        cookie = answer.headers.get("set-cookie")
        if cookie:
            self.cookies[k] = cookie.split(";", 1)[0]
        return answer


@dataclass
class Results:
    saturation: Phase
    paced: list[Phase]
    alone: tuple[Phase, Phase]
    abused: tuple[Phase, Phase]


async def _drive(port: int, pid: int, seconds: float, paced_seconds: float) -> Results:
    client = RawClient("127.0.0.1", port)
    try:
        paths = pages(datetime.now(UTC))
        warm = Patients(client, "10.9", 50, paths)
        for n in range(40):  # templates, caches, pool
            await warm.load(n)
        crowd = Patients(client, "10.1", ADDRESSES, paths)
        closed = await saturation(CLIENTS, seconds, crowd.load, pid)
        runs = []
        for run in range(PACED_RUNS):
            others = Patients(client, f"10.{20 + run}", ADDRESSES, paths)
            runs.append(await paced(RATE, paced_seconds, others.load, pid))
        alone = await _polite(port, seconds, abuse=False)
        with_abuser = await _polite(port, seconds, abuse=True)
        return Results(closed, runs, alone, with_abuser)
    finally:
        await client.close()


async def _polite(port: int, seconds: float, abuse: bool) -> tuple[Phase, Phase]:
    """``POLITE`` patients loading the page every half second (each from its own address and
    connection), and, with ``abuse``, one address hammering it on a few connections."""
    polite, abusive = Phase(), Phase()
    deadline = time.perf_counter() + seconds

    async def patient(n: int, pause: float, phase: Phase, address: str) -> None:
        client = RawClient("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                await timed(phase, client.get(PAGE, {"X-Forwarded-For": address}))
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await client.close()

    tasks = [patient(n, 0.5, polite, f"10.2.0.{n + 1}") for n in range(POLITE)]
    if abuse:
        tasks += [patient(n, 0.0, abusive, "10.66.6.6") for n in range(ABUSER_CONNECTIONS)]
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    polite.elapsed = abusive.elapsed = time.perf_counter() - started
    return polite, abusive


def run(report: Report) -> None:
    seconds = float(os.environ.get("ACCUEIL_BENCH_BOOKING_SECONDS", "10"))
    paced_seconds = float(os.environ.get("ACCUEIL_BENCH_BOOKING_PACED_SECONDS", "15"))
    REPORTS_DIR.mkdir(parents=True, exist_ok=True)
    log_path = REPORTS_DIR / LOG_NAME
    with TemporaryDirectory() as tmp, running_server(Path(tmp), log_path) as (base, port, pid):
        assert httpx.get(f"{base}{PAGE}").status_code == 200
        # The app builds its clinical-text pipeline in the background after it answers:
        # seconds of CPU that would be billed to the first phase.
        settled = settle(pid)
        phases = asyncio.run(_drive(port, pid, seconds, paced_seconds))
    report_saturation(report, "booking page", phases.saturation, CLIENTS)
    report_paced(report, "booking page", phases.paced, RATE, 100.0)
    alone, with_abuser, abuser = phases.alone[0], phases.abused[0], phases.abused[1]
    alone_p99, abused_p99 = percentile(alone.latencies, 99), percentile(with_abuser.latencies, 99)
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
    refused = with_abuser.unexpected()
    report.add(
        Measure(
            f"polite requests refused or failed ({with_abuser.error_text()})",
            refused,
            "requests",
            "0",
            refused == 0,
        )
    )
    report.add(
        Measure(
            f"abusive client's requests answered 429 (of {len(abuser.latencies)})",
            abuser.statuses[429],
            "requests",
        )
    )
    report.add(
        Measure("abusive client's p50 (answered at once)", percentile(abuser.latencies, 50), "ms")
    )
    report.sections.append(
        "## Booking page\n\n"
        + json.dumps(
            {
                "saturation_seconds": seconds,
                "paced_seconds_per_run": paced_seconds,
                "paced_rate": RATE,
                "saturation_clients": CLIENTS,
                "patient_addresses": ADDRESSES,
                "pages": pages(datetime.now(UTC)),
                "polite_clients": POLITE,
                "page_rate_per_address": "5/s, burst 30",
                "server_settled_after_seconds": round(settled, 1),
            },
            indent=2,
        )
        + f"\n\nThe server's output is in `{LOG_NAME}` beside this report."
    )


if __name__ == "__main__":
    result = Report("Booking page benchmark")
    run(result)
    print(f"report written to {result.write()}")
