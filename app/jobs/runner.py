"""Running one job: claim it, call its handler, then record success, a retry or a failure."""

import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.config.settings import Settings
from app.jobs.store import (
    ExplainedError,
    Handler,
    JobContext,
    PermanentJobError,
    RunState,
    current_run,
    get_handler,
    retry_delay,
    short_error,
)
from models.jobs import Job, JobStatus
from models.types import utcnow

log = logging.getLogger("accueil.jobs")
CLOCK_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class RunResult:
    """What became of a run: the job's status afterwards (``None``: no such job), whether
    its handler ran, and in how many seconds the queue should try again (a retry)."""

    status: JobStatus | None
    ran: bool = False
    retry_in: float | None = None


def is_permanent(exc: BaseException) -> bool:
    """Whether trying again cannot help: a handler said so, or the input itself is wrong."""
    return isinstance(exc, PermanentJobError) or (
        isinstance(exc, ExplainedError) and exc.status_code < 500
    )


def _claim(engine: Engine, job_id: int, worker: str) -> tuple[Job | None, bool]:
    """Mark a due, queued job running (one attempt more); only one worker can win it."""
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        claimed = session.execute(
            update(Job)
            .where(
                col(Job.id) == job_id,
                col(Job.status) == JobStatus.queued,
                or_(
                    col(Job.next_attempt_at).is_(None),
                    col(Job.next_attempt_at) <= now + CLOCK_TOLERANCE,
                ),
            )
            .values(
                status=JobStatus.running,
                attempts=Job.attempts + 1,
                worker=worker[:128],
                started_at=now,
                updated_at=now,
                progress=0,
                progress_message="",
            )
        ).rowcount  # type: ignore[attr-defined]  # an UPDATE returns a CursorResult
        session.commit()
        return session.get(Job, job_id), bool(claimed)


def run_job(engine: Engine, settings: Settings, job_id: int, *, worker: str) -> RunResult:
    """Run job ``job_id`` once if it is queued and due; anything else is left as it is (a
    message sent twice, or for a job cancelled or done meanwhile, does nothing)."""
    job, claimed = _claim(engine, job_id, worker)
    if job is None:
        return RunResult(None)
    if not claimed:
        due = job.next_attempt_at
        if job.status == JobStatus.queued and due is not None:  # early: come back when due
            return RunResult(job.status, retry_in=max(0.0, (due - utcnow()).total_seconds()))
        return RunResult(job.status)
    registered = get_handler(job.kind)
    if registered is None:
        error: Exception = PermanentJobError(f"Type de tâche inconnu : {job.kind}.")
        return _record_failure(engine, settings, job, error, None)
    token = current_run.set(RunState(job_id, engine))
    try:
        with Session(engine, expire_on_commit=False) as session:
            try:
                registered.run(_context(job, session, settings))
                done = _mark_succeeded(session, job)
            except Exception as exc:
                session.rollback()
                error = exc
            else:
                if done:
                    session.commit()
                    return RunResult(JobStatus.succeeded, ran=True)
                session.rollback()  # taken back meanwhile (a recovery): its writes are undone
                return RunResult(JobStatus.running, ran=True)
    finally:
        current_run.reset(token)
    return _record_failure(engine, settings, job, error, registered)


def _context(job: Job, session: Session, settings: Settings) -> JobContext:
    """What a handler gets for one attempt at ``job``: its input and the session it writes in."""
    return JobContext(
        job_id=job.id or 0,
        kind=job.kind,
        payload=dict(job.payload),
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        record_type=job.record_type,
        record_id=job.record_id,
        session=session,
        settings=settings,
    )


def _mark_succeeded(session: Session, job: Job) -> bool:
    """In the handler's transaction: the job succeeded, if this run still owns it."""
    now = utcnow()
    return bool(
        session.execute(
            update(Job)
            .where(
                col(Job.id) == job.id,
                col(Job.status) == JobStatus.running,
                col(Job.attempts) == job.attempts,
            )
            .values(
                status=JobStatus.succeeded,
                progress=100,
                last_error="",
                next_attempt_at=None,
                finished_at=now,
                updated_at=now,
            )
        ).rowcount  # type: ignore[attr-defined]  # an UPDATE returns a CursorResult
    )


def _record_failure(
    engine: Engine,
    settings: Settings,
    claimed: Job,
    exc: Exception,
    registered: Handler | None,
) -> RunResult:
    """After a failed attempt: queue the next one after a delay that doubles each time, or
    fail for good (a permanent error, or no attempt left) and run the handler's hook."""
    permanent = is_permanent(exc)
    log.warning(
        "job %s (%s) attempt %s/%s failed: %s%s",
        claimed.id,
        claimed.kind,
        claimed.attempts,
        claimed.max_attempts,
        type(exc).__name__,
        " (permanent)" if permanent else "",
        exc_info=log.isEnabledFor(logging.DEBUG),
    )
    now = utcnow()
    with Session(engine, expire_on_commit=False) as session:
        job = session.exec(select(Job).where(Job.id == claimed.id).with_for_update()).first()
        if job is None or job.status != JobStatus.running or job.attempts != claimed.attempts:
            return RunResult(job.status if job else None, ran=True)
        job.last_error = short_error(exc)
        job.updated_at = now
        job.worker = None
        if not permanent and job.attempts < job.max_attempts:
            delay = retry_delay(settings, job.attempts)
            job.status = JobStatus.queued
            job.next_attempt_at = now + timedelta(seconds=delay)
            session.add(job)
            session.commit()
            return RunResult(JobStatus.queued, ran=True, retry_in=delay)
        job.status = JobStatus.failed
        job.next_attempt_at = None
        job.finished_at = now
        session.add(job)
        give_up(session, settings, job, registered)
        session.commit()
        return RunResult(JobStatus.failed, ran=True)


def give_up(session: Session, settings: Settings, job: Job, registered: Handler | None) -> None:
    """Run the handler's hook for a job that failed for good; its own failure is logged."""
    if registered is None or registered.on_give_up is None:
        return
    try:
        registered.on_give_up(session, settings, job)
    except Exception:
        log.exception("give-up hook of job %s (%s) failed", job.id, job.kind)


def run_now(session: Session, settings: Settings, job: Job) -> Job:
    """Run a queued job at once, in the caller's session and transaction, through its
    registered handler (e.g. ``accueil demo seed``). A failure propagates: roll back."""
    registered = get_handler(job.kind)
    if registered is None:
        raise LookupError(f"no handler registered for {job.kind!r}")
    now = utcnow()
    job.status = JobStatus.running
    job.attempts += 1
    job.worker = f"{socket.gethostname()}:{os.getpid()}:inline"[:128]
    job.started_at = job.updated_at = now
    session.add(job)
    session.flush()
    token = current_run.set(RunState(job.id or 0, None, session=session))
    try:
        registered.run(_context(job, session, settings))
    finally:
        current_run.reset(token)
    now = utcnow()
    job.status = JobStatus.succeeded
    job.progress = 100
    job.last_error = ""
    job.next_attempt_at = None
    job.finished_at = job.updated_at = now
    job.worker = None
    session.add(job)
    session.flush()
    return job
