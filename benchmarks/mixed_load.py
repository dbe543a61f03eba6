"""A practice at work: secretaries chatting with the assistant (scripted model) and browsing
the agenda, patients autosaving their pre-consultation and physicians reviewing summaries, all
at once against a real server process (uvicorn) on loopback, for a few minutes.

Reports, per kind of request, the count, throughput, p50/p95/p99/max and the errors (any
unexpected status or exception, with the first samples). Goals (issue 8): no error at all, and
p99 ≤ 200 ms for every request that does not wait for a language model. Assistant turns are
reported apart: with a real model their latency is the model's.

The database is a SQLite file in a temporary directory; set ``ACCUEIL_BENCH_DATABASE_URL`` to
a PostgreSQL server (``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) to measure on a
throwaway database created there (and dropped after). ``ACCUEIL_BENCH_MIXED_SECONDS`` changes
the duration under ``python -m benchmarks``; alone:
``python -m benchmarks.mixed_load --duration 60`` (``--smoke`` for a few seconds).
"""

import argparse
import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from sqlalchemy import create_engine, make_url, text
from sqlmodel import Session, col, select

from agents.scripted_model import ScriptedChatModel, call, say
from benchmarks.report import REPORTS_DIR, Measure, Report, load_average, loads_text

SECRET = "benchmark-secret"  # noqa: S105 (a throwaway database)
PASSWORD = "benchmark-password-1"  # noqa: S105 (a throwaway database)
GOAL_P99_MS = 200.0
LLM_KIND = "POST /api/secretariat/c/{id}/messages"
SUMMARY_SECTIONS = [
    {
        "title": "Motif",
        "sentences": [
            {"text": "Toux depuis 3 jours.", "sources": ["motif"]},
            {"text": "Fièvre à 38,4 °C.", "sources": ["temperature", "symptomes"]},
        ],
    },
    {"title": "Contexte", "sentences": [{"text": "Moral bon.", "sources": ["moral"]}]},
]
SUMMARY_ANSWERS = {
    "motif": "Toux depuis 3 jours",
    "intensite": 4,
    "symptomes": ["toux", "fievre"],
    "temperature": 38.4,
    "moral": "bien",
}


@dataclass
class LoadConfig:
    """How many people work for how long, and how fast each of them acts."""

    duration: float = 180.0
    secretaries: int = 3
    patients: int = 30
    physicians: int = 3
    demo_patients: int = 200
    think: tuple[float, float] = (1.0, 3.0)  # a staff member's pause between two actions
    autosave_every: tuple[float, float] = (1.0, 2.0)  # a patient typing
    ramp: float = 10.0  # patients arrive over the first seconds
    turns_per_conversation: int = 5  # then the secretary starts a new conversation
    database_url: str | None = None  # None: a SQLite file in a temporary directory

    @classmethod
    def smoke(cls, duration: float = 5.0) -> "LoadConfig":
        """A few seconds with one person of each kind (tests, a quick check)."""
        return cls(
            duration=duration,
            secretaries=1,
            patients=2,
            physicians=1,
            demo_patients=40,
            think=(0.1, 0.3),
            autosave_every=(0.2, 0.4),
            ramp=0.2,
            turns_per_conversation=2,
        )

    @property
    def summaries(self) -> int:
        """Drafts to review: enough for every physician to approve one every ~4 seconds."""
        return self.physicians * max(4, math.ceil(self.duration / 4))


# ------------------------------------------------------------------ the server process


class FrontDeskModel(ScriptedChatModel):
    """A zero-latency model that never runs out: every message gets one read tool call
    (``find_patients`` with the message's last word), then one sentence."""

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return say("Voici les patients trouvés dans le dossier du cabinet.")
        words = last.text.split() if isinstance(last, HumanMessage) else []
        return call("find_patients", "Je cherche.", query=words[-1] if words else "Martin")


