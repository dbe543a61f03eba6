"""Several real Accueil processes for the scale-out tests: ``accueil serve`` and ``accueil
worker`` started as child processes on one database and one Redis, each with its own data
directory and its log in the test's folder, always stopped by the fixture's finalizer; and a
loopback SMTP server that can hold its clients mid-message (a gate) while a worker is killed.
"""

import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

STOP_SECONDS = 15.0
READY_SECONDS = 120.0  # four processes importing the app at once on a small CI box


def free_port() -> int:
    """A port the kernel has just handed out on loopback (probing 127.0.0.1:0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def accueil_command() -> list[str]:
    """The installed ``accueil`` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "accueil"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from app.cli import main; main()"]


@dataclass
class Child:
    """One child process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, then reap it (a zombie would still look alive to ``os.kill(pid, 0)``)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far (Linux), 0 once it has exited."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    """The child processes of one test, sharing ``env`` (settings as ACCUEIL_* variables)."""

    folder: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def _start(self, name: str, args: list[str], port: int | None = None) -> Child:
        data_dir = self.folder / f"data-{name}"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACCUEIL_")}
        env.update(self.env)
        env["ACCUEIL_DATA_DIR"] = str(data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        log = self.folder / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(  # noqa: S603 - our own command line
                [*accueil_command(), *args],
                cwd=data_dir,  # no .env of the repository is read
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log, port)
        self.children.append(child)
        return child

    def serve(self, name: str) -> Child:
        port = free_port()
        return self._start(name, ["serve", "--host", "127.0.0.1", "--port", str(port)], port)

    def worker(self, name: str, threads: int) -> Child:
        return self._start(name, ["worker", "--workers", str(threads)])

    def wait_ready(self, servers: list[Child], workers: list[Child]) -> None:
        """Every server answers /health, and no process has exited."""
        pending = list(servers)

        def ready() -> bool:
            for child in self.children:
                assert child.alive(), f"{child.name} exited ({child.process.returncode})"
            for child in list(pending):
                try:
                    if httpx.get(f"{child.url}/health", timeout=2).status_code == 200:
                        pending.remove(child)
                except httpx.TransportError:
                    pass
            return not pending

        wait_until(ready, READY_SECONDS, "the servers to answer /health")
        for child in workers:  # their consumers show themselves by taking jobs
            assert child.alive(), f"{child.name} exited ({child.process.returncode})"

    def stop_all(self) -> None:
        for child in self.children:
            if child.alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in self.children:
            try:
                child.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()

    def cpu_report(self) -> str:
        return ", ".join(f"{c.name} {c.cpu_seconds():.1f} s" for c in self.children if c.alive())

    def logs(self) -> str:
        parts = []
        for child in self.children:
            text = child.log_text()
            parts.append(f"===== {child.name} (pid {child.pid}) =====\n{text[-20000:]}")
        return "\n".join(parts)


# -- a loopback SMTP server with a gate ----------------------------------------------------


class GatedMailbox:
    """An aiosmtpd handler that keeps what it receives (by Message-ID) and, while its gate is
    closed, holds every client at RCPT TO: the message body is never sent, as when a worker
    dies while its mail server is slow to answer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.message_ids: list[str] = []
        self.recipients: list[str] = []
        self.held = 0
        self._open = threading.Event()
        self._open.set()

    def close_gate(self) -> None:
        self._open.clear()

    def open_gate(self) -> None:
        self._open.set()

    def holding(self) -> int:
        with self.lock:
            return self.held

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if not self._open.is_set():
            with self.lock:
                self.held += 1
            try:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self._open.wait, 120.0)
            finally:
                with self.lock:
                    self.held -= 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.message_ids.append(str(parsed["Message-ID"]))
            self.recipients.extend(envelope.rcpt_tos)
        return "250 Message accepted for delivery"

    def received(self) -> int:
        with self.lock:
            return len(self.message_ids)


class GatedSmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = GatedMailbox()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "GatedSmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mailbox.open_gate()
        self.controller.stop()
