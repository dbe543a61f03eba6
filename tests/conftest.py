"""Shared fixtures: a migrated database per test (SQLite or PostgreSQL), the app, users."""

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import profiles
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from app.config.settings import Settings
from app.main import create_app
from app.services.identity import users
from app.services.identity.users import create_user
from models.db import make_engine
from models.migrate import upgrade
from models.users import Role
from tests.support import network_guard
from tests.support.browser import browser_page, live_server  # noqa: F401  (fixtures)
from tests.support.jobs_helpers import job_queue  # noqa: F401  (fixture)
from tests.support.notification_helpers import smtp_server  # noqa: F401  (fixture)

PG_URL = os.environ.get("ACCUEIL_TEST_DATABASE_URL", "")
PASSWORD = "correct-horse-battery"


def _pg_admin(url: str) -> Engine:
    return create_engine(make_url(url), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session", autouse=True)
def no_egress() -> Iterator[list[object]]:
    """The whole suite runs with outbound connections blocked except loopback."""
    attempts = network_guard.install()
    yield attempts
    network_guard.uninstall()
    assert attempts == [], f"connections off the box were attempted: {attempts}"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2's cheapest profile for the whole suite: the strong one costs 64 MiB and about
    0.1 s per hash or check, and the suite makes thousands (three accounts per test, a
    login or two each). What is tested is who may log in, not argon2's cost; production
    keeps the strong profile (``tests/identity/test_password_hashing.py``)."""
    users.use_hash_profile(profiles.CHEAPEST)
    yield
    users.use_hash_profile(users.STRONG_PROFILE)


@pytest.fixture
def no_network() -> list[object]:
    """The off-box connection attempts the suite-wide guard blocked (a test may clear the
    ones it made on purpose)."""
    return network_guard.attempts


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated once from empty; each test gets a copy of it."""
    if PG_URL:
        name = f"accueil_tpl_{uuid.uuid4().hex[:10]}"
        admin = _pg_admin(PG_URL)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url


@pytest.fixture
def database_url(template_database: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if PG_URL:
        name = f"accueil_t_{uuid.uuid4().hex[:12]}"
        template = make_url(template_database).database
        admin = _pg_admin(PG_URL)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        source = Path(make_url(template_database).database or "")
        target = tmp_path / "accueil.db"
        shutil.copyfile(source, target)
        yield f"sqlite:///{target}"


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, for tests of migrations and the CLI."""
    if PG_URL:
        name = f"accueil_e_{uuid.uuid4().hex[:12]}"
        admin = _pg_admin(PG_URL)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        yield f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-not-for-production",
        ollama_url="http://127.0.0.1:9",  # nothing listens: the LLM is "down"
        health_probe_timeout_seconds=0.2,
        jobs_in_process=False,  # no consumer thread per app: tests run jobs with jobs_helpers
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@dataclass
class Staff:
    secretary: str = "secretaire"
    physician: str = "medecin"
    admin: str = "admin"


@pytest.fixture
def staff(db: Session) -> Staff:
    """One account per role, all with the password ``PASSWORD``."""
    for username, role in (
        ("secretaire", Role.secretary),
        ("medecin", Role.physician),
        ("admin", Role.admin),
    ):
        create_user(db, username=username, full_name=username.title(), role=role, password=PASSWORD)
    db.commit()
    return Staff()


@pytest.fixture
def app(settings: Settings):
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


def csrf_from(client: TestClient, path: str = "/login") -> str:
    """Fetch a page and read the CSRF token of its forms."""
    html = client.get(path, headers={"accept": "text/html"}).text
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def login(client: TestClient, username: str, password: str = PASSWORD):
    token = csrf_from(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )


@pytest.fixture
def logged_in(client: TestClient, staff: Staff) -> Callable[[str], TestClient]:
    """Log the shared client in as a username; returns the client."""

    def _as(username: str) -> TestClient:
        client.headers.pop("x-csrf-token", None)
        client.cookies.clear()
        response = login(client, username)
        assert response.status_code == 303, response.text
        client.headers["x-csrf-token"] = client.get("/api/csrf").json()["csrf_token"]
        return client

    return _as
