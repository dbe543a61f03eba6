"""What every MCP server shares: who is calling, a database session per tool call, the audit
event of each call, errors as short tool messages, and bearer-token protection over HTTP (each
client's token opens only its areas, and only the tools annotated read-only when it is
read-only)."""

import functools
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import Tool as MCPTool
from mcp.types import ToolAnnotations
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config.settings import Settings
from app.services.core import audit
from app.services.core.errors import DomainError
from app.services.core.validation import error_message
from app.services.identity.mcp_clients import authenticate_token
from mcp_servers.annotations import is_read_only
from models.audit import ActorKind

log = logging.getLogger("accueil.mcp")
T = TypeVar("T")
STATE_KEY = "mcp_client_actor"
SCOPE_KEY = "mcp_client_scope"
APP_VERSION = "0.1.0"
# Seconds a verified bearer token (and its scope) is trusted without a database read. A
# revocation or a scope change made in this process clears every guard's cache at once
# (``forget_verified_tokens``); one made in another process (the CLI, another worker) takes
# effect there within this delay.
VERIFIED_FOR = 5.0


@dataclass(frozen=True)
class ClientScope:
    """What an authenticated MCP client may do: the areas it may open, whether it may write."""

    areas: frozenset[str]
    can_write: bool

    def allows(self, annotations: ToolAnnotations | None) -> bool:
        """Read-only clients may call only the tools annotated read-only: a tool without
        annotations, or one that does not say it is read-only, is refused (deny by default)."""
        return self.can_write or is_read_only(annotations)


def read_only_message(tool: str) -> str:
    return (
        f"Ce client MCP est en lecture seule : l'outil « {tool} » modifie des données et lui "
        f"est refusé. / This MCP client is read-only: the '{tool}' tool changes data and is "
        "refused."
    )


def area_message(area: str) -> str:
    return (
        f"Ce client MCP n'a pas accès au domaine « {area} ». / This MCP client has no access "
        f"to the '{area}' area."
    )


def http_request(ctx: Context | None) -> Request | None:
    """The HTTP request behind a tool call, or None (in-memory sessions, stdio)."""
    if ctx is None:
        return None
    try:
        request = ctx.request_context.request
    except ValueError:
        return None
    return request if isinstance(request, Request) else None


def client_scope(ctx: Context | None) -> ClientScope | None:
    """The scope the HTTP guard granted the caller; None off HTTP (our own agents, whose tools
    the agent policy limits, and stdio)."""
    request = http_request(ctx)
    scope = request.scope.get("state", {}).get(SCOPE_KEY) if request is not None else None
    return scope if isinstance(scope, ClientScope) else None


@dataclass
class ToolRuntime:
    """The resources a server's tools use, and who calls when no HTTP client is known."""

    engine: Engine
    settings: Settings
    default_actor: audit.Actor

    def caller(self, ctx: Context | None) -> audit.Actor:
        """The MCP client authenticated by the HTTP layer, else the server's own actor."""
        request = http_request(ctx)
        if request is not None:
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

    def audit_refused_tool(self, actor: audit.Actor, tool: str, reason: str) -> None:
        """A tool call the caller's scope forbids, refused before the tool runs."""
        with Session(self.engine) as session:
            audit.record(
                session,
                actor,
                "mcp.denied",
                record_type="mcp_tool",
                record_id=tool,
                outcome="denied",
                details={"reason": reason},
            )
            session.commit()


def validation_message(exc: ValidationError) -> str:
    """Pydantic errors as one short French sentence a model can act on. The field is the
    error's whole location: a tool argument may well be named ``query`` or ``path``, which
    ``field_errors`` would take for an HTTP location and drop."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error.get("loc", ()))
        text = error_message("fr", error)
        parts.append(f"{field} : {text}" if field else text)
    return "Arguments invalides — " + " ; ".join(parts)


def in_worker_thread(fn: Callable[..., T]) -> Callable[..., Any]:
    """An async face for a blocking tool, run in a worker thread so a tool's database work
    never stalls the event loop (the signature, hence the tool schema, is unchanged)."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return run


class PracticeMCP(FastMCP):
    """FastMCP whose blocking tools run in worker threads, whose tool errors reach the
    client as the bare, actionable French message, and which lists and runs for an HTTP
    client only the tools its scope allows."""

    def __init__(self, runtime: ToolRuntime, **settings: Any) -> None:
        super().__init__(**settings)
        self.runtime = runtime

    def add_tool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(fn):
            fn = in_worker_thread(fn)
        super().add_tool(fn, *args, **kwargs)

    def tool_annotations(self, name: str) -> ToolAnnotations | None:
        """What the named tool declares about its effects; None for an unknown tool."""
        tool = self._tool_manager.get_tool(name)
        return tool.annotations if tool is not None else None

    async def list_tools(self) -> list[MCPTool]:
        tools = await super().list_tools()
        scope = client_scope(self.get_context())
        if scope is None:
            return tools
        return [tool for tool in tools if scope.allows(tool.annotations)]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        ctx = self.get_context()
        scope = client_scope(ctx)
        if scope is not None and not scope.allows(self.tool_annotations(name)):
            # Refused in code before the arguments are read: the tool never runs (an unknown
            # tool is refused the same way: it declares nothing).
            actor = self.runtime.caller(ctx)
            refused = functools.partial(self.runtime.audit_refused_tool, actor, name, "read_only")
            await anyio.to_thread.run_sync(refused)
            raise ToolError(read_only_message(name))
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


