"""The health probe reports the database, the language model server and the vector store."""

from app.config.settings import Settings
from app.main import create_app


def test_health_reports_each_component(client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    checks = body["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["llm"]["status"] == "unavailable"  # nothing listens on the test Ollama URL
    assert checks["vector_store"]["status"] == "ok"
    assert body["status"] == "degraded"


def test_health_is_503_when_the_database_is_unreachable(tmp_path) -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1",
        data_dir=tmp_path,
        secret_key="x",
        ollama_url="http://127.0.0.1:9",
        health_probe_timeout_seconds=0.2,
    )
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "error"


def test_openapi_docs_are_for_staff_and_served_locally(logged_in, client) -> None:
    assert client.get("/openapi.json").status_code == 401
    logged_in("secretaire")
    schema = client.get("/openapi.json").json()
    assert "/api/patients" in schema["paths"]
    docs = client.get("/docs", headers={"accept": "text/html"}).text
    assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
