"""The cost index: one SQLite file in the state dir.

SQLite rather than a JSON state file because the index must answer "today", "this
session", "this 5-hour block" and "the last N days" in any time zone, exactly, and take
only the new messages on each refresh: one row per (file, message), deduplicated across
files at query time, so forgetting a truncated, replaced or deleted file is a DELETE of
its rows and a duplicate kept in another file takes over by itself. A refresh with no new
bytes writes nothing.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    file_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    ts REAL NOT NULL,
    session TEXT NOT NULL,
    model TEXT NOT NULL,
    sidechain INTEGER NOT NULL,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    cache_write_5m INTEGER NOT NULL,
    cache_write_1h INTEGER NOT NULL,
    cache_read INTEGER NOT NULL,
    cost REAL                       -- NULL: the model is not in the price book
);
CREATE TABLE IF NOT EXISTS session_costs (
    file_id INTEGER NOT NULL,
    session TEXT NOT NULL,
    model TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    PRIMARY KEY (session, model)
);
"""
# Indexes apart from the table, so that a first scan can build them once at the end (a
# sort) rather than row by row: a third less time in SQLite.
MESSAGE_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_file_key ON messages (file_id, key)",
    "CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts)",
    "CREATE INDEX IF NOT EXISTS messages_key ON messages (key)",
)
SCHEMA_VERSION = "2"


@dataclass(frozen=True)
class FileState:
    id: int
    path: str
    inode: int
    size: int
    offset: int


def message_from_row(row: tuple) -> "Message":
    """A Message from a scanner row (key, ts, session, model, sidechain, tokens..., cost)."""
    return _make_message(row)


class Message(NamedTuple):
    """One unique model call. A named tuple rather than a dataclass: a cold scan makes one
    per message, and a tuple is built from an index row in one C call."""

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


def messages_from_rows(rows: Iterable[tuple]) -> list[Message]:
    """Messages from scanner or index rows (of the right length, as both build them), at C
    speed: tuple.__new__ directly, not NamedTuple._make's Python-level call per row."""
    return list(map(_new_message, rows))


_make_message = Message._make
_new_message = functools.partial(tuple.__new__, Message)


