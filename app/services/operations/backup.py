"""Backup and restore of a whole installation: the database, the vector store, the uploaded
knowledge files, the conversations, the job queue and the secret key, in one tar.gz archive
with a manifest of SHA-256 hashes checked before anything is restored."""

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from app.config.settings import Settings
from app.services.core.errors import Conflict, DomainError, InvalidInput

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/accueil.db"
PG_MEMBER = "database/accueil.pgdump"
DATA_PREFIX = "data/"
# What of the data directory is saved; the speech models (data/models) are rebuilt from the
# installed packages, so they are left out.
DATA_ITEMS = ("chroma", "knowledge", "conversations.sqlite", "jobs.db", "secret_key")
SQLITE_MAGIC = b"SQLite format 3\x00"
CHUNK = 1024 * 1024


class BackupError(DomainError):
    """A backup or a restore could not be carried out (missing tool, unreachable database)."""

    status_code = 503


class TamperedArchive(InvalidInput):
    """The archive does not match its manifest: nothing was restored."""


class TargetNotEmpty(Conflict):
    """The restore target already holds data."""


@dataclass(frozen=True)
class ArchivedFile:
    """One file of the archive, as listed in the manifest."""

    path: str
    sha256: str
    size: int


@dataclass
class Manifest:
    """What an archive holds and where it comes from."""

    app_version: str
    alembic_revision: str | None
    created_at: str
    database: str  # "sqlite" or "postgresql"
    files: list[ArchivedFile] = field(default_factory=list)
    format: int = FORMAT

    def to_json(self) -> bytes:
        body = {
            "format": self.format,
            "app": "accueil",
            "app_version": self.app_version,
            "alembic_revision": self.alembic_revision,
            "created_at": self.created_at,
            "database": self.database,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }
        return json.dumps(body, ensure_ascii=False, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "Manifest":
        try:
            body = json.loads(raw)
            files = [
                ArchivedFile(str(f["path"]), str(f["sha256"]), int(f["size"]))
                for f in body["files"]
            ]
            manifest = cls(
                app_version=str(body["app_version"]),
                alembic_revision=body.get("alembic_revision"),
                created_at=str(body["created_at"]),
                database=str(body["database"]),
                files=files,
                format=int(body["format"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TamperedArchive(
                "Le manifeste de la sauvegarde est illisible.",
                "The backup's manifest is unreadable.",
            ) from exc
        if manifest.format != FORMAT or manifest.database not in ("sqlite", "postgresql"):
            raise TamperedArchive("Format de sauvegarde inconnu.", "Unknown backup format.")
        return manifest


@dataclass(frozen=True)
class BackupReport:
    """The archive written and what it holds."""

    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class RestoreReport:
    """What was restored, and where."""

    manifest: Manifest
    data_dir: Path
    database: str  # the file or the database name restored into
    restored: list[str]


def app_version() -> str:
    try:
        return metadata.version("accueil")
    except metadata.PackageNotFoundError:
        return "0"


def _is_postgres(url: URL) -> bool:
    return url.get_backend_name() == "postgresql"


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError(
            "Une base SQLite en mémoire ne peut pas être sauvegardée.",
            "An in-memory SQLite database cannot be backed up.",
        )
    return Path(url.database)


def alembic_revision(database_url: str) -> str | None:
    """The schema revision the database is at (None when it has no schema)."""
    engine = create_engine(database_url, hide_parameters=True)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        raise BackupError(
            "La base de données est injoignable.", "The database cannot be reached."
        ) from exc
    finally:
        engine.dispose()


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"L'outil « {name} » de PostgreSQL est introuvable : installez postgresql-client.",
            f"PostgreSQL's '{name}' tool was not found: install postgresql-client.",
        )
    return found


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    # The command is ours (pg_dump or pg_restore found on PATH); no shell is involved.
    result = subprocess.run(  # noqa: S603
        command, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        raise BackupError(f"{what} a échoué : {detail[0]}", f"{what} failed: {detail[0]}")


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite file (the sqlite3 backup API)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _data_files(data_dir: Path) -> Iterator[tuple[Path, str]]:
    """The data directory's files to save, with their name in the archive."""
    for item in DATA_ITEMS:
        path = data_dir / item
        if path.is_file():
            yield path, f"{DATA_PREFIX}{item}"
        elif path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and not found.is_symlink():
                    yield found, DATA_PREFIX + found.relative_to(data_dir).as_posix()


def _stage(settings: Settings, staging: Path) -> tuple[str, list[tuple[Path, str]]]:
    """Copy everything to save into ``staging``; returns the database kind and the files."""
    url = make_url(settings.resolved_database_url)
    files: list[tuple[Path, str]] = []
    if _is_postgres(url):
        pg_dump = _pg_tool("pg_dump")
        dump = staging / PG_MEMBER
        dump.parent.mkdir(parents=True)
        conn, env = _libpq(url)
        _run(
            [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}", conn],
            env,
            "pg_dump",
        )
        files.append((dump, PG_MEMBER))
        kind = "postgresql"
    else:
        source = _sqlite_path(url)
        if not source.is_file():
            raise BackupError(
                f"Base de données introuvable : {source}.", f"Database not found: {source}."
            )
        _copy_sqlite(source, staging / SQLITE_MEMBER)
        files.append((staging / SQLITE_MEMBER, SQLITE_MEMBER))
        kind = "sqlite"
    for path, name in _data_files(settings.data_dir):
        copy = staging / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if _is_sqlite(path):
            _copy_sqlite(path, copy)
        else:
            shutil.copyfile(path, copy)
        files.append((copy, name))
    return kind, files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def default_output(now: datetime | None = None) -> Path:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return Path(f"accueil-sauvegarde-{moment}.tar.gz")


def create_backup(settings: Settings, output: Path | None = None) -> BackupReport:
    """Write one tar.gz archive of the installation (safe while the app runs)."""
    output = output or default_output()
    revision = alembic_revision(settings.resolved_database_url)
    with tempfile.TemporaryDirectory(prefix="accueil-backup-") as tmp:
        kind, files = _stage(settings, Path(tmp))
        manifest = Manifest(
            app_version=app_version(),
            alembic_revision=revision,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            database=kind,
            files=[ArchivedFile(name, _sha256(path), path.stat().st_size) for path, name in files],
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".partiel")
        with tarfile.open(partial, "w:gz") as archive:
            raw = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(raw)
            info.mtime = int(datetime.now(UTC).timestamp())
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(raw))
            for path, name in files:
                info = archive.gettarinfo(str(path), arcname=name)
                info.mode = 0o600
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
        partial.chmod(0o600)
        partial.replace(output)
    return BackupReport(output, manifest)


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        not path.is_absolute()
        and ".." not in path.parts
        and len(path.parts) >= 2
        and (name in (SQLITE_MEMBER, PG_MEMBER) or name.startswith(DATA_PREFIX))
        and path.parts[1] in (*DATA_ITEMS, "accueil.db", "accueil.pgdump")
    )


def _tampered(detail_fr: str, detail_en: str) -> TamperedArchive:
    return TamperedArchive(
        f"Sauvegarde altérée ou incomplète ({detail_fr}) : rien n'a été restauré.",
        f"Tampered or incomplete backup ({detail_en}): nothing was restored.",
    )


def _unpack_verified(archive_path: Path, staging: Path) -> Manifest:
    """Unpack into ``staging`` and check every file against the manifest."""
    try:
        archive = tarfile.open(archive_path, "r:gz")  # noqa: SIM115  (closed below)
    except (OSError, tarfile.TarError) as exc:
        raise TamperedArchive(
            "Ce fichier n'est pas une sauvegarde lisible.", "This file is not a readable backup."
        ) from exc
    manifest: Manifest | None = None
    seen: dict[str, str] = {}
    try:
        with archive:
            for member in archive:
                if member.name == MANIFEST and member.isfile() and manifest is None:
                    handle = archive.extractfile(member)
                    manifest = Manifest.from_json(handle.read() if handle else b"")
                    continue
                if not member.isfile() or not _safe_name(member.name) or member.name in seen:
                    raise _tampered(
                        f"entrée inattendue {member.name!r}", f"unexpected entry {member.name!r}"
                    )
                target = staging / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                source = archive.extractfile(member)
                with target.open("wb") as out:
                    while source is not None and (block := source.read(CHUNK)):
                        digest.update(block)
                        out.write(block)
                seen[member.name] = digest.hexdigest()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise _tampered("archive tronquée", "truncated archive") from exc
    if manifest is None:
        raise _tampered("manifeste absent", "no manifest")
    listed = {f.path: f.sha256 for f in manifest.files}
    if set(listed) != set(seen):
        raise _tampered("fichiers manquants ou en trop", "missing or extra files")
    for name, sha in listed.items():
        if seen[name] != sha:
            raise _tampered(f"empreinte différente pour {name}", f"hash mismatch for {name}")
    if (SQLITE_MEMBER if manifest.database == "sqlite" else PG_MEMBER) not in listed:
        raise _tampered("base de données absente", "no database")
    return manifest


def read_manifest(archive_path: Path) -> Manifest:
    """Check an archive whole and return its manifest (nothing is restored)."""
    with tempfile.TemporaryDirectory(prefix="accueil-verify-") as tmp:
        return _unpack_verified(archive_path, Path(tmp))


def _not_empty(path: Path) -> bool:
    return path.exists() and (path.is_file() or any(path.iterdir()))


def _pg_has_tables(url: URL) -> bool:
    engine = create_engine(url, hide_parameters=True)
    try:
        with engine.connect() as conn:
            return bool(inspect(conn).get_table_names())
    except SQLAlchemyError as exc:
        raise BackupError(
            "La base PostgreSQL cible est injoignable (créez-la vide d'abord).",
            "The target PostgreSQL database cannot be reached (create it empty first).",
        ) from exc
    finally:
        engine.dispose()


def _check_targets(settings: Settings, manifest: Manifest, force: bool) -> None:
    url = make_url(settings.resolved_database_url)
    if manifest.database == "postgresql" and not _is_postgres(url):
        raise InvalidInput(
            "Cette sauvegarde vient de PostgreSQL : configurez ACCUEIL_DATABASE_URL vers une "
            "base PostgreSQL vide.",
            "This backup comes from PostgreSQL: set ACCUEIL_DATABASE_URL to an empty "
            "PostgreSQL database.",
        )
    if manifest.database == "sqlite" and _is_postgres(url):
        raise InvalidInput(
            "Cette sauvegarde vient de SQLite : la base configurée est PostgreSQL.",
            "This backup comes from SQLite: the configured database is PostgreSQL.",
        )
    if force:
        return
    if _not_empty(settings.data_dir):
        raise TargetNotEmpty(
            f"Le dossier de données {settings.data_dir} n'est pas vide : restaurez dans un "
            "dossier vide, ou utilisez --force pour le remplacer.",
            f"The data directory {settings.data_dir} is not empty: restore into an empty "
            "directory, or use --force to replace it.",
        )
    if _is_postgres(url):
        if _pg_has_tables(url):
            raise TargetNotEmpty(
                f"La base PostgreSQL {url.database} n'est pas vide (--force pour la remplacer).",
                f"The PostgreSQL database {url.database} is not empty (--force to replace it).",
            )
    elif _not_empty(_sqlite_path(url)):
        raise TargetNotEmpty(
            f"La base {_sqlite_path(url)} existe déjà (--force pour la remplacer).",
            f"The database {_sqlite_path(url)} already exists (--force to replace it).",
        )


def _restore_database(settings: Settings, manifest: Manifest, staging: Path, force: bool) -> str:
    url = make_url(settings.resolved_database_url)
    if manifest.database == "postgresql":
        pg_restore = _pg_tool("pg_restore")
        conn, env = _libpq(url)
        command = [
            pg_restore,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--dbname={conn}",
        ]
        if force:
            command += ["--clean", "--if-exists"]
        _run([*command, str(staging / PG_MEMBER)], env, "pg_restore")
        return str(url.database)
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.move(str(staging / SQLITE_MEMBER), target)
    return str(target)


def _restore_data(data_dir: Path, staging: Path) -> list[str]:
    restored: list[str] = []
    data_dir.mkdir(parents=True, exist_ok=True)
    source_root = staging / DATA_PREFIX.rstrip("/")
    for item in DATA_ITEMS:
        source = source_root / item
        if not source.exists():
            continue
        target = data_dir / item
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(source), target)
        restored.append(item)
    key = data_dir / "secret_key"
    if key.exists():
        key.chmod(0o600)
    return restored


def restore(archive_path: Path, settings: Settings, *, force: bool = False) -> RestoreReport:
    """Check the archive against its manifest, then restore it into the settings' data
    directory and database, which must be empty unless ``force``."""
    if not archive_path.is_file():
        raise InvalidInput(
            f"Sauvegarde introuvable : {archive_path}.", f"Backup not found: {archive_path}."
        )
    parent = settings.data_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".accueil-restore-", dir=parent) as tmp:
        staging = Path(tmp)
        manifest = _unpack_verified(archive_path, staging)
        _check_targets(settings, manifest, force)
        database = _restore_database(settings, manifest, staging, force)
        restored = ["base de données", *_restore_data(settings.data_dir, staging)]
    return RestoreReport(manifest, settings.data_dir, database, restored)
