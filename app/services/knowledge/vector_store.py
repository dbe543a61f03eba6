"""The Chroma client: embedded on disk by default, a Chroma server when configured."""

from functools import cache
from urllib.parse import urlsplit

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from app.config.settings import Settings


@cache
def _persistent_client(path: str) -> ClientAPI:
    return chromadb.PersistentClient(
        path=path, settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    )


def open_client(settings: Settings) -> ClientAPI:
    """A Chroma client with telemetry off; one per process and path."""
    if settings.chroma_url:
        parts = urlsplit(settings.chroma_url)
        return chromadb.HttpClient(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 8000,
            ssl=parts.scheme == "https",
            settings=ChromaSettings(anonymized_telemetry=False),
        )
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return _persistent_client(str(settings.chroma_dir.resolve()))