def _seed(engine: Any, settings: Any, config: LoadConfig) -> dict[str, Any]:
    """The demo practice, one account per secretary and physician, a link per patient and
    submitted pre-consultations with a draft summary to review."""
    from app.services.core.audit import Actor
    from app.services.identity.users import create_user
    from app.services.operations.demo import seed_demo
    from app.services.preconsultation import links as pc
    from app.services.preconsultation import summaries
    from app.services.preconsultation.questionnaires import import_bundled
    from models.appointments import Appointment, AppointmentStatus
    from models.patients import Patient
    from models.practice import Practitioner
    from models.questionnaires import PreConsultation
    from models.users import Role

    actor = Actor.system("benchmark")
    with Session(engine, expire_on_commit=False) as session:
        seed_demo(session, settings, patients=config.demo_patients)
        import_bundled(session)
        practitioners = session.exec(select(Practitioner).order_by(col(Practitioner.id))).all()
        staff: dict[str, list[str]] = {"secretaries": [], "physicians": []}
        for i in range(config.secretaries):
            name = f"secretaire{i + 1:02d}"
            create_user(
                session, username=name, full_name=f"Secrétaire {i + 1}", role=Role.secretary,
                password=PASSWORD,
            )  # fmt: skip
            staff["secretaries"].append(name)
        for i in range(config.physicians):
            name = f"medecin{i + 1:02d}"
            create_user(
                session, username=name, full_name=f"Dr Médecin {i + 1}", role=Role.physician,
                password=PASSWORD, practitioner_id=practitioners[i % len(practitioners)].id,
            )  # fmt: skip
            staff["physicians"].append(name)
        soon = datetime.now(UTC) + timedelta(hours=2)
        upcoming = session.exec(
            select(Appointment, Patient)
            .join(Patient, col(Patient.id) == Appointment.patient_id)
            .where(
                col(Appointment.starts_at) > soon,
                col(Appointment.status).in_(
                    [AppointmentStatus.booked, AppointmentStatus.confirmed]
                ),
                Patient.language == "fr",
            )
            .order_by(col(Appointment.starts_at))
        ).all()
        taken = set(session.exec(select(PreConsultation.appointment_id)).all())
        upcoming = [row for row in upcoming if row[0].id not in taken]  # the demo's own ones
        if len(upcoming) < config.patients + 1:
            raise RuntimeError(f"only {len(upcoming)} upcoming appointments: add demo patients")
        links = []
        for appointment, patient in upcoming[: config.patients]:
            sent = pc.send_preconsultation(session, actor, appointment.id or 0, secret=SECRET)
            links.append([sent.path, patient.birth_date.isoformat()])
        documents = []
        for appointment, _ in upcoming[config.patients :][: config.summaries]:
            p = pc.send_preconsultation(session, actor, appointment.id or 0, secret=SECRET)
            pc.save_answers(session, actor, p.preconsultation, SUMMARY_ANSWERS)
            pc.submit(session, actor, p.preconsultation)
            document = summaries.store_summary(
                session,
                p.preconsultation,
                content={"sections": SUMMARY_SECTIONS},
                text="Toux depuis 3 jours. Fièvre à 38,4 °C. Moral bon.",
                model="scripted (benchmark)",
                prompt_id="preconsultation_summary",
                prompt_version=1,
                prompt_hash="0" * 64,
                input_refs=list(SUMMARY_ANSWERS),
                timings={"generation_ms": 0, "unsupported": 0},
            )
            documents.append(document.id)
        names = sorted({patient.birth_name.split()[0].title() for _, patient in upcoming})
        session.commit()
    return {**staff, "links": links, "documents": documents, "names": names}


