"""Durable background jobs: idempotent enqueue, handlers by kind, progress, retry and cancel.

The ``jobs`` table is the truth; the task queue (Huey, ``app/jobs/queue.py``) only carries
"run job N" messages, sent once the enqueuing transaction has committed, through the
dispatcher the composition root configured (``queue.configure``). A message lost between the
commit and the queue, or committed while no queue is configured, is found again by recovery
(at worker start and every few minutes), so a committed job is never lost.

This package sits below the domains: it imports none of them. What a person may do with a
job (retry, cancel: audited, refused in their language) is in ``app/services/core/job_actions``.

Using it from a feature::

    @jobs.handler("letters.draft", max_attempts=3)
    def draft_letter(ctx: jobs.JobContext) -> None:
        ...  # ctx.payload holds ids; write with ctx.session (committed with the job's success)
        ctx.progress(50, "Brouillon en cours")

    jobs.enqueue(session, "letters.draft", {"letter_id": 7}, key="letters.draft:7",
                 record_type="letter", record_id=7)

and add the handler's module to ``app/services/flows/job_handlers.py`` (the composition roots
load those modules before a worker starts).
"""

import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import event, func, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from app.config.settings import Settings
from models.jobs import ACTIVE_STATUSES, Job, JobStatus
from models.types import utcnow

log = logging.getLogger("accueil.jobs")

DEFAULT_MAX_ATTEMPTS = 3
MAX_RETRY_DELAY_SECONDS = 3600.0
RETRYABLE_STATUSES = (JobStatus.failed, JobStatus.cancelled)
_PENDING_DISPATCH = "accueil.jobs.pending_dispatch"
_ON_COMMIT = "accueil.jobs.on_commit"


class PermanentJobError(Exception):
    """Raised by a handler when trying again cannot help (a malformed file, a deleted record):
    the job fails at once. The message is short, in French, and never holds patient data.
    An ``ExplainedError`` below 500 (invalid input, not found, conflict) counts as permanent
    too."""


@runtime_checkable
class ExplainedError(Protocol):
    """An error that says what went wrong in words meant for people: ``fr``, its French
    message, and ``status_code``, below 500 when the input itself is wrong. The domain's
    errors (``app.services.core.errors.DomainError``) have this shape; the runner reads it
    without importing the domain, which sits above this package."""

    fr: str
    status_code: int


class JobStateError(Exception):
    """A job was asked to change state from one that does not allow it (retry a job that is
    not failed or cancelled, cancel one that is not queued): the caller says so to the user."""


class Dispatcher(Protocol):
    """What sends "run job N" to the workers, now or at ``eta`` (an aware datetime)."""

    def dispatch(self, job_id: int, eta: datetime | None = None) -> None: ...


_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Send committed jobs through ``dispatcher`` from now on (``None``: to nobody, they wait
    for recovery). The composition root sets it, through ``queue.configure``."""
    global _dispatcher
    _dispatcher = dispatcher


@dataclass
class JobContext:
    """What a handler gets: the job, its payload (ids only), a session and the settings.

    Writes made with ``session`` are committed together with the job's success, and undone
    if the handler fails. Work outside the database must be idempotent: a job may run again
    after a crash."""

    job_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    record_type: str | None
    record_id: str | None
    session: Session
    settings: Settings

    def progress(self, percent: float, message: str = "") -> None:
        """Report how far the job is (0–100) with a short message, visible at once."""
        report_progress(self.job_id, percent, message)


HandlerFunction = Callable[[JobContext], None]
GiveUpHook = Callable[[Session, Settings, Job], None]


@dataclass(frozen=True)
class Handler:
    """A registered kind of job: the function that does it, its default number of attempts,
    and what to do when the job fails for good or is cancelled (e.g. mark its record)."""

    kind: str
    run: HandlerFunction
    max_attempts: int | None = None
    on_give_up: GiveUpHook | None = None


_HANDLERS: dict[str, Handler] = {}


def handler(
    kind: str, *, max_attempts: int | None = None, on_give_up: GiveUpHook | None = None
) -> Callable[[HandlerFunction], HandlerFunction]:
    """Register the function that runs jobs of ``kind`` (decorator)."""

    def register(function: HandlerFunction) -> HandlerFunction:
        existing = _HANDLERS.get(kind)
        if existing is not None and existing.run.__qualname__ != function.__qualname__:
            raise ValueError(f"a handler for {kind!r} is already registered")
        _HANDLERS[kind] = Handler(kind, function, max_attempts, on_give_up)
        return function

    return register


def get_handler(kind: str) -> Handler | None:
    return _HANDLERS.get(kind)


def retry_delay(settings: Settings, attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: doubles each time."""
    base = settings.jobs_retry_delay_seconds
    return min(MAX_RETRY_DELAY_SECONDS, base * 2 ** max(0, attempts - 1))


