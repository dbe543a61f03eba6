"""Database engine and session factory (SQLite or PostgreSQL)."""

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

WRITE_LOCK_SECONDS = 10.0  # as long as SQLite's own busy timeout
# Commits of one database between two checkpoints (a few pages each: a few MB of WAL).
CHECKPOINT_EVERY = 300
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()
_commits: dict[str, int] = {}
checkpoint_log = logging.getLogger("accueil.db")


def _write_lock(database: str) -> threading.Lock:
    with _write_locks_guard:
        return _write_locks.setdefault(database, threading.Lock())


def _checkpoint_due(database: str) -> bool:
    """Counts a commit of ``database``; true once every ``CHECKPOINT_EVERY`` commits."""
    with _write_locks_guard:
        count = _commits.get(database, 0) + 1
        _commits[database] = count
        return count % CHECKPOINT_EVERY == 0


class _WriteCursor(sqlite3.Cursor):
    """Takes its connection's write turn before the first write of a transaction."""

    connection: "SerialisedWrites"

    def execute(self, sql: str, parameters: Any = (), /) -> "_WriteCursor":
        self.connection.before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after()

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> "_WriteCursor":
        self.connection.before(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.after()


class SerialisedWrites(sqlite3.Connection):
    """A SQLite connection whose write transactions take turns inside this process.

    SQLite allows one writer at a time; a writer that finds the lock taken sleeps and polls
    (1, 2, 5 … 100 ms), so under concurrent autosaves a few requests waited hundreds of
    milliseconds while the lock sat free. Writers of one process now queue on a lock that
    hands over at once at commit or rollback; other processes (the job worker) still meet
    SQLite's busy timeout. Reads never wait: in WAL mode they do not block writers.

    Checkpoints (copying the write-ahead log into the database file, with an fsync) are
    taken out of the write turn. SQLite's own automatic checkpoint runs inside the commit
    that crosses its threshold, so every writer queued behind that commit waited for the
    copy and the fsync: after a burst of writes, when readers had kept the log from being
    copied, one such commit stalled every autosave for over 100 ms. The automatic checkpoint
    is off (``_configure_sqlite``); every ``CHECKPOINT_EVERY`` commits the committing
    connection runs a PASSIVE checkpoint once it has handed its turn over, which never
    blocks writers or readers."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._database = str(database)
        self._turn = _write_lock(self._database)
        self._holding = False

    def cursor(self, factory: Any = _WriteCursor) -> Any:
        return super().cursor(factory)

    def before(self, sql: str) -> None:
        if not self._holding and sql.lstrip()[:7].upper().startswith(_WRITES):
            # Past the timeout, go on without the turn: SQLite's busy timeout decides.
            self._holding = self._turn.acquire(timeout=WRITE_LOCK_SECONDS)

    def after(self) -> None:
        if self._holding and not self.in_transaction:  # a write outside a transaction
            self._release()

    def _release(self) -> None:
        if self._holding:
            self._holding = False
            self._turn.release()

    def commit(self) -> None:
        wrote = self._holding
        try:
            super().commit()
        finally:
            self._release()
        if wrote and _checkpoint_due(self._database):
            self.checkpoint()

    def checkpoint(self) -> None:
        """Copy what it can of the log into the database file, beside the other writers. A
        failure only postpones the copy: the commit before it is already safe."""
        try:
            super().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            checkpoint_log.warning("SQLite checkpoint postponed: %s", type(exc).__name__)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    if isinstance(dbapi_connection, SerialisedWrites):  # it checkpoints out of the write turn
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL mode, foreign keys and a busy timeout. Statement
    parameters (patient data) never appear in logs or in error messages."""
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///") or ":memory:" in url
        # As many pooled connections as the server's worker threads: opening one costs its
        # PRAGMAs, and a connection dropped after each burst would be reopened again and again.
        pool = {} if in_memory else {"pool_size": 40, "max_overflow": 10}
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={
                "check_same_thread": False,
                "timeout": 10,
                **({} if in_memory else {"factory": SerialisedWrites}),
            },
            **pool,
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_pre_ping=True,
        # Kept open: a connection beyond pool_size is closed when returned, and opening one
        # forks a PostgreSQL backend (milliseconds of CPU on both sides), so under a burst of
        # autosaves a pool of 10 reconnected on almost every request. 30 at most per process,
        # as before (the server and the job worker stay under PostgreSQL's 100).
        pool_size=20,
        max_overflow=10,
    )


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
