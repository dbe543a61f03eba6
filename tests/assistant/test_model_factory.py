"""The model factory: Ollama when it answers with the configured model, else the rules
assistant; the embedded model (flagged as a demonstration) stays selectable, and each provider
is configured as documented."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from agents.models import ModelUnavailable, choose_model, make_chat_model
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
    assert embedded.provider == "embedded" and embedded.demo


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