class CostStore:
    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # created private before SQLite opens it
        os.close(fd)
        # One connection, used by one thread at a time (the probe holds a lock).
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = self._schema_version()
        if version not in (None, SCHEMA_VERSION):
            self.db.executescript("DROP TABLE IF EXISTS messages; DROP TABLE IF EXISTS files; "
                                  "DROP TABLE IF EXISTS session_costs; DROP TABLE IF EXISTS meta;")
        self.db.executescript(SCHEMA)
        self.create_message_indexes()
        self.set_meta("schema_version", SCHEMA_VERSION)

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
        return {row[1]: FileState(*row) for row in rows}

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def add_file(self, path: str, inode: int) -> int:
        cursor = self.db.execute("INSERT INTO files (path, inode, size, offset) VALUES (?, ?, 0, 0)", (path, inode))
        return int(cursor.lastrowid)

    def drop_message_indexes(self) -> None:
        """For a first scan into an empty index, in its transaction: rows then need no
        unique check, as each file is read once and its rows are distinct (FileRead.seen)."""
        for name in ("messages_file_key", "messages_ts", "messages_key"):
            self.db.execute(f"DROP INDEX IF EXISTS {name}")

    def create_message_indexes(self) -> None:
        for statement in MESSAGE_INDEXES:
            self.db.execute(statement)

    def next_file_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM files").fetchone()[0])

    def put_files(self, states: Iterable[tuple[int, str, int, int, int]]) -> None:
        """(id, path, inode, size, offset) rows, new or changed, in one statement."""
        self.db.executemany("INSERT OR REPLACE INTO files (id, path, inode, size, offset) VALUES (?, ?, ?, ?, ?)",
                            states)

    def update_file(self, file_id: int, *, inode: int, size: int, offset: int) -> None:
        self.db.execute("UPDATE files SET inode = ?, size = ?, offset = ? WHERE id = ?", (inode, size, offset, file_id))

    def forget_file_contents(self, file_id: int) -> None:
        self.db.execute("DELETE FROM messages WHERE file_id = ?", (file_id,))
        self.db.execute("DELETE FROM session_costs WHERE file_id = ?", (file_id,))

    def forget_file(self, file_id: int) -> None:
        self.forget_file_contents(file_id)
        self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    # ------------------------------------------------------------------ rows

    def add_rows(self, file_id: int, rows: Iterable[tuple]) -> None:
        """Rows are (key, ts, session, model, sidechain, input, output, cache_write_5m,
        cache_write_1h, cache_read, cost), as the scanner builds them."""
        # One SQL text for every file (the file id a parameter): prepared once, not per file.
        prefix = (int(file_id),)
        self.db.executemany(
            "INSERT OR IGNORE INTO messages (file_id, key, ts, session, model, sidechain, input, output, "
            "cache_write_5m, cache_write_1h, cache_read, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [prefix + row for row in rows],
        )

    def add_messages(self, file_id: int, messages: Iterable[Message]) -> None:
        self.add_rows(file_id, ((m.key, m.ts, m.session, m.model, int(m.sidechain), m.input, m.output,
                                 m.cache_write_5m, m.cache_write_1h, m.cache_read, m.cost) for m in messages))

    def set_session_costs(self, file_id: int, session: str, costs: dict[str, float]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO session_costs (file_id, session, model, cost_usd) VALUES (?, ?, ?, ?)",
            ((file_id, session, model, cost) for model, cost in costs.items()),
        )

    def known_keys(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            batch = keys[start:start + 500]
            marks = ",".join("?" * len(batch))
            found.update(r[0] for r in self.db.execute(f"SELECT key FROM messages WHERE key IN ({marks})", batch))
        return found

    def messages_since(self, since: float) -> list[Message]:
        """Unique messages (first occurrence wins, as in ccusage) at or after *since*, by time."""
        rows = self.db.execute(
            "SELECT key, ts, session, model, sidechain, input, output, cache_write_5m, cache_write_1h, cache_read, "
            "cost FROM messages WHERE rowid IN (SELECT MIN(rowid) FROM messages WHERE ts >= ? GROUP BY key) "
            "ORDER BY ts",
            (since,),
        )
        return messages_from_rows(rows)

    def session_costs(self, sessions: Sequence[str]) -> dict[tuple[str, str], float]:
        if not sessions:
            return {}
        marks = ",".join("?" * len(sessions))
        rows = self.db.execute(f"SELECT session, model, cost_usd FROM session_costs WHERE session IN ({marks})",
                               tuple(sessions))
        return {(r[0], r[1]): r[2] for r in rows}

    def session_model_tokens(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """All-time unique tokens per (session, model), to share Claude Code's session cost out."""
        out: dict[tuple[str, str], int] = {}
        for session, model in pairs:
            row = self.db.execute(
                "SELECT SUM(input + output + cache_write_5m + cache_write_1h + cache_read) FROM messages WHERE "
                "rowid IN (SELECT MIN(rowid) FROM messages WHERE session = ? AND model = ? GROUP BY key)",
                (session, model),
            ).fetchone()
            out[(session, model)] = int(row[0] or 0)
        return out

    def prune(self, before: float) -> int:
        """Drop the messages of every response all of whose copies are older than *before*
        (a copy inside the window must not take over from a pruned first occurrence), and
        Claude Code's session figures left without messages. The caller holds a transaction."""
        cursor = self.db.execute(
            "DELETE FROM messages WHERE key IN (SELECT key FROM messages GROUP BY key HAVING MAX(ts) < ?)", (before,))
        self.db.execute("DELETE FROM session_costs WHERE session NOT IN (SELECT DISTINCT session FROM messages)")
        self.set_meta("kept_since", repr(before))
        return cursor.rowcount

    def oldest(self) -> float | None:
        return self.db.execute("SELECT MIN(ts) FROM messages").fetchone()[0]

    def kept_since(self) -> float:
        """Messages before this were pruned (0: none were)."""
        return float(self.get_meta("kept_since") or 0)

    def reset(self) -> None:
        """Forget every file and message: the next refresh reads all transcripts again."""
        self.db.execute("DELETE FROM messages")
        self.db.execute("DELETE FROM session_costs")
        self.db.execute("DELETE FROM files")
        self.db.execute("DELETE FROM meta WHERE key = 'kept_since'")

    def reprice(self, price) -> int:
        """Recompute every stored cost with *price* (a PriceBook) after the table changed."""
        rows = self.db.execute(
            "SELECT rowid, model, ts, input, output, cache_write_5m, cache_write_1h, cache_read FROM messages"
        ).fetchall()
        updates = [
            (price.cost(model, ts, input=i, output=o, cache_write_5m=w5, cache_write_1h=w1, cache_read=r), rowid)
            for rowid, model, ts, i, o, w5, w1, r in rows
        ]
        self.db.executemany("UPDATE messages SET cost = ? WHERE rowid = ?", updates)
        return len(updates)
