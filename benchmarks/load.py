"""Load against a server process: a light HTTP/1.1 client, open-loop (paced) and closed-loop
(saturation) phases, the server's CPU time per request, and the report rows of a phase.

Shared by the benchmarks that load one endpoint of a running server (``booking_page``; the
``autosave`` benchmark keeps older copies of ``Phase`` and ``process_cpu_seconds``, which
these replace).

Why a client of its own: on the 2-core reference machine the load client shares the cores
with the server, and ``httpx`` costs about as much CPU per request as a cached page does to
serve, so the client, not the server, set the pace. ``RawClient`` speaks just enough
HTTP/1.1 over asyncio streams (keep-alive, ``Content-Length`` or chunked bodies); the report
shows its own CPU per request beside the server's.
"""

import asyncio
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.report import Measure, Report, percentile

# Below uvicorn's 5 s keep-alive timeout: the client, not the server, closes idle
# connections (a request sent as the server's timer fires would be reset).
CLIENT_KEEPALIVE_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, every thread included (Linux ``/proc``; zero
    where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, *, quiet: float = 0.05, timeout: float = 300.0) -> float:
    """Wait until the server process uses under ``quiet`` of a core over a second (the app
    builds things in the background after it answers: the clinical-text pipeline takes
    seconds of CPU, which would be billed to the first phase); returns the seconds waited."""
    started = time.monotonic()
    before = process_cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = process_cpu_seconds(pid)
        if now - before < quiet:
            break
        before = now
    return time.monotonic() - started


@dataclass
class Phase:
    """One phase's answers: latencies (ms, every request), HTTP statuses, transport errors by
    kind, duration, and the CPU the server and this client used meanwhile."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.answered / self.elapsed if self.elapsed else 0.0

    def _per_answer_ms(self, seconds: float) -> float:
        # A request that never reached the server cost it nothing.
        return seconds / self.answered * 1000 if self.answered else 0.0

    @property
    def server_cpu_ms(self) -> float:
        return self._per_answer_ms(self.server_cpu)

    @property
    def client_cpu_ms(self) -> float:
        return self._per_answer_ms(self.client_cpu)

    def error_text(self) -> str:
        return ", ".join(f"{kind} ×{n}" for kind, n in self.errors.most_common()) or "none"

    def unexpected(self, expected: int = 200) -> int:
        """Transport errors plus answers with another status."""
        other = sum(n for status, n in self.statuses.items() if status != expected)
        return sum(self.errors.values()) + other


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # the first of each name
    body: bytes
    cookies: tuple[str, ...] = ()  # every Set-Cookie, in order


class RawClient:
    """A pool of keep-alive HTTP/1.1 connections to one server."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()
            if now - since < CLIENT_KEEPALIVE_SECONDS and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return await self.request("GET", path, headers)

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        """One request on an idle connection (or a new one); the connection goes back to the
        pool unless the server closes it."""
        reader, writer = await self._connection()
        try:
            answer = await asyncio.wait_for(
                self._exchange(reader, writer, method, path, headers, body), self.timeout
            )
        except BaseException:
            writer.close()
            raise
        if answer.headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer, time.monotonic()))
        return answer

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        headers: dict[str, str] | None,
        body: bytes,
    ) -> Answer:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method not in ("GET", "HEAD"):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        found: dict[str, str] = {}
        cookies: list[str] = []
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                key = name.strip().lower()
                value = value.strip()
                found.setdefault(key, value)
                if key == "set-cookie":
                    cookies.append(value)
        if found.get("transfer-encoding", "").lower() == "chunked":
            chunks = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                chunks += chunk[:-2]
            return Answer(status, found, bytes(chunks), tuple(cookies))
        length = int(found.get("content-length", "0"))
        content = await reader.readexactly(length) if length else b""
        return Answer(status, found, content, tuple(cookies))

    async def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


Request = Callable[[int], Awaitable[Answer]]


async def timed(phase: Phase, call: Awaitable[Answer]) -> Answer | None:
    """One request: its latency and status, or its transport error by kind (never raised)."""
    started = time.perf_counter()
    answer = None
    try:
        answer = await call
        phase.statuses[answer.status] += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
        phase.errors[type(exc).__name__] += 1
    except ValueError as exc:  # a garbled answer
        phase.errors[type(exc).__name__] += 1
    phase.latencies.append((time.perf_counter() - started) * 1000)
    return answer


