"""docker-compose.yml, checked without a Docker engine: the YAML parses, the single-box
services stay as they were, and the `scale` profile is consistent (Redis, N web replicas
behind the Caddy proxy that they alone trust, the workers, migrations run once), with every
ACCUEIL_* variable a real setting."""

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config.settings import Settings
from models.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
SCALE_ONLY = {"redis", "chroma", "migrate", "web", "worker", "proxy"}
BOX = {"ollama", "ollama-pull", "postgres", "app"}
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``, with ``env``
    standing for the .env file; ``$$`` is a literal dollar."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        found = env.get(name)
        if op in (":-", "-"):
            return found if found else (arg or "")
        if op in (":?", "?") and not found:
            raise ValueError(f"{name}: {arg}")
        return found or ""

    return VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw, {"ACCUEIL_SECRET_KEY": "x" * 48, "POSTGRES_PASSWORD": "pw"})


def profile_of(service: dict[str, Any]) -> set[str]:
    return set(service.get("profiles", []))


def test_the_file_parses_and_needs_a_secret_key(raw: dict[str, Any]) -> None:
    assert set(raw["services"]) == BOX | SCALE_ONLY
    with pytest.raises(ValueError, match="ACCUEIL_SECRET_KEY"):
        interpolate(raw, {})


def test_the_single_box_is_unchanged_without_the_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in BOX:
        assert profile_of(services[name]) == set(), name
    for name in SCALE_ONLY:
        assert profile_of(services[name]) == {"scale"}, name
    app = services["app"]
    assert app["deploy"]["replicas"] == "1" and app["ports"] == ["127.0.0.1:8000:8000"]
    assert "ACCUEIL_REDIS_URL" not in app["environment"]  # jobs in its own process
    # A service that runs without the profile never waits for one that runs only with it.
    for name in BOX:
        assert not set(services[name].get("depends_on", {})) & SCALE_ONLY, name


def test_the_scale_profile_replaces_the_box_app(raw: dict[str, Any]) -> None:
    scaled = interpolate(
        raw, {"ACCUEIL_SECRET_KEY": "k", "ACCUEIL_BOX_REPLICAS": "0", "ACCUEIL_WEB_REPLICAS": "4"}
    )["services"]
    assert scaled["app"]["deploy"]["replicas"] == "0"
    assert scaled["web"]["deploy"]["replicas"] == "4"


def test_every_reference_resolves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes, networks = set(compose["volumes"]), set(compose.get("networks", {})) | {"default"}
    for name, service in services.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in services, (name, needed)
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[needed] or needed == "app", (name, needed)
            if condition["condition"] == "service_completed_successfully":
                assert services[needed]["restart"] == "no", (name, needed)
            # A scale service may wait for a box service, never the other way round.
            assert profile_of(services[needed]) <= profile_of(service), (name, needed)
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in volumes, (name, source)
        attached = service.get("networks", [])
        for network in attached if isinstance(attached, list) else list(attached):
            assert network in networks, (name, network)


def test_every_accueil_variable_is_a_setting(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name, service in compose["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("ACCUEIL_") and name != "proxy":
                assert variable.removeprefix("ACCUEIL_").lower() in fields, (name, variable)


def test_web_replicas_and_workers_share_redis_and_leave_jobs_to_the_workers(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    web, worker = services["web"]["environment"], services["worker"]["environment"]
    for env in (web, worker, services["migrate"]["environment"]):
        assert env["ACCUEIL_REDIS_URL"].startswith("redis://redis:6379")
        assert env["ACCUEIL_DATABASE_URL"] == services["app"]["environment"]["ACCUEIL_DATABASE_URL"]
        assert env["ACCUEIL_CHROMA_URL"] == "http://chroma:8000"
    assert web["ACCUEIL_JOBS_QUEUE_NAME"] == worker["ACCUEIL_JOBS_QUEUE_NAME"]
    assert web["ACCUEIL_JOBS_IN_PROCESS"] == "false"
    assert web["ACCUEIL_SECRET_KEY"] == worker["ACCUEIL_SECRET_KEY"]  # links signed alike
    Settings(
        _env_file=None,
        **{k.removeprefix("ACCUEIL_").lower(): v for k, v in worker.items() if v != ""},
    )  # every value is valid
    assert "ports" not in services["web"] and "ports" not in services["worker"]
    assert services["web"]["command"][:2] == ["accueil", "serve"]
    assert "upgrade" not in " ".join(services["web"]["command"])  # replicas never migrate
    assert services["migrate"]["command"] == ["accueil", "db", "upgrade"]
    assert services["worker"]["command"] == ["accueil", "worker"]
    assert services["worker"]["healthcheck"] == {"disable": True}  # no HTTP port to probe


def test_the_replicas_trust_the_proxy_and_only_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    proxy_ip = services["proxy"]["networks"]["edge"]["ipv4_address"]
    subnet = compose["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    web = services["web"]["environment"]
    trusted = Settings(_env_file=None, trusted_proxies=web["ACCUEIL_TRUSTED_PROXIES"])
    assert trusted.trusted_proxies == (proxy_ip,)
    assert ipaddress.ip_address(proxy_ip) in ipaddress.ip_network(subnet)
    assert set(services["web"]["networks"]) == {"default", "edge"}
    assert set(services["proxy"]["networks"]) == {"edge"}  # it reaches the replicas only
    assert "ACCUEIL_TRUSTED_PROXIES" not in services["app"]["environment"]


def test_the_caddyfile_balances_over_the_web_replicas(compose: dict[str, Any]) -> None:
    text = "\n".join(line.split("#")[0] for line in CADDYFILE.read_text().splitlines())
    proxy = compose["services"]["proxy"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    upstream = proxy["environment"]["ACCUEIL_WEB_UPSTREAM"]
    assert upstream in compose["services"]
    assert re.search(r"name \{\$ACCUEIL_WEB_UPSTREAM:web\}", text)
    command = compose["services"][upstream]["command"]
    port = command[command.index("--port") + 1]
    assert re.search(rf"^\s*port {port}$", text, re.MULTILINE)
    assert "dynamic a" in text and "flush_interval -1" in text
    assert "trusted_proxies" not in text  # clients' own X-Forwarded-For is not passed on
    assert text.count("{") == text.count("}")
    assert {p.split(":")[-1] for p in proxy["ports"]} == {"443", "80"}


def test_postgresql_accepts_every_process_pool_of_the_default_scale(
    compose: dict[str, Any],
) -> None:
    """Web replicas and workers each keep a pool of connections: the server must take them
    all (with room for the one-shot migration, backups and a psql)."""
    services = compose["services"]
    engine = make_engine("postgresql+psycopg://u:p@127.0.0.1:9/db")  # never connects
    try:
        per_process = engine.pool.size() + engine.pool._max_overflow  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    checkpointer = 4  # app/services/assistant/runtime.py's AsyncConnectionPool max_size
    web, workers = (int(services[n]["deploy"]["replicas"]) for n in ("web", "worker"))
    needed = web * (per_process + checkpointer) + workers * per_process + 10
    command = services["postgres"]["command"]
    setting = next(c for c in command if c.startswith("max_connections="))
    assert int(setting.split("=")[1]) >= needed, (setting, needed)
