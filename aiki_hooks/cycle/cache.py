"""The health cache: `system_health.json` in the state directory.

Publishing: the snapshot is written to a temp file in the same directory (0600),
fsynced and renamed over the cache, then the directory is fsynced; writers are
serialised by a lock file. Readers take no lock at all: rename is atomic, so a reader
sees the old file or the new one, never a partial one (and never waits). A reader opens
without following links or blocking and reads at most `paths.STATE_FILE_MAX_BYTES`
(paths.read_state): a FIFO, a device or a huge file in the cache's place is "corrupt"
with one line saying what it is.

Whether each write worked is noted in `system_health.status` (a fixed-size record
rewritten in place, so that once it exists it can still be written on a full disk), so
that a stale cache can tell "refresher not running" from "the refresher runs but cannot
write the cache: No space left on device".

The hooks import this module on every tool call, so the read path imports only json,
os, time, paths and model.dates/units (no dataclasses, pathlib or tempfile: each costs milliseconds per
call); the writer imports what it needs when it runs.
"""

from __future__ import annotations

import json
import os
import time

from aiki_hooks.model.dates import parse_utc
from aiki_hooks.model.units import fmt_duration_words
from aiki_hooks.paths import CACHE_NAME, REFRESHER_LOCK_NAME, StateFileError, lock_is_held, read_state, read_state_file

TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SCHEMA_VERSION = 1
STALE_AFTER_INTERVALS = 3
WRITE_LOCK_TIMEOUT_SECONDS = 5.0
WRITE_STATUS_NAME = "system_health.status"
# Always this size, so a rewrite reuses the file's block and needs no new space.
WRITE_STATUS_BYTES = 1024
# generated_at comes from this machine's clock, so a cache dated ahead of it means the
# clock was stepped back (or the cache came from elsewhere); a few seconds absorb rounding
# and a slewing NTP. Beyond that its age is unknown: never "fresh".
FUTURE_TOLERANCE_SECONDS = 5.0

FRESH = "fresh"
STALE = "stale"
SKEWED = "skewed"
MISSING = "missing"
CORRUPT = "corrupt"
UNKNOWN_SCHEMA = "unknown_schema"


class CacheRead:
    """The outcome of reading the cache: `state` is fresh, stale, skewed (dated in the
    future), missing, corrupt or unknown_schema; `data` is the snapshot dict when fresh,
    stale or skewed; `stamp` identifies the file read (device, inode, mtime), so a caller
    can tell whether it was replaced since."""

    __slots__ = ("state", "data", "age_seconds", "reason", "stamp")

    def __init__(self, state: str, data: dict[str, Any] | None = None, age_seconds: float | None = None,
                 reason: str = "", stamp: tuple[int, int, int] | None = None) -> None:
        self.state = state
        self.data = data
        self.age_seconds = age_seconds
        self.reason = reason
        self.stamp = stamp

    @property
    def usable(self) -> bool:
        """Fresh, stale or skewed data can still be shown (with its age or its date)."""
        return self.state in (FRESH, STALE, SKEWED)

    def __repr__(self) -> str:
        return f"CacheRead(state={self.state!r}, age_seconds={self.age_seconds!r}, reason={self.reason!r})"


def cache_path(state_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(state_dir), CACHE_NAME)


def file_stamp(info: os.stat_result) -> tuple[int, int, int]:
    """What tells one version of the cache file from the next (each publish is a new inode)."""
    return (info.st_dev, info.st_ino, info.st_mtime_ns)


def path_stamp(path: str | os.PathLike) -> tuple[int, int, int] | None:
    """`file_stamp` of whatever is at *path* (not following a link), None when nothing is."""
    try:
        return file_stamp(os.lstat(path))
    except OSError:
        return None


def read_cache(path: str | os.PathLike, *, now: float | None = None) -> CacheRead:
    """Read and classify the cache. Never raises for a bad file; never blocks."""
    now = time.time() if now is None else now
    try:
        raw, info = read_state(path)
    except FileNotFoundError:
        return CacheRead(MISSING, reason="no health data yet")
    except StateFileError as exc:  # already names the file and what it is
        return CacheRead(CORRUPT, reason=str(exc), stamp=path_stamp(path))
    except OSError as exc:
        return CacheRead(CORRUPT, reason=f"cannot read cache: {exc.strerror or exc}", stamp=path_stamp(path))
    stamp = file_stamp(info)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return CacheRead(CORRUPT, reason=f"cache is not valid JSON ({exc.__class__.__name__})", stamp=stamp)
    if not isinstance(data, dict):
        return CacheRead(CORRUPT, reason="cache is not a JSON object", stamp=stamp)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        return CacheRead(UNKNOWN_SCHEMA, reason=f"cache schema {version!r}, expected {SCHEMA_VERSION}", stamp=stamp)
    try:
        generated = parse_utc(data["generated_at"])
        interval = float(data["interval_seconds"])
        if not isinstance(data["probes"], list) or not isinstance(data["issues"], list):
            raise TypeError("probes/issues are not lists")
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        return CacheRead(CORRUPT, reason=f"cache lacks required fields ({exc})", stamp=stamp)
    age = now - generated
    if age < -FUTURE_TOLERANCE_SECONDS:
        return CacheRead(SKEWED, data=data, age_seconds=age, stamp=stamp,
                         reason=f"clock skew: the cache is dated {fmt_duration_words(-age)} ahead of this machine's clock")
    if age > STALE_AFTER_INTERVALS * max(interval, 1.0):
        return CacheRead(STALE, data=data, age_seconds=age, reason=stale_reason(os.path.dirname(os.fspath(path)),
                                                                                generated), stamp=stamp)
    return CacheRead(FRESH, data=data, age_seconds=max(age, 0.0), stamp=stamp)


