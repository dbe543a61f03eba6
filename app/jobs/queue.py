"""The Huey instance built from the settings (a SQLite file in the data directory, or Redis
when ``ACCUEIL_REDIS_URL`` is set), its tasks, and the queue the composition root configures.

The machinery's own tasks (run a job, recover lost ones) are registered here; periodic work
that belongs to a domain (e.g. purging old conversations) is added by the composition root
with ``JobQueue.add_periodic``, so this package never imports the domains above it."""

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.api import TaskWrapper
from huey.exceptions import RetryTask
from sqlalchemy.engine import Engine

from app.config.settings import Settings
from app.jobs import runner as job_runner
from app.jobs import store
from app.jobs.recovery import ALIVE_SECONDS, recover
from models.db import make_engine
from models.types import utcnow

log = logging.getLogger("accueil.jobs")
QUEUE_NAME = "accueil"  # the default of ``jobs_queue_name``
RUN_TASK = "run_job"
RECOVERY_TASK = "recover_jobs"

PeriodicFunction = Callable[[Engine, Settings], object]  # what it returns is ignored


@dataclass(frozen=True)
class PeriodicWork:
    """Work that runs on a schedule (a cron-like minute and hour), with the queue's database
    and settings."""

    name: str
    run: PeriodicFunction
    minute: str
    hour: str


class JobQueue:
    """A Huey queue with the database and settings its tasks run against. Huey is opened on
    first use, so building the app creates no file."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(settings.resolved_database_url)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:none"  # set by a consumer
        self._opened: tuple[Huey, TaskWrapper] | None = None  # Huey and its "run job N" task
        self._periodic: dict[str, PeriodicWork] = {}
        self._lock = threading.Lock()

    @property
    def uses_redis(self) -> bool:
        return bool(self.settings.redis_url)

    @property
    def recovery_minutes(self) -> int | None:
        """Every how many minutes the queue's schedule runs recovery; ``None`` when the
        interval is under a minute (each consumer then runs it in a thread,
        ``worker.RecoveryLoop``)."""
        seconds = self.settings.jobs_recovery_seconds
        return None if seconds < 60 else min(59, max(1, round(seconds / 60)))

    @property
    def huey(self) -> Huey:
        return self._open()[0]

    def _open(self) -> tuple[Huey, TaskWrapper]:
        with self._lock:
            if self._opened is None:
                self._opened = self._build()
            return self._opened

    def _build(self) -> tuple[Huey, TaskWrapper]:
        name = self.settings.jobs_queue_name
        if self.settings.redis_url:
            huey: Huey = RedisHuey(name, url=self.settings.redis_url, results=False)
        else:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            huey = SqliteHuey(
                name,
                filename=str(self.settings.jobs_queue_file),
                results=False,
                timeout=10,
            )
        queue = self

        @huey.task(name=RUN_TASK)
        def run_job(job_id: int) -> None:
            """Run one job; a failed attempt comes back after its back-off delay."""
            result = job_runner.run_job(
                queue.engine, queue.settings, job_id, worker=queue.worker_id
            )
            if result.retry_in is not None:
                raise RetryTask(delay=result.retry_in)

        minutes = self.recovery_minutes
        if minutes is not None:

            @huey.periodic_task(crontab(minute=f"*/{minutes}"), name=RECOVERY_TASK)
            def recover_jobs() -> None:
                """Take back jobs of dead workers and send queued jobs that have no message."""
                recover(queue)

        for work in self._periodic.values():
            self._register_periodic(huey, work)
        return huey, run_job

    def _register_periodic(self, huey: Huey, work: PeriodicWork) -> None:
        queue = self

        def run() -> None:
            work.run(queue.engine, queue.settings)

        run.__doc__ = f"Periodic work {work.name!r}."
        huey.periodic_task(crontab(minute=work.minute, hour=work.hour), name=work.name)(run)

    def add_periodic(
        self, name: str, run: PeriodicFunction, *, minute: str = "0", hour: str = "*"
    ) -> None:
        """Run ``run(engine, settings)`` on a cron-like schedule in the consumers that run
        periodic tasks (``accueil worker``, ``accueil serve``). Names are unique."""
        work = PeriodicWork(name, run, minute, hour)
        with self._lock:
            if name in self._periodic or name in (RUN_TASK, RECOVERY_TASK):
                raise ValueError(f"a periodic task named {name!r} is already registered")
            self._periodic[name] = work
            if self._opened is not None:  # already open: its scheduler reads the registry
                self._register_periodic(self._opened[0], work)

    def dispatch(self, job_id: int, eta: datetime | None = None) -> None:
        """Send "run job N" to the workers, now or at ``eta`` (an aware datetime)."""
        _, task = self._open()  # opened on first use, with its tasks
        if eta is not None and eta > utcnow():
            task.schedule(args=(job_id,), eta=eta)
        else:
            task(job_id)

    def _alive_key(self, worker_id: str) -> str:
        return f"{self.settings.jobs_queue_name}.alive.{worker_id}"

    def beat(self, worker_id: str) -> None:
        """Say that this consumer lives, for ALIVE_SECONDS (Redis only: on a SQLite queue
        every worker shares one machine, where its process can be looked up)."""
        if self.uses_redis:
            self.huey.storage.conn.set(self._alive_key(worker_id), b"1", ex=ALIVE_SECONDS)

    def forget(self, worker_id: str) -> None:
        """This consumer has stopped: no heartbeat any more."""
        if self.uses_redis:
            self.huey.storage.conn.delete(self._alive_key(worker_id))

    def seen_alive(self, worker_id: str) -> bool | None:
        """Whether a consumer's heartbeat is there; ``None``: unknown (no Redis)."""
        if not self.uses_redis:
            return None
        return bool(self.huey.storage.conn.exists(self._alive_key(worker_id)))

    def carried_job_ids(self) -> set[int]:
        """The jobs that have a message waiting in the queue or in its schedule."""
        huey = self.huey
        ids: set[int] = set()
        for task in [*huey.pending(), *huey.scheduled()]:
            if task.name == RUN_TASK and task.args:
                ids.add(int(task.args[0]))
        return ids

    def close(self) -> None:
        """Close Huey's connection (and the engine, when the queue made it)."""
        with self._lock:
            if self._opened is not None:
                self._opened[0].storage.close()
                self._opened = None
        if self._own_engine:
            self.engine.dispose()


def configure(settings: Settings, engine: Engine | None = None) -> JobQueue:
    """Build the queue of these settings and make it the one committed jobs are sent to
    (the composition root does it: the app at start, ``accueil worker``, a test)."""
    queue = JobQueue(settings, engine)
    store.set_dispatcher(queue)
    return queue


def reset() -> None:
    """Send committed jobs nowhere again: they wait for recovery (tests)."""
    store.set_dispatcher(None)
