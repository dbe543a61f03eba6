"""The FastAPI application factory."""

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.settings import Settings, get_settings
from app.jobs.queue import configure as configure_jobs
from app.jobs.worker import in_process_worker
from app.services.assistant.runtime import Assistant
from app.web import auth
from app.web.admin import audit as admin
from app.web.admin import feedback as admin_feedback
from app.web.admin import jobs as admin_jobs
from app.web.admin import knowledge as admin_knowledge
from app.web.admin import mcp as admin_mcp
from app.web.admin import practice_settings as practice_settings_pages
from app.web.admin import practitioners as practice_pages
from app.web.admin import rgpd as admin_rgpd
from app.web.api import speech, system
from app.web.deps import check_path_and_query, verify_csrf
from app.web.errors import install_error_handlers
from app.web.links import calendar_feed
from app.web.links import patient_form as patient_pages
from app.web.links import self_service as self_service_pages
from app.web.openapi_schema import document_real_responses
from app.web.route_table import ensure_routes_guarded
from app.web.staff import agenda as agenda_pages
from app.web.staff import home, letter_files, patients, secretariat
from app.web.staff import knowledge as knowledge_pages
from app.web.staff import notifications as notification_pages
from app.web.staff import physician as physician_pages
from app.web.staff import preconsultation as preconsultation_pages
from app.web.staff import waiting_list as waiting_list_pages
from mcp_servers.mount import mount_mcp_servers, run_mcp_servers
from models.db import make_engine

STATIC_DIR = Path(__file__).parent / "web" / "static"
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
                headers += [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"permissions-policy", b"camera=(), geolocation=(), microphone=(self)"),
                ]
                own_cache = any(name.lower() == b"cache-control" for name, _ in headers)
                if not scope["path"].startswith("/static") and not own_cache:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def freeze_startup_objects() -> None:
    """Put everything alive once the app is built (modules, classes, routes: about 300,000
    objects) out of the cyclic garbage collector's reach. They live as long as the
    process anyway; without this, each full collection scans them all and pauses every
    request for 200-300 ms on two cores, about once a minute under load (measured by
    ``benchmarks/mixed_load.py``). Reference counting still frees them as usual. Called by
    the server's entry point (``app.asgi``), not by the factory: tests build many apps."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for the given settings (the environment's by default)."""
    settings = settings or get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "httpx2", "chromadb", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            run_mcp_servers(app.state.mcp_servers),
            app.state.assistant.running(),
            in_process_worker(app.state.jobs, enabled=settings.jobs_in_process),
        ):
            yield

    app = FastAPI(
        lifespan=lifespan,
        title="Accueil",
        summary="Assistant local du cabinet médical",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(verify_csrf), Depends(check_path_and_query)],
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.resolved_database_url)
    app.state.jobs = configure_jobs(settings, app.state.engine)
    app.state.assistant = Assistant(settings, app.state.engine)

    app.mount(
        "/static/swagger",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger",
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.mcp_servers = mount_mcp_servers(app)
    for router in (
        system.router,
        auth.router,
        home.router,
        patients.api,
        patients.pages,
        admin.router,
        admin_mcp.router,
        admin_rgpd.router,
        admin_knowledge.router,
        admin_jobs.router,
        admin_feedback.router,
        knowledge_pages.router,
        agenda_pages.router,
        waiting_list_pages.router,
        calendar_feed.router,
        practice_pages.router,
        practice_settings_pages.closures,
        practice_settings_pages.visit_types,
        preconsultation_pages.router,
        physician_pages.router,
        letter_files.router,
        patient_pages.router,
        self_service_pages.router,
        notification_pages.outbox,
        notification_pages.patient_messages,
        notification_pages.admin,
        secretariat.router,
        speech.router,
    ):
        app.include_router(router)
    install_error_handlers(app)
    document_real_responses(app)

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
    ensure_routes_guarded(app)
    return app
