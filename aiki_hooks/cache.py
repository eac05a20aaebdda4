"""The health cache: `system_health.json` in the state directory.

Publishing: the snapshot is written to a temp file in the same directory (0600),
fsynced and renamed over the cache, then the directory is fsynced; writers are
serialised by a lock file. Readers take no lock at all: rename is atomic, so a reader
sees the old file or the new one, never a partial one (and never waits).

The hooks import this module on every tool call, so the read path imports only json,
os and time (no dataclasses, pathlib or tempfile: each costs milliseconds per call);
the writer imports what it needs when it runs.
"""

from __future__ import annotations

import json
import os
import time
TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1
STALE_AFTER_INTERVALS = 3
WRITE_LOCK_TIMEOUT_SECONDS = 5.0
CACHE_NAME = "system_health.json"

FRESH = "fresh"
STALE = "stale"
MISSING = "missing"
CORRUPT = "corrupt"
UNKNOWN_SCHEMA = "unknown_schema"


class CacheRead:
    """The outcome of reading the cache: `state` is fresh, stale, missing, corrupt or
    unknown_schema; `data` is the snapshot dict when fresh or stale."""

    __slots__ = ("state", "data", "age_seconds", "reason")

    def __init__(self, state: str, data: dict[str, Any] | None = None, age_seconds: float | None = None,
                 reason: str = "") -> None:
        self.state = state
        self.data = data
        self.age_seconds = age_seconds
        self.reason = reason

    @property
    def usable(self) -> bool:
        """Fresh or stale data can still be shown (stale with its age)."""
        return self.state in (FRESH, STALE)

    def __repr__(self) -> str:
        return f"CacheRead(state={self.state!r}, age_seconds={self.age_seconds!r}, reason={self.reason!r})"


def cache_path(state_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(state_dir), CACHE_NAME)


def read_cache(path: str | os.PathLike, *, now: float | None = None) -> CacheRead:
    """Read and classify the cache. Never raises for a bad file; never blocks."""
    now = time.time() if now is None else now
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        return CacheRead(MISSING, reason="no health data yet")
    except OSError as exc:
        return CacheRead(CORRUPT, reason=f"cannot read cache: {exc.strerror or exc}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return CacheRead(CORRUPT, reason=f"cache is not valid JSON ({exc.__class__.__name__})")
    if not isinstance(data, dict):
        return CacheRead(CORRUPT, reason="cache is not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        return CacheRead(UNKNOWN_SCHEMA, reason=f"cache schema {version!r}, expected {SCHEMA_VERSION}")
    try:
        generated = parse_utc(data["generated_at"])
        interval = float(data["interval_seconds"])
        if not isinstance(data["probes"], list) or not isinstance(data["issues"], list):
            raise TypeError("probes/issues are not lists")
    except (KeyError, TypeError, ValueError) as exc:
        return CacheRead(CORRUPT, reason=f"cache lacks required fields ({exc})")
    age = now - generated
    if age > STALE_AFTER_INTERVALS * max(interval, 1.0):
        return CacheRead(STALE, data=data, age_seconds=age, reason="refresher not running")
    return CacheRead(FRESH, data=data, age_seconds=max(age, 0.0))


def parse_utc(text: str) -> float:
    """Epoch seconds from the cache's ISO 8601 UTC timestamps ("...Z")."""
    import datetime as dt  # C-accelerated and cheap; kept local to this one use

    moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def write_cache(path: str | os.PathLike, data: dict[str, Any], *,
                lock_timeout: float = WRITE_LOCK_TIMEOUT_SECONDS) -> None:
    """Publish *data* atomically, serialised with other writers by `<cache>.lock`."""
    from filelock import FileLock

    from .paths import ensure_private_dir

    path = os.fspath(path)
    ensure_private_dir(os.path.dirname(path))
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    with FileLock(path + ".lock", timeout=lock_timeout, mode=0o600):
        atomic_write_bytes(path, payload)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes, *, mode: int | None = None,
                       before_replace=None) -> None:
    """Temp file in the same directory (0600, or *mode*), fsync, rename, fsync the directory.

    The temp name starts with a dot and ends in .tmp, so collectors watching the
    directory for `*.prom` or `*.json` never pick it up half written. *before_replace*,
    if given, runs just before the rename; raising there leaves *path* untouched.
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
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
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
