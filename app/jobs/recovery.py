"""Recovery after a crash: jobs left running by a dead worker go back to the queue (or fail
when no attempt is left), and queued jobs whose message was lost are sent again."""

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.jobs import runner as job_runner
from app.jobs import store as jobs
from models.jobs import Job, JobStatus
from models.types import utcnow

log = logging.getLogger("accueil.jobs")
# A running job on another machine is taken back only after this long without a heartbeat
# (a progress report): workers there cannot be asked whether they are alive. With Redis the
# consumers' own heartbeats tell sooner (``JobQueue.seen_alive``), after HEARTBEAT_GRACE.
STALE_AFTER = timedelta(minutes=15)
# A consumer's heartbeat in Redis lasts this long and is renewed every third of it.
ALIVE_SECONDS = 30
HEARTBEAT_GRACE = timedelta(seconds=ALIVE_SECONDS)
INTERRUPTED = "Interrompue (arrêt du processus) : reprise automatique."

live_workers: set[str] = set()  # the consumers running in this process


class RecoverableQueue(Protocol):
    """What recovery needs of a queue (``queue.JobQueue`` is one; the queue imports this
    module to schedule recovery, so this module names only the shape it uses)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def settings(self) -> Settings: ...

    def carried_job_ids(self) -> set[int]: ...

    def dispatch(self, job_id: int, eta: datetime | None = None) -> None: ...

    def seen_alive(self, worker_id: str) -> bool | None: ...


def worker_alive(worker: str | None) -> bool | None:
    """Whether the worker that claimed a job still runs: known on this machine (its process,
    and in this process its consumer), unknown (``None``) on another machine."""
    if not worker:
        return False
    host, _, rest = worker.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname():
        return None
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return worker in live_workers
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take_back_abandoned(
    session: Session,
    settings: Settings,
    seen_alive: Callable[[str], bool | None] | None = None,
) -> list[Job]:
    """Running jobs whose worker is gone: queued again, or failed when no attempt is left.
    ``seen_alive`` tells about workers on other machines from their heartbeats."""
    now = utcnow()
    taken = []
    for job in session.exec(select(Job).where(Job.status == JobStatus.running)).all():
        alive = worker_alive(job.worker)
        if alive is None and seen_alive is not None and job.worker:
            beating = seen_alive(job.worker)
            if beating is not None:  # a claim younger than a heartbeat's life is not judged
                alive = beating or now - job.updated_at < HEARTBEAT_GRACE
        if alive or (alive is None and now - job.updated_at < STALE_AFTER):
            continue
        job.last_error = INTERRUPTED
        job.worker = None
        job.updated_at = now
        if job.attempts < job.max_attempts:
            job.status = JobStatus.queued
            job.next_attempt_at = now
        else:
            job.status = JobStatus.failed
            job.finished_at = now
            job.next_attempt_at = None
            job_runner.give_up(session, settings, job, jobs.get_handler(job.kind))
        session.add(job)
        taken.append(job)
    return taken


def recover(queue: RecoverableQueue) -> int:
    """Take back abandoned jobs and send every queued job that has no message; returns how
    many messages were sent. Safe to run at any time: a job runs once per claim."""
    with Session(queue.engine, expire_on_commit=False) as session:
        taken = take_back_abandoned(session, queue.settings, queue.seen_alive)
        session.commit()
        queued = session.exec(
            select(Job.id, Job.next_attempt_at).where(col(Job.status) == JobStatus.queued)
        ).all()
    if taken:
        log.warning("took back %d job(s) left running by a stopped worker", len(taken))
    carried = queue.carried_job_ids()
    sent = 0
    for job_id, eta in queued:
        if job_id is not None and job_id not in carried:
            queue.dispatch(job_id, eta)
            sent += 1
    if sent:
        log.info("sent %d queued job(s) that had no message in the queue", sent)
    return sent
