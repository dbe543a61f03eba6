"""System health: database, language model server and vector store."""

from dataclasses import asdict, dataclass
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.config.settings import Settings


@dataclass
class Check:
    """One component's state: ``ok``, ``unavailable`` or ``error`` with a short detail."""

    status: str
    detail: str = ""


def check_database(engine: Engine) -> Check:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Check("ok", engine.dialect.name)
    except Exception as exc:  # a health probe reports, never raises
        return Check("error", type(exc).__name__)


def check_llm(settings: Settings) -> Check:
    """Whether the Ollama (or OpenAI-compatible) server answers; not fatal when down."""
    if settings.llm_provider == "embedded":
        return Check("ok", "embedded model")
    if settings.llm_provider == "rules":
        return Check("ok", "rules (no language model)")
    if settings.llm_provider == "openai" and settings.openai_base_url:
        url = settings.openai_base_url.rstrip("/") + "/models"
    else:
        url = settings.ollama_url.rstrip("/") + "/api/version"
    try:
        response = httpx.get(url, timeout=settings.health_probe_timeout_seconds)
        response.raise_for_status()
        return Check("ok", url)
    except httpx.HTTPError:
        return Check("unavailable", f"{url} does not answer")


def check_vector_store(settings: Settings) -> Check:
    """The Chroma store answers its heartbeat (embedded on disk, or a server)."""
    try:
        from app.services.knowledge.vector_store import open_client

        open_client(settings).heartbeat()
        return Check("ok", settings.chroma_url or "embedded")
    except Exception as exc:  # a health probe reports, never raises
        return Check("error", type(exc).__name__)


def health_report(engine: Engine, settings: Settings) -> dict[str, Any]:
    checks = {
        "database": check_database(engine),
        "llm": check_llm(settings),
        "vector_store": check_vector_store(settings),
    }
    status = "ok" if checks["database"].status == "ok" else "error"
    if status == "ok" and any(c.status != "ok" for c in checks.values()):
        status = "degraded"
    return {"status": status, "checks": {name: asdict(c) for name, c in checks.items()}}
