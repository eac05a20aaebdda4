"""A durable, bounded spool of journal records waiting to reach mem0.

Standard library only and cheap to import: the refresher enqueues every cycle and may
ask for `health()`; the short-lived `aiki-hooks mem0-flush` helper drains it.

Layout, all under `<state_dir>/spool/` (directory 0700, files 0600)::

    000000000041-s1234.json   one record per file; the 12-digit prefix is a spool-owned
    000000000042-s1235.json   counter, so lexical order = enqueue order even if the
                              journal's `seq` ever restarts (the seq is kept for reading)
    state.json                {failures, first_failure_at, last_error, next_attempt_at,
                               last_success_at, dropped, dropped_at, last_dropped_at,
                               dropped_record_ids, journal_seq, mem0_told}
    .lock                     flock serialising every read-modify-write (enqueue vs flush)
    bad/                      files that could not be parsed, kept for a human to look at

The journal is the source of truth: the engine calls `feed` every cycle, which adds the
journal records after `journal_seq` (the cursor) that the mem0 output wants and then
moves the cursor. A failed feed (full disk, the lock busy) leaves the cursor where it
was, so the next cycle catches up; nothing depends on the process that failed.

Every file is written to a temp file in the same directory, fsynced and renamed, so a
reader sees a whole record or none. A record leaves the spool in two ways only: the
helper removes it after mem0 confirmed it (see mem0_delivery), or the spool is over
`max_records` and the OLDEST are dropped; drops are counted in state.json and reported
by `health()` ("mem0 spool full: 7 records dropped since 14:05"), never silent.

Health rules (pure, in `health_issues`):
- "mem0:delivery" WARNING once deliveries have been failing for at least one
  `backoff_initial_seconds` (one failed attempt that the first retry fixes is noise,
  not an outage; a failure that survives the first retry window is reported).
- "mem0:spool" WARNING while records were dropped within the last 24 h
  (DROPPED_WARN_SECONDS); a drop after that quiet period starts a new count.
"""

from __future__ import annotations

import json
import os
import time

from aiki_hooks.cycle.cache import atomic_write_bytes
from aiki_hooks.model.dates import clock_or_date
from aiki_hooks.model.units import fmt_duration_words
from aiki_hooks.paths import StateLock, make_private_dir, read_state_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random
    from typing import Any

SPOOL_DIR = "spool"
BAD_DIR = "bad"
STATE_NAME = "state.json"
LOCK_NAME = ".lock"
LOCK_TIMEOUT_SECONDS = 2.0
ORPHAN_TEMP_SECONDS = 60.0
DROPPED_WARN_SECONDS = 24 * 3600.0
MAX_DROPPED_IDS = 20
JITTER = 0.2

# How a failure that retrying cannot fix is recorded (mem0_delivery) and worded (health).
CONFIG_ERROR_PREFIX = "configuration: "
DELIVERY_ISSUE = "mem0:delivery"
SPOOL_ISSUE = "mem0:spool"
WARNING = "WARNING"

_PREFIX_DIGITS = 12


def empty_state() -> dict[str, Any]:
    return {
        "failures": 0,
        "first_failure_at": None,
        "last_error": None,
        "next_attempt_at": None,
        "last_success_at": None,
        "dropped": 0,
        "dropped_at": None,
        "last_dropped_at": None,
        "dropped_record_ids": [],
        "journal_seq": None,
    }


class SpoolBusy(OSError):
    """Another process held the spool lock for longer than LOCK_TIMEOUT_SECONDS."""