def stale_reason(state_dir: str, generated: float) -> str:
    """Why a cache written at *generated* is stale: nobody runs the refresher, or it runs
    and cannot write (what the last failed write said, if after *generated*), or it runs
    and has not finished a cycle since (stuck, or the machine was asleep)."""
    if not lock_is_held(os.path.join(state_dir, REFRESHER_LOCK_NAME)):
        return "refresher not running"
    failure = write_failure(state_dir, since=generated)
    if failure:
        return f"the refresher runs but cannot write the cache: {failure}"
    return "the refresher runs but has not updated the cache"


def write_failure(state_dir: str | os.PathLike, *, since: float) -> str | None:
    """The error of the last cache write, when it failed at or after *since*."""
    try:
        status = json.loads(read_state_file(os.path.join(os.fspath(state_dir), WRITE_STATUS_NAME),
                                            WRITE_STATUS_BYTES))
        error, at = status.get("error"), status.get("at")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(error, str) and error and isinstance(at, (int, float)) and at >= since:
        return error
    return None


def write_cache(path: str | os.PathLike, data: dict[str, Any], *,
                lock_timeout: float = WRITE_LOCK_TIMEOUT_SECONDS) -> None:
    """Publish *data* atomically, serialised with other writers by `<cache>.lock`, in a
    state dir that passes paths.check_private_dir (else UntrustedStateError). How the
    write went is noted in `system_health.status` (best effort)."""
    from aiki_hooks.paths import StateLock, make_private_dir

    path = os.fspath(path)
    make_private_dir(os.path.dirname(path) or ".")
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    try:
        with StateLock(path + ".lock", timeout=lock_timeout):
            atomic_write_bytes(path, payload)
    except OSError as exc:
        note_write_status(path, exc.strerror or str(exc) or type(exc).__name__)
        raise
    note_write_status(path, None)


def note_write_status(path: str | os.PathLike, error: str | None, *, now: float | None = None) -> None:
    """Record in `system_health.status` beside the cache *path* whether its last write
    failed (*error*) or worked (None). Rewritten in place at a fixed size, so once the file
    exists the record fits in its block even on a full disk; a success over a success is
    not written again. Never raises: this is a hint for readers."""
    from aiki_hooks.paths import open_state_file

    status = os.path.join(os.path.dirname(os.fspath(path)) or ".", WRITE_STATUS_NAME)
    if error is None:
        try:
            raw = read_state_file(status, WRITE_STATUS_BYTES)
            if len(raw) == WRITE_STATUS_BYTES and json.loads(raw).get("error") is None:
                return
        except (OSError, ValueError, AttributeError):
            pass
    else:
        error = "".join(ch if ch.isprintable() else " " for ch in error)[:200]  # our own words, kept one line
    record = json.dumps({"pid": os.getpid(), "at": time.time() if now is None else now, "error": error},
                        ensure_ascii=False).encode("utf-8")
    payload = record[:WRITE_STATUS_BYTES - 1].ljust(WRITE_STATUS_BYTES - 1) + b"\n"
    try:
        fd = open_state_file(status, os.O_WRONLY | os.O_CREAT)
        try:
            os.pwrite(fd, payload, 0)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write_bytes(path: str | os.PathLike, payload: bytes, *, mode: int | None = None,
                       replace: Callable[[str, str], bool] | None = None) -> bool:
    """Temp file in the same directory (0600, or *mode*), fsync, rename, fsync the directory.

    The temp name starts with a dot and ends in .tmp, so collectors watching the
    directory for `*.prom` or `*.json` never pick it up half written.

    *replace*, if given, puts the temp file in *path*'s place instead of os.replace:
    called as replace(temp, path), it returns whether it did (False: *path* is left as
    it was, and the directory is not fsynced). Whatever it leaves at the temp name (an
    exchange leaves the displaced file there) is removed afterwards, as on an error.
    install.settings replaces the user's settings file this way, with a checked exchange.
    Returns whether *path* was replaced (always True without *replace*).
    Only os calls: the hooks' spool writes go through here too.
    """
    path = os.fspath(path)
    directory, name = os.path.split(path)
    directory = directory or "."
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace is None:
            os.replace(tmp, path)
            replaced = True
        else:
            replaced = replace(tmp, path)
        if replaced:
            fsync_dir(directory)
    except BaseException:
        _unlink_if_there(tmp)
        raise
    if replace is not None:
        _unlink_if_there(tmp)
    return replaced


def _unlink_if_there(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_dir(directory: str | os.PathLike) -> None:
    """fsync *directory*, so that a rename or removal in it survives a crash."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_orphan_temp_files(path: str | os.PathLike, *, older_than_seconds: float = 60.0,
                             now: float | None = None) -> int:
    """Delete temp files a killed writer left behind (never a live writer's: they are young)."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return 0
    for entry in entries:
        if not (entry.startswith(f".{name}.") and entry.endswith(".tmp")):
            continue
        candidate = os.path.join(directory, entry)
        try:
            if now - os.stat(candidate).st_mtime > older_than_seconds:
                os.unlink(candidate)
                removed += 1
        except FileNotFoundError:
            continue
    return removed
