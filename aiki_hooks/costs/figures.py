"""The cost figures from the transcript index, kept up to date: what the `claude-costs`
check judges and the bare `aiki-hooks costs` prints (today, the current 5-hour block, the
days asked for, the sessions). The probe (probes/costs.py) adds its verdicts and the
user's own tracker; a command that needs neither imports only this.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import orjson

from aiki_hooks.costs import report
from aiki_hooks.costs.prices import price_book
from aiki_hooks.costs.scan import ChangeWatch, Scanner, ScanStats, TranscriptLister, claude_config_dirs
from aiki_hooks.costs.store import INDEX_NAME, KEEP_DAYS, CostStore

if TYPE_CHECKING:
    from aiki_hooks.config.load import CostsConfig

WEEK_DAYS = 7


class CostFigures:
    """The figures of the last `days` days from the index at *state_dir*, which each call
    of figures() first brings up to date with the transcripts."""

    def __init__(self, config: CostsConfig, state_dir: str | os.PathLike, *, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time, workers: int = 1, one_shot: bool = False) -> None:
        self.config = config
        self.index_path = os.path.join(os.fspath(state_dir), INDEX_NAME)
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.prices = price_book(config)
        self.tz = report.zone(config.timezone)
        self._lock = threading.Lock()
        self._store: CostStore | None = None
        self._window: report.Window | None = None
        self._estimates: dict[tuple[int, float], float | None] = {}  # see _estimate
        self._pair_tokens: dict[tuple[str, str], int] | None = None  # see _estimate
        self._memo_pair_tokens: dict[tuple[str, str], int] | None = None  # from a window memo
        self._memo_read_at: int | None = None  # a window memo to save: the index's version read
        # Worker processes only where forking is safe: a single-threaded command, not the
        # refresher, whose probe threads may hold locks at fork time.
        self.workers = workers
        # An inotify watch and remembered directory listings pay off over many refreshes;
        # a one-shot command (`aiki-hooks costs`) makes one.
        self.one_shot = one_shot

    def figures(self, days: int = WEEK_DAYS) -> dict[str, Any]:
        """Scan what is new, then bring the figures up to date (also used by `aiki-hooks costs`).

        The window of figures is fed only the messages this refresh added; it is rebuilt
        from the index when the day changed or a transcript was truncated, replaced or
        deleted. A refresh with nothing new costs one stat per file.
        """
        if self._store is None:
            self._store = CostStore(self.index_path)
            self._scanner = Scanner(self._store, self.prices, workers=self.workers)
            self._lister = TranscriptLister(remember=not self.one_shot)
            self._watch = ChangeWatch(enabled=not self.one_shot)
            self._file_count, self._had_errors = 0, False
        now = self.clock()
        window = self._window
        if window is None or not window.valid_for(now, days):
            window = None
            lookback = report.Window(days=days, tz=self.tz, now=now).lookback
            # Asked for days the index no longer holds (pruned): read everything again.
            if self._store.reset_if_pruned(lookback):
                self._scanner.forget_known()
        fed = None
        # Nothing touched the transcripts: no stat needed. (Not while a file could not be
        # read: each refresh tries it again and says so.)
        if not self._had_errors and self._watch.quiet() and self._scanner.index_unchanged():
            stats = ScanStats(files=self._file_count)
        else:
            files = self._lister.files(claude_config_dirs(self.config.claude_config_dirs, self.env))
            # A window to build anew is fed a first fill's rows file by file, as the
            # workers read (summed while they still read, not after them).
            fed = report.Window(days=days, tz=self.tz, now=now) if window is None else None
            stats = self._scanner.refresh(files, on_first_rows=(lambda rows: fed.add(rows, unordered=True))
                                          if fed is not None else None)
            self._file_count, self._had_errors = len(files), bool(stats.errors)
            self._watch.watch(self._lister.directories, self._lister.complete)
        if window is not None and stats.new_rows is not None:
            window.add(stats.new_rows)
        else:
            if fed is not None and stats.index_was_empty and stats.new_rows is not None:
                window = fed  # everything, just read
            else:
                window = self._window_from_index(self._store, days, now)
            self._window, self._estimates, self._pair_tokens = window, {}, self._memo_pair_tokens
            self._prune(self._store, now, window.lookback)
        todays, week, block = window.today_breakdown, window.period, window.current_block(now)
        if stats.new_rows or stats.new_rows is None or stats.files_read:
            # Claude Code's figures may have changed with what was read
            self._estimates, self._pair_tokens = {}, None
        figures = {
            "now": now,
            "days": days,
            "stats": stats,
            "daily": window.daily_sorted(),
            "today": todays,
            "week": week,
            "block": block,
            "sessions": window.sessions(now),
            "unpriced_today_estimate": self._estimate(self._store, window, todays, window.today_start),
            "unpriced_block_estimate": self._estimate(self._store, window, block.breakdown, block.start) if block else None,
            "unpriced_week_estimate": self._estimate(self._store, window, week, window.since),
        }
        if self._memo_read_at is not None:
            memo = window.memo(now)
            memo["pair_tokens"] = None if self._pair_tokens is None else [[*pair, tokens] for pair, tokens
                                                                          in self._pair_tokens.items()]
            self._store.save_window_memo(window.memo_key, orjson.dumps(memo), self._memo_read_at)
            self._memo_read_at = None
        return figures

    def _window_from_index(self, store: CostStore, days: int, now: float) -> report.Window:
        """The window of *days* from every stored message, or, for a one-shot command, from
        the memo the last one left in the index if nothing was written to it since (a
        month's messages are ~25,000 rows to decode and sum: most of a warm
        `aiki-hooks costs`). A one-shot command leaves one for the next."""
        window = report.Window(days=days, tz=self.tz, now=now)
        self._memo_pair_tokens = None
        if self.one_shot:
            data = store.window_memo(window.memo_key)
            if data is not None:
                memo = orjson.loads(data)
                if memo["pair_tokens"] is not None:
                    self._memo_pair_tokens = {(s, m): t for s, m, t in memo["pair_tokens"]}
                return report.Window.restored(memo, days=days, tz=self.tz, now=now)
            self._memo_read_at = store.data_version()
        window.add(store.rows_since(window.lookback))
        return window

    def _prune(self, store: CostStore, now: float, lookback: float) -> None:
        """Keep the index small: drop messages older than KEEP_DAYS (or the window asked
        for, if longer). Runs when the figures are rebuilt (start, a new day), at most once
        a day; a later request for older days reads the transcripts again."""
        horizon = min(now - KEEP_DAYS * 86400, lookback)
        oldest = store.oldest()
        if oldest is None or oldest >= horizon or horizon - store.kept_since() < 86400:
            return
        with store.transaction():
            store.prune(horizon)

    def _estimate(self, store: CostStore, window: report.Window, breakdown: report.Breakdown, since: float) -> float | None:
        """Claude Code's own price (`cost-state`) for the unpriced tokens since *since*;
        None when there are none or it gave none. Kept until the next refresh reads anything."""
        if not breakdown.total.unpriced_tokens:
            return None
        key = (id(window), since)
        if key not in self._estimates:
            if self._pair_tokens is None:  # all-time tokens of every unpriced (session, model): one read
                pairs = sorted({(m[2], m[3]) for m in window.recent if m[10] is None})
                self._pair_tokens = store.session_model_tokens(pairs)
            unpriced = window.unpriced_since(since)
            sessions = sorted({m.session for m in unpriced})
            self._estimates[key] = report.estimate_unpriced(unpriced, store.session_costs(sessions), self._pair_tokens)
        return self._estimates[key]

    def close(self) -> None:
        """Close the index (a one-shot command, at its end)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    @contextlib.contextmanager
    def locked(self):
        """Wait for the index (another scan may be running in this process)."""
        with self._lock:
            yield
