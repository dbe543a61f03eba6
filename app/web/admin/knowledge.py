"""Administration of the practice knowledge base: upload, re-index and delete documents;
indexing runs as background jobs whose progress the page follows."""

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from app.config.settings import Settings
from app.services.core.errors import DomainError
from app.services.knowledge import library as knowledge
from app.services.knowledge.parsing import MEDIA_TYPES
from app.web.deps import AdminUser, SessionDep, SettingsDep, user_actor
from app.web.i18n import request_language
from app.web.templating import render

router = APIRouter(prefix="/admin/connaissances", tags=["admin"])
DONE = ("uploaded", "replaced", "reindexed", "deleted", "rebuilt", "retried", "cancelled")


def _page(
    request: Request,
    session: Session,
    settings: Settings,
    *,
    done: str = "",
    count: int = 0,
    error: str = "",
    status: int = 200,
) -> Response:
    documents = knowledge.list_documents(session)
    return render(
        request,
        "admin/knowledge.html",
        {
            "documents": documents,
            "document_jobs": knowledge.document_jobs(session, documents),
            "rebuild_job": knowledge.latest_rebuild(session),
            "accept": ",".join(MEDIA_TYPES),
            "done": done if done in DONE else "",
            "count": count,
            "error": error,
        },
        status_code=status,
    )


def _done(what: str, count: int = 0) -> RedirectResponse:
    return RedirectResponse(f"/admin/connaissances?done={what}&n={count}", status_code=303)


@router.get("", response_class=HTMLResponse, summary="Knowledge base administration page")
def admin_page(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    done: Annotated[str, Query(max_length=16)] = "",
    n: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    return _page(request, session, settings, done=done, count=n)


@router.post("", response_class=HTMLResponse, summary="Upload a practice document")
def upload(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
) -> Response:
    limit = settings.knowledge_max_upload_mb * 1024 * 1024
    content = file.file.read(limit + 1)  # one byte over the limit is enough to refuse it
    try:
        outcome = knowledge.upload(
            session,
            user_actor(request, user),
            settings,
            file.filename or "",
            content,
            uploaded_by_id=user.id,
        )
    except DomainError as exc:
        session.rollback()
        return _page(
            request,
            session,
            settings,
            error=exc.message(request_language(request)),
            status=exc.status_code,
        )
    return _done("replaced" if outcome.replaced else "uploaded")


@router.post("/rebuild", summary="Re-index every document with the configured model")
def rebuild(
    request: Request, user: AdminUser, session: SessionDep, settings: SettingsDep
) -> Response:
    knowledge.rebuild(session, user_actor(request, user), settings)
    return _done("rebuilt")


@router.post("/{document_id}/reindex", summary="Re-index one document")
def reindex(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    document_id: int,
) -> Response:
    knowledge.reindex(session, user_actor(request, user), settings, document_id)
    return _done("reindexed")


@router.post("/{document_id}/delete", summary="Delete a document and its passages")
def delete(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    settings: SettingsDep,
    document_id: int,
) -> Response:
    knowledge.delete(session, user_actor(request, user), settings, document_id)
    return _done("deleted")
