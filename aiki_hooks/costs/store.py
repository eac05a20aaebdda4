"""The cost index: one SQLite file in the state dir.

SQLite holds the per-file state (inode, size, offset), Claude Code's own session
figures and the messages, transactionally, so that a refresh reads only the bytes
appended since the last one and a crash at any point loses nothing. Messages are kept
as *chunks*: the rows one refresh read from one file, as one JSON array (inspectable
with the sqlite3 shell), not one SQL row each. A first scan of 200 MiB stores ~700
chunks instead of 25,000 rows and three indexes: most of its time in SQLite went.

Deduplication is at query time: a response repeated in several files (a resumed
session) counts once, its first copy (chunk order, then line order) winning, as in
ccusage; so forgetting a truncated, replaced or deleted file is a DELETE of its chunks
and a copy in another file takes over by itself. Within one file a key is stored once
(add_rows). A refresh with no new bytes writes nothing.

A one-shot command also leaves its window's figures here (window_memo, see
costs/figures.py), and the next one takes them instead of decoding every chunk again. A
transaction that wrote messages or Claude Code's session figures clears the memo as it
commits, so it can never outlive what it was made from. (Once per transaction, not by
triggers: a trigger per inserted chunk doubled a first scan's insert time.)
"""

from __future__ import annotations

import contextlib
import operator
import os
import sqlite3
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import orjson

from aiki_hooks.costs.prices import PriceBook

# A message as the scan builds it (a tuple) or a chunk gives it back (a list): key, ts,
# session, model, sidechain, input, output, cache_write_5m, cache_write_1h, cache_read,
# cost (the fields of Message, read by index).
Row = Sequence[Any]


def dumps_rows(rows: Sequence[Row]) -> bytes:
    """Rows as a chunk stores them: a JSON array of arrays."""
    return orjson.dumps(rows)


def loads_rows(data: bytes) -> list[list[Any]]:
    """A chunk's rows, as lists."""
    rows: list[list[Any]] = orjson.loads(data)
    return rows


INDEX_NAME = "costs.sqlite"  # in the state dir
# The index keeps this many days of messages (more while a longer report is asked for):
# a month's report stays incremental, and the index does not grow for ever.
KEEP_DAYS = 40

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    offset INTEGER NOT NULL
);
-- One row per (file, refresh that read messages from it); id orders the copies.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    first_ts REAL NOT NULL,         -- the earliest and latest message in the chunk
    last_ts REAL NOT NULL,
    count INTEGER NOT NULL,
    -- JSON array of [key, ts, session, model, sidechain, input, output, cache_write_5m,
    -- cache_write_1h, cache_read, cost] (cost null: the model is not in the price book)
    rows BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (file_id);
