"""The FastAPI application factory: settings, engine, jobs, the assistant, static files, the
MCP mount, every router (``app.routes``), error handlers and middlewares put together."""

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from app.config.settings import Settings, get_settings
from app.jobs.queue import configure as configure_jobs
from app.jobs.worker import in_process_worker
from app.routes import include_routers
from app.services.assistant.runtime import Assistant
from app.services.flows import job_handlers
from app.services.preconsultation import clinical_text
from app.web.deps import check_path_and_query, verify_csrf
from app.web.errors import install_error_handlers
from app.web.middleware import add_middlewares
from app.web.openapi_schema import document_real_responses
from app.web.route_table import ensure_routes_guarded
from mcp_servers.local import LocalServers
from mcp_servers.mount import mount_mcp_servers, run_mcp_servers
from models.db import make_engine

STATIC_DIR = Path(__file__).parent / "web" / "static"


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
        # The French clinical-text pipeline takes seconds to build: build it now, beside
        # serving, so a patient's first autosave does not wait for it.
        threading.Thread(target=clinical_text.warm, name="clinical-text-warm", daemon=True).start()
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
    job_handlers.load_handlers()  # before any worker runs or any job is enqueued
    job_handlers.add_periodic_tasks(app.state.jobs)
    app.state.assistant = Assistant(
        settings, app.state.engine, LocalServers(app.state.engine, settings)
    )

    app.mount(
        "/static/swagger",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger",
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.mcp_servers = mount_mcp_servers(app)
    include_routers(app)
    install_error_handlers(app)
    document_real_responses(app)

    add_middlewares(app, settings)
    ensure_routes_guarded(app)
    return app
