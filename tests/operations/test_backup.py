"""`accueil backup` / `accueil restore`: a restored box finds every record, passage, conversation
and signed link; a tampered archive or a non-empty target is refused with nothing restored."""

import io
import shutil
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from app.cli import cli
from app.config.settings import Settings, get_settings
from app.main import create_app
from app.services.knowledge import library as knowledge
from app.services.operations.backup import PG_MEMBER, SQLITE_MEMBER, read_manifest
from app.services.preconsultation import links as pc
from models.appointments import Appointment
from models.audit import AuditEvent
from models.db import make_engine
from models.patients import Patient
from tests.conftest import PG_URL, login
from tests.support.knowledge_files import HOURS, MARKDOWN
from tests.support.practice import ACTOR, add_patient
from tests.support.preconsultation import book

runner = CliRunner()
THREAD = "backup-thread-1"


def _settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        secret_key=None,  # the key lives in the data directory, so the backup carries it
        ollama_url="http://127.0.0.1:9",
        health_probe_timeout_seconds=0.2,
        jobs_in_process=False,
    )


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    get_settings.cache_clear()
    monkeypatch.delenv("ACCUEIL_SECRET_KEY", raising=False)
    monkeypatch.setenv("ACCUEIL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ACCUEIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ACCUEIL_JOBS_IN_PROCESS", "false")


def _checkpoint_config() -> dict:
    return {"configurable": {"thread_id": THREAD, "checkpoint_ns": ""}}


def _write_conversation(settings: Settings) -> None:
    """One checkpoint where the app keeps conversations (SQLite file or PostgreSQL)."""
    from langgraph.checkpoint.base import empty_checkpoint

    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": ["Bonjour"]}
    checkpoint["channel_versions"] = {"messages": "1"}
    if PG_URL:
        from langgraph.checkpoint.postgres import PostgresSaver
        from sqlalchemy.engine import make_url

        conn = make_url(settings.database_url).set(drivername="postgresql")
        with PostgresSaver.from_conn_string(conn.render_as_string(hide_password=False)) as saver:
            saver.setup()
            saver.put(_checkpoint_config(), checkpoint, {}, {"messages": "1"})
    else:
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = settings.data_dir / "conversations.sqlite"
        with SqliteSaver.from_conn_string(str(path)) as saver:
            saver.put(_checkpoint_config(), checkpoint, {}, {"messages": "1"})


def _read_conversation(settings: Settings):
    if PG_URL:
        from langgraph.checkpoint.postgres import PostgresSaver
        from sqlalchemy.engine import make_url

        conn = make_url(settings.database_url).set(drivername="postgresql")
        with PostgresSaver.from_conn_string(conn.render_as_string(hide_password=False)) as saver:
            return saver.get_tuple(_checkpoint_config())
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = settings.data_dir / "conversations.sqlite"
    assert path.is_file()
    with SqliteSaver.from_conn_string(str(path)) as saver:
        return saver.get_tuple(_checkpoint_config())


@pytest.fixture
def seeded(database_url: str, tmp_path: Path, staff) -> tuple[Settings, str]:
    """A practice with patients, an appointment and its link, a document, a conversation."""
    settings = _settings(database_url, tmp_path / "data")
    engine = make_engine(database_url)
    with Session(engine, expire_on_commit=False) as db:
        booked = book(db)
        add_patient(db, "Lefèvre", "Paul")
        sent = pc.send_preconsultation(
            db, ACTOR, booked.appointment_id, secret=settings.resolved_secret_key()
        )
        knowledge.ingest(db, ACTOR, settings, "livret.md", MARKDOWN)
        db.commit()
    engine.dispose()
    _write_conversation(settings)
    return settings, sent.path


