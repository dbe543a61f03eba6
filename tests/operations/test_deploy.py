"""The deployment files: docker-compose.yml and the Dockerfile name real paths and settings."""

import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SERVICES = {"ollama", "ollama-pull", "app", "postgres"}
TRIVIAL_COMMANDS = {"", "true", "/bin/true", ":", "exit 0", "echo", "echo ok"}


# --- helpers -----------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _healthcheck_command(test: Any) -> str:
    """The command a compose healthcheck runs, as one string ("" when it runs nothing)."""
    if isinstance(test, str):
        return test.strip()
    assert isinstance(test, list) and test, f"healthcheck test must be a list or string: {test!r}"
    kind, *args = test
    assert kind in {"CMD", "CMD-SHELL"}, f"healthcheck test starts with {kind!r}"
    return " ".join(str(arg) for arg in args).strip()


def _volume_source(entry: Any) -> tuple[str | None, str]:
    """(source, type) of a service volume, short or long syntax."""
    if isinstance(entry, dict):
        return entry.get("source"), entry.get("type", "volume")
    parts = str(entry).split(":")
    if len(parts) == 1:
        return None, "volume"  # anonymous volume
    source = parts[0]
    kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    return source, kind


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


def _exec_or_shell(arguments: str) -> list[str]:
    """The words of a CMD/ENTRYPOINT/COPY in JSON (exec) form or shell form."""
    if arguments.startswith("["):
        words = json.loads(arguments)
        assert all(isinstance(word, str) for word in words)
        return words
    return shlex.split(arguments)


def _copy_sources() -> list[str]:
    sources: list[str] = []
    for keyword, arguments in _dockerfile_instructions():
        if keyword not in {"COPY", "ADD"}:
            continue
        words = _exec_or_shell(arguments)
        flags = [word for word in words if word.startswith("--")]
        if any(flag.startswith("--from") for flag in flags):
            continue  # from another build stage, not from the repository
        paths = [word for word in words if not word.startswith("--")]
        assert len(paths) >= 2, f"{keyword} needs a source and a destination: {arguments}"
        sources.extend(paths[:-1])
    return sources


def _dockerignore_patterns() -> list[str]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")):
            patterns.append(line.lstrip("/").rstrip("/"))
    return patterns


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops ``path`` (or a folder above it) from the build context."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or fnmatch.fnmatchcase(candidate, bare):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(Path(candidate).name, bare):
                return True
    return False


# --- docker-compose.yml ------------------------------------------------------------------


def _default_services() -> dict[str, dict[str, Any]]:
    """The services of a plain `docker compose up` (the `scale` profile's are tested in
    tests/scale/test_compose.py)."""
    return {name: s for name, s in _services().items() if not s.get("profiles")}


