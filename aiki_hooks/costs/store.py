"""The cost index: one SQLite file in the state dir.

SQLite holds the per-file state (inode, size, offset), Claude Code's own session
figures and the messages, one row each, transactionally, so that a refresh reads only
the bytes appended since the last one and a crash at any point loses nothing. The
figures are sums computed by SQLite.

A response repeated in several files (a resumed session) is stored once per file and
counted once: its first copy in reading order (`counted`), as in ccusage. Forgetting a
truncated, replaced or deleted file deletes its messages, and the next copy of each of
its responses is counted instead. Within one file a key is stored once (its first
line). A refresh with no new bytes writes nothing.
"""

from __future__ import annotations

import os
import sqlite3
from typing import NamedTuple, Sequence

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
    id INTEGER PRIMARY KEY,  -- reading order: the first copy of a key is the one that counts
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
    cost REAL,  -- null: the model is not in the price book
    counted INTEGER NOT NULL DEFAULT 0,  -- 1: the first copy of its key, the one the figures count
    UNIQUE (key, file_id)
);
CREATE INDEX IF NOT EXISTS messages_file ON messages (file_id);
CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
CREATE TABLE IF NOT EXISTS session_costs (
    file_id INTEGER NOT NULL,
    session TEXT NOT NULL,
    model TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    PRIMARY KEY (session, model)
);
"""
SCHEMA_VERSION = "4"
OLD_TABLES = ("messages", "chunks", "files", "session_costs", "meta")
MESSAGE_COLUMNS = ("key, ts, session, model, sidechain, input, output, cache_write_5m, cache_write_1h, cache_read, "
                   "cost")
TOKENS = "input + output + cache_write_5m + cache_write_1h + cache_read"
# The sums a figure is made of (as report.Totals.from_sums takes them).
SUMS = (f"COUNT(*), SUM(input), SUM(output), SUM(cache_write_5m + cache_write_1h), SUM(cache_read), TOTAL(cost), "
        f"SUM(CASE WHEN cost IS NULL THEN {TOKENS} ELSE 0 END)")


class FileState(NamedTuple):
    """A transcript as the index last read it."""

    id: int
    path: str
    inode: int
    size: int
    offset: int


class Message(NamedTuple):
    """One model call (a row of the messages table)."""

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
            # Not a database, or a damaged one: the index is only derived data, so it is
            # built again from the transcripts.
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
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = self._schema_version()
        if version not in (None, SCHEMA_VERSION):  # an older layout: built again from the transcripts
            self.db.executescript("".join(f"DROP TABLE IF EXISTS {name};" for name in OLD_TABLES))
        self.db.executescript(SCHEMA)
        self.set_meta("schema_version", SCHEMA_VERSION)

    def _schema_version(self) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            return None
        return row[0] if row else None

    def close(self) -> None:
        self.db.close()

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

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

    def add_file(self, path: str, inode: int) -> int:
        cursor = self.db.execute("INSERT INTO files (path, inode, size, offset) VALUES (?, ?, 0, 0)", (path, inode))
        return int(cursor.lastrowid)

    def set_file(self, file_id: int, inode: int, size: int, offset: int) -> None:
        self.db.execute("UPDATE files SET inode = ?, size = ?, offset = ? WHERE id = ?", (inode, size, offset, file_id))

    def forget_file_contents(self, file_id: int) -> None:
        counted = self.db.execute("SELECT key FROM messages WHERE file_id = ? AND counted", (file_id,)).fetchall()
        self.db.execute("DELETE FROM messages WHERE file_id = ?", (file_id,))
        self.db.execute("DELETE FROM session_costs WHERE file_id = ?", (file_id,))
        # The next copy of each (in reading order: the lowest id), if any, counts instead.
        self.db.executemany("UPDATE messages SET counted = 1 WHERE id = (SELECT MIN(id) FROM messages WHERE key = ?)",
                            counted)

    def forget_file(self, file_id: int) -> None:
        self.forget_file_contents(file_id)
        self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    # ------------------------------------------------------------------ messages

    def add_messages(self, file_id: int, messages: Sequence[Message]) -> None:
        """Messages (or rows of the same fields) read from a file, in reading order. A key
        the file already holds is not stored again (a response written once per content
        block, or whose first line an earlier refresh read); one another file holds is
        stored, not counted."""
        self.db.executemany(f"INSERT OR IGNORE INTO messages (file_id, {MESSAGE_COLUMNS}, counted) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOT EXISTS (SELECT 1 FROM messages WHERE key = ?))",
                            ((file_id, *message, message[0]) for message in messages))

    def set_session_costs(self, file_id: int, session: str, costs: dict[str, float]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO session_costs (file_id, session, model, cost_usd) VALUES (?, ?, ?, ?)",
            ((file_id, session, model, cost) for model, cost in costs.items()),
        )

    def stored_rows(self) -> list[tuple[int, Message]]:
        """(file id, message) for every stored copy, in reading order."""
        rows = self.db.execute(f"SELECT file_id, {MESSAGE_COLUMNS} FROM messages ORDER BY id")
        return [(row[0], Message(*row[1:])) for row in rows]

    def messages_since(self, since: float, *, unpriced: bool = False) -> list[Message]:
        """Counted messages at or after *since* (only those without a price: *unpriced*),
        by time. A response's first copy counts, as in ccusage, even where it is older
        than *since* and a later copy is not."""
        rows = self.db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE counted AND ts >= ? "
                               + ("AND cost IS NULL " if unpriced else "") + "ORDER BY ts", (since,))
        return [Message(*row) for row in rows]

    # ------------------------------------------------------------------ figures (sums of counted messages)

    def latest(self) -> float | None:
        return self.db.execute("SELECT MAX(ts) FROM messages WHERE counted").fetchone()[0]

    def timestamps(self, since: float) -> list[float]:
        return [ts for (ts,) in self.db.execute("SELECT ts FROM messages WHERE counted AND ts >= ? ORDER BY ts",
                                                (since,))]

    def sums_by_day(self, days: Sequence[tuple[str, float, float]]) -> list[tuple]:
        """(day, model, *SUMS) of the messages in each (day, start, stop) range."""
        values = ",".join("(?, ?, ?)" for _ in days)
        return self.db.execute(
            f"WITH days (day, start, stop) AS (VALUES {values}) SELECT day, model, {SUMS} "
            "FROM days JOIN messages ON ts >= start AND ts < stop WHERE counted GROUP BY day, model",
            [value for day in days for value in day]).fetchall() if days else []

    def sums_by_model(self, since: float) -> list[tuple]:
        """(model, *SUMS) of the messages at or after *since*."""
        return self.db.execute(f"SELECT model, {SUMS} FROM messages WHERE counted AND ts >= ? GROUP BY model",
                               (since,)).fetchall()

    def sessions_since(self, since: float) -> list[str]:
        """The sessions with a message at or after *since*."""
        rows = self.db.execute("SELECT DISTINCT session FROM messages WHERE counted AND ts >= ? AND session != ''",
                               (since,))
        return [session for (session,) in rows]

    def sums_by_session(self, sessions: Sequence[str], since: float) -> list[tuple]:
        """(session, *SUMS) of the messages of *sessions* at or after *since*."""
        marks = ",".join("?" * len(sessions))
        return self.db.execute(f"SELECT session, {SUMS} FROM messages WHERE counted AND ts >= ? "
                               f"AND session IN ({marks}) GROUP BY session", (since, *sessions)).fetchall()

    def session_costs(self, sessions: Sequence[str]) -> dict[tuple[str, str], float]:
        if not sessions:
            return {}
        marks = ",".join("?" * len(sessions))
        rows = self.db.execute(f"SELECT session, model, cost_usd FROM session_costs WHERE session IN ({marks})",
                               tuple(sessions))
        return {(r[0], r[1]): r[2] for r in rows}

    def session_model_tokens(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """All-time tokens per (session, model), to share Claude Code's session cost out."""
        out = {pair: 0 for pair in pairs}
        sessions = sorted({session for session, _ in pairs})
        rows = self.db.execute(f"SELECT session, model, SUM({TOKENS}) FROM messages WHERE counted AND session IN "
                               f"({','.join('?' * len(sessions))}) GROUP BY session, model", sessions)
        for session, model, tokens in rows:
            if (session, model) in out:
                out[(session, model)] = tokens
        return out

    def prune(self, before: float) -> int:
        """Drop the messages of every response all of whose copies are older than *before*
        (a copy inside the window must not take over from a pruned first occurrence), and
        Claude Code's session figures left without messages; returns how many messages
        were dropped. The caller holds a transaction."""
        dropped = self.db.execute("DELETE FROM messages WHERE key IN "
                                  "(SELECT key FROM messages GROUP BY key HAVING MAX(ts) < ?)", (before,)).rowcount
        self.db.execute("DELETE FROM session_costs WHERE session NOT IN (SELECT session FROM messages)")
        self.set_meta("kept_since", repr(before))
        return dropped

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
        rows = self.db.execute("SELECT id, model, ts, input, output, cache_write_5m, cache_write_1h, cache_read "
                               "FROM messages").fetchall()
        self.db.executemany("UPDATE messages SET cost = ? WHERE id = ?", (
            (price.cost(model, ts, input=i, output=o, cache_write_5m=w5, cache_write_1h=w1, cache_read=r), row_id)
            for row_id, model, ts, i, o, w5, w1, r in rows))
        return len(rows)
