"""The acceptance gate as a background job (the admin page's button): the secretary
scenarios against a model and against ``rules`` take minutes with a real model."""

from typing import Any

from sqlmodel import Session

from app.jobs import store as jobs
from app.services.core import audit
from app.services.flows.summary_jobs import run_coroutine
from models.audit import ActorKind
from models.jobs import Job

JOB_KIND = "model_acceptance"


def enqueue_acceptance(
    session: Session,
    actor: audit.Actor,
    model: str,
    *,
    repeats: int,
    stamp: str,
    only: list[str] | None = None,
) -> Any:
    """Queue one acceptance run of ``model`` (audited); ``stamp`` makes the job key unique
    per request; ``only``: these scenario ids (default: every one)."""
    payload = {"model": model, "repeats": repeats, "actor": actor.name, "actor_id": actor.id}
    job = jobs.enqueue(
        session,
        JOB_KIND,
        {**payload, "only": only or []},
        key=f"{JOB_KIND}:{model}:{stamp}",
        record_type="model_acceptance",
        max_attempts=1,  # a failed run is started again by the admin, not retried blindly
    )
    audit.record(
        session,
        actor,
        "model.acceptance_requested",
        record_type="job",
        record_id=job.id,
        details={"model": model, "repeats": repeats},
    )
    return job


def recent_runs(session: Session, limit: int = 5) -> list[Job]:
    """The latest acceptance runs, newest first, whatever their status (the gate's page)."""
    runs, _total = jobs.list_jobs(session, jobs.JobFilter(kind=JOB_KIND), limit=limit)
    return runs


@jobs.handler(JOB_KIND, max_attempts=1)
def accept_model_job(ctx: jobs.JobContext) -> None:
    """Measure the model and store the verdict with the job's success."""
    from agents.models import ModelUnavailable
    from evals.acceptance import measure_async, record
    from evals.secretary_scenarios import ScenarioError

    model = str(ctx.payload["model"])
    repeats = int(ctx.payload.get("repeats", 1))
    actor = audit.Actor(
        kind=ActorKind.user,
        id=ctx.payload.get("actor_id"),
        name=str(ctx.payload.get("actor", "")),
    )
    ctx.progress(5, f"validation de {model}")
    try:
        measured = run_coroutine(
            lambda: measure_async(
                ctx.settings,
                model,
                repeats=repeats,
                only=list(ctx.payload.get("only") or []) or None,
            )
        )
    except (ModelUnavailable, ScenarioError, ValueError) as exc:
        raise jobs.PermanentJobError(str(exc)[:400]) from exc
    record(ctx.session, actor, measured)
