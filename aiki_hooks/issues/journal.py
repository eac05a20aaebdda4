"""The issue journal: one JSON line per transition or session event, in the state dir.

Layout (directory 0700, files 0600)::

    journal.jsonl        newest records, one compact JSON object per line
    journal.jsonl.1 ...  older files after rotation by size (`.1` is the most recent)
    journal.lock         flock serialising every writer (refresher and hooks)
    journal.seq          the last `seq` handed out
    sessions_told.json   {record_id: at} of session events already written

Every record has the fields in `FIELDS`; `seq` is a strictly increasing integer over
all files, so readers order by it and consumers (the mem0 spool) can resume from it.
`record_id` is stable and unique, so a consumer can de-duplicate.

An append lands whole or not at all (paths.append_whole: one write, cut back on a short
or failed one, under the lock): a full disk must not leave half a line, which no reader
can parse, so that the next writer handed out its seq again and the record was lost
without its writer knowing. Files are opened through aiki_hooks.paths (no symlinks, no
FIFOs, in a state dir that passes the trust check); lines longer than MAX_LINE_BYTES are
skipped unread, so a planted or broken file costs a reader bounded memory.

The SessionStart hook writes here, so this module imports only json, os, time and
fcntl (no dataclasses, typing, pathlib or tempfile: each costs milliseconds per hook).
A writer may raise OSError (a full disk, say): callers decide what that means to them.
"""

from __future__ import annotations

import fcntl
import json
import os

from aiki_hooks.hooklib.text import clip
from aiki_hooks.model.dates import clock, parse_utc
from aiki_hooks.paths import append_whole, make_private_dir, open_state_file, read_state_file, replace_state_file

TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

JOURNAL_NAME = "journal.jsonl"
LOCK_NAME = "journal.lock"
SEQ_NAME = "journal.seq"
SESSIONS_TOLD_NAME = "sessions_told.json"
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_KEEP_FILES = 3
# The told-index only has to outlive a session's resumes and compactions.
SESSIONS_TOLD_DAYS = 7
SESSIONS_TOLD_MAX = 2000
SESSION_SUMMARY_CHARS = 120
# A record is a few hundred bytes; a longer "line" is not one of ours.
MAX_LINE_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
SMALL_FILE_MAX_BYTES = 1024 * 1024  # journal.seq, sessions_told.json

TRANSITION = "transition"
SESSION = "session"
SESSION_BEGAN = "session_began"
# PreToolUse told a running session that an issue opened or escalated.
SESSION_TOLD = "session_told"

FIELDS = (
    "seq", "at", "kind", "record_id", "occurrence_id", "issue_id", "transition", "severity",
    "previous_severity", "probe", "summary", "sentence", "started_at", "duration_seconds",
    "session_id", "cwd", "host", "hint",
)


def make_record(**fields: Any) -> dict[str, Any]:
    """A record with every field of the schema (None where not given), in schema order,
    without `seq` (append assigns it). An unknown field is a programming error."""
    unknown = set(fields) - set(FIELDS)
    if unknown or "seq" in fields:
        raise ValueError(f"not journal record fields: {sorted(unknown | ({'seq'} & set(fields)))}")
    return {name: fields.get(name) for name in FIELDS if name != "seq"}


# --------------------------------------------------------------------------- writing


def append(state_dir: str, records: list[dict[str, Any]], *, max_bytes: int = DEFAULT_MAX_BYTES,
           keep_files: int = DEFAULT_KEEP_FILES) -> list[dict[str, Any]]:
    """Append *records*, each with the next `seq`; returns them with `seq` set.

    The journal is rotated first when these lines would take it past *max_bytes*
    (a file is never rotated empty, so one oversized batch still lands somewhere).
    """
    if not records:
        return []
    with _Locked(state_dir):
        return _append_locked(state_dir, records, max_bytes=max_bytes, keep_files=keep_files)


