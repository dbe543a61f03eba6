"""Background jobs in tests: a real Huey queue (SQLite) in the test's data directory, run
synchronously through the worker's own path (``drain``) so tests stay fast and ordered.
The fixture is a composition root, like the app and ``accueil worker``: it configures the
queue and registers the practice's job handlers."""

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from app.config.settings import Settings
from app.jobs import queue as job_queue_module
from app.jobs.queue import JobQueue
from app.jobs.worker import drain
from app.services.flows.job_handlers import load_handlers


@pytest.fixture
def job_queue(settings: Settings, engine: Engine) -> Iterator[JobQueue]:
    """The process's queue for this test (retries come back at once: no waiting)."""
    load_handlers()
    queue = job_queue_module.configure(
        settings.model_copy(update={"jobs_retry_delay_seconds": 0.0}), engine
    )
    yield queue
    queue.close()
    job_queue_module.reset()


def run_jobs(queue: JobQueue) -> int:
    """Run every job that is due, retries included; returns how many messages ran."""
    return drain(queue)
