"""Administration of background jobs: list and filter them, retry a failed one, cancel a
queued one; and the state of a few jobs as JSON, for pages that show live progress."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.jobs import store as jobs
from app.services.core import job_actions
from app.web.deps import AdminUser, SessionDep, SettingsDep, user_actor
from app.web.i18n import request_language, translate
from app.web.templating import render
from models.jobs import Job, JobStatus

router = APIRouter(prefix="/admin/jobs", tags=["admin"])
PAGE_SIZE = 50
MAX_POLLED = 100
# Pages a retry or cancel button may come back to (never a free URL: no open redirect).
RETURN_PAGES = frozenset({"/admin/jobs", "/admin/connaissances"})
DONE = ("retried", "cancelled")


def job_state(job: Job, language: str) -> dict[str, Any]:
    """What a page shows of a job, in the user's language."""
    return {
        "id": job.id,
        "status": job.status,
        "label": translate(language, f"jobs.status.{job.status}"),
        "active": job.is_active,
        "progress": job.progress,
        "message": job.progress_message,
        "error": job.last_error if job.status == JobStatus.failed else "",
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
    }


def _back(page: str, done: str) -> RedirectResponse:
    target = page if page in RETURN_PAGES else "/admin/jobs"
    return RedirectResponse(f"{target}?done={done}", status_code=303)


@router.get("", response_class=HTMLResponse, summary="Background jobs page")
def jobs_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    status: Annotated[str, Query(max_length=16)] = "",
    kind: Annotated[str, Query(max_length=64)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    chosen = JobStatus(status) if status in set(JobStatus) else None
    rows, total = jobs.list_jobs(
        session,
        jobs.JobFilter(status=chosen, kind=kind.strip() or None),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return render(
        request,
        "admin/jobs.html",
        {
            "jobs": rows,
            "total": total,
            "page": page,
            "has_next": page * PAGE_SIZE < total,
            "query": {"status": chosen.value if chosen else "", "kind": kind.strip()},
            "statuses": list(JobStatus),
            "kinds": jobs.job_kinds(session),
            "done": done if done in DONE else "",
        },
    )


@router.get("/etat", summary="State and progress of some jobs (JSON)")
def jobs_state(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    ids: Annotated[str, Query(max_length=1000)] = "",
) -> dict[str, list[dict[str, Any]]]:
    wanted = [
        int(part)
        for part in ids.split(",")
        if part.strip().isascii() and part.strip().isdigit() and len(part.strip()) <= 9
    ][:MAX_POLLED]
    language = request_language(request)
    return {"jobs": [job_state(job, language) for job in jobs.jobs_by_id(session, wanted)]}


@router.post("/{job_id}/retry", summary="Queue a failed or cancelled job again")
def retry(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    job_id: int,
    back: Annotated[str, Form(max_length=64)] = "/admin/jobs",
) -> Response:
    job_actions.retry(session, user_actor(request, user), job_id)
    return _back(back, "retried")


@router.post("/{job_id}/cancel", summary="Cancel a queued job")
def cancel(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    job_id: int,
    back: Annotated[str, Form(max_length=64)] = "/admin/jobs",
) -> Response:
    job_actions.cancel(session, user_actor(request, user), settings, job_id)
    return _back(back, "cancelled")