def new_server(name: str, instructions: str, runtime: ToolRuntime) -> FastMCP:
    """A FastMCP server served at the root of its mount, stateless over HTTP."""
    server = PracticeMCP(
        runtime,
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


@dataclass(frozen=True)
class VerifiedClient:
    """An MCP client whose token was checked against the database, and its scope."""

    actor: audit.Actor
    scope: ClientScope


class _Guards:
    """Every guard of this process, to drop their cached verifications at once. A verification
    that read the database before a drop is not cached after it (``epoch`` moved on)."""

    def __init__(self) -> None:
        self.guards: weakref.WeakSet[BearerTokenGuard] = weakref.WeakSet()
        self.epoch = 0
        self.lock = threading.Lock()


_GUARDS = _Guards()


def forget_verified_tokens() -> None:
    """Make every guard of this process check its next token against the database: call it
    once a revocation or a scope change is committed."""
    with _GUARDS.lock:
        _GUARDS.epoch += 1
        guards = list(_GUARDS.guards)
    for guard in guards:
        guard._verified.clear()


class BearerTokenGuard:
    """ASGI wrapper: only MCP clients with a valid, unrevoked bearer token get through, and
    only into the areas their scope holds."""

    requires_bearer_token = True  # read by app.web.route_table: this mount is guarded

    def __init__(self, app: ASGIApp, engine: Engine, server: str) -> None:
        self.app = app
        self.engine = engine
        self.server = server
        self._verified: dict[str, tuple[VerifiedClient, float]] = {}
        with _GUARDS.lock:
            _GUARDS.guards.add(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        address = scope["client"][0] if scope.get("client") else None
        client = self._recently_verified(token, address)
        if client is None:
            client = await anyio.to_thread.run_sync(self._authenticate, token, address)
        if client is None:
            response = JSONResponse(
                {"error": "Jeton MCP manquant ou invalide. / Missing or invalid MCP token."},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="accueil-mcp"'},
            )
            await response(scope, receive, send)
            return
        if self.server not in client.scope.areas:
            await anyio.to_thread.run_sync(self._audit_area_denied, client.actor)
            response = JSONResponse(
                {"error": area_message(self.server)},
                status_code=403,
                headers={
                    "WWW-Authenticate": 'Bearer realm="accueil-mcp", error="insufficient_scope"'
                },
            )
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[STATE_KEY] = client.actor
        state[SCOPE_KEY] = client.scope
        await self.app(scope, receive, send)

    def _recently_verified(self, token: str, address: str | None) -> VerifiedClient | None:
        """A token checked against the database less than VERIFIED_FOR ago (a revocation or a
        scope change made elsewhere therefore takes effect within that delay)."""
        cached = self._verified.get(token) if token else None
        if cached is None or cached[1] < time.monotonic():
            return None
        client = cached[0]
        return replace(client, actor=replace(client.actor, address=address))

    def _authenticate(self, token: str, address: str | None) -> VerifiedClient | None:
        """The calling client and its scope, or None (and a ``mcp.denied`` event)."""
        epoch = _GUARDS.epoch
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
                    details={"reason": "invalid_token" if token else "missing_token"},
                )
            if client is None or session.dirty:  # the denial, or a new last_used_at
                session.commit()
            if client is None:
                return None
            verified = VerifiedClient(
                actor=audit.Actor(
                    kind=ActorKind.mcp_client, id=str(client.id), name=client.name, address=address
                ),
                scope=ClientScope(areas=frozenset(client.areas), can_write=client.can_write),
            )
        with _GUARDS.lock:
            if epoch == _GUARDS.epoch:  # not forgotten meanwhile
                if len(self._verified) > 1000:
                    self._verified.clear()
                self._verified[token] = (verified, time.monotonic() + VERIFIED_FOR)
        return verified

    def _audit_area_denied(self, actor: audit.Actor) -> None:
        """A valid token used on an area its client does not hold (the token is never logged)."""
        with Session(self.engine) as session:
            audit.record(
                session,
                actor,
                "mcp.denied",
                record_type="mcp_server",
                record_id=self.server,
                outcome="denied",
                details={"reason": "area_not_allowed"},
            )
            session.commit()