def short_error(exc: BaseException) -> str:
    """What an admin may read about a failure: a domain message, else the error's class.
    Exception texts can quote data (a file's content, a patient's name): never stored."""
    if isinstance(exc, PermanentJobError):
        return str(exc)[:500]
    if isinstance(exc, ExplainedError):
        return exc.fr[:500]
    return f"Erreur inattendue ({type(exc).__name__})."


# -- enqueue -------------------------------------------------------------------------------


def find_job(session: Session, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.idempotency_key == key)).first()


def _insert_if_absent(session: Session, values: dict[str, Any]) -> bool:
    """One INSERT that does nothing when the key exists: two enqueues of one key at the same
    moment make one job, without an error that would spoil the caller's transaction."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    insert = postgresql_insert if postgresql else sqlite_insert
    statement = (
        insert(Job.metadata.tables[Job.__tablename__])  # SQLModel does not declare __table__
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]  # UPDATE: CursorResult


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    key: str,
    record_type: str | None = None,
    record_id: int | str | None = None,
    max_attempts: int | None = None,
    dispatch: bool = True,
) -> Job:
    """Create the job of ``key`` (the same key always gives the same job, never a second
    one) and send it to the workers once the caller's transaction commits."""
    if not key or len(key) > 200:
        raise ValueError("a job key has 1 to 200 characters")
    registered = get_handler(kind)
    attempts = max_attempts or (registered and registered.max_attempts) or DEFAULT_MAX_ATTEMPTS
    now = utcnow()
    created = _insert_if_absent(
        session,
        {
            "kind": kind,
            "idempotency_key": key,
            "status": JobStatus.queued.value,
            "attempts": 0,
            "max_attempts": attempts,
            "next_attempt_at": now,
            "last_error": "",
            "payload": payload,
            "progress": 0,
            "progress_message": "",
            "record_type": record_type,
            "record_id": None if record_id is None else str(record_id),
            "created_at": now,
            "updated_at": now,
        },
    )
    job = session.exec(select(Job).where(Job.idempotency_key == key)).one()
    if created and dispatch:
        dispatch_after_commit(session, job)
    return job


def dispatch_after_commit(session: Session, job: Job) -> None:
    """Send ``job`` to the workers when the session's transaction commits (never before:
    a worker must find the row); dropped if it rolls back."""
    pending: dict[int, datetime | None] = session.info.setdefault(_PENDING_DISPATCH, {})
    pending[job.id or 0] = job.next_attempt_at


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the session's transaction commits (e.g. remove a file the
    committed rows no longer name); forgotten if it rolls back. Its errors are logged."""
    session.info.setdefault(_ON_COMMIT, []).append(callback)


@event.listens_for(OrmSession, "after_commit")
def _send_after_commit(session: OrmSession) -> None:
    for callback in session.info.pop(_ON_COMMIT, []):
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")
    pending = session.info.pop(_PENDING_DISPATCH, None)
    if not pending:
        return
    dispatcher = _dispatcher
    if dispatcher is None:  # a script or a test without a queue: never a queue of our own
        log.debug("no job queue configured: %d job(s) left queued for recovery", len(pending))
        return
    try:
        for job_id, eta in pending.items():
            dispatcher.dispatch(job_id, eta)
    except Exception:  # the job is committed: a worker's recovery sends it again
        log.exception("could not send %d job(s) to the queue; left to recovery", len(pending))


@event.listens_for(OrmSession, "after_transaction_end")
def _drop_after_rollback(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outer transaction ended without a commit
        session.info.pop(_PENDING_DISPATCH, None)
        session.info.pop(_ON_COMMIT, None)


# -- progress ------------------------------------------------------------------------------


@dataclass
class RunState:
    """The job running in this thread (set by the runner), for progress reports."""

    job_id: int
    engine: Engine | None
    session: Session | None = None  # inline runs write progress in the caller's session
    last: tuple[int, str] = (-1, "")
    last_write: float = field(default_factory=lambda: 0.0)


current_run: contextvars.ContextVar[RunState | None] = contextvars.ContextVar(
    "accueil_job_run", default=None
)
HEARTBEAT_SECONDS = 30.0


def report_progress(
    job_id: int, percent: float, message: str = "", *, engine: Engine | None = None
) -> None:
    """Record how far a running job is (0–100) and a short message, committed at once so the
    pages show it; also the job's heartbeat. Repeats of the same value are skipped. Inside a
    run the runner's state says where to write; outside one, pass the ``engine``."""
    value = max(0, min(100, int(percent)))
    message = message[:200]
    state = current_run.get()
    if state is not None and state.job_id == job_id:
        now = time.monotonic()
        if (value, message) == state.last and now - state.last_write < HEARTBEAT_SECONDS:
            return
        state.last, state.last_write = (value, message), now
        if state.session is not None:
            job = state.session.get(Job, job_id)
            if job is not None:
                job.progress, job.progress_message, job.updated_at = value, message, utcnow()
                state.session.add(job)
            return
    if engine is None and state is not None:
        engine = state.engine
    if engine is None:
        raise RuntimeError("report_progress outside a job's run needs an engine")
    with Session(engine) as progress_session:
        progress_session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.running)
            .values(progress=value, progress_message=message, updated_at=utcnow())
        )
        progress_session.commit()


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFilter:
    """What the admin jobs page filters on."""

    status: JobStatus | None = None
    kind: str | None = None


