"""Administration of the MCP clients allowed to call the practice tools over HTTP: their
tokens, the areas each may open and whether it may use the tools that change data."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.services.core.errors import DomainError
from app.services.identity import mcp_clients
from app.web.deps import AdminUser, SessionDep, user_actor
from app.web.i18n import request_language
from app.web.templating import render
from mcp_servers.mount import SERVERS
from mcp_servers.runtime import forget_verified_tokens

router = APIRouter(prefix="/admin/mcp", tags=["admin"])

# The forms send an empty ``areas`` value beside the checkboxes, so that a form with no box
# checked says "no area" instead of looking like a request that names none (every area).
AreasForm = Annotated[list[str] | None, Form()]
ReadOnlyForm = Annotated[bool, Form()]


def _chosen(areas: list[str] | None) -> list[str] | None:
    return None if areas is None else [area for area in areas if area]


def _page(
    request: Request,
    session,
    *,
    token: str | None = None,
    created: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    base = str(request.base_url).rstrip("/")
    return render(
        request,
        "admin/mcp.html",
        {
            "clients": mcp_clients.list_clients(session),
            "areas": list(SERVERS),
            "endpoints": [f"{base}/mcp/{name}/" for name in SERVERS],
            "token": token,
            "created": created,
            "error": error,
        },
        status_code=status,
    )


@router.get("", response_class=HTMLResponse, summary="MCP clients page")
def mcp_page(request: Request, user: AdminUser, session: SessionDep) -> Response:
    return _page(request, session)


@router.post("/clients", response_class=HTMLResponse, summary="Create an MCP client")
def create(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    name: Annotated[str, Form(max_length=64)],
    areas: AreasForm = None,
    read_only: ReadOnlyForm = False,
) -> Response:
    try:
        client, token = mcp_clients.create_client(
            session,
            user_actor(request, user),
            name,
            areas=_chosen(areas),
            can_write=not read_only,
            created_by_id=user.id,
        )
    except DomainError as exc:
        session.rollback()
        return _page(
            request, session, error=exc.message(request_language(request)), status=exc.status_code
        )
    return _page(request, session, token=token, created=client.name)


@router.post(
    "/clients/{client_id}/scope",
    response_class=HTMLResponse,
    summary="Change the areas and access of an MCP client",
)
def update_scope(
    request: Request,
    user: AdminUser,
    session: SessionDep,
    client_id: int,
    areas: AreasForm = None,
    read_only: ReadOnlyForm = False,
) -> Response:
    try:
        mcp_clients.update_client_scope(
            session,
            user_actor(request, user),
            client_id,
            areas=_chosen(areas) or [],  # here no area at all is a mistake, never "all"
            can_write=not read_only,
        )
    except DomainError as exc:
        session.rollback()
        return _page(
            request, session, error=exc.message(request_language(request)), status=exc.status_code
        )
    session.commit()
    forget_verified_tokens()  # the new scope applies to the next call in this process
    return RedirectResponse("/admin/mcp", status_code=303)


@router.post("/clients/{client_id}/revoke", summary="Revoke an MCP client")
def revoke(request: Request, user: AdminUser, session: SessionDep, client_id: int) -> Response:
    mcp_clients.revoke_client(session, user_actor(request, user), client_id)
    session.commit()
    forget_verified_tokens()  # refused at once here; other processes within VERIFIED_FOR
    return RedirectResponse("/admin/mcp", status_code=303)
