"""The middlewares every request goes through: the signed session cookie, the access log
(no query strings, no link tokens), the request-body size limit, and the security headers
(CSP and friends). Plain ASGI classes: streamed answers (the assistant's turns,
transcription progress) pass through them message by message."""

import logging
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.settings import Settings

SESSION_COOKIE = "accueil_session"
access_log = logging.getLogger("accueil.access")

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)
_CSP_DOCS = _CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


def csp_framed_by(sources: str) -> str:
    """The page policy, letting the practice's own site(s) show the page in an iframe (the
    online booking page's embed). A response that sets its own policy keeps it, and is sent
    without ``X-Frame-Options``."""
    allowed = " ".join(["'self'", *sources.split()])
    return _CSP.replace("frame-ancestors 'none'", f"frame-ancestors {allowed}")


def loggable_path(scope: Scope) -> str:
    """The request's route template (``/p/{token}``) rather than its path, so that link
    tokens and names typed into URLs never reach the logs; unrouted paths keep only their
    first segment."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    path: str = scope["path"]
    if path.startswith("/static/"):
        return path
    first = path.split("/", 2)[1] if path.count("/") else ""
    return f"/{first}/…" if path.rstrip("/") != f"/{first}" else path


class RequestLog:
    """One log line per request: method, route, status, duration. Query strings (which can
    carry names searched for) and path parameters (link tokens) are never logged; uvicorn's
    own access log is off."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            access_log.info(
                "%s %s %s %.1fms",
                scope["method"],
                loggable_path(scope),
                status,
                (time.perf_counter() - start) * 1000,
            )


TOO_LARGE = "Fichier ou requête trop volumineux. / Request too large."


class BodySizeLimit:
    """Refuses a request whose declared body is larger than the largest upload allowed,
    before any of it is read (413, in French and English). A body sent without its length
    (chunked) is counted as it arrives and refused as soon as it passes the limit, instead of
    being read, and spooled to disk, to its end."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is None:
            await self.app(scope, self._counted(receive), send)
            return
        if not length.isdigit() or int(length) > self.max_bytes:
            response = JSONResponse({"detail": TOO_LARGE}, status_code=413)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _counted(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised where the route reads its body; the app's handler answers 413.
                    raise HTTPException(status_code=413, detail=TOO_LARGE)
            return message

        return counted


class SecurityHeaders:
    """Adds a strict Content-Security-Policy and the usual hardening headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _CSP_DOCS if scope["path"] == "/docs" else _CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                own_policy = any(n.lower() == b"content-security-policy" for n, _ in headers)
                if not own_policy:
                    headers += [
                        (b"content-security-policy", csp.encode()),
                        (b"x-frame-options", b"DENY"),
                    ]
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"permissions-policy", b"camera=(), geolocation=(), microphone=(self)"),
                ]
                own_cache = any(name.lower() == b"cache-control" for name, _ in headers)
                if not scope["path"].startswith("/static") and not own_cache:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_middlewares(app: Starlette, settings: Settings) -> None:
    """Wrap the app in its middlewares, in the order it always had. The last one added runs
    first: the access log also sees the size limit's refusals, and a body too large is
    refused before the session or any route is reached."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(SecurityHeaders)
    # The largest upload plus room for the form around it.
    largest_mb = max(settings.knowledge_max_upload_mb, settings.speech_max_upload_mb)
    app.add_middleware(BodySizeLimit, max_bytes=(largest_mb + 1) * 1024 * 1024)
    app.add_middleware(RequestLog)
