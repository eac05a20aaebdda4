"""`aiki-hooks costs daily|monthly|session|blocks`: bring the index up to date with the
transcripts, then read the unique messages of the asked dates back from it.

The same incremental scan as the `claude-costs` check: a run with nothing new reads no
transcript bytes, only the index. Dates before what the index still holds (it keeps 40
days, see costs/store.py) make it read the transcripts again, once.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any

from aiki_hooks.config.load import CostsConfig
from aiki_hooks.costs import report
from aiki_hooks.costs.prices import price_book
from aiki_hooks.costs.scan import Scanner, ScanStats, TranscriptLister, claude_config_dirs
from aiki_hooks.costs.store import INDEX_NAME, KEEP_DAYS, CostStore, Row

REPORTS = ("daily", "monthly", "session", "blocks")
# Without --since: daily covers --days (7 by default, as before), the others what the
# index keeps (less 2 days: the block look-back and the time of day), so that their warm
# runs read no transcript again.
DEFAULT_DAYS = {"daily": 7, "monthly": KEEP_DAYS - 2, "session": KEEP_DAYS - 2, "blocks": KEEP_DAYS - 2}


def parse_date(text: str, option: str) -> _dt.date:
    """A YYYYMMDD date (ccusage's format); ValueError with one line saying what is wrong."""
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ValueError(f"{option} must be a date as YYYYMMDD, like 20261124 (got {text!r})") from None


@dataclass
class Loaded:
    """What a report reads: the unique messages at or after `since` with their transcript
    paths (first copy in path order, as ccusage counts them), by time."""

    rows: list[tuple[str, list[Any]]]
    projects_dirs: list[str]
    stats: ScanStats

    @property
    def messages(self) -> list[Row]:
        return [row for _, row in self.rows]


# Read this much before --since: the blocks of the first day are placed by the messages
# before it, back to a gap of more than 5 hours (see report.blocks_since).
LOOKBACK_SECONDS = 86400 + report.BLOCK_SECONDS


def load(config: CostsConfig, state_dir: str | os.PathLike, since: _dt.date, *, workers: int = 1,
         env: dict[str, str] | None = None) -> Loaded:
    """Scan what is new into the index at *state_dir*, then read the messages from a day
    and 5 hours before the local midnight of *since* on (LOOKBACK_SECONDS)."""
    tz = report.zone(config.timezone)
    since_ts = report.day_start(since, tz) - LOOKBACK_SECONDS
    store = CostStore(os.path.join(os.fspath(state_dir), INDEX_NAME))
    try:
        scanner = Scanner(store, price_book(config), workers=workers)
        store.reset_if_pruned(since_ts)  # older than the index holds: read everything again
        dirs = claude_config_dirs(config.claude_config_dirs, os.environ if env is None else env)
        stats = scanner.refresh(TranscriptLister(remember=False).files(dirs))
        rows = store.rows_by_path(since_ts)
    finally:
        store.close()
    rows.sort(key=lambda pair: pair[1][1])  # by time; sorted() keeps path order among equal times
    return Loaded(rows, [os.path.join(d, "projects") for d in dirs], stats)
