"""The Huey instance built from the settings (a SQLite file in the data directory, or Redis
when ``ACCUEIL_REDIS_URL`` is set), its two tasks, and the process-wide queue."""

import logging
import os
import socket
import threading
from datetime import datetime

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask
from sqlalchemy.engine import Engine

from app.config.settings import Settings, get_settings
from app.jobs import runner as job_runner
from models.db import make_engine
from models.types import utcnow

log = logging.getLogger("accueil.jobs")
QUEUE_NAME = "accueil"
RUN_TASK = "run_job"
RECOVERY_MINUTES = "*/5"


class JobQueue:
    """A Huey queue with the database and settings its tasks run against. Huey is opened on
    first use, so building the app creates no file."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(settings.resolved_database_url)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:none"  # set by a consumer
        self._huey: Huey | None = None
        self._lock = threading.Lock()

    @property
    def uses_redis(self) -> bool:
        return bool(self.settings.redis_url)

    @property
    def huey(self) -> Huey:
        with self._lock:
            if self._huey is None:
                self._huey = self._build()
            return self._huey

    def _build(self) -> Huey:
        if self.settings.redis_url:
            try:
                import redis  # noqa: F401  (RedisHuey needs it)
            except ImportError as exc:
                raise RuntimeError(
                    "ACCUEIL_REDIS_URL est défini mais le paquet « redis » n'est pas installé."
                ) from exc
            huey: Huey = RedisHuey(QUEUE_NAME, url=self.settings.redis_url, results=False)
        else:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            huey = SqliteHuey(
                QUEUE_NAME,
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

        @huey.periodic_task(crontab(minute=RECOVERY_MINUTES), name="recover_jobs")
        def recover_jobs() -> None:
            """Take back jobs of dead workers and send queued jobs that have no message."""
            from app.jobs.recovery import recover

            recover(queue)

        @huey.periodic_task(crontab(hour="3", minute="17"), name="purge_conversations")
        def purge_conversations() -> None:
            """Delete the assistant conversations older than the retention period."""
            from app.services.assistant.memory import purge_expired

            purge_expired(queue.engine, queue.settings)

        self._run_task = run_job
        return huey

    def dispatch(self, job_id: int, eta: datetime | None = None) -> None:
        """Send "run job N" to the workers, now or at ``eta`` (an aware datetime)."""
        _ = self.huey  # opened on first use, with its tasks
        if eta is not None and eta > utcnow():
            self._run_task.schedule(args=(job_id,), eta=eta)
        else:
            self._run_task(job_id)

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
            if self._huey is not None:
                self._huey.storage.close()
                self._huey = None
        if self._own_engine:
            self.engine.dispose()


_current: JobQueue | None = None
_current_lock = threading.Lock()


def configure(settings: Settings, engine: Engine | None = None) -> JobQueue:
    """Make the queue of these settings the one jobs are sent to (the app does it at start)."""
    global _current
    with _current_lock:
        _current = JobQueue(settings, engine)
        return _current


def current() -> JobQueue:
    """The process's queue; built from the environment's settings if none was configured."""
    global _current
    with _current_lock:
        if _current is None:
            _current = JobQueue(get_settings())
        return _current


def reset() -> None:
    """Forget the process's queue (tests)."""
    global _current
    with _current_lock:
        _current = None


def dispatch(job_id: int, eta: datetime | None = None) -> None:
    current().dispatch(job_id, eta)
