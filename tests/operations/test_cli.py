"""The ``accueil`` command line: migrations, accounts and the demo practice."""

import itertools

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config.settings import get_settings

runner = CliRunner()


def _env(tmp_path, database_url: str) -> dict[str, str]:
    get_settings.cache_clear()
    return {
        "ACCUEIL_DATA_DIR": str(tmp_path / "data"),
        "ACCUEIL_SECRET_KEY": "x" * 32,
        "ACCUEIL_DATABASE_URL": database_url,
    }


@pytest.mark.slow  # the demo seed embeds the two shipped handbooks
def test_upgrade_seed_and_user_create_on_an_empty_database(
    tmp_path, monkeypatch, empty_database_url: str
) -> None:
    for key, value in _env(tmp_path, empty_database_url).items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["db", "check"]).exit_code == 0

    seeded = runner.invoke(cli, ["demo", "seed", "--patients", "40"])
    assert seeded.exit_code == 0, seeded.output
    assert "3 praticiens, 40 patients" in seeded.output
    assert seeded.output.count("Base de connaissances : « ") == 2  # the two shipped handbooks
    passwords = {
        line.split()[0]: line.split()[1]
        for line in seeded.output.splitlines()
        if line.startswith("  ")
    }
    assert set(passwords) == {"secretaire", "medecin", "admin"}

    again = runner.invoke(cli, ["demo", "seed"])
    assert again.exit_code == 0 and "déjà présentes" in again.output

    created = runner.invoke(
        cli,
        [
            "user",
            "create",
            "--username",
            "Julie",
            "--role",
            "secretary",
            "--password",
            "un-mot-de-passe-long",
        ],
    )
    assert created.exit_code == 0 and "julie" in created.output
    duplicate = runner.invoke(
        cli,
        [
            "user",
            "create",
            "--username",
            "julie",
            "--role",
            "secretary",
            "--password",
            "un-mot-de-passe-long",
        ],
    )
    assert duplicate.exit_code == 1 and "existe déjà" in duplicate.output
    weak = runner.invoke(
        cli, ["user", "create", "--username", "paul", "--role", "admin", "--password", "court"]
    )
    assert weak.exit_code == 1 and "au moins 10 caractères" in weak.output
    get_settings.cache_clear()

    # The printed demo passwords really log in.
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import login

    with TestClient(create_app()) as client:
        assert login(client, "medecin", passwords["medecin"]).status_code == 303
        assert client.get("/", headers={"accept": "text/html"}).status_code == 200
    get_settings.cache_clear()


@pytest.mark.slow  # the demo seed embeds the two shipped handbooks
def test_demo_agenda_respects_working_hours_and_never_overlaps(
    tmp_path, monkeypatch, empty_database_url: str
) -> None:
    from sqlmodel import Session, select

    from models.appointments import Appointment
    from models.db import make_engine
    from models.practice import WorkingHours

    env = _env(tmp_path, empty_database_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["demo", "seed", "--patients", "30"]).exit_code == 0
    settings = get_settings()
    engine = make_engine(env["ACCUEIL_DATABASE_URL"])
    with Session(engine) as session:
        hours = session.exec(select(WorkingHours)).all()
        appointments = session.exec(select(Appointment)).all()
    engine.dispose()
    get_settings.cache_clear()
    assert len(appointments) > 100
    by_practitioner: dict[int, list[Appointment]] = {}
    for appointment in appointments:
        start = appointment.starts_at.astimezone(settings.tz)
        end = appointment.ends_at.astimezone(settings.tz)
        assert any(
            h.practitioner_id == appointment.practitioner_id
            and h.weekday == start.weekday()
            and h.start_time <= start.time()
            and end.time() <= h.end_time
            for h in hours
        ), appointment
        by_practitioner.setdefault(appointment.practitioner_id, []).append(appointment)
    for items in by_practitioner.values():
        items.sort(key=lambda a: a.starts_at)
        for first, second in itertools.pairwise(items):
            assert first.ends_at <= second.starts_at


def test_mcp_client_create_with_areas_and_read_only(
    tmp_path, monkeypatch, empty_database_url: str
) -> None:
    from sqlmodel import Session, select

    from models.db import make_engine
    from models.mcp_clients import McpClient

    for key, value in _env(tmp_path, empty_database_url).items():
        monkeypatch.setenv(key, value)
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    made = runner.invoke(
        cli, ["mcp", "client-create", "Lecteur", "--area", "knowledge", "--read-only"]
    )
    assert made.exit_code == 0, made.output
    assert "Jeton (affiché une seule fois)" in made.output
    full = runner.invoke(cli, ["mcp", "client-create", "Complet"])
    assert full.exit_code == 0, full.output
    wrong = runner.invoke(cli, ["mcp", "client-create", "Faux", "--area", "compta"])
    assert wrong.exit_code == 1
    engine = make_engine(empty_database_url)
    with Session(engine) as session:
        clients = {c.name: c for c in session.exec(select(McpClient)).all()}
    engine.dispose()
    assert set(clients) == {"Lecteur", "Complet"}
    assert (clients["Lecteur"].areas, clients["Lecteur"].can_write) == (["knowledge"], False)
    assert clients["Complet"].can_write and len(clients["Complet"].areas) == 4
