"""The lexical index of the practice's passages: SQLite FTS5 over the French analysis of
``analysis.py``, in one file beside the Chroma store (``<data dir>/knowledge-lexical.sqlite3``).

It holds a copy of each indexed passage (its id, document, position, section and text) with
its analysed terms. It is written in the same steps as the Chroma collection (a document's
passages swapped in one transaction) and can always be rebuilt from it: ``sync`` compares the
documents it holds with the database's indexed documents and repairs any difference, so an
interrupted write, a restored backup or an analysis change heal on the next search. WAL mode
and a busy timeout let several app processes and workers share the file.
"""

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.config.settings import Settings
from app.services.knowledge.analysis import ANALYSIS_VERSION, Query, Speller, terms, words

FILE_NAME = "knowledge-lexical.sqlite3"
BUSY_TIMEOUT_S = 30.0
SECTION_WEIGHT = 2.0  # bm25 weight of the section title against the passage's text
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    document_id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, passages INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    document_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_document ON passages (document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts USING fts5(
    section_terms, text_terms, surface, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_vocab USING fts5vocab(passages_fts, 'col');
"""


@dataclass(frozen=True)
class IndexedPassage:
    """A passage as the index holds it."""

    chunk_id: str
    document_id: int
    position: int
    section: str
    text: str


@dataclass(frozen=True)
class LexicalHit:
    passage: IndexedPassage
    score: float  # bm25 relevance, higher is better
    section_terms: frozenset[str] = frozenset()  # the analysed terms of its heading path
    text_terms: frozenset[str] = frozenset()  # and of its text


def index_path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


_READY: set[Path] = set()
_READY_LOCK = threading.Lock()


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    """WAL mode and the schema, once per process: another process doing the same at the
    same moment may hold the file, hence the retries (SQLite does not wait on a mode
    change)."""
    for attempt in range(100):
        try:
            _prepare_once(connection, path)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)


def _prepare_once(connection: sqlite3.Connection, path: Path) -> None:
    with _READY_LOCK:
        if path in _READY and path.exists():
            return
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(SCHEMA)
        row = connection.execute("SELECT value FROM meta WHERE key = 'analysis'").fetchone()
        if row is None or row[0] != str(ANALYSIS_VERSION):  # other tokens: start again
            with _write(connection):
                _clear(connection)
                connection.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('analysis', ?)", (str(ANALYSIS_VERSION),)
                )
        _READY.add(path)


@contextmanager
def connect(settings: Settings) -> Iterator[sqlite3.Connection]:
    """A connection to the index (created on first use), closed on exit."""
    path = index_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(
        sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    ) as connection:
        connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        _prepare(connection, path)
        yield connection


@contextmanager
def _write(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (taken at once: no upgrade deadlock between processes)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute(
        "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT (key) "
        "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
    )
    connection.execute("COMMIT")


def _clear(connection: sqlite3.Connection) -> None:
    connection.execute("DELETE FROM passages")
    connection.execute("DELETE FROM passages_fts")
    connection.execute("DELETE FROM documents")


def _delete(connection: sqlite3.Connection, document_id: int) -> None:
    connection.execute(
        "DELETE FROM passages_fts WHERE rowid IN "
        "(SELECT rowid FROM passages WHERE document_id = ?)",
        (document_id,),
    )
    connection.execute("DELETE FROM passages WHERE document_id = ?", (document_id,))
    connection.execute("DELETE FROM documents WHERE document_id = ?", (document_id,))


def _insert(
    connection: sqlite3.Connection,
    document_id: int,
    sha256: str,
    passages: Sequence[IndexedPassage],
) -> None:
    for p in passages:
        cursor = connection.execute(
            "INSERT INTO passages (chunk_id, document_id, position, section, text) "
            "VALUES (?, ?, ?, ?, ?)",
            (p.chunk_id, document_id, p.position, p.section, p.text),
        )
        connection.execute(
            "INSERT INTO passages_fts (rowid, section_terms, text_terms, surface) "
            "VALUES (?, ?, ?, ?)",
            (
                cursor.lastrowid,
                " ".join(terms(p.section)),
                " ".join(terms(p.text)),
                " ".join(words(f"{p.section} {p.text}")),
            ),
        )
    connection.execute(
        "INSERT OR REPLACE INTO documents VALUES (?, ?, ?)", (document_id, sha256, len(passages))
    )


def replace_document(
    settings: Settings, document_id: int, sha256: str, passages: Sequence[IndexedPassage]
) -> None:
    """A document's passages, swapped for the given ones in one transaction."""
    with connect(settings) as connection, _write(connection):
        _delete(connection, document_id)
        _insert(connection, document_id, sha256, passages)


def delete_document(settings: Settings, document_id: int) -> None:
    with connect(settings) as connection, _write(connection):
        _delete(connection, document_id)


def replace_all(
    settings: Settings, documents: Iterable[tuple[int, str, Sequence[IndexedPassage]]]
) -> None:
    """The whole index, replaced in one transaction (a rebuild)."""
    with connect(settings) as connection, _write(connection):
        _clear(connection)
        for document_id, sha256, passages in documents:
            _insert(connection, document_id, sha256, passages)


def held_documents(connection: sqlite3.Connection) -> dict[int, tuple[str, int]]:
    """Each document the index holds: its version and its number of passages."""
    return {
        int(d): (str(s), int(n))
        for d, s, n in connection.execute("SELECT document_id, sha256, passages FROM documents")
    }


def generation(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return int(row[0]) if row else 0


def passage_count(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT count(*) FROM passages").fetchone()[0])


def search(connection: sqlite3.Connection, query: Query, limit: int) -> list[LexicalHit]:
    """The passages that match any phrase of the question, best bm25 first."""
    if query.empty:
        return []
    # The best ``limit`` first, then their rows: joined before the limit, SQLite would read
    # every match's passage (half the time at 100k passages, with the same hits).
    rows = connection.execute(
        "SELECT p.chunk_id, p.document_id, p.position, p.section, p.text, best.rank, "
        "f.section_terms, f.text_terms FROM ("
        "SELECT rowid, bm25(passages_fts, 2.0, 1.0, 0.0) AS rank "  # the section counts twice
        "FROM passages_fts WHERE passages_fts MATCH ? ORDER BY rank, rowid LIMIT ?) AS best "
        "JOIN passages p ON p.rowid = best.rowid "
        "JOIN passages_fts f ON f.rowid = best.rowid ORDER BY best.rank, best.rowid",
        (query.fts(), limit),
    ).fetchall()
    return [
        LexicalHit(
            IndexedPassage(str(c), int(d), int(pos), str(s), str(t)),
            -float(r),
            frozenset(str(st).split()),
            frozenset(str(tt).split()),
        )
        for c, d, pos, s, t, r, st, tt in rows
    ]


def passages_of(connection: sqlite3.Connection, chunk_ids: Sequence[str]) -> list[IndexedPassage]:
    rows = connection.execute(
        "SELECT chunk_id, document_id, position, section, text FROM passages "
        "WHERE chunk_id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(chunk_ids)),),
    ).fetchall()
    return [IndexedPassage(str(c), int(d), int(p), str(s), str(t)) for c, d, p, s, t in rows]


def document_frequencies(connection: sqlite3.Connection, stems: Iterable[str]) -> dict[str, int]:
    """In how many passages each stem appears (section or text)."""
    wanted = sorted(set(stems))
    if not wanted:
        return {}
    found: dict[str, int] = {}
    for term, count in connection.execute(
        "SELECT term, doc FROM passages_vocab WHERE col IN ('section_terms', 'text_terms') "
        "AND term IN (SELECT value FROM json_each(?))",
        (json.dumps(wanted),),
    ):
        found[str(term)] = max(found.get(str(term), 0), int(count))
    return found


def speller(settings: Settings, connection: sqlite3.Connection) -> Speller:
    """The spelling corrector over the words of the indexed passages (built again only
    when the index has changed)."""
    current = generation(connection)
    cached = _SPELLERS.get(index_path(settings))
    if cached is not None and cached[0] == current:
        return cached[1]
    frequencies = {
        str(term): int(doc)
        for term, doc in connection.execute(
            "SELECT term, doc FROM passages_vocab WHERE col = 'surface'"
        )
    }
    built = Speller(frequencies)
    _SPELLERS[index_path(settings)] = (current, built)
    return built


_SPELLERS: dict[Path, tuple[int, Speller]] = {}
