"""Administration of the MCP clients allowed to call the practice tools over HTTP."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import AdminUser, SessionDep, user_actor
from app.i18n import request_language
from app.services import mcp_clients
from app.services.errors import DomainError
from app.templating import render
from mcp_servers.mount import SERVERS

router = APIRouter(prefix="/admin/mcp", tags=["admin"])


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
) -> Response:
    try:
        client, token = mcp_clients.create_client(
            session, user_actor(request, user), name, created_by_id=user.id
        )
    except DomainError as exc:
        return _page(
            request, session, error=exc.message(request_language(request)), status=exc.status_code
        )
    return _page(request, session, token=token, created=client.name)


@router.post("/clients/{client_id}/revoke", summary="Revoke an MCP client")
def revoke(request: Request, user: AdminUser, session: SessionDep, client_id: int) -> Response:
    mcp_clients.revoke_client(session, user_actor(request, user), client_id)
    return RedirectResponse("/admin/mcp", status_code=303)
