"""The health cache: `system_health.json` in the state directory.

Publishing: the snapshot is written to a temp file in the same directory (0600),
fsynced and renamed over the cache, then the directory is fsynced; writers are
serialised by a lock file. Readers take no lock at all: rename is atomic, so a reader
sees the old file or the new one, never a partial one (and never waits).

This module is imported by the hooks on every tool call: the read path uses only the
standard library; `filelock` is imported by the writer alone.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import CACHE_NAME, ensure_private_dir

SCHEMA_VERSION = 1
STALE_AFTER_INTERVALS = 3
WRITE_LOCK_TIMEOUT_SECONDS = 5.0

FRESH = "fresh"
STALE = "stale"
MISSING = "missing"
CORRUPT = "corrupt"
UNKNOWN_SCHEMA = "unknown_schema"


@dataclass(frozen=True)
class CacheRead:
    state: str  # fresh | stale | missing | corrupt | unknown_schema
    data: dict[str, Any] | None = None
    age_seconds: float | None = None
    reason: str = ""

    @property
    def usable(self) -> bool:
        """Fresh or stale data can still be shown (stale with its age)."""
        return self.state in (FRESH, STALE)


def cache_path(state_dir: Path) -> Path:
    return Path(state_dir) / CACHE_NAME


def read_cache(path: Path, *, now: float | None = None) -> CacheRead:
    """Read and classify the cache. Never raises for a bad file; never blocks."""
    now = time.time() if now is None else now
    try:
        raw = Path(path).read_bytes()
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
        return CacheRead(UNKNOWN_SCHEMA, data=None, reason=f"cache schema {version!r}, expected {SCHEMA_VERSION}")
    try:
        generated = _parse_utc(data["generated_at"])
        interval = float(data["interval_seconds"])
        if not isinstance(data["probes"], list) or not isinstance(data["issues"], list):
            raise TypeError("probes/issues are not lists")
    except (KeyError, TypeError, ValueError) as exc:
        return CacheRead(CORRUPT, reason=f"cache lacks required fields ({exc})")
    age = now - generated
    if age > STALE_AFTER_INTERVALS * max(interval, 1.0):
        return CacheRead(STALE, data=data, age_seconds=age, reason="refresher not running")
    return CacheRead(FRESH, data=data, age_seconds=max(age, 0.0))


def _parse_utc(text: str) -> float:
    import datetime as dt

    moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def write_cache(path: Path, data: dict[str, Any], *, lock_timeout: float = WRITE_LOCK_TIMEOUT_SECONDS) -> None:
    """Publish *data* atomically, serialised with other writers by `<cache>.lock`."""
    from filelock import FileLock

    path = Path(path)
    ensure_private_dir(path.parent)
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    with FileLock(str(path) + ".lock", timeout=lock_timeout, mode=0o600):
        atomic_write_bytes(path, payload)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Temp file in the same directory (0600), fsync, rename, fsync the directory."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_orphan_temp_files(path: Path, *, older_than_seconds: float = 60.0, now: float | None = None) -> int:
    """Delete temp files a killed writer left behind (never a live writer's: they are young)."""
    path = Path(path)
    now = time.time() if now is None else now
    removed = 0
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.tmp"))
    except OSError:
        return 0
    for candidate in candidates:
        try:
            if now - candidate.stat().st_mtime > older_than_seconds:
                candidate.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