def list_jobs(
    session: Session, filters: JobFilter, *, limit: int = 50, offset: int = 0
) -> tuple[list[Job], int]:
    """Jobs newest first, with the total matching the filters."""
    query = select(Job)
    if filters.status is not None:
        query = query.where(Job.status == filters.status)
    if filters.kind:
        query = query.where(Job.kind == filters.kind)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(Job.id).desc()).offset(offset).limit(limit)).all()
    return list(rows), total


def job_kinds(session: Session) -> list[str]:
    """Every kind of job found in the table, for the filter."""
    return sorted(session.exec(select(Job.kind).distinct()).all())


def jobs_by_id(session: Session, ids: list[int]) -> list[Job]:
    if not ids:
        return []
    return list(session.exec(select(Job).where(col(Job.id).in_(ids))).all())


def latest_for_records(session: Session, record_type: str, record_ids: list[int]) -> dict[int, Job]:
    """The most recent job of each record (e.g. each document), for status columns."""
    if not record_ids:
        return {}
    rows = session.exec(
        select(Job)
        .where(Job.record_type == record_type, col(Job.record_id).in_([str(i) for i in record_ids]))
        .order_by(col(Job.id))
    ).all()
    return {int(job.record_id or 0): job for job in rows}


def active_for_record(session: Session, record_type: str, record_id: int | str) -> list[Job]:
    """The queued or running jobs of one record."""
    return list(
        session.exec(
            select(Job).where(
                Job.record_type == record_type,
                Job.record_id == str(record_id),
                col(Job.status).in_(ACTIVE_STATUSES),
            )
        ).all()
    )


# -- state changes asked by a person (audited by the caller) -------------------------------


def requeue(session: Session, job: Job) -> Job:
    """Queue a failed or cancelled job again, with a fresh set of attempts; it is sent to the
    workers once the session commits."""
    if job.status not in RETRYABLE_STATUSES:
        raise JobStateError(f"job {job.id} is {job.status}, not failed or cancelled")
    now = utcnow()
    job.status = JobStatus.queued
    job.attempts = 0
    job.next_attempt_at = now
    job.progress, job.progress_message = 0, ""
    job.finished_at = None
    job.updated_at = now
    session.add(job)
    session.flush()
    dispatch_after_commit(session, job)
    return job


def cancel_queued(session: Session, settings: Settings, job: Job) -> Job:
    """Cancel a job that has not started and run its handler's give-up hook; a message
    already sent for it will do nothing."""
    if job.status != JobStatus.queued:
        raise JobStateError(f"job {job.id} is {job.status}, not queued")
    now = utcnow()
    job.status = JobStatus.cancelled
    job.finished_at = job.updated_at = now
    job.next_attempt_at = None
    session.add(job)
    registered = get_handler(job.kind)
    if registered is not None and registered.on_give_up is not None:
        registered.on_give_up(session, settings, job)
    session.flush()
    return job
