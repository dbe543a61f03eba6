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
