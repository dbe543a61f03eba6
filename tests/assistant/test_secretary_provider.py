"""The secretariat page says which assistant serves it, and an ``embedded`` provider whose
optional extra is not installed is explained on the page and in the turn, in French and
English, never as a 500."""

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config.settings import Settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-not-for-production",
        ollama_url="http://127.0.0.1:9",
        health_probe_timeout_seconds=0.2,
        jobs_in_process=False,
        llm_provider="embedded",
    )


@pytest.fixture
def without_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on an install without the ``embedded`` extra (what ``make run`` installs)."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "llama_cpp" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def conversation(client: TestClient) -> int:
    response = client.get("/secretariat", follow_redirects=False)
    assert response.status_code == 303
    return int(response.headers["location"].rsplit("/", 1)[1])


def test_a_missing_embedded_extra_is_explained_not_a_500(without_llama, logged_in, staff) -> None:
    client = logged_in(staff.secretary)
    chat = conversation(client)
    page = client.get(f"/secretariat/c/{chat}")
    assert page.status_code == 200
    assert "Assistant indisponible." in page.text
    assert "llama-cpp-python manque" in page.text and "uv sync --extra embedded" in page.text
    assert "Modèle de démonstration" not in page.text

    sent = client.post(f"/api/secretariat/c/{chat}/messages", json={"message": "RDV demain"})
    assert sent.status_code == 200
    events = [json.loads(line) for line in sent.text.splitlines() if line.strip()]
    error = next(e for e in events if e["type"] == "error")
    assert "n'est pas installé" in error["message"] and "llama-cpp-python" in error["message"]
    assert "not installed" in error["message_en"]
    assert error["model_unavailable"] is True

    client.get("/lang/en?next=/secretariat", follow_redirects=False)
    english = client.get(f"/secretariat/c/{chat}")
    assert "Assistant unavailable." in english.text
    assert "The embedded model is not installed" in english.text