class Spool:
    """One state directory's spool. Cheap to construct (creates the directory only)."""

    def __init__(self, state_dir: str | os.PathLike, max_records: int = 1000) -> None:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        self.dir = os.path.join(os.fspath(state_dir), SPOOL_DIR)
        self.max_records = int(max_records)
        make_private_dir(os.fspath(state_dir))  # the one trust check (paths): refuses, never follows
        make_private_dir(self.dir)

    # ------------------------------------------------------------------ records

    def enqueue(self, records: list[dict[str, Any]], *, now: float | None = None) -> int:
        """Add *records* (in order); drop the oldest beyond max_records. Returns how many were dropped."""
        if not records:
            return 0
        now = time.time() if now is None else now
        with self._locked():
            state = self._read_state()
            dropped = self._enqueue_locked(records, state, now)
            if dropped:
                self._write_state(state)
            return dropped

    def feed(self, fetch: Any, *, now: float | None = None) -> tuple[int, int]:
        """Enqueue what the journal holds beyond the spool's cursor, as one step under the lock.

        `fetch(state)` returns the records to add, oldest first, and may move
        `state["journal_seq"]` (the cursor: the last journal seq considered) and keep other
        bookkeeping of its own in *state*; both are saved after the records. A record whose
        seq is already spooled is not added again, so a crash between writing the records
        and saving the cursor repeats nothing. Returns (added, dropped)."""
        now = time.time() if now is None else now
        with self._locked():
            state = self._read_state()
            before = dict(state)
            records = fetch(state)
            spooled = {_seq_of_name(name) for name in self._record_names()}
            fresh = [r for r in records if _seq_tag(r) == "x" or _seq_tag(r) not in spooled]
            dropped = self._enqueue_locked(fresh, state, now)
            if state != before:
                self._write_state(state)
            return len(fresh), dropped

    def _enqueue_locked(self, records: list[dict[str, Any]], state: dict[str, Any], now: float) -> int:
        names = self._record_names()
        counter = _counter(names[-1]) if names else 0
        for record in records:
            counter += 1
            name = f"{counter:0{_PREFIX_DIGITS}d}-s{_seq_tag(record)}.json"
            payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
            atomic_write_bytes(os.path.join(self.dir, name), payload.encode("utf-8"))
            names.append(name)
        excess = len(names) - self.max_records
        if excess <= 0:
            return 0
        dropped_ids = []
        for name in names[:excess]:
            path = os.path.join(self.dir, name)
            dropped_ids.append(_record_id_of(path) or name)
            _unlink_quietly(path)
        note_dropped(state, dropped_ids, now)
        return excess

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, record) oldest first. Unreadable files are moved to spool/bad/."""
        out = []
        for name in self._record_names():
            path = os.path.join(self.dir, name)
            try:
                record = json.loads(read_state_file(path))
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")  # noqa: TRY004 - handled just below, like bad JSON
            except FileNotFoundError:
                continue  # removed meanwhile (a concurrent flush or a drop)
            except (OSError, ValueError, UnicodeDecodeError, RecursionError):
                self._quarantine(path)
                continue
            out.append((path, record))
        self._remove_orphan_temps()
        return out

    def quarantine(self, path: str | os.PathLike) -> None:
        """Move a record that can never be delivered (e.g. no record_id) to spool/bad/."""
        self._quarantine(os.fspath(path))

    def remove(self, path: str | os.PathLike) -> None:
        """Forget a delivered record (already gone is fine)."""
        _unlink_quietly(os.fspath(path))

    def count(self) -> int:
        return len(self._record_names())

    # ------------------------------------------------------------------ state

    def load_state(self) -> dict[str, Any]:
        return self._read_state()

    def save_state(self, state: dict[str, Any]) -> None:
        with self._locked():
            self._write_state(state)

    def due(self, now: float | None = None) -> bool:
        """True when the backoff allows a delivery attempt now."""
        return is_due(self._read_state(), time.time() if now is None else now)

    def record_failure(self, error: str, now: float, config: Any, *, rng: random.Random | None = None) -> float:
        """Count a failed attempt and schedule the next one. Returns the delay chosen."""
        with self._locked():
            state = self._read_state()
            delay = apply_failure(state, error, now, config, rng=rng)
            self._write_state(state)
        return delay

    def record_success(self, now: float) -> None:
        with self._locked():
            state = self._read_state()
            apply_success(state, now)
            self._write_state(state)

    def health(self, now: float | None, config: Any) -> list[tuple[str, str, str]]:
        now = time.time() if now is None else now
        return health_issues(self._read_state(), self.count(), now, config)

    # ------------------------------------------------------------------ internals

    def _record_names(self) -> list[str]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if e.endswith(".json") and e[:1].isdigit())

    def _state_path(self) -> str:
        return os.path.join(self.dir, STATE_NAME)

    def _read_state(self) -> dict[str, Any]:
        state = empty_state()
        try:
            loaded = json.loads(read_state_file(self._state_path()))
        except FileNotFoundError:
            return state
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            return state  # a corrupt state only loses backoff bookkeeping; start over
        if isinstance(loaded, dict):
            state.update(loaded)
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        payload = json.dumps(state, separators=(",", ":"), sort_keys=True, default=str)
        atomic_write_bytes(self._state_path(), payload.encode("utf-8"))

    def _quarantine(self, path: str) -> None:
        bad = os.path.join(self.dir, BAD_DIR)
        try:
            make_private_dir(bad)
            os.replace(path, os.path.join(bad, os.path.basename(path)))
        except FileNotFoundError:
            pass

    def _remove_orphan_temps(self) -> None:
        now = time.time()
        try:
            entries = os.listdir(self.dir)
        except OSError:
            return
        for entry in entries:
            if entry.startswith(".") and entry.endswith(".tmp"):
                path = os.path.join(self.dir, entry)
                try:
                    if now - os.stat(path).st_mtime > ORPHAN_TEMP_SECONDS:
                        os.unlink(path)
                except FileNotFoundError:
                    continue

    def _locked(self) -> StateLock:
        return StateLock(os.path.join(self.dir, LOCK_NAME), timeout=LOCK_TIMEOUT_SECONDS, busy=SpoolBusy)


# ---------------------------------------------------------------------- pure rules


def backoff_delay(failures: int, config: Any, rng: random.Random | None = None) -> float:
    """initial * 2**(failures-1), capped at max, then +-20% jitter."""
    initial = float(config.backoff_initial_seconds)
    cap = float(config.backoff_max_seconds)
    base = min(cap, initial * 2.0 ** max(0, min(failures - 1, 60)))
    if rng is None:
        import random  # only a failing delivery pays for it

        rng = random.Random()
    factor = 1.0 + rng.uniform(-JITTER, JITTER)
    return base * factor


def is_due(state: dict[str, Any], now: float) -> bool:
    next_at = state.get("next_attempt_at")
    return not isinstance(next_at, (int, float)) or now >= next_at


def apply_failure(state: dict[str, Any], error: str, now: float, config: Any,
                  *, rng: random.Random | None = None) -> float:
    failures = int(state.get("failures") or 0) + 1
    state["failures"] = failures
    if not state.get("first_failure_at"):
        state["first_failure_at"] = now
    state["last_error"] = str(error)[:500]
    delay = backoff_delay(failures, config, rng)
    state["next_attempt_at"] = now + delay
    return delay


def apply_success(state: dict[str, Any], now: float) -> None:
    state.update(failures=0, first_failure_at=None, last_error=None, next_attempt_at=None, last_success_at=now)


def note_dropped(state: dict[str, Any], record_ids: list[str], now: float, *, count: int | None = None) -> None:
    """Count *count* (default: len(record_ids)) records that will never reach mem0."""
    last = state.get("last_dropped_at")
    if not state.get("dropped") or not isinstance(last, (int, float)) or now - last > DROPPED_WARN_SECONDS:
        state["dropped"], state["dropped_at"], state["dropped_record_ids"] = 0, now, []
    state["dropped"] = int(state["dropped"]) + (len(record_ids) if count is None else count)
    state["last_dropped_at"] = now
    state["dropped_record_ids"] = (list(state.get("dropped_record_ids") or []) + record_ids)[-MAX_DROPPED_IDS:]


def health_issues(state: dict[str, Any], pending: int, now: float, config: Any) -> list[tuple[str, str, str]]:
    """(issue_id, severity, summary) for the refresher's snapshot. Pure."""
    issues = []
    failures = int(state.get("failures") or 0)
    since = state.get("first_failure_at")
    if failures > 0 and isinstance(since, (int, float)) and now - since >= float(config.backoff_initial_seconds):
        what = "misconfigured" if str(state.get("last_error") or "").startswith(CONFIG_ERROR_PREFIX) else "unreachable"
        summary = f"mem0 {what} for {fmt_duration_words(now - since)}, {_records(pending)} waiting"
        if state.get("last_error"):
            summary += f" (last error: {_shorten(str(state['last_error']), 120)})"
        issues.append((DELIVERY_ISSUE, WARNING, summary))
    dropped = int(state.get("dropped") or 0)
    last = state.get("last_dropped_at") or state.get("dropped_at")
    if dropped > 0 and (not isinstance(last, (int, float)) or now - last <= DROPPED_WARN_SECONDS):
        issues.append((SPOOL_ISSUE, WARNING,
                       f"mem0 spool full: {_records(dropped)} dropped since {_clock(state.get('dropped_at'), now)}"))
    return issues


def _records(n: int) -> str:
    return f"{n} record" if n == 1 else f"{n} records"


def _clock(at: Any, now: float) -> str:
    if not isinstance(at, (int, float)):
        return "unknown time"
    return clock_or_date(at, now)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------- file helpers


def _counter(name: str) -> int:
    try:
        return int(name[:_PREFIX_DIGITS])
    except ValueError:
        return 0


def _seq_of_name(name: str) -> str:
    """The seq tag in "000000000041-s1234.json"."""
    return name[_PREFIX_DIGITS + 2:-len(".json")]


def _seq_tag(record: dict[str, Any]) -> str:
    seq = record.get("seq")
    return str(seq) if isinstance(seq, int) and not isinstance(seq, bool) else "x"


def _record_id_of(path: str) -> str | None:
    try:
        value = json.loads(read_state_file(path)).get("record_id")
        return str(value) if value is not None else None
    except (OSError, ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