async def paced(rate: float, seconds: float, request: Request, server_pid: int) -> Phase:
    """Open loop: request ``n`` starts at ``n / rate`` s whatever the earlier answers' pace;
    the phase ends when every answer is in."""
    phase = Phase()
    total = int(rate * seconds)
    cpu, own = process_cpu_seconds(server_pid), time.process_time()
    started = time.perf_counter()
    tasks = []
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(phase, request(n))))
    await asyncio.gather(*tasks)
    # The phase spans its schedule's window (``total`` starts, one every 1/rate s) or runs to
    # its last answer, whichever is later: the time to the last answer alone is a fraction
    # of an interval short of the window when the server answers at once, which would read
    # as faster than the schedule (20 requests at 20/s answered in 2 ms: 21.0/s).
    phase.elapsed = max(time.perf_counter() - started, total / rate)
    phase.server_cpu = process_cpu_seconds(server_pid) - cpu
    phase.client_cpu = time.process_time() - own
    return phase


async def saturation(concurrency: int, seconds: float, request: Request, server_pid: int) -> Phase:
    """Closed loop: ``concurrency`` clients, each sending its next request when the last one
    is answered, for ``seconds``."""
    phase = Phase()
    deadline = time.perf_counter() + seconds
    counter = 0

    async def client() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            await timed(phase, request(counter))

    cpu, own = process_cpu_seconds(server_pid), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    phase.elapsed = time.perf_counter() - started
    phase.server_cpu = process_cpu_seconds(server_pid) - cpu
    phase.client_cpu = time.process_time() - own
    return phase


def report_paced(
    report: Report, label: str, runs: list[Phase], rate: float, p99_goal_ms: float
) -> bool:
    """The rows of the paced runs (rate kept, p50, p99, errors, CPU per request) and whether
    every run met the goal."""
    met_runs = 0
    for n, phase in enumerate(runs, start=1):
        run = f"run {n}/{len(runs)}"
        p50, p99 = percentile(phase.latencies, 50), percentile(phase.latencies, 99)
        kept = phase.rate >= rate * 0.98  # the schedule's own jitter aside
        wrong = phase.unexpected()
        met = kept and p99 <= p99_goal_ms and wrong == 0
        met_runs += met
        report.add(
            Measure(
                f"{label} paced at {rate:.0f}/s ({run}): rate kept",
                phase.rate,
                "req/s",
                f"≥ {rate:.0f}",
                kept,
            )
        )
        report.add(Measure(f"{label} paced p50 ({run})", p50, "ms"))
        report.add(
            Measure(
                f"{label} paced p99 ({run})",
                p99,
                "ms",
                f"≤ {p99_goal_ms:.0f} ms",
                p99 <= p99_goal_ms,
            )
        )
        report.add(
            Measure(
                f"{label} paced errors ({run}: {phase.error_text()}; statuses "
                f"{dict(phase.statuses)})",
                wrong,
                "",
                "0",
                wrong == 0,
            )
        )
        report.add(
            Measure(f"{label} paced server CPU per request ({run})", phase.server_cpu_ms, "ms")
        )
        report.add(
            Measure(f"{label} paced client CPU per request ({run})", phase.client_cpu_ms, "ms")
        )
    report.add(
        Measure(
            f"{label} paced runs meeting the goal",
            met_runs,
            f"of {len(runs)}",
            f"{len(runs)} of {len(runs)}",
            met_runs == len(runs),
        )
    )
    return met_runs == len(runs)


def report_saturation(report: Report, label: str, phase: Phase, concurrency: int) -> None:
    """The rows of a closed-loop phase (informative: its latency is mostly queueing)."""
    report.add(
        Measure(f"{label} saturation throughput ({concurrency} clients)", phase.rate, "req/s")
    )
    report.add(Measure(f"{label} saturation p50", percentile(phase.latencies, 50), "ms"))
    report.add(Measure(f"{label} saturation p99", percentile(phase.latencies, 99), "ms"))
    report.add(
        Measure(
            f"{label} saturation errors ({phase.error_text()}; statuses {dict(phase.statuses)})",
            phase.unexpected(),
            "",
        )
    )
    report.add(Measure(f"{label} saturation server CPU per request", phase.server_cpu_ms, "ms"))
    report.add(Measure(f"{label} saturation client CPU per request", phase.client_cpu_ms, "ms"))
