"""Workers: the Huey consumer run by ``accueil worker``, the same consumer as threads inside
``accueil serve``, and a synchronous drain (tests, one-shot runs).

The job handlers are registered by the composition root before a worker starts
(``app.services.flows.job_handlers.load_handlers``): this package sits below the domains
and never imports them."""

import logging
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio.to_thread
from huey.consumer import Consumer

from app.jobs.queue import JobQueue
from app.jobs.recovery import ALIVE_SECONDS, live_workers, recover
from models.types import utcnow

log = logging.getLogger("accueil.jobs")
SHUTDOWN_SECONDS = 20.0


def new_worker_id(label: str) -> str:
    """``host:pid:label-nonce``: tells a later worker whether this one is still alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{label}-{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """The consumer's heartbeat in Redis, renewed in a thread while it runs: recovery on
    another machine tells from it whether this worker's running jobs are abandoned."""

    def __init__(self, queue: JobQueue, worker_id: str) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.queue.uses_redis or self._thread is not None:
            return
        self._beat()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="JobHeartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            self.queue.beat(self.worker_id)
        except Exception as exc:  # Redis is down: the jobs cannot move either
            log.warning("job heartbeat failed: %s", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(ALIVE_SECONDS / 3):
            self._beat()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=SHUTDOWN_SECONDS)
        self._thread = None
        try:
            self.queue.forget(self.worker_id)
        except Exception as exc:
            log.warning("could not clear the job heartbeat: %s", type(exc).__name__)


class RecoveryLoop:
    """Recovery every ``jobs_recovery_seconds`` in a thread of this consumer, when that is
    under a minute (the queue's schedule counts in whole minutes): a worker killed mid-job
    leaves its jobs running in the table, and another worker takes them back this soon."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def needed(self) -> bool:
        return self.queue.recovery_minutes is None

    def start(self) -> None:
        if not self.needed or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="JobRecovery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.queue.settings.jobs_recovery_seconds
        while not self._stop.wait(interval):
            try:
                recover(self.queue)
            except Exception as exc:  # the database or Redis is down: try again next time
                log.warning("job recovery failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SHUTDOWN_SECONDS)
            self._thread = None


class _ThreadConsumer(Consumer):
    """A consumer that leaves signal handlers to its host process (the web server)."""

    def _set_signal_handlers(self) -> None:
        pass


def _consumer_options(queue: JobQueue, workers: int, periodic: bool) -> dict[str, Any]:
    return {
        "workers": workers,
        "worker_type": "thread",
        "periodic": periodic,
        # A SQLite queue is polled: an idle worker looks again at least every second.
        "max_delay": 10.0 if queue.uses_redis else 1.0,
        "shutdown_timeout": SHUTDOWN_SECONDS,
    }


class InProcessWorker:
    """Huey consumer threads inside the current process, started and stopped explicitly."""

    def __init__(self, queue: JobQueue, *, workers: int = 1, periodic: bool = True) -> None:
        self.queue = queue
        self.worker_id = new_worker_id("thread")
        self._consumer = _ThreadConsumer(queue.huey, **_consumer_options(queue, workers, periodic))
        self._recovery = RecoveryLoop(queue) if periodic else None
        self._heartbeat = Heartbeat(queue, self.worker_id)

    def start(self) -> None:
        """Take back what a dead worker left, then start the threads."""
        self.queue.worker_id = self.worker_id
        live_workers.add(self.worker_id)
        self._heartbeat.start()
        try:
            recover(self.queue)
        except Exception as exc:  # the database is down: the periodic recovery will catch up
            log.warning("job recovery at start failed: %s", type(exc).__name__)
        self._consumer.start()
        if self._recovery is not None:
            self._recovery.start()

    def stop(self) -> None:
        """Let the running job finish (up to a limit), then stop every thread."""
        try:
            if self._recovery is not None:
                self._recovery.stop()
            self._consumer.stop(graceful=True)
        finally:
            self._heartbeat.stop()
            live_workers.discard(self.worker_id)

    @property
    def threads_alive(self) -> bool:
        threads = [t for _, t in self._consumer.worker_threads] + [self._consumer.scheduler]
        if self._recovery is not None and self._recovery._thread is not None:
            threads.append(self._recovery._thread)
        return any(t.is_alive() for t in threads)


@asynccontextmanager
async def in_process_worker(queue: JobQueue, *, enabled: bool) -> AsyncIterator[None]:
    """Run jobs inside the web server for its lifetime (``jobs_in_process``)."""
    if not enabled:
        yield
        return
    worker = InProcessWorker(queue, workers=queue.settings.jobs_workers)
    await anyio.to_thread.run_sync(worker.start)
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(worker.stop)


def run_worker(queue: JobQueue, *, workers: int) -> None:
    """Run the consumer in the foreground until a signal stops it (``accueil worker``)."""
    worker_id = new_worker_id("worker")
    queue.worker_id = worker_id
    live_workers.add(worker_id)
    recovery = RecoveryLoop(queue)
    heartbeat = Heartbeat(queue, worker_id)
    try:
        heartbeat.start()
        recover(queue)
        consumer = queue.huey.create_consumer(**_consumer_options(queue, workers, periodic=True))
        recovery.start()
        consumer.run()
    finally:
        recovery.stop()
        heartbeat.stop()
        live_workers.discard(worker_id)


def drain(queue: JobQueue, *, max_tasks: int = 1000) -> int:
    """Run, in this thread, every message that is due now (retries included, once due);
    returns how many ran. The same path as a worker, without threads."""
    worker_id = new_worker_id("drain")
    previous, queue.worker_id = queue.worker_id, worker_id
    live_workers.add(worker_id)
    huey = queue.huey
    count = 0
    try:
        while count < max_tasks:
            for task in huey.read_schedule(_naive(utcnow())):
                huey.enqueue(task)
            task = huey.dequeue()
            if task is None:
                break
            huey.execute(task)
            count += 1
    finally:
        live_workers.discard(worker_id)
        queue.worker_id = previous
    return count


def _naive(moment: datetime) -> datetime:
    """Huey's clock: naive UTC."""
    return moment.replace(tzinfo=None)
