"""One cycle: run the probes, derive issues (carrying `since` across cycles), publish."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Sequence

from .cache import read_cache, write_cache
from .config import Config
from .probes import Probe, build_probes
from .result import Issue, Snapshot, derive_issues
from .runner import run_probes


class Engine:
    """Holds the probes (some keep state between cycles) and the previous snapshot."""

    def __init__(self, config: Config, *, probes: Sequence[Probe] | None = None, wall=time.time) -> None:
        self.config = config
        self.probes = list(probes) if probes is not None else build_probes(config)
        self.wall = wall
        self.host = socket.gethostname()
        self.previous_issues: tuple[Issue, ...] = load_open_issues(config.cache_path)
        self.last: Snapshot | None = None

    def cycle(self, stop: threading.Event | None = None) -> Snapshot | None:
        """Run one cycle and return its snapshot, or None if *stop* interrupted it."""
        results = run_probes(self.probes, stop=stop)
        if results is None:
            return None
        now = self.wall()
        snapshot = Snapshot(
            generated_at=now,
            interval_seconds=self.config.interval_seconds,
            host=self.host,
            probes=tuple(results),
            issues=derive_issues(results, self.previous_issues, now),
            hook_settings={"guard": [rule.to_dict() for rule in self.config.guard]},
        )
        self.previous_issues = snapshot.issues
        self.last = snapshot
        return snapshot

    def reconfigure(self, config: Config) -> None:
        """Adopt a new config: probes are rebuilt, open issues keep their `since`."""
        self.config = config
        self.probes = build_probes(config)

    def publish(self, snapshot: Snapshot) -> None:
        write_cache(self.config.cache_path, snapshot.to_dict())


def load_open_issues(cache_file: Path) -> tuple[Issue, ...]:
    """Issues from the last published snapshot, so `since` survives a restart."""
    read = read_cache(cache_file)
    if not read.usable or read.data is None:
        return ()
    try:
        return tuple(Issue.from_dict(item) for item in read.data["issues"])
    except (KeyError, TypeError, ValueError):
        return ()