def session_event(state_dir: str, *, session_id: str, cwd: str | None, open_issues: list[dict[str, Any]],
                  now: float, host: str, max_bytes: int = DEFAULT_MAX_BYTES,
                  keep_files: int = DEFAULT_KEEP_FILES, transition: str = SESSION_BEGAN) -> list[dict[str, Any]]:
    """Record that a Claude Code session began while these issues were open: one
    `session_began` record per issue that carries an `occurrence_id`, at most once per
    session and occurrence (resume and compact start the same session again).
    With transition=SESSION_TOLD: that a running session was told an issue opened or
    escalated, once per session, occurrence and severity."""
    candidates = [issue for issue in open_issues if isinstance(issue, dict) and issue.get("occurrence_id")]
    if not session_id or not candidates:
        return []
    with _Locked(state_dir):
        told = _load_told(state_dir)
        records = []
        for issue in candidates:
            record = session_record(issue, session_id=session_id, cwd=cwd, now=now, host=host,
                                    transition=transition)
            if record["record_id"] not in told:
                records.append(record)
                told[record["record_id"]] = now
        if not records:
            return []
        written = _append_locked(state_dir, records, max_bytes=max_bytes, keep_files=keep_files)
        # After the journal: a crash in between repeats a record (same record_id), never loses one.
        _save_told(state_dir, told, now=now)
        return written


def session_record(issue: dict[str, Any], *, session_id: str, cwd: str | None, now: float,
                   host: str, transition: str = SESSION_BEGAN) -> dict[str, Any]:
    """The `session_began` (or `session_told`) record for one open issue of the cache's `issues[]`."""
    try:
        started_at = parse_utc(issue["since"])
    except (KeyError, TypeError, ValueError):
        started_at = None
    occurrence_id = str(issue["occurrence_id"])
    if transition == SESSION_TOLD:
        record_id = f"told:{session_id}:{occurrence_id}:{issue.get('severity')}"
        sentence = session_sentence(issue, session_id=session_id, cwd=cwd, started_at=started_at,
                                    verb=f"was told at {clock(now)} that", tense="is")
    else:
        record_id = f"session:{session_id}:{occurrence_id}"
        sentence = session_sentence(issue, session_id=session_id, cwd=cwd, started_at=started_at)
    return make_record(
        at=now, kind=SESSION, record_id=record_id, occurrence_id=occurrence_id,
        issue_id=issue.get("id"), transition=transition, severity=issue.get("severity"),
        probe=issue.get("probe"), summary=issue.get("summary"),
        sentence=sentence,
        started_at=started_at, session_id=session_id, cwd=cwd, host=host, hint=issue.get("hint"),
    )


def session_sentence(issue: dict[str, Any], *, session_id: str, cwd: str | None, started_at: float | None,
                     verb: str = "began while", tense: str = "was") -> str:
    """"Claude Code session 1a2b3c4d in /home/me/proj began while qdrant (http:qdrant)
    was CRITICAL: connection refused (since 14:05).\""""
    issue_id = str(issue.get("id") or "?")
    probe = issue.get("probe")
    label = f"{probe} ({issue_id})" if probe and probe != issue_id else issue_id
    where = f" in {cwd}" if cwd else ""
    summary = clip(issue.get("summary") or "", SESSION_SUMMARY_CHARS)
    since = f" (since {clock(started_at)})" if started_at is not None else ""
    return (f"Claude Code session {session_id[:8]}{where} {verb} {label} {tense} "
            f"{issue.get('severity') or 'not OK'}: {summary}{since}.")


def locked(state_dir: str) -> _Locked:
    """The journal's exclusive lock, for a caller that must read, decide and append as one
    step (the issue tracker). Inside it use `append_locked` and `records_after(lock=False)`:
    taking the lock again from the same process would wait for ever."""
    return _Locked(state_dir)


def append_locked(state_dir: str, records: list[dict[str, Any]], *, max_bytes: int = DEFAULT_MAX_BYTES,
                  keep_files: int = DEFAULT_KEEP_FILES) -> list[dict[str, Any]]:
    """`append` for a caller already holding `locked(state_dir)`."""
    if not records:
        return []
    return _append_locked(state_dir, records, max_bytes=max_bytes, keep_files=keep_files)


def last_seq(state_dir: str) -> int:
    """The highest seq written (the journal can be ahead of journal.seq after a crash)."""
    return max(_read_seq_file(state_dir), _last_seq_in_journal(state_dir))


def seq_hint(state_dir: str) -> int:
    """journal.seq alone: one tiny read, for a cheap "anything new?" check each cycle."""
    return _read_seq_file(state_dir)


