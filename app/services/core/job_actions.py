"""What a person may do with a background job: retry a failed or cancelled one, cancel one
that has not started. Each action is audited and refused in the user's language; the state
change itself belongs to the job machinery (``app/jobs/store.py``), which sits below the
domains and knows neither users nor their languages."""

from sqlmodel import Session

from app.config.settings import Settings
from app.jobs import store as jobs
from app.services.core import audit
from app.services.core.errors import Conflict, NotFound
from models.jobs import Job

RECORD_TYPE = "job"


class JobNotRetryable(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Seule une tâche en échec ou annulée peut être relancée.",
            "Only a failed or cancelled job can be retried.",
        )


class JobNotCancellable(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "Seule une tâche en attente peut être annulée.",
            "Only a queued job can be cancelled.",
        )


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("Tâche introuvable.", "Job not found.")
    return job


def retry(session: Session, actor: audit.Actor, job_id: int) -> Job:
    """Queue a failed or cancelled job again, with a fresh set of attempts."""
    job = get_job(session, job_id)
    try:
        jobs.requeue(session, job)
    except jobs.JobStateError as exc:
        raise JobNotRetryable() from exc
    audit.record(
        session,
        actor,
        "job.retry",
        record_type=RECORD_TYPE,
        record_id=job.id,
        details={"kind": job.kind},
    )
    return job


def cancel(session: Session, actor: audit.Actor, settings: Settings, job_id: int) -> Job:
    """Cancel a job that has not started; a message already sent for it will do nothing."""
    job = get_job(session, job_id)
    try:
        jobs.cancel_queued(session, settings, job)
    except jobs.JobStateError as exc:
        raise JobNotCancellable() from exc
    audit.record(
        session,
        actor,
        "job.cancel",
        record_type=RECORD_TYPE,
        record_id=job.id,
        details={"kind": job.kind},
    )
    return job