CREATE INDEX IF NOT EXISTS chunks_last_ts ON chunks (last_ts);
CREATE TABLE IF NOT EXISTS session_costs (
    file_id INTEGER NOT NULL,
    session TEXT NOT NULL,
    model TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    PRIMARY KEY (session, model)
);
-- A window's figures as a one-shot command last built them (costs/figures.py), kept while
-- the messages and session figures they came from are: a commit that wrote those clears it.
CREATE TABLE IF NOT EXISTS window_memo (key TEXT PRIMARY KEY, data BLOB NOT NULL);
"""
SCHEMA_VERSION = "3"
PAGE_SIZE = 16384
WAL_CHECKPOINT_BYTES = 4 << 20
OLD_TABLES = ("messages", "chunks", "files", "session_costs", "meta", "window_memo")
BUSY_TIMEOUT_SECONDS = 10.0


class FileState(NamedTuple):
    """A transcript as the index last read it (its row of the files table)."""

    id: int
    path: str
    inode: int
    size: int
    offset: int


class Message(NamedTuple):
    """One unique model call: a Row with names."""

    key: str
    ts: float
    session: str
    model: str
    sidechain: int  # 0 or 1, as stored
    input: int
    output: int
    cache_write_5m: int
    cache_write_1h: int
    cache_read: int
    cost: float | None

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_write_5m + self.cache_write_1h + self.cache_read


def messages_from_rows(rows: Iterable[Row]) -> list[Message]:
    """Messages from scanner or index rows."""
    return list(map(Message._make, rows))


class CostStore:
    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            # Not a database, or a damaged one (a first scan runs without fsync, see
            # durable()): the index is only derived data, so it is built again.
            self.db.close()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(path + suffix)
                except FileNotFoundError:
                    pass
            self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # created private before SQLite opens it
        os.close(fd)
        # One connection, used by one thread at a time (the probe holds a lock).
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                  timeout=BUSY_TIMEOUT_SECONDS)
        # A new index gets 16 KiB pages (SQLite's default is 4 KiB): a first scan stores
        # ~5 MB of chunks, and writing them to the WAL and checkpointing them took 26 ms
        # in 4 KiB pages, 14 ms in 16 KiB ones (an existing index keeps its page size).
        self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self.db.execute("PRAGMA journal_mode=WAL")
        # Checkpoint at 4 MiB of WAL whatever the page size (SQLite's default: 1000 pages).
        page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        self.db.execute(f"PRAGMA wal_autocheckpoint={max(1, WAL_CHECKPOINT_BYTES // page_size)}")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = self._schema_version()
        if version not in (None, SCHEMA_VERSION):  # an older layout: built again from the transcripts
            self.db.executescript("".join(f"DROP TABLE IF EXISTS {name};" for name in OLD_TABLES))
        self.db.executescript(SCHEMA)
        self.set_meta("schema_version", SCHEMA_VERSION)
        # Every stored key (known_keys), and the keys of the files appended to lately
        # (add_rows): loaded when first needed, kept up to date by this connection,
        # dropped when another connection commits or anything is forgotten.
        self._messages_written = False  # in the open transaction: the window memo goes at its commit
        self._keys: set[str] | None = None
        self._file_keys: dict[int, set[str]] = {}
        self._keys_version: int | None = None

    def is_empty(self) -> bool:
        return self.db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is None

    def durable(self, on: bool) -> None:
        """fsync at commits (the default) or not: off only while an empty index is first
        filled, where a power cut can lose nothing the transcripts do not still hold (a
        damaged file is rebuilt at the next open). Outside a transaction."""
        self.db.execute("PRAGMA synchronous=NORMAL" if on else "PRAGMA synchronous=OFF")
        # And room for the whole first fill in SQLite's page cache, written once at the
        # commit rather than spilled to the WAL as it grows (the default is 2 MiB).
        self.db.execute("PRAGMA cache_size=-2000" if on else "PRAGMA cache_size=-32768")

    def _schema_version(self) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()

    def data_version(self) -> int:
        """Changes whenever another connection commits to the index (SQLite's data_version)."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ files

    def files(self) -> dict[str, FileState]:
        rows = self.db.execute("SELECT id, path, inode, size, offset FROM files")
        return {row[1]: FileState._make(row) for row in rows}

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self._messages_written:
            self.db.execute("DELETE FROM window_memo")
            self._messages_written = False
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._messages_written = False
        self._forget_keys()  # they may hold keys of what was rolled back

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction: BEGIN IMMEDIATE (waiting for the write lock as begin()
        does), committed when the block ends, rolled back when anything in it or the
        commit raises (the exception goes on): no transaction is left open on this
        connection, which the refresher keeps for its lifetime."""
        self.begin()
        try:
            yield
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def add_file(self, path: str, inode: int) -> int:
        cursor = self.db.execute("INSERT INTO files (path, inode, size, offset) VALUES (?, ?, 0, 0)", (path, inode))
        assert cursor.lastrowid is not None  # (set by every INSERT of a row)
        return cursor.lastrowid

    def next_file_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM files").fetchone()[0])

    def put_files(self, states: Iterable[FileState]) -> None:
        """Files' rows, new or changed."""
        self.db.executemany("INSERT OR REPLACE INTO files (id, path, inode, size, offset) VALUES (?, ?, ?, ?, ?)",
                            states)

    def forget_file_contents(self, file_id: int) -> None:
        self._messages_written = True
        self.db.execute("DELETE FROM chunks WHERE file_id = ?", (file_id,))
        self.db.execute("DELETE FROM session_costs WHERE file_id = ?", (file_id,))
        self._forget_keys()

    def forget_file(self, file_id: int) -> None:
        self.forget_file_contents(file_id)
        self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    # ------------------------------------------------------------------ rows

    # Files whose keys are kept between refreshes: the sessions being written to.
    FILE_KEYS_KEPT = 8

    def _forget_keys(self) -> None:
        self._keys, self._file_keys = None, {}

    def _fresh_keys(self) -> None:
        """Drop the key caches if another connection committed since they were made."""
        version = self.data_version()
        if self._keys_version != version:
            self._forget_keys()
            self._keys_version = version

    def _all_keys(self) -> set[str]:
        self._fresh_keys()
        if self._keys is None:
            self._keys = {row[0] for _, row in self.stored_rows()}
        return self._keys

    def _keys_of(self, file_id: int) -> set[str]:
        self._fresh_keys()
        keys = self._file_keys.pop(file_id, None)
        if keys is None:
            keys = {row[0] for chunk in self.db.execute("SELECT rows FROM chunks WHERE file_id = ?", (file_id,))
                    for row in loads_rows(chunk[0])}
        self._file_keys[file_id] = keys  # (re)inserted last: the oldest is dropped first
        while len(self._file_keys) > self.FILE_KEYS_KEPT:
            del self._file_keys[next(iter(self._file_keys))]
        return keys

    def add_rows(self, file_id: int, rows: Sequence[Row], *, new_file: bool = False,
                 rows_json: bytes | None = None) -> None:
        """Rows are (key, ts, session, model, sidechain, input, output, cache_write_5m,
        cache_write_1h, cache_read, cost), as the scanner builds them, with distinct keys.
        A key this file already holds is not stored again (a response whose first line was
        read by an earlier refresh); *new_file* says there is none to check (a first read).
        *rows_json*: the rows already as dumps_rows makes them (by a worker)."""
        file_id = int(file_id)
        if not new_file:
            have = self._keys_of(file_id)
            kept = [row for row in rows if row[0] not in have]
            if len(kept) != len(rows):
                rows, rows_json = kept, None
            have.update(row[0] for row in rows)
        if not rows:
            return
        if self._keys is not None:
            self._keys.update(row[0] for row in rows)
        first, last = _span(rows)
        self._messages_written = True
        self.db.execute("INSERT INTO chunks (file_id, first_ts, last_ts, count, rows) VALUES (?, ?, ?, ?, ?)",
                        (file_id, first, last, len(rows), rows_json or dumps_rows(rows)))

    def set_session_costs(self, file_id: int, session: str, costs: dict[str, float]) -> None:
        self._messages_written = True
        self.db.executemany(
            "INSERT OR REPLACE INTO session_costs (file_id, session, model, cost_usd) VALUES (?, ?, ?, ?)",
            ((file_id, session, model, cost) for model, cost in costs.items()),
        )

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        index = self._all_keys()
        return {key for key in keys if key in index}

    def stored_rows(self, since: float | None = None) -> list[tuple[int, list[Any]]]:
        """(file id, row) for every stored copy, in chunk and line order (rows as lists);
        with *since*, only chunks with a message at or after it."""
        if since is None:
            chunks = self.db.execute("SELECT file_id, rows FROM chunks ORDER BY id")
        else:
            chunks = self.db.execute("SELECT file_id, rows FROM chunks WHERE last_ts >= ? ORDER BY id", (since,))
        return [(file_id, row) for file_id, rows in chunks for row in loads_rows(rows)]

    def rows_since(self, since: float = float("-inf")) -> list[list[Any]]:
        """The rows of the unique messages (first occurrence wins, as in ccusage) at or
        after *since*, in chunk order."""
        rows: list[list[Any]] = []
        chunks = self.db.execute("SELECT first_ts, rows FROM chunks WHERE last_ts >= ? ORDER BY id", (since,))
        for first_ts, data in chunks:
            chunk = loads_rows(data)
            rows.extend(chunk if first_ts >= since else [row for row in chunk if row[1] >= since])
        return _first_copies(rows)

    def rows_by_path(self, since: float = float("-inf")) -> list[tuple[str, list[Any]]]:
        """(transcript path, row) of the unique messages at or after *since*, the first
        copy in path order, then line order, winning: the copy ccusage counts (it reads the
        files sorted by path), which decides the session a resumed session's repeats go to."""
        paths: list[str] = []
        rows: list[list[Any]] = []
        chunks = self.db.execute("SELECT files.path, chunks.first_ts, chunks.rows FROM chunks JOIN files ON "
                                 "files.id = chunks.file_id WHERE chunks.last_ts >= ? ORDER BY files.path, chunks.id",
                                 (since,))
        for path, first_ts, data in chunks:
            chunk = loads_rows(data)
            if first_ts < since:
                chunk = [row for row in chunk if row[1] >= since]
            rows.extend(chunk)
            paths.extend([path] * len(chunk))
        first = _first_of_each_key(rows)
        return [(path, row) for path, row in zip(paths, rows, strict=True) if first[row[0]] is row]

    def messages_since(self, since: float) -> list[Message]:
        """rows_since as Messages, by time."""
        messages = messages_from_rows(self.rows_since(since))
        messages.sort(key=BY_TIME)
        return messages

    def session_costs(self, sessions: Sequence[str]) -> dict[tuple[str, str], float]:
        if not sessions:
            return {}
        marks = ",".join("?" * len(sessions))
        rows = self.db.execute(f"SELECT session, model, cost_usd FROM session_costs WHERE session IN ({marks})",
                               tuple(sessions))
        return {(r[0], r[1]): r[2] for r in rows}

    def session_model_tokens(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """All-time unique tokens per (session, model), to share Claude Code's session cost out."""
        out = {pair: 0 for pair in pairs}
        for row in self.rows_since():
            pair = (row[2], row[3])
            if pair in out:
                out[pair] += row[5] + row[6] + row[7] + row[8] + row[9]
        return out

    def window_memo(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT data FROM window_memo WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def save_window_memo(self, key: str, data: bytes, read_at: int) -> bool:
        """Keep *data* for *key* if no other connection has committed since *read_at* (the
        data_version before the rows it came from were read: else it may describe messages
        that are gone). Never waits: when another connection is writing, nothing is kept
        (it is only a memo). True when kept."""
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # another connection holds the write lock
            return False
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        try:
            kept = self.data_version() == read_at
            if kept:
                self.db.execute("INSERT OR REPLACE INTO window_memo (key, data) VALUES (?, ?)", (key, data))
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return kept

    def _rewrite(self, keep: Callable[[list[Any]], list[Any] | None]) -> int:
        """Rewrite every chunk with the rows *keep(row)* returns (None drops the row);
        returns how many rows were dropped. The caller holds a transaction."""
        self._messages_written = True
        dropped = 0
        for chunk_id, rows in self.db.execute("SELECT id, rows FROM chunks").fetchall():
            old = loads_rows(rows)
            new = [kept for kept in map(keep, old) if kept is not None]
            dropped += len(old) - len(new)
            if not new:
                self.db.execute("DELETE FROM chunks WHERE id = ?", (chunk_id,))
            elif new != old:
                self.db.execute("UPDATE chunks SET first_ts = ?, last_ts = ?, count = ?, rows = ? WHERE id = ?",
                                (*_span(new), len(new), dumps_rows(new), chunk_id))
        self._forget_keys()
        return dropped

    def prune(self, before: float) -> int:
        """Drop the messages of every response all of whose copies are older than *before*
        (a copy inside the window must not take over from a pruned first occurrence), and
        Claude Code's session figures left without messages. The caller holds a transaction."""
        latest: dict[str, float] = {}
        for _, row in self.stored_rows():
            if row[1] > latest.get(row[0], -1.0):
                latest[row[0]] = row[1]
        dropped = self._rewrite(lambda row: row if latest[row[0]] >= before else None)
        sessions = {row[2] for _, row in self.stored_rows()}
        stale = [(s,) for (s,) in self.db.execute("SELECT DISTINCT session FROM session_costs") if s not in sessions]
        self.db.executemany("DELETE FROM session_costs WHERE session = ?", stale)
        self.set_meta("kept_since", repr(before))
        return dropped

    def oldest(self) -> float | None:
        return self.db.execute("SELECT MIN(first_ts) FROM chunks").fetchone()[0]

    def kept_since(self) -> float:
        """Messages before this were pruned (0: none were)."""
        return float(self.get_meta("kept_since") or 0)

    def reset_if_pruned(self, since: float) -> bool:
        """Asked for messages from *since* on, older than the index keeps (pruned): reset,
        in a transaction of its own, so that the next refresh reads every transcript
        again. True when it did (a Scanner on this connection must then forget_known)."""
        if since >= self.kept_since():
            return False
        with self.transaction():
            self.reset()
        return True

    def reset(self) -> None:
        """Forget every file and message: the next refresh reads all transcripts again.
        The caller holds a transaction."""
        self._messages_written = True
        self.db.execute("DELETE FROM chunks")
        self.db.execute("DELETE FROM session_costs")
        self.db.execute("DELETE FROM files")
        self.db.execute("DELETE FROM meta WHERE key = 'kept_since'")
        self._forget_keys()

    def reprice(self, price: PriceBook) -> int:
        """Recompute every stored cost with *price* (a PriceBook) after the table changed."""
        repriced = 0

        def with_new_cost(row: list[Any]) -> list[Any]:
            nonlocal repriced
            repriced += 1
            _, ts, _, model, _, i, o, w5, w1, r, _ = row
            return row[:10] + [price.cost(model, ts, input=i, output=o, cache_write_5m=w5, cache_write_1h=w1,
                                          cache_read=r)]

        self._rewrite(with_new_cost)
        return repriced


BY_TIME = operator.itemgetter(1)  # a Message's (or a row's) ts
_KEY = operator.itemgetter(0)


def _first_of_each_key(rows: list[list[Any]]) -> dict[str, list[Any]]:
    """Each key's first row in *rows*. Built from the end, so that the first copy is the
    one written last; in C (dict, zip, map), not a Python loop over the rows: a month's
    ~25,000 rows are read back on every warm `aiki-hooks costs`."""
    return dict(zip(map(_KEY, reversed(rows)), reversed(rows), strict=True))


def _first_copies(rows: list[list[Any]]) -> list[list[Any]]:
    """*rows* without the repeats of a key: the first copy stays, in order."""
    first = _first_of_each_key(rows)
    return [row for row in rows if first[row[0]] is row]


def _span(rows: Sequence[Row]) -> tuple[float, float]:
    """The earliest and latest timestamp of a chunk's rows."""
    stamps = [row[1] for row in rows]
    return min(stamps), max(stamps)
