"""Practice knowledge for all staff: search the documents and read one with its passages."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.services.core.errors import DomainError
from app.services.knowledge import library as knowledge
from app.web.deps import SessionDep, SettingsDep, StaffUser, user_actor
from app.web.i18n import request_language
from app.web.templating import render

router = APIRouter(prefix="/connaissances", tags=["knowledge"])


@router.get("", response_class=HTMLResponse, summary="Search the practice documents")
def search_page(
    request: Request,
    user: StaffUser,
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    result: knowledge.SearchResult | None = None
    error = ""
    status = 200
    if q.strip():
        try:
            result = knowledge.find(session, user_actor(request, user), settings, q, k=5)
        except DomainError as exc:
            error, status = exc.message(request_language(request)), exc.status_code
    return render(
        request,
        "knowledge/search.html",
        {
            "q": q,
            "searched": bool(q.strip()),
            "passages": result.passages if result else [],
            "answer": result.answer if result else "",
            "doubtful": bool(result and result.doubtful),
            "corrections": dict(result.corrections) if result else {},
            "error": error,
        },
        status_code=status,
    )


@router.get("/{document_id}", response_class=HTMLResponse, summary="A practice document")
def document_page(
    request: Request,
    user: StaffUser,
    session: SessionDep,
    settings: SettingsDep,
    document_id: int,
) -> Response:
    document, passages = knowledge.view_document(
        session, user_actor(request, user), settings, document_id
    )
    return render(request, "knowledge/document.html", {"document": document, "passages": passages})