class _Locked:
    """Exclusive flock on journal.lock for the duration of a with-block."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, LOCK_NAME)
        self.state_dir = state_dir
        self.fd = -1

    def __enter__(self) -> _Locked:
        make_private_dir(self.state_dir)  # refuses a dir others could plant files in
        self.fd = open_state_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)  # closing releases the flock


def _append_locked(state_dir: str, records: list[dict[str, Any]], *, max_bytes: int,
                   keep_files: int) -> list[dict[str, Any]]:
    path = os.path.join(state_dir, JOURNAL_NAME)
    # The seq file is written after the journal, so after a crash the journal can be ahead;
    # a failed append leaves no line, so its seq is free again and no gap opens.
    seq = max(_read_seq_file(state_dir), _last_seq_in_journal(state_dir))
    written = []
    for record in records:
        seq += 1
        written.append({"seq": seq, **{k: v for k, v in record.items() if k != "seq"}})
    payload = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in written)
    data = payload.encode("utf-8")
    try:
        size = os.lstat(path).st_size
    except FileNotFoundError:
        size = 0
    if size and size + len(data) > max_bytes:
        _rotate(state_dir, keep_files)
    fd = open_state_file(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a killed writer left half a line: end it, do not extend it
        append_whole(fd, data, sync=True)
    finally:
        os.close(fd)
    try:
        _write_small_file(os.path.join(state_dir, SEQ_NAME), f"{seq}\n")
    except OSError:
        pass  # the records are in: last_seq() reads the journal too, so no seq is handed out twice
    return written


def _rotate(state_dir: str, keep_files: int) -> None:
    """journal.jsonl -> .1 -> .2 ...; files past *keep_files* are deleted (also leftovers
    from a larger keep_files setting)."""
    path = os.path.join(state_dir, JOURNAL_NAME)
    # Highest first, so a rename never lands on a file not yet moved.
    for index in sorted(_rotated_indexes(state_dir), reverse=True):
        if index >= keep_files:
            os.unlink(f"{path}.{index}")
        else:
            os.replace(f"{path}.{index}", f"{path}.{index + 1}")
    if keep_files >= 1:
        os.replace(path, f"{path}.1")
    else:
        os.unlink(path)


def _rotated_indexes(state_dir: str) -> list[int]:
    prefix = JOURNAL_NAME + "."
    try:
        names = os.listdir(state_dir)
    except FileNotFoundError:
        return []
    return [int(name[len(prefix):]) for name in names
            if name.startswith(prefix) and name[len(prefix):].isdigit()]


def _read_seq_file(state_dir: str) -> int:
    try:
        return int(read_state_file(os.path.join(state_dir, SEQ_NAME), 64).strip() or 0)
    except (OSError, ValueError):
        return 0


def _last_seq_in_journal(state_dir: str) -> int:
    """The seq of the last valid line, in the newest file that has one."""
    path = os.path.join(state_dir, JOURNAL_NAME)
    for name in [path] + [f"{path}.{i}" for i in sorted(_rotated_indexes(state_dir))]:
        seq = _last_seq_in_file(name)
        if seq:
            return seq
    return 0


def _last_seq_in_file(path: str) -> int:
    """From the end, the first line that parses; bounded reads (64 KiB chunks, lines past
    MAX_LINE_BYTES skipped), however large or broken the file."""
    for line in _lines_backwards(path):
        record = _parse_line(line)
        if record is not None:
            return record["seq"]
    return 0


def _load_told(state_dir: str) -> dict[str, float]:
    try:
        data = json.loads(read_state_file(os.path.join(state_dir, SESSIONS_TOLD_NAME), SMALL_FILE_MAX_BYTES))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, (int, float))}


def _save_told(state_dir: str, told: dict[str, float], *, now: float) -> None:
    horizon = now - SESSIONS_TOLD_DAYS * 86400
    recent = sorted(((at, key) for key, at in told.items() if at >= horizon), reverse=True)[:SESSIONS_TOLD_MAX]
    _write_small_file(os.path.join(state_dir, SESSIONS_TOLD_NAME),
                      json.dumps({key: at for at, key in recent}, separators=(",", ":")))


def _write_small_file(path: str, text: str) -> None:
    replace_state_file(path, text.encode("utf-8"))


# --------------------------------------------------------------------------- reading


def read(state_dir: str, *, since: float | None = None) -> list[dict[str, Any]]:
    """Every record in the journal and its rotated files, oldest first (by seq).

    Corrupt and partial lines (a writer killed mid-line, a hand edit) are skipped.
    With *since*, only records whose `at` is at or after it. Takes a shared lock so a
    rotation cannot move a file between two reads.
    """
    path = os.path.join(state_dir, JOURNAL_NAME)
    lock_fd = _shared_lock(state_dir)
    try:
        names = [f"{path}.{i}" for i in sorted(_rotated_indexes(state_dir), reverse=True)] + [path]
        records = []
        for name in names:
            for line in _lines(name):
                record = _parse_line(line)
                if record is not None and (since is None or _at_or_after(record, since)):
                    records.append(record)
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    records.sort(key=lambda r: r["seq"])
    return records


def records_after(state_dir: str, seq: int, *, limit: int | None = None,
                  lock: bool = True) -> tuple[list[dict[str, Any]], int]:
    """Records with a seq above *seq*, oldest first, read backwards from the end of the
    journal so the cost follows what is new, not the journal's size.

    With *limit*, only the newest *limit* records; the second value is how many older
    ones after *seq* were left out (estimated from the seq gap). *lock* = False for a
    caller that already holds `locked()`.
    """
    path = os.path.join(state_dir, JOURNAL_NAME)
    lock_fd = _shared_lock(state_dir) if lock else -1
    found: list[dict[str, Any]] = []
    left_out = 0
    try:
        done = False
        for name in [path] + [f"{path}.{i}" for i in sorted(_rotated_indexes(state_dir))]:
            for line in _lines_backwards(name):
                record = _parse_line(line)
                if record is None:
                    continue
                if record["seq"] <= seq:
                    done = True
                    break
                if limit is not None and len(found) >= limit:
                    # Older ones are not read at all: the seq gap says how many there are.
                    left_out = max(0, found[-1]["seq"] - seq - 1)
                    done = True
                    break
                found.append(record)
            if done:
                break
    finally:
        if lock_fd >= 0:
            os.close(lock_fd)
    found.sort(key=lambda r: r["seq"])
    return found, left_out


def _shared_lock(state_dir: str) -> int:
    """A shared flock on journal.lock (so no rotation moves a file mid-read), or -1 when
    no writer ever ran here."""
    try:
        fd = open_state_file(os.path.join(state_dir, LOCK_NAME))
    except FileNotFoundError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_journal_file(name: str):
    """A binary file object for a journal file, or None when it does not exist."""
    try:
        return os.fdopen(open_state_file(name), "rb")
    except FileNotFoundError:
        return None


def _lines(name: str, chunk: int = READ_CHUNK_BYTES):
    """The non-empty lines of a file, first to last, in chunks; a line longer than
    MAX_LINE_BYTES is skipped without being held in memory."""
    file = _open_journal_file(name)
    if file is None:
        return
    with file:
        carry = b""
        skipping = False
        while True:
            block = file.read(chunk)
            if not block:
                break
            if skipping:
                # Drop the rest of the long line without keeping it: a file without
                # newlines (garbage, a sparse file) is read at the speed of the disk.
                end = block.find(b"\n")
                if end < 0:
                    continue
                block, skipping = block[end + 1:], False
            parts = (carry + block).split(b"\n")
            carry = parts.pop()
            yield from (line for line in parts if line)
            if len(carry) > MAX_LINE_BYTES:
                carry, skipping = b"", True
        if carry and not skipping:
            yield carry


def _lines_backwards(name: str, chunk: int = READ_CHUNK_BYTES):
    """The lines of a file, last first, reading it from the end in chunks; a line longer
    than MAX_LINE_BYTES is skipped without being held in memory. A file that cannot be
    opened (absent, or refused by open_state_file) has no lines."""
    try:
        file = _open_journal_file(name)
    except OSError:
        return
    if file is None:
        return
    with file:
        pos = file.seek(0, os.SEEK_END)
        carry = b""
        skipping = False  # inside a line too long to keep
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            file.seek(pos)
            block = file.read(step)
            if skipping:
                # Drop the rest of the long line without keeping it (as in _lines): the
                # last newline of this block is where it starts.
                start = block.rfind(b"\n")
                if start < 0:
                    continue
                block, skipping = block[:start + 1], False
            lines = (block + carry).split(b"\n")
            carry = lines[0]
            yield from (line for line in reversed(lines[1:]) if line)
            if len(carry) > MAX_LINE_BYTES:
                carry, skipping = b"", True
        if carry and not skipping:
            yield carry


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """The record on *line*, or None when it is not a JSON object with an integer seq."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return record


def _at_or_after(record: dict[str, Any], since: float) -> bool:
    at = record.get("at")
    return isinstance(at, (int, float)) and not isinstance(at, bool) and at >= since
