"""SQLite write transactions of one process take turns on an in-process lock (handed over
at commit or rollback) instead of polling SQLite's busy lock; reads never wait."""

import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from models.db import SerialisedWrites, make_engine


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'writes.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return engine


def _turn_taken(engine: Engine) -> bool:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, SerialisedWrites)
        return raw._turn.locked()


def test_a_second_writer_waits_for_the_first_commit_and_reads_do_not(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    order: list[str] = []
    with engine.connect() as first:
        first.execute(text("INSERT INTO t (v) VALUES ('premier')"))  # holds the turn
        assert _turn_taken(engine)

        def second_writer() -> None:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t (v) VALUES ('second')"))
            order.append("second committed")

        thread = threading.Thread(target=second_writer)
        thread.start()
        # A reader is not held up by the pending write (WAL): it sees the committed state.
        with engine.connect() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0
        time.sleep(0.2)
        assert order == []  # still waiting for its turn
        order.append("first committed")
        first.commit()
        thread.join(timeout=10)
    assert order == ["first committed", "second committed"]
    assert not _turn_taken(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT v FROM t ORDER BY id")).scalars().all() == [
            "premier",
            "second",
        ]


def test_rollback_and_a_connection_back_in_the_pool_release_the_turn(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with engine.connect() as connection:
        connection.execute(text("UPDATE t SET v = 'x'"))
        assert _turn_taken(engine)
        connection.rollback()
        assert not _turn_taken(engine)
        connection.execute(text("DELETE FROM t"))
        assert _turn_taken(engine)
    # Closing without commit returns the connection to the pool, which rolls it back.
    assert not _turn_taken(engine)


def test_many_concurrent_writers_all_commit(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                with engine.begin() as connection:
                    connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{n}-{i}"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 160
    assert not _turn_taken(engine)


def _wal_frames(path: Path) -> int:
    """Frames in the write-ahead log file (its size: a 32-byte header, then frames of a
    24-byte header and one page)."""
    wal = path.with_name(path.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, size - 32) // (24 + 4096)


def test_the_log_is_checkpointed_out_of_the_write_turn_every_few_commits(
    tmp_path: Path, monkeypatch
) -> None:
    """SQLite's automatic checkpoint (inside a commit, so inside the write turn) is off; every
    ``CHECKPOINT_EVERY`` commits the committing connection copies the log after handing its
    turn over, so the log stays short and the next writer never waits for the copy."""
    import models.db as db

    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 10)
    engine = _engine(tmp_path)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 0
    checkpoints: list[bool] = []
    real = SerialisedWrites.checkpoint

    def spy(self: SerialisedWrites) -> None:
        checkpoints.append(self._turn.locked())  # the turn is already handed over
        real(self)

    monkeypatch.setattr(SerialisedWrites, "checkpoint", spy)
    for n in range(300):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 3000 + str(n)})
    assert len(checkpoints) >= 29 and not any(checkpoints)
    # Each commit writes at least one page: without the checkpoints the log would hold
    # every one of the 300 commits' pages; with them, a few commits' worth at most.
    assert _wal_frames(tmp_path / "writes.db") < 100
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 300


def test_an_in_memory_database_keeps_automatic_checkpoints() -> None:
    """An in-memory database (tests, tools) has no log to copy and keeps SQLite's default."""
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000