def _counts(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    with Session(engine) as db:
        counts = {
            table.__name__: db.exec(select(func.count()).select_from(table)).one()
            for table in (Patient, Appointment, AuditEvent)
        }
        counts["audit_max"] = db.exec(select(func.max(AuditEvent.id))).one() or 0
    engine.dispose()
    return counts


@pytest.fixture
def target_url(empty_database_url: str, tmp_path: Path) -> str:
    """Where the restore goes: an empty PostgreSQL database, or a SQLite file (not there yet)."""
    if PG_URL:
        if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
            pytest.skip("pg_dump / pg_restore not on PATH: the PostgreSQL backup needs them")
        return empty_database_url
    return f"sqlite:///{tmp_path / 'restored' / 'data' / 'accueil.db'}"


def _backup(monkeypatch: pytest.MonkeyPatch, settings: Settings, archive: Path) -> None:
    _env(monkeypatch, settings)
    result = runner.invoke(cli, ["backup", "--output", str(archive)])
    assert result.exit_code == 0, result.output
    assert "Sauvegarde écrite" in result.output


def _restore(monkeypatch, archive: Path, target: Settings, *extra: str):
    _env(monkeypatch, target)
    monkeypatch.setenv("ACCUEIL_DATA_DIR", "/nonexistent-default")  # --data-dir wins
    result = runner.invoke(
        cli, ["restore", str(archive), "--data-dir", str(target.data_dir), *extra]
    )
    get_settings.cache_clear()
    return result


def test_restore_into_an_empty_data_directory_finds_everything(
    seeded, target_url: str, tmp_path: Path, monkeypatch
) -> None:
    settings, link = seeded
    before = _counts(settings.database_url)
    archive = tmp_path / "sauvegarde.tar.gz"
    _backup(monkeypatch, settings, archive)

    manifest = read_manifest(archive)
    names = {f.path for f in manifest.files}
    assert (PG_MEMBER if PG_URL else SQLITE_MEMBER) in names
    assert "data/secret_key" in names
    assert any(n.startswith("data/chroma/") for n in names)
    assert any(n.startswith("data/knowledge/") for n in names)
    assert ("data/conversations.sqlite" in names) is not bool(PG_URL)
    assert manifest.alembic_revision and manifest.app_version

    target = _settings(target_url, tmp_path / "restored" / "data")
    result = _restore(monkeypatch, archive, target)
    assert result.exit_code == 0, result.output
    assert "restaurée" in result.output and "chroma" in result.output

    assert _counts(target_url) == before
    assert (target.data_dir / "secret_key").read_text() == settings.resolved_secret_key()
    found = _read_conversation(target)
    assert found is not None and found.checkpoint["channel_values"]["messages"] == ["Bonjour"]

    app = create_app(target)
    try:
        with TestClient(app) as client:
            # The link signed before the backup still opens: same secret key, same rows.
            opened = client.get(link, headers={"accept": "text/html"})
            assert opened.status_code == 200 and "date de naissance" in opened.text.lower()
            assert login(client, "secretaire").status_code == 303
            patients = client.get("/api/patients", params={"q": "lefevre"}).json()
            assert [p["first_name"] for p in patients] == ["Paul"]
            hit = client.get("/connaissances", params={"q": "horaires d'ouverture du cabinet"})
            assert hit.status_code == 200 and HOURS.split(" du ")[0] in hit.text
            assert "livret" in hit.text.lower()
    finally:
        app.state.engine.dispose()
    after = _counts(target_url)
    assert after["audit_max"] > before["audit_max"]  # the trail goes on from where it was


def _tamper(archive: Path, out: Path) -> None:
    """Same manifest, one knowledge file's content changed."""
    with tarfile.open(archive, "r:gz") as source, tarfile.open(out, "w:gz") as target:
        for member in source:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("data/knowledge/"):
                data = data.replace(b"30 euros", b"90 euros")
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))


def test_a_tampered_archive_restores_nothing(
    seeded, target_url: str, tmp_path: Path, monkeypatch
) -> None:
    settings, _ = seeded
    archive = tmp_path / "sauvegarde.tar.gz"
    _backup(monkeypatch, settings, archive)
    tampered = tmp_path / "altere.tar.gz"
    _tamper(archive, tampered)

    target = _settings(target_url, tmp_path / "restored" / "data")
    result = _restore(monkeypatch, tampered, target)
    assert result.exit_code == 1
    assert "altérée" in result.output and "data/knowledge/" in result.output
    assert not target.data_dir.exists()
    assert not list((tmp_path / "restored").glob(".accueil-restore-*"))
    if PG_URL:
        from sqlalchemy import create_engine, inspect

        engine = create_engine(target_url)
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
        engine.dispose()

    garbage = tmp_path / "pas-une-sauvegarde.tar.gz"
    garbage.write_bytes(b"not a tar file")
    result = _restore(monkeypatch, garbage, target)
    assert result.exit_code == 1 and "pas une sauvegarde lisible" in result.output


def test_a_non_empty_target_is_refused_without_force(
    seeded, target_url: str, tmp_path: Path, monkeypatch
) -> None:
    settings, _ = seeded
    archive = tmp_path / "sauvegarde.tar.gz"
    _backup(monkeypatch, settings, archive)
    target = _settings(target_url, tmp_path / "restored" / "data")
    target.data_dir.mkdir(parents=True)
    (target.data_dir / "notes.txt").write_text("à garder")

    result = _restore(monkeypatch, archive, target)
    assert result.exit_code == 1 and "n'est pas vide" in result.output
    assert sorted(p.name for p in target.data_dir.iterdir()) == ["notes.txt"]

    forced = _restore(monkeypatch, archive, target, "--force")
    assert forced.exit_code == 0, forced.output
    assert (target.data_dir / "notes.txt").read_text() == "à garder"
    assert _counts(target_url)["Patient"] == _counts(settings.database_url)["Patient"]
