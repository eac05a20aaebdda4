"""One cycle: run the probes, derive issues (carrying `since` across cycles), publish.

Publishing also keeps the issue journal: the tracker turns the snapshot into damped
transitions, which go to the journal and, when mem0 is on, to the delivery spool.
"""

from __future__ import annotations

import collections
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, overload

from aiki_hooks import paths
from aiki_hooks.config.load import Config
from aiki_hooks.cycle.build import build_probes, check_hints
from aiki_hooks.cycle.cache import read_cache, write_cache
from aiki_hooks.cycle.runner import run_probes
from aiki_hooks.cycle.sdnotify import ERR, INFO, NOTICE, WARNING
from aiki_hooks.issues import journal
from aiki_hooks.model.result import Finding, Issue, ProbeResult, Snapshot, derive_issues, replace
from aiki_hooks.model.status import Status, worst
from aiki_hooks.probes.registry import Probe

PATTERN_DAYS = 7
PATTERN_REFRESH_SECONDS = 600


if TYPE_CHECKING:
    from aiki_hooks.outputs.metrics import MetricsServer


def _log_to_stderr(line: str, priority: int) -> None:
    sys.stderr.write(f"aiki-hooks: {line}\n")


class Engine:
    """Holds the probes (some keep state between cycles), the previous snapshot and the
    issue tracker."""

    def __init__(self, config: Config, *, probes: Sequence[Probe] | None = None, wall=time.time,
                 log: Callable[[str, int], None] | None = None, oneshot: bool = False) -> None:
        """*oneshot*: a short command (status, refresh, probe, metrics), not the refresher:
        it serves no /metrics endpoint (that would die with the process) and must `close()`
        so webhooks send what they queued."""
        from aiki_hooks.issues.occurrences import IssueTracker

        self.config = config
        self.probes = list(probes) if probes is not None else build_probes(config)
        self.hints = check_hints(config, self.probes)
        self.wall = wall
        # log(line, priority): a syslog priority (sdnotify.ERR ... INFO) that the refresher
        # hands to journald; the default writes plain lines on stderr.
        self.log: Callable[[str, int], None] = log or _log_to_stderr
        self.host = socket.gethostname()
        self.previous_issues: tuple[Issue, ...] = load_open_issues(config.cache_path)
        self.last: Snapshot | None = None
        self.tracker = IssueTracker(str(config.state_dir), config.journal, host=self.host)
        self._patterns: tuple[dict, ...] = ()
        self._patterns_at = float("-inf")
        self._metrics_servers: dict[str, MetricsServer] = {}
        self.oneshot = oneshot
        self._cache_error: Exception | None = None  # this cycle's, for the cache output
        self._journal_error: Exception | None = None  # this cycle's (set by record()), for the journal output
        self._journal_failing = False
        self._written_seq = 0  # highest journal seq this engine wrote
        self._first_written_seq: int | None = None  # where a first spool feed starts
        self._spooled_seq: int | None = None  # journal seq the spool was last brought up to
        self._cursor_placed = False  # the spool's cursor is known to exist
        self.router = self._make_router()

    # ------------------------------------------------------------------ outputs

    def _make_router(self):
        """[[outputs]]: where each cycle's snapshot and journal records go, filtered.

        The cache and the journal are always written in full (the hooks, the patterns and
        `aiki-hooks issues` depend on them) before routing, so their handlers only report
        how that went: a failure becomes an `output:<name>` issue like any other output's."""
        from aiki_hooks.outputs.router import TOLD_FILE, ReportedElsewhere, Router

        def cache_written(out, data, records, now):
            if self._cache_error is not None:
                raise ReportedElsewhere(self._cache_error)  # publish raises it

        def journal_written(out, data, records, now):
            if self._journal_error is not None:
                raise ReportedElsewhere(self._journal_error)  # record() logged it

        return Router(self.config.outputs, handlers={
            "cache": cache_written,
            "journal": journal_written,
            "mem0": lambda out, data, records, now: self.spool(records),
            "prometheus_textfile": self._write_textfile,
            "prometheus_http": self._serve_metrics,
        }, log=self.log, told_file=os.path.join(str(self.config.state_dir), TOLD_FILE))

    def _write_textfile(self, out, data, records, now) -> None:
        from aiki_hooks.outputs.metrics import write_textfile

        write_textfile(out.directory, data)

    def _serve_metrics(self, out, data, records, now) -> None:
        if self.oneshot:
            return  # only the long-lived refresher serves /metrics
        server = self._metrics_servers.get(out.name)
        if server is None:
            from aiki_hooks.outputs.metrics import MetricsServer

            server = self._metrics_servers[out.name] = MetricsServer(out.host, out.port)
            self.log(f"serving metrics on http://{out.host}:{server.port}/metrics", INFO)
        server.update(data)

    def close(self, *, wait: bool = True) -> None:
        """Stop the outputs: webhooks send their queues first (bounded; see Router.close),
        or, without *wait*, finish them in the background. The /metrics port is freed."""
        self.router.close(wait=wait)
        for server in self._metrics_servers.values():
            server.close()
        self._metrics_servers.clear()

    @overload
    def cycle(self) -> Snapshot: ...

    @overload
    def cycle(self, stop: threading.Event | None) -> Snapshot | None: ...

    def cycle(self, stop: threading.Event | None = None) -> Snapshot | None:
        """Run one cycle and return its snapshot, or None if *stop* interrupted it."""
        results = run_probes(self.probes, stop=stop)
        if results is None:
            return None
        now = self.wall()
        mem0 = self.delivery_result(now)
        if mem0 is not None:
            results.append(mem0)
        if self.router.troubled:  # failing or dropping payloads
            results.append(self.router.probe_result(now))
        snapshot = Snapshot(
            generated_at=now,
            interval_seconds=self.config.interval_seconds,
            host=self.host,
            probes=tuple(results),
            issues=derive_issues(results, self.previous_issues, now, self.hints),
            hook_settings=self.hook_settings(),
            patterns=self.patterns(now),
        )
        self.previous_issues = snapshot.issues
        self.last = snapshot
        return snapshot

    def hook_settings(self) -> dict:
        """What the hooks need from the config (they never parse TOML)."""
        return {
            "guard": [rule.to_dict() for rule in self.config.guard],
            # The hooks only journal: the engine spools every journal record (session
            # events included) through the mem0 output's filter, from a cursor.
            "mem0_spool": False,
            "max_spool_records": self.config.mem0.max_spool_records,
            "journal_max_bytes": self.config.journal.max_bytes,
            "journal_keep_files": self.config.journal.keep_files,
        }

    def reconfigure(self, config: Config) -> None:
        """Adopt a new config: probes are rebuilt, open issues keep their `since`."""
        self.config = config
        self.probes = build_probes(config)
        self.hints = check_hints(config, self.probes)
        self.tracker.config = config.journal
        self.close(wait=False)  # a reload must not hold up the cycle (the watchdog is counting)
        self.router = self._make_router()

    # ------------------------------------------------------------------ journal

    def patterns(self, now: float) -> tuple[dict, ...]:
        """Recurring issues of the last week, re-read from the journal when it changed."""
        if now - self._patterns_at >= PATTERN_REFRESH_SECONDS:
            from aiki_hooks.issues.patterns import recurrence

            try:
                records = journal.read(str(self.config.state_dir), since=now - PATTERN_DAYS * 86400)
                self._patterns = tuple(recurrence(records, now=now, days=PATTERN_DAYS))
            except (FileNotFoundError, NotADirectoryError):
                pass  # no journal yet; publishing will say if the state dir is unusable
            except OSError as exc:
                self.log(f"cannot read the journal: {exc.strerror or exc}", WARNING)
            self._patterns_at = now
        return self._patterns

    def record(self, snapshot: Snapshot) -> tuple[Snapshot, list[dict]]:
        """Damped transitions into the journal; returns the snapshot with each issue's
        `occurrence_id` and the records written.

        The tracker works under the journal lock with its state re-read, so engines sharing
        a state dir never open one occurrence twice; what a failed append could not write
        waits in the tracker's outbox on disk (see occurrences.py). A failure is kept in
        `_journal_error`, which the journal output reports as a WARNING."""
        try:
            written = self.tracker.record(snapshot, snapshot.generated_at, max_bytes=self.config.journal.max_bytes,
                                          keep_files=self.config.journal.keep_files)
        except OSError as exc:
            written = []
            if not self._journal_failing and not self.oneshot:  # a one-shot command says it its own way
                self.log(f"cannot append to the journal: {exc.strerror or exc}; will retry", ERR)
            self._journal_failing, self._journal_error = True, exc
        else:
            if self._journal_failing:
                self.log("journal writable again", NOTICE)
            self._journal_failing = False
        if written:
            self._patterns_at = float("-inf")  # the journal changed
            self._written_seq = max(self._written_seq, written[-1]["seq"])
            if self._first_written_seq is None:
                self._first_written_seq = written[0]["seq"]
        opened = self.tracker.open_occurrences()
        issues = tuple(
            replace(issue, occurrence_id=opened[issue.id]["occurrence_id"]) if issue.id in opened else issue
            for issue in snapshot.issues
        )
        return replace(snapshot, issues=issues), written

    def spool(self, records: list[dict]) -> None:
        """The mem0 output: bring the spool up to date with the journal.

        *records* (this cycle's, already filtered) are not used: the journal is the source
        of truth, and `Spool.feed` adds every record after the spool's cursor that the
        mem0 output's filter passes: this cycle's, what an earlier failed feed or a killed
        refresher left behind, and the session events the hooks journaled. Raises when the
        spool cannot be written (the router reports `output:mem0`); the cursor stays, so
        the next cycle catches up."""
        if self.config.mem0.backend == "off":
            return
        state_dir = str(self.config.state_dir)
        hint = max(journal.seq_hint(state_dir), self._written_seq)
        if hint == self._spooled_seq:
            return  # nothing journaled since the last feed: no lock, no spool I/O
        from aiki_hooks.outputs.mem0.spool import Spool, note_dropped
        from aiki_hooks.outputs.router import filter_records

        out = next((o for o in self.config.outputs if o.type == "mem0"), None)
        limit = self.config.mem0.max_spool_records
        first_written = self._first_written_seq

        def fetch(state: dict) -> list[dict]:
            cursor = state.get("journal_seq")
            last = journal.last_seq(state_dir)
            if not isinstance(cursor, int) or isinstance(cursor, bool):
                # No cursor (_place_cursor failed): start with this process's records, not the past.
                cursor = first_written - 1 if first_written is not None else last
            elif cursor > last:
                cursor = 0  # the journal was deleted and seq started over
            found, left_out = journal.records_after(state_dir, cursor, limit=limit)
            if left_out:
                note_dropped(state, [f"journal seq {cursor + 1}..{cursor + left_out}"], self.wall(), count=left_out)
            state["journal_seq"] = max([cursor, last] + [r["seq"] for r in found])
            if out is None or not out.filtered:
                return found
            told = collections.OrderedDict.fromkeys(state.get("mem0_told") or ())
            wanted = filter_records(found, out, told)
            state["mem0_told"] = list(told)
            return wanted

        added, dropped = Spool(state_dir, limit).feed(fetch, now=self.wall())
        self._spooled_seq = hint
        if dropped:
            self.log(f"mem0 spool full: dropped the {dropped} oldest record(s)", WARNING)

    def _place_cursor(self, spool) -> None:
        """Where the spool starts reading the journal when mem0 is turned on: now, before
        this engine journals anything (a cycle asks for the delivery result first), so a
        record journaled by a run killed before its first feed is still fed later."""
        state_dir = str(self.config.state_dir)

        def start(state: dict) -> list[dict]:
            if state.get("journal_seq") is None:
                state["journal_seq"] = journal.last_seq(state_dir)
            return []

        try:
            spool.feed(start)
        except OSError:
            return  # spool() falls back to this engine's first record
        self._cursor_placed = True

    def delivery_result(self, now: float) -> ProbeResult | None:
        """mem0 delivery as a check of its own: its warnings become issues."""
        if self.config.mem0.backend == "off":
            return None
        from aiki_hooks.outputs.mem0.spool import Spool

        spool = Spool(str(self.config.state_dir), self.config.mem0.max_spool_records)
        if not self._cursor_placed:
            self._place_cursor(spool)
        try:
            waiting = spool.count()
            problems = spool.health(now, self.config.mem0)
        except OSError as exc:
            return ProbeResult(name="mem0", kind="mem0", status=Status.UNKNOWN, error_kind="spool_unreadable",
                               summary=f"cannot read the spool: {exc.strerror or exc}")
        findings = tuple(Finding(id=issue_id, status=Status.parse(severity), summary=text)
                         for issue_id, severity, text in problems)
        status = worst(f.status for f in findings)
        summary = "; ".join(f.summary for f in findings) or (
            f"{self.config.mem0.backend} backend, {waiting} record(s) waiting" if waiting
            else f"{self.config.mem0.backend} backend, all records delivered")
        return ProbeResult(name="mem0", kind="mem0", status=status, summary=summary,
                           values={"records_waiting": waiting, "backend": self.config.mem0.backend},
                           findings=findings)

    # ------------------------------------------------------------------ publish

    def publish(self, snapshot: Snapshot) -> Snapshot:
        """Journal the transitions, write the cache, hand the cycle to every output.
        Returns what was published.

        A journal or cache write that fails does not skip the other outputs: it is reported
        like a failing output (a WARNING `output:journal` / `output:cache` from the next
        cycle on). A cache failure, or anything record() did not handle, is then raised so
        the caller can say so too."""
        self._journal_error = None
        escaped: Exception | None = None
        try:
            snapshot, written = self.record(snapshot)
        except Exception as exc:  # noqa: BLE001 - routed first, raised below
            escaped, written = exc, []
            self._journal_error = exc
        self.previous_issues = snapshot.issues
        self.last = snapshot
        data = snapshot.to_dict()
        self._cache_error = None
        try:
            write_cache(self.config.cache_path, data)
        except Exception as exc:  # noqa: BLE001 - routed first, raised below
            self._cache_error = exc
        self.router.route(data, written, snapshot.generated_at)
        from aiki_hooks.outputs.router import _error_text

        for kind, error in (("journal", self._journal_error), ("cache", self._cache_error)):
            if not any(out.type == kind for out in self.config.outputs):  # written anyway: say how it went
                self.router.report(kind, None if error is None else _error_text(error), snapshot.generated_at,
                                   log=False)
        for error in (self._cache_error, escaped):
            if error is not None:
                raise error
        return snapshot


