"""What every MCP server shares: who is calling, a database session per tool call, the audit
event of each call, errors as short tool messages, and bearer-token protection over HTTP."""

import functools
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import field_errors
from app.services import audit
from app.services.errors import DomainError
from app.services.mcp_clients import authenticate_token
from app.settings import Settings
from models.audit import ActorKind

log = logging.getLogger("accueil.mcp")
T = TypeVar("T")
STATE_KEY = "mcp_client_actor"
APP_VERSION = "0.1.0"
VERIFIED_FOR = 5.0  # seconds a verified bearer token is trusted without a database read


@dataclass
class ToolRuntime:
    """The resources a server's tools use, and who calls when no HTTP client is known."""

    engine: Engine
    settings: Settings
    default_actor: audit.Actor

    def caller(self, ctx: Context | None) -> audit.Actor:
        """The MCP client authenticated by the HTTP layer, else the server's own actor."""
        request = None
        if ctx is not None:
            try:
                request = ctx.request_context.request
            except ValueError:
                request = None
        if isinstance(request, Request):
            actor = request.scope.get("state", {}).get(STATE_KEY)
            if isinstance(actor, audit.Actor):
                return actor
        return self.default_actor

    def call(self, ctx: Context | None, tool: str, work: Callable[[Session, audit.Actor], T]) -> T:
        """Run one tool call in its own transaction and audit it, whatever the outcome."""
        actor = self.caller(ctx)
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                try:
                    result = work(session, actor)
                    audit.record(
                        session, actor, "mcp.tool_call", record_type="mcp_tool", record_id=tool
                    )
                    session.commit()
                    return result
                except Exception:
                    session.rollback()
                    raise
        except DomainError as exc:
            self._audit_failure(actor, tool, "refused")
            raise ToolError(exc.fr) from exc
        except ValidationError as exc:
            self._audit_failure(actor, tool, "refused")
            raise ToolError(validation_message(exc)) from exc
        except Exception as exc:
            self._audit_failure(actor, tool, "error")
            log.exception("MCP tool %s failed", tool)
            raise ToolError("Erreur interne ; réessayez ou prévenez l'administrateur.") from exc

    def _audit_failure(self, actor: audit.Actor, tool: str, outcome: str) -> None:
        """A failed call's transaction is rolled back; its audit event is kept apart."""
        with Session(self.engine) as session:
            audit.record(
                session,
                actor,
                "mcp.tool_call",
                record_type="mcp_tool",
                record_id=tool,
                outcome=outcome,
            )
            session.commit()


def validation_message(exc: ValidationError) -> str:
    """Pydantic errors as one short French sentence a model can act on. The field is the
    error's whole location: a tool argument may well be named ``query`` or ``path``, which
    ``field_errors`` would take for an HTTP location and drop."""
    errors = list(exc.errors())
    parts = []
    for error, translated in zip(errors, field_errors("fr", errors), strict=True):
        field = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{field} : {translated['message']}" if field else translated["message"])
    return "Arguments invalides — " + " ; ".join(parts)


def in_worker_thread(fn: Callable[..., T]) -> Callable[..., Any]:
    """An async face for a blocking tool, run in a worker thread so a tool's database work
    never stalls the event loop (the signature, hence the tool schema, is unchanged)."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return run


class PracticeMCP(FastMCP):
    """FastMCP whose blocking tools run in worker threads and whose tool errors reach the
    client as the bare, actionable French message."""

    def add_tool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(fn):
            fn = in_worker_thread(fn)
        super().add_tool(fn, *args, **kwargs)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            return await super().call_tool(name, arguments)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(validation_message(cause)) from cause
            if isinstance(cause, ToolError):
                raise cause from None
            if isinstance(cause, DomainError):  # raised by a tool before runtime.call
                raise ToolError(cause.fr) from cause
            raise


def slim_schema(schema: Any) -> Any:
    """Drop titles, ``null`` alternatives and string length limits from a JSON schema: fewer
    tokens for the model; the tool still validates every limit and says what is wrong."""
    if isinstance(schema, list):
        return [slim_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value in (None, ""):
            continue
        if key == "maxLength":
            continue
        out[key] = slim_schema(value)
    options = out.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            del out["anyOf"]
            out.update(kept[0])
    return out


def slim_tools(mcp: FastMCP) -> FastMCP:
    """Slim every registered tool's input schema (output schemas are left to the SDK)."""
    for tool in mcp._tool_manager.list_tools():
        tool.parameters = slim_schema(tool.parameters)
    return mcp


def new_server(name: str, instructions: str) -> FastMCP:
    """A FastMCP server served at the root of its mount, stateless over HTTP."""
    server = PracticeMCP(
        name=name,
        instructions=instructions,
        streamable_http_path="/",
        stateless_http=True,
        json_response=True,
        log_level="WARNING",
        # Bearer tokens, not the Host header, protect these endpoints.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    # Without a version the SDK reads package metadata from disk on every stateless request.
    server._mcp_server.version = APP_VERSION
    return server


class BearerTokenGuard:
    """ASGI wrapper: only MCP clients with a valid, unrevoked bearer token get through."""

    requires_bearer_token = True  # read by app.route_table: this mount is guarded

    def __init__(self, app: ASGIApp, engine: Engine, server: str) -> None:
        self.app = app
        self.engine = engine
        self.server = server
        self._verified: dict[str, tuple[audit.Actor, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        address = scope["client"][0] if scope.get("client") else None
        actor = self._recently_verified(token, address)
        if actor is None:
            actor = await anyio.to_thread.run_sync(self._authenticate, token, address)
        if actor is None:
            response = JSONResponse(
                {"error": "Jeton MCP manquant ou invalide. / Missing or invalid MCP token."},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="accueil-mcp"'},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = actor
        await self.app(scope, receive, send)

    def _recently_verified(self, token: str, address: str | None) -> audit.Actor | None:
        """A token checked against the database less than VERIFIED_FOR ago (revocation
        therefore takes effect within that delay)."""
        cached = self._verified.get(token) if token else None
        if cached is None or cached[1] < time.monotonic():
            return None
        return replace(cached[0], address=address)

    def _authenticate(self, token: str, address: str | None) -> audit.Actor | None:
        """The calling client as an audit actor, or None (and a ``mcp.denied`` event)."""
        with Session(self.engine, expire_on_commit=False) as session:
            client = authenticate_token(session, token) if token else None
            if client is None:
                audit.record(
                    session,
                    audit.Actor(kind=ActorKind.anonymous, name="mcp", address=address),
                    "mcp.denied",
                    record_type="mcp_server",
                    record_id=self.server,
                    outcome="denied",
                )
            if client is None or session.dirty:  # the denial, or a new last_used_at
                session.commit()
            if client is None:
                return None
            actor = audit.Actor(
                kind=ActorKind.mcp_client, id=str(client.id), name=client.name, address=address
            )
        if len(self._verified) > 1000:
            self._verified.clear()
        self._verified[token] = (actor, time.monotonic() + VERIFIED_FOR)
        return actor