def _default_value(value: str) -> str:
    """`${NAME:-default}` as compose resolves it when NAME is unset."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-(.*)\}", value)
    return match.group(1) if match else value


def test_compose_has_exactly_the_four_services() -> None:
    assert set(_default_services()) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_real_healthcheck(name: str) -> None:
    healthcheck = _default_services()[name].get("healthcheck")
    assert isinstance(healthcheck, dict), f"{name} has no healthcheck"
    assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
    test = healthcheck.get("test")
    assert test not in (None, "NONE", ["NONE"]), f"{name} has no healthcheck test"
    command = _healthcheck_command(test)
    assert command.lower() not in TRIVIAL_COMMANDS, f"{name} healthcheck is trivial: {command!r}"
    assert len(command.split()) >= 2 or command.startswith(("ollama", "pg_isready")), command


def test_healthchecks_probe_what_each_service_serves() -> None:
    services = _default_services()
    checks = {name: _healthcheck_command(s["healthcheck"]["test"]) for name, s in services.items()}
    assert "ollama list" in checks["ollama"]
    assert "ollama list" in checks["ollama-pull"] and "MODEL" in checks["ollama-pull"]
    assert "pg_isready" in checks["postgres"]
    assert "urllib" in checks["app"] and "http://127.0.0.1:8000/health" in checks["app"]


def test_named_volumes_are_declared() -> None:
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for entry in service.get("volumes") or []:
            source, kind = _volume_source(entry)
            if kind == "volume" and source:
                used.add(source)
                assert source in declared, f"{name} uses the undeclared volume {source!r}"
    assert {"ollama", "postgres", "app-data"} <= used
    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_data_lives_in_named_volumes() -> None:
    mounts = {}
    for name, service in _services().items():
        for entry in service.get("volumes") or []:
            _, kind = _volume_source(entry)
            target = entry["target"] if isinstance(entry, dict) else str(entry).split(":")[1]
            mounts[(name, target)] = kind
    assert mounts[("ollama", "/root/.ollama")] == "volume"
    assert mounts[("postgres", "/var/lib/postgresql/data")] == "volume"
    assert mounts[("app", "/data")] == "volume"


def test_ollama_reserves_the_gpu() -> None:
    devices = _services()["ollama"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        device.get("driver") == "nvidia"
        and "gpu" in device.get("capabilities", [])
        and (device.get("count") == "all" or int(device.get("count", 0)) >= 1)
        for device in devices
    ), devices


def test_app_waits_for_its_dependencies() -> None:
    depends_on = _services()["app"]["depends_on"]
    assert isinstance(depends_on, dict), "app.depends_on needs conditions (long syntax)"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["ollama"]["condition"] == "service_healthy"
    assert depends_on["ollama-pull"]["condition"] == "service_completed_successfully"


def test_ollama_pull_is_a_one_shot_that_pulls_both_models() -> None:
    services = _services()
    pull = services["ollama-pull"]
    assert pull["image"].split(":")[0] == services["ollama"]["image"].split(":")[0]
    assert pull["image"].startswith("ollama/ollama")
    assert pull["restart"] == "no"  # a YAML `no` would be False: it must be quoted
    assert pull["depends_on"]["ollama"]["condition"] == "service_healthy"
    script = " ".join(pull.get("entrypoint", [])) + " " + " ".join(pull.get("command", []))
    assert script.count("ollama pull") == 2
    env = _environment(pull)
    assert urlsplit(env["OLLAMA_HOST"]).hostname == "ollama"
    assert "$$LLM_MODEL" in script and "$$EMBEDDING_MODEL" in script
    assert "qwen3:8b" in env["LLM_MODEL"] and "bge-m3" in env["EMBEDDING_MODEL"]


def test_app_uses_the_models_that_are_pulled() -> None:
    services = _services()
    pulled = _environment(services["ollama-pull"])
    app = _environment(services["app"])
    assert app["ACCUEIL_LLM_MODEL"] == pulled["LLM_MODEL"]
    assert app["ACCUEIL_EMBEDDING_MODEL"] == pulled["EMBEDDING_MODEL"]
    assert _default_value(app["ACCUEIL_LLM_PROVIDER"]) == "ollama"


def test_ollama_context_length_matches_the_app() -> None:
    services = _services()
    ollama = _environment(services["ollama"])
    app = _environment(services["app"])
    assert "OLLAMA_KEEP_ALIVE" in ollama
    assert ollama["OLLAMA_CONTEXT_LENGTH"] == app["ACCUEIL_LLM_NUM_CTX"]


def test_app_reaches_the_other_services_by_name() -> None:
    services = _services()
    app = _environment(services["app"])
    postgres = _environment(services["postgres"])
    database = app["ACCUEIL_DATABASE_URL"]
    assert database.startswith("postgresql+psycopg://")
    assert f"@postgres:5432/{postgres['POSTGRES_DB']}" in database
    assert f"//{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@" in database
    assert urlsplit(app["ACCUEIL_OLLAMA_URL"]).hostname == "ollama"
    assert app["ACCUEIL_DATA_DIR"] == "/data"
    assert "ACCUEIL_SECRET_KEY" in app and "ACCUEIL_SECURE_COOKIES" in app


def test_app_env_vars_are_settings_fields() -> None:
    env = _environment(_services()["app"])
    prefix = Settings.model_config["env_prefix"]
    names = [name for name in env if name.startswith(prefix)]
    assert len(names) >= 8
    unknown = [name for name in names if name[len(prefix) :].lower() not in Settings.model_fields]
    assert not unknown, f"not fields of app.config.settings.Settings: {unknown}"


def test_app_publishes_port_8000() -> None:
    ports = _services()["app"]["ports"]
    assert any(str(port).rsplit(":", 1)[-1] == "8000" for port in ports), ports
    assert any("127.0.0.1" in str(port) for port in ports), "publish on loopback by default"


def test_local_paths_exist() -> None:
    for name, service in _services().items():
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file()
        for entry in service.get("volumes") or []:
            source, kind = _volume_source(entry)
            if kind == "bind" and source and not source.startswith(("/", "~")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} is missing"
        for env_file in service.get("env_file") or []:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            required = isinstance(env_file, str) or env_file.get("required", True)
            assert not required or (ROOT / path).exists(), f"{name}: env_file {path} is missing"
    assert _services()["app"]["build"]["context"] == "."


def test_compose_names_no_urls_outside_its_own_network() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    hosts = {urlsplit(url).hostname for url in re.findall(r"[a-z+]+://[^\s\"']+", text)}
    assert hosts <= {"ollama", "postgres", "redis", "chroma", "127.0.0.1"}, hosts


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_base_and_uv() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert any('"uv==0.13.8"' in run or "uv==0.13.8" in run for run in runs)
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) == 2 and all("--frozen" in s and "--no-dev" in s for s in syncs)
    assert "--no-install-project" in syncs[0]


def test_dependencies_install_before_the_source_is_copied() -> None:
    instructions = _dockerfile_instructions()
    first_sync = next(i for i, (k, a) in enumerate(instructions) if k == "RUN" and "uv sync" in a)
    before = [a for k, a in instructions[:first_sync] if k == "COPY"]
    assert len(before) == 1 and set(_exec_or_shell(before[0])[:-1]) == {"pyproject.toml", "uv.lock"}


def test_dockerfile_copy_sources_exist() -> None:
    sources = _copy_sources()
    for package in ("app", "agents", "mcp_servers", "models", "prompts"):
        assert package in sources
    for source in sources:
        if any(char in source for char in "*?["):
            assert list(ROOT.glob(source)), f"COPY {source} matches nothing"
        else:
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    patterns = _dockerignore_patterns()
    for excluded in (".venv", ".tools", "data", ".git"):
        assert _ignored(excluded, patterns), f".dockerignore lets {excluded} in"
    assert _ignored("app/__pycache__/main.cpython-311.pyc", patterns)
    for source in _copy_sources():
        assert not _ignored(source, patterns), f".dockerignore drops COPY source {source}"


def test_dockerfile_healthcheck_user_and_command() -> None:
    instructions = _dockerfile_instructions()
    healthchecks = [a for k, a in instructions if k == "HEALTHCHECK"]
    assert healthchecks and healthchecks[-1].upper() != "NONE"
    assert "http://127.0.0.1:8000/health" in healthchecks[-1]
    assert " CMD " in f" {healthchecks[-1]} "
    users = [a for k, a in instructions if k == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert ("VOLUME", '["/data"]') in instructions or ("VOLUME", "/data") in instructions
    assert ("EXPOSE", "8000") in instructions
    commands = [_exec_or_shell(a) for k, a in instructions if k in {"CMD", "ENTRYPOINT"}]
    started = " ".join(" ".join(words) for words in commands)
    assert "accueil db upgrade" in started
    assert "accueil serve --host 0.0.0.0 --port 8000" in started
    assert started.index("accueil db upgrade") < started.index("accueil serve")