def load_open_issues(cache_file: Path) -> tuple[Issue, ...]:
    """Issues from the last published snapshot, so `since` survives a restart."""
    read = read_cache(cache_file)
    if not read.usable or read.data is None:
        return ()
    try:
        return tuple(Issue.from_dict(item) for item in read.data["issues"])
    except (KeyError, TypeError, ValueError):
        return ()


def start_mem0_flush(config: Config, *, env: dict | None = None):
    """Start `aiki-hooks mem0-flush` in the background when records wait and the backoff
    allows; returns the Popen (the caller reaps it) or None. mem0 is imported only there."""
    if config.mem0.backend == "off":
        return None
    from aiki_hooks.outputs.mem0.spool import Spool

    spool = Spool(str(config.state_dir), config.mem0.max_spool_records)
    try:
        if not spool.count() or not spool.due(time.time()):
            return None
    except OSError:
        return None
    import subprocess

    if paths.lock_is_held(os.path.join(str(config.state_dir), "mem0-flush.lock")):
        return None
    child_env = dict(os.environ if env is None else env)
    if not config.source.startswith("<"):
        child_env["AIKI_HOOKS_CONFIG"] = config.source
    paths.put_package_on_path(child_env)
    return subprocess.Popen([sys.executable, "-m", "aiki_hooks.cli", "mem0-flush"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, start_new_session=True, env=child_env, cwd="/")
