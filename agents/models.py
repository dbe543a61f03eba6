"""The model factory: one setting picks Ollama, the deterministic ``rules`` assistant, the
embedded GGUF model or an OpenAI-compatible server; ``auto`` uses Ollama when it serves the
model and falls back to ``rules`` (it needs no GPU and never makes things up)."""

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
from langchain_core.language_models import BaseChatModel

from agents.rules.model import RulesChatModel
from app.config.settings import Settings

Provider = Literal["ollama", "rules", "embedded", "openai"]
RULES_NAME = "rules"
PROBE_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class ModelChoice:
    """Which model serves the assistant, and how to present it to the user."""

    provider: Provider
    name: str
    demo: bool = False  # True: a demonstration model whose answers are not reliable

    @property
    def label(self) -> str:
        return self.name if self.provider == "rules" else f"{self.name} ({self.provider})"

    @property
    def writes_free_text(self) -> bool:
        """Whether it can write prose (summaries, letters): not the rules assistant nor the
        bundled demonstration model."""
        return self.provider != "rules" and not self.demo


class ModelUnavailable(RuntimeError):
    """The configured model server does not answer or the model file is missing."""


_probe_lock = threading.Lock()
_probe_cache: dict[str, tuple[float, bool]] = {}


def ollama_serves(settings: Settings, *, fresh: bool = False) -> bool:
    """Whether the Ollama server answers and has the configured model (cached briefly)."""
    key = f"{settings.ollama_url}|{settings.llm_model}"
    now = time.monotonic()
    with _probe_lock:
        cached = _probe_cache.get(key)
        if cached and not fresh and now - cached[0] < PROBE_TTL_SECONDS:
            return cached[1]
    url = settings.ollama_url.rstrip("/") + "/api/tags"
    try:
        response = httpx.get(url, timeout=settings.health_probe_timeout_seconds)
        response.raise_for_status()
        names = {m.get("name", "") for m in response.json().get("models", [])}
        wanted = settings.llm_model
        ok = wanted in names or f"{wanted}:latest" in names
    except (httpx.HTTPError, ValueError):
        ok = False
    with _probe_lock:
        _probe_cache[key] = (now, ok)
    return ok


def embedded_model_path(settings: Settings) -> Path:
    if settings.embedded_model_path is not None:
        return settings.embedded_model_path
    from agents.embedded_model import bundled_gguf_path

    return bundled_gguf_path()


def choose_model(settings: Settings) -> ModelChoice:
    """The model the assistant uses now, following ``llm_provider``."""
    provider = settings.llm_provider
    if provider == "auto":
        provider = "ollama" if ollama_serves(settings) else "rules"
    if provider == "rules":
        return ModelChoice("rules", RULES_NAME)
    if provider == "embedded":
        path = embedded_model_path(settings)
        return ModelChoice("embedded", path.stem, demo=settings.embedded_model_path is None)
    return ModelChoice(provider, settings.llm_model)


def make_chat_model(settings: Settings, choice: ModelChoice) -> BaseChatModel:
    """A streaming LangChain chat model for the chosen provider."""
    if choice.provider == "rules":
        return RulesChatModel(timezone=settings.timezone)
    if choice.provider == "ollama":
        from langchain_ollama import ChatOllama

        timeout = httpx.Timeout(settings.llm_timeout_seconds, connect=5.0)
        return ChatOllama(
            model=choice.name,
            base_url=settings.ollama_url,
            num_ctx=settings.llm_num_ctx,  # Ollama's default silently truncates long prompts
            keep_alive=settings.llm_keep_alive,
            temperature=settings.llm_temperature,
            reasoning=False,
            client_kwargs={"timeout": timeout},
        )
    if choice.provider == "openai":
        if not settings.openai_base_url:
            raise ModelUnavailable("ACCUEIL_OPENAI_BASE_URL is not set")
        from langchain_openai import ChatOpenAI

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
        return ChatOpenAI(
            model=choice.name,
            base_url=settings.openai_base_url,
            api_key=key,
            temperature=settings.llm_temperature,
            timeout=settings.llm_timeout_seconds,
            max_retries=1,
            streaming=True,
        )
    from agents.embedded_model import EmbeddedChatModel

    path = embedded_model_path(settings)
    if not path.is_file():
        raise ModelUnavailable(f"model file not found: {path}")
    return EmbeddedChatModel(
        model_path=str(path),
        n_ctx=min(settings.llm_num_ctx, 8192),
        temperature=settings.llm_temperature,
        **({"n_threads": settings.embedded_threads} if settings.embedded_threads else {}),
    )