def serve() -> None:
    """The server process: migrate, build the app (from the ``ACCUEIL_*`` environment), seed
    the practice into ``practice.json`` of the data directory, then serve until stopped."""
    import uvicorn

    from app.config.settings import Settings
    from app.main import create_app, freeze_startup_objects
    from models.migrate import upgrade

    port, raw = int(sys.argv[1]), json.loads(sys.argv[2])
    config = LoadConfig(**raw)
    settings = Settings(_env_file=None)
    upgrade(settings.resolved_database_url)
    app = create_app(settings)  # also makes this process's job queue the app's one
    practice = _seed(app.state.engine, settings, config)
    (settings.data_dir / "practice.json").write_text(json.dumps(practice), encoding="utf-8")
    app.state.assistant.model_override = FrontDeskModel(script=[])
    freeze_startup_objects()  # as ``app.asgi`` does for ``accueil serve``
    uvicorn.run(
        app, host="127.0.0.1", port=port, proxy_headers=True, access_log=False,
        log_level="warning",
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(config: LoadConfig, url: str, data_dir: Path) -> Iterator[tuple[str, int]]:
    """Start the server process; yields its base URL and process id, stops it after."""
    port = _free_port()
    env = {
        **os.environ,
        "ACCUEIL_DATABASE_URL": url,
        "ACCUEIL_DATA_DIR": str(data_dir),
        "ACCUEIL_SECRET_KEY": SECRET,
        "ACCUEIL_OLLAMA_URL": "http://127.0.0.1:9",
        "ACCUEIL_JOBS_IN_PROCESS": "false",
        # The per-user quota is checked on every message (and measured), never reached: the
        # benchmark measures load, not the limit.
        "ACCUEIL_ASSISTANT_MESSAGES_PER_MINUTE": "600",
        "ACCUEIL_ASSISTANT_MESSAGES_PER_DAY": "100000",
    }
    raw = {k: v for k, v in asdict(config).items() if k != "database_url"}
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 (our own code)
            [
                sys.executable, "-c", "from benchmarks.mixed_load import serve; serve()",
                str(port), json.dumps(raw),
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the server did not start:\n{tail}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------ measuring


@dataclass
class KindStats:
    """Every request of one kind made during the run."""

    name: str
    llm: bool = False
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies)

    def pct(self, p: float) -> float:
        """The p-th percentile (nearest rank) in ms; 0 when nothing was measured."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]

    @property
    def met(self) -> bool:
        return self.errors == 0 and self.count > 0 and (self.llm or self.pct(99) <= GOAL_P99_MS)


class Recorder:
    """Times requests and keeps them per kind; a request is an error when it raises, answers
    an unexpected status or fails its check."""

    def __init__(self) -> None:
        self.kinds: dict[str, KindStats] = {}

    async def request(
        self,
        kind: str,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        expect: int = 200,
        check: Callable[[httpx.Response], bool] | None = None,
        llm: bool = False,
        **kwargs: Any,
    ) -> httpx.Response | None:
        stats = self.kinds.setdefault(kind, KindStats(kind, llm))
        started = time.perf_counter()
        problem = None
        response = None
        try:
            response = await client.request(method, url, **kwargs)
            if response.status_code != expect:
                problem = f"HTTP {response.status_code}: {response.text[:200]!r}"
            elif check is not None and not check(response):
                problem = f"unexpected body: {response.text[-200:]!r}"
        except Exception as exc:  # every failure is an error of this kind, never a crash
            problem = f"{type(exc).__name__}: {exc}"[:300]
        stats.latencies.append((time.perf_counter() - started) * 1000)
        if problem:
            stats.errors += 1
            if len(stats.samples) < 3:
                stats.samples.append(f"{method} {url}: {problem}")
            return None
        return response


def _between(html: str, marker: str) -> str:
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def _turn_done(response: httpx.Response) -> bool:
    events = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    types = [e.get("type") for e in events]
    return "answer" in types and types[-1] == "done" and "error" not in types


@dataclass
class Run:
    """What one run measured."""

    config: LoadConfig
    database: str
    kinds: dict[str, KindStats]
    elapsed: float
    server_cpu: float | None
    client_cpu: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    def non_llm(self) -> KindStats:
        merged = KindStats("all non-LLM requests")
        for stats in self.kinds.values():
            if not stats.llm:
                merged.latencies += stats.latencies
                merged.errors += stats.errors
        return merged

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.kinds.values())

    @property
    def people(self) -> str:
        c = self.config
        return f"{c.secretaries} secretaries, {c.patients} patients, {c.physicians} physicians"


async def _login(client: httpx.AsyncClient, username: str) -> None:
    page = (await client.get("/login", headers={"accept": "text/html"})).text
    token = _between(page, 'name="csrf_token" value="')
    response = await client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    if response.status_code != 303:
        raise RuntimeError(f"login of {username} failed: {response.status_code}")
    client.headers["x-csrf-token"] = (await client.get("/api/csrf")).json()["csrf_token"]


def _saved_exactly(sent: dict[str, Any]) -> Callable[[httpx.Response], bool]:
    """A response check: the autosave stored exactly the answers sent."""
    return lambda response: response.json().get("saved") == sorted(sent)


async def _drive(base: str, practice: dict[str, Any], config: LoadConfig) -> tuple[Recorder, float]:
    recorder = Recorder()
    rng = random.Random(2026)  # a reproducible load
    html = {"accept": "text/html"}
    names = practice["names"]
    documents = list(practice["documents"])
    approved: list[int] = []

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, timeout=30)

    clients = [client() for _ in range(config.secretaries + config.physicians + config.patients)]
    staff = iter(clients)
    secretaries = [(next(staff), name) for name in practice["secretaries"]]
    physicians = [(next(staff), name) for name in practice["physicians"]]
    patients = [(next(staff), path, birth) for path, birth in practice["links"]]
    try:
        for c, name in secretaries + physicians:  # before the clock starts: not measured
            await _login(c, name)
        for c, _ in secretaries[:1]:  # a server that has been up a while: templates compiled
            for url in ("/agenda?view=day", "/agenda?view=week", "/patients?q=a"):
                await c.get(url, headers=html)
        for c, _ in physicians[:1]:
            await c.get("/medecin", headers=html)
        started = time.perf_counter()
        deadline = started + config.duration

        async def pause(bounds: tuple[float, float]) -> bool:
            """Sleep a while; False once the run is over."""
            await asyncio.sleep(rng.uniform(*bounds))
            return time.perf_counter() < deadline

        async def secretary(c: httpx.AsyncClient) -> None:
            await asyncio.sleep(rng.uniform(0, config.think[1]))  # nobody clicks in step
            opened = await recorder.request(
                "GET /secretariat", c, "GET", "/secretariat", expect=303
            )
            conversation = opened.headers["location"] if opened else None
            turns = 0
            while time.perf_counter() < deadline:
                if conversation is None or turns >= config.turns_per_conversation:
                    created = await recorder.request(
                        "POST /secretariat/conversations", c, "POST",
                        "/secretariat/conversations", expect=303,
                    )  # fmt: skip
                    conversation = created.headers["location"] if created else None
                    turns = 0
                if conversation is not None:
                    await recorder.request(
                        "GET /secretariat/c/{id}", c, "GET", conversation, headers=html
                    )
                    if not await pause(config.think):
                        break
                    cid = conversation.rsplit("/", 1)[1]
                    await recorder.request(
                        LLM_KIND, c, "POST", f"/api/secretariat/c/{cid}/messages",
                        json={"message": f"Cherche le patient {rng.choice(names)}"},
                        check=_turn_done, llm=True,
                    )  # fmt: skip
                    turns += 1
                if not await pause(config.think):
                    break
                view = rng.choice(["day", "week"])
                await recorder.request(
                    f"GET /agenda?view={view}", c, "GET", f"/agenda?view={view}", headers=html
                )
                if not await pause(config.think):
                    break
                await recorder.request(
                    "GET /patients?q=", c, "GET", "/patients", params={"q": rng.choice(names)},
                    headers=html,
                )  # fmt: skip
                if not await pause(config.think):
                    break

        async def physician(c: httpx.AsyncClient) -> None:
            await asyncio.sleep(rng.uniform(0, config.think[1]))
            while time.perf_counter() < deadline:
                await recorder.request("GET /medecin", c, "GET", "/medecin", headers=html)
                if not await pause(config.think):
                    break
                if not documents:  # every draft is reviewed: read approved ones again
                    if approved:
                        await recorder.request(
                            "GET /medecin/documents/{id}", c, "GET",
                            f"/medecin/documents/{rng.choice(approved)}", headers=html,
                        )  # fmt: skip
                    await pause(config.think)
                    continue
                doc = documents.pop(0)
                page = f"/medecin/documents/{doc}"
                await recorder.request("GET /medecin/documents/{id}", c, "GET", page, headers=html)
                if not await pause(config.think):
                    break
                edited = await recorder.request(
                    "POST /medecin/documents/{id}/phrases/{s}/{i}", c, "POST",
                    f"{page}/phrases/0/0", data={"text": "Toux sèche depuis 3 jours."},
                    expect=303,
                )  # fmt: skip
                if edited:  # the browser follows the redirect
                    await recorder.request(
                        "GET /medecin/documents/{id}", c, "GET", edited.headers["location"],
                        headers=html,
                    )  # fmt: skip
                if not await pause(config.think):
                    break
                done = await recorder.request(
                    "POST /medecin/documents/{id}/approuver", c, "POST", f"{page}/approuver",
                    expect=303,
                )  # fmt: skip
                if done:
                    approved.append(doc)
                    await recorder.request(
                        "GET /medecin/documents/{id}", c, "GET", done.headers["location"],
                        headers=html,
                    )  # fmt: skip
                if not await pause(config.think):
                    break

        async def patient(c: httpx.AsyncClient, path: str, birth: str) -> None:
            await asyncio.sleep(rng.uniform(0, config.ramp))
            page = await recorder.request("GET /p/{token}", c, "GET", path, headers=html)
            if page is None:
                return
            verified = await recorder.request(
                "POST /p/{token}/identite", c, "POST", f"{path}/identite", expect=303,
                data={
                    "birth_date": birth,
                    "link_csrf": _between(page.text, 'name="link_csrf" value="'),
                    "csrf_token": _between(page.text, 'name="csrf-token" content="'),
                },
                headers=html,
            )  # fmt: skip
            step = await recorder.request(
                "GET /p/{token}/etape/{n}", c, "GET", f"{path}/etape/1", headers=html
            )
            if verified is None or step is None:
                return
            headers = {
                "accept": "application/json",
                "x-link-csrf": _between(step.text, 'name="link_csrf" value="'),
                "x-csrf-token": _between(step.text, 'name="csrf-token" content="'),
            }
            typed = 0
            while await pause(config.autosave_every):
                typed += 1
                answers: dict[str, Any] = {"motif": f"Toux depuis {typed % 9 + 1} jours"}
                if typed % 4 == 0:
                    answers["intensite"] = typed % 11
                await recorder.request(
                    "POST /p/{token}/answers", c, "POST", f"{path}/answers",
                    json={"answers": answers}, headers=headers,
                    check=_saved_exactly(answers),
                )  # fmt: skip

        await asyncio.gather(
            *(secretary(c) for c, _ in secretaries),
            *(physician(c) for c, _ in physicians),
            *(patient(c, path, birth) for c, path, birth in patients),
        )
        return recorder, time.perf_counter() - started
    finally:
        for c in clients:
            await c.aclose()


def measure(config: LoadConfig, url: str | None = None, data_dir: Path | None = None) -> Run:
    """One run against a fresh server (and a fresh database: a SQLite file by default)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = data_dir or Path(tmp)
        database = url or f"sqlite:///{data / 'accueil.db'}"
        with running_server(config, database, data) as (base, pid):
            practice = json.loads((data / "practice.json").read_text(encoding="utf-8"))
            load_before = load_average()
            server_before, client_before = cpu_seconds(pid), time.process_time()
            recorder, elapsed = asyncio.run(_drive(base, practice, config))
            server_after, client_after = cpu_seconds(pid), time.process_time()
            load_after = load_average()
    server_cpu = (
        None if server_before is None or server_after is None else server_after - server_before
    )
    return Run(
        config=config,
        database=make_url(database).get_backend_name(),
        kinds=recorder.kinds,
        elapsed=elapsed,
        server_cpu=server_cpu,
        client_cpu=client_after - client_before,
        load_before=load_before,
        load_after=load_after,
    )


# ------------------------------------------------------------------ reporting


def section(run: Run) -> str:
    """The Markdown table of one run: every kind of request beside the goals."""
    label = "PostgreSQL" if run.database == "postgresql" else "SQLite"
    total = sum(s.count for s in run.kinds.values())
    lines = [
        f"## Mixed load ({label}): {run.people}, {run.elapsed:.0f} s",
        "",
        f"{os.cpu_count()} cores; load average (1/5/15 min) {loads_text(run.load_before)} at "
        f"the start, {loads_text(run.load_after)} at the end. The machine is shared with other "
        "work, so latencies are noisy; the server's CPU time per request is the steadier "
        "figure. The load generator (httpx) runs on the same cores as the server.",
        "",
        f"{total} requests ({total / run.elapsed:.1f}/s); server CPU "
        + (
            f"{run.server_cpu:.1f} s ({run.server_cpu / run.elapsed:.0%} of one core, "
            f"{run.server_cpu * 1000 / max(total, 1):.1f} ms per request)"
            if run.server_cpu is not None
            else "not measured"
        )
        + f"; load generator CPU {run.client_cpu:.1f} s. Staff log in (and the agenda, patient "
        "and physician pages are opened once) before the clock starts; "
        "assistant turns use a zero-latency scripted model (one `find_patients` call, then one "
        "sentence).",
        "",
        "| request | count | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | goal | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    rows = [*sorted(run.kinds.values(), key=lambda s: (s.llm, s.name)), run.non_llm()]
    for s in rows:
        goal = f"0 errors, p99 ≤ {GOAL_P99_MS:.0f} ms"
        if s.llm:
            goal = "0 errors (latency: the model's)"
        name = f"**{s.name}**" if s.name == "all non-LLM requests" else f"`{s.name}`"
        if s.llm:
            name += " (LLM turn)"
        lines.append(
            f"| {name} | {s.count} | {s.count / run.elapsed:.1f} | {s.pct(50):.1f} | "
            f"{s.pct(95):.1f} | {s.pct(99):.1f} | {max(s.latencies, default=0):.1f} | "
            f"{s.errors} | {goal} | {'PASS' if s.met else '**MISS**'} |"
        )
    samples = [f"- `{sample}`" for s in run.kinds.values() for sample in s.samples]
    if samples:
        lines += ["", "First errors:", "", *samples]
    return "\n".join(lines) + "\n"


def add_to_report(report: Report, run: Run) -> None:
    label = "PostgreSQL" if run.database == "postgresql" else "SQLite"
    non_llm = run.non_llm()
    slowest = max(
        (s for s in run.kinds.values() if not s.llm), key=lambda s: s.pct(99), default=None
    )
    llm = run.kinds.get(LLM_KIND)
    prefix = f"mixed load ({label}, {run.people})"
    report.add(Measure(f"{prefix}: errors", run.errors, "", "0", run.errors == 0))
    report.add(
        Measure(
            f"{prefix}: non-LLM p99",
            non_llm.pct(99),
            "ms",
            f"≤ {GOAL_P99_MS:.0f} ms",
            non_llm.pct(99) <= GOAL_P99_MS,
        )
    )
    if slowest is not None:
        report.add(
            Measure(
                f"{prefix}: slowest kind's p99 (`{slowest.name}`)",
                slowest.pct(99),
                "ms",
                f"≤ {GOAL_P99_MS:.0f} ms",
                slowest.pct(99) <= GOAL_P99_MS,
            )
        )
    report.add(Measure(f"{prefix}: non-LLM throughput", non_llm.count / run.elapsed, "req/s"))
    if llm is not None:
        report.add(Measure(f"{prefix}: assistant turn p50 (scripted model)", llm.pct(50), "ms"))
        report.add(Measure(f"{prefix}: assistant turn p99 (scripted model)", llm.pct(99), "ms"))
    report.sections.append(section(run))


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A throwaway database on the PostgreSQL server of ``server_url``, dropped after."""
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure_configured(report: Report, config: LoadConfig) -> Run:
    if config.database_url:
        with postgres_database(config.database_url) as url:
            run = measure(config, url)
    else:
        run = measure(config)
    add_to_report(report, run)
    return run


def run(report: Report) -> None:
    """``python -m benchmarks``: the default practice for ``ACCUEIL_BENCH_MIXED_SECONDS``."""
    config = LoadConfig(
        duration=float(os.environ.get("ACCUEIL_BENCH_MIXED_SECONDS", LoadConfig.duration)),
        database_url=os.environ.get("ACCUEIL_BENCH_DATABASE_URL") or None,
    )
    measure_configured(report, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, help="seconds (default 180; smoke: 5)")
    parser.add_argument("--smoke", action="store_true", help="one person of each kind")
    parser.add_argument("--secretaries", type=int)
    parser.add_argument("--patients", type=int)
    parser.add_argument("--physicians", type=int)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ACCUEIL_BENCH_DATABASE_URL") or None,
        help="a PostgreSQL server to create a throwaway database on (default: SQLite)",
    )
    args = parser.parse_args()
    config = LoadConfig.smoke() if args.smoke else LoadConfig()
    for name in ("duration", "secretaries", "patients", "physicians", "database_url"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    report = Report("Accueil benchmarks: mixed load")
    measure_configured(report, config)
    path = report.write(REPORTS_DIR / "mixed_load.md")
    print(report.sections[-1])
    print(f"report written to {path}")


if __name__ == "__main__":
    main()
