"""The background refresher: a cycle every `interval_seconds`, published to the cache.

- Schedule on a monotonic grid (CLOCK_BOOTTIME where available, which keeps counting
  through suspend): no drift, and after a suspend or a slow cycle it skips the missed
  slots instead of running them all at once.
- One instance per state directory (an flock on `refresher.lock`, which also holds the pid).
- SIGTERM / SIGINT: the cycle in progress is abandoned (the cache keeps the last complete
  snapshot), the commands it was running are killed with their children, and the
  process exits 0.
- One log line per state change on stderr (journald adds timestamps).
- sd_notify: READY=1 after the first cycle, WATCHDOG=1 + STATUS=... every cycle and
  often enough for WatchdogSec even when the interval is longer.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, TextIO

from aiki_hooks import paths
from aiki_hooks.config.load import Config, ConfigError
from aiki_hooks.cycle.cache import atomic_write_bytes, remove_orphan_temp_files
from aiki_hooks.cycle.engine import Engine, start_mem0_flush
from aiki_hooks.cycle.sdnotify import ERR, INFO, NOTICE, WARNING, Notifier, priority_prefix, stream_is_journal
from aiki_hooks.model.result import Snapshot
from aiki_hooks.paths import ensure_private_dir

LOCK_NAME = paths.REFRESHER_LOCK_NAME


def schedule_clock() -> Callable[[], float]:
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        try:
            time.clock_gettime(boottime)
            return lambda: time.clock_gettime(boottime)
        except OSError:
            pass
    return time.monotonic


def next_slot(previous_slot: float, interval: float, now: float) -> float:
    """The next grid point after *previous_slot* that is still in the future.

    Missed slots (suspend, a cycle longer than the interval) are skipped, not replayed.
    """
    slot = previous_slot + interval
    if slot <= now:
        missed = int((now - slot) // interval) + 1
        slot += missed * interval
    return slot


class AlreadyRunning(Exception):
    def __init__(self, lock_path: Path, pid: str):
        self.lock_path = lock_path
        self.pid = pid
        super().__init__(f"a refresher is already running for this state dir (pid {pid or '?'}, lock {lock_path})")


class InstanceLock:
    """Non-blocking exclusive flock; the file keeps the owner's pid for `doctor`."""

    def __init__(self, state_dir: Path, *, name: str = LOCK_NAME) -> None:
        self.path = Path(state_dir) / name
        self.fd: int | None = None

    def acquire(self) -> None:
        ensure_private_dir(self.path.parent)
        fd = paths.open_state_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise AlreadyRunning(self.path, pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None


RUNS_NAME = "refresher.runs"
_RUNS_KEPT = 100


def record_run_event(state_dir: Path, event: str, now: float) -> None:
    """Note "start" or "stop" (a clean exit) of a refresher in the state dir, the last day's
    at most: a start with no stop before it followed a crash, a kill -9 or the watchdog,
    whoever restarted it. Doctor tells a refresher that keeps dying from one that runs."""
    path = Path(state_dir) / RUNS_NAME
    kept = [(e, t) for e, t in _read_runs(path) if now - 86400 < t <= now][-(_RUNS_KEPT - 1):]
    lines = "".join(f"{e} {t:.3f}\n" for e, t in [*kept, (event, now)])
    atomic_write_bytes(path, lines.encode("ascii"))


def recent_crashes(state_dir: Path, *, now: float, seconds: float = 3600) -> int:
    """Starts within *seconds* whose previous run ended without a clean stop."""
    crashes, previous = 0, None
    for event, at in _read_runs(Path(state_dir) / RUNS_NAME):
        if event == "start" and previous == "start" and now - seconds < at <= now:
            crashes += 1
        previous = event
    return crashes


def _read_runs(path: Path) -> list[tuple[str, float]]:
    try:
        text = paths.read_state_file(path, 64 * 1024).decode("ascii", "replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        event, _, at = line.partition(" ")
        try:
            if event in ("start", "stop"):
                found.append((event, float(at)))
        except ValueError:
            continue
    return found


def one_line_status(snapshot: Snapshot) -> str:
    issues = snapshot.issues
    if not issues:
        return f"{snapshot.status.name}: {len(snapshot.probes)} checks fine"
    head = "; ".join(f"{i.id} {i.severity.name}" for i in issues[:3])
    more = f" (+{len(issues) - 3} more)" if len(issues) > 3 else ""
    return f"{snapshot.status.name}: {len(issues)} issue(s): {head}{more}"


def describe_changes(previous: Snapshot | None, current: Snapshot) -> list[str]:
    """Log lines for what changed: issues opened, changed severity, resolved."""
    before = {i.id: i for i in previous.issues} if previous else {}
    after = {i.id: i for i in current.issues}
    lines = []
    for issue_id, issue in after.items():
        old = before.get(issue_id)
        if old is None:
            lines.append(f"issue opened: {issue_id} {issue.severity.name}: {issue.summary}")
        elif old.severity is not issue.severity:
            lines.append(f"issue {issue_id} {old.severity.name} -> {issue.severity.name}: {issue.summary}")
    for issue_id, old in before.items():
        if issue_id not in after:
            lines.append(f"issue resolved: {issue_id} (was {old.severity.name})")
    return lines


class ConfigWatcher:
    """Notices when the config file changes (mtime, size or inode), cheaply, once a cycle."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.seen = self._stamp()

    def _stamp(self):
        if self.path is None:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return "missing"
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def changed(self) -> bool:
        stamp = self._stamp()
        if stamp == self.seen:
            return False
        self.seen = stamp
        return True


class Refresher:
    def __init__(
        self,
        config: Config,
        *,
        engine: Engine | None = None,
        notifier: Notifier | None = None,
        log: TextIO = sys.stderr,
        clock: Callable[[], float] | None = None,
        interval_overridden: bool = False,
        config_file: Path | None = None,
        reload_config: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.interval_overridden = interval_overridden
        # Where the config lives (even before it exists) and how to load it again.
        self.config_file = config_file
        self.reload_config = reload_config
        self.engine = engine
        self.notifier = notifier or Notifier()
        self.log_stream = log
        self.clock = clock or schedule_clock()
        self.stop = threading.Event()
        self.cycles = 0
        self.flush_helper = None
        self.flush_started = 0.0

    def log(self, line: str, priority: int = INFO) -> None:
        # journald timestamps lines itself and takes the priority prefix; elsewhere we add a time.
        if stream_is_journal(self.log_stream):
            prefix = priority_prefix(priority, self.log_stream)
        else:
            prefix = time.strftime("%Y-%m-%d %H:%M:%S ")
        try:
            self.log_stream.write(f"{prefix}aiki-hooks refresher: {line}\n")
            self.log_stream.flush()
        except (OSError, ValueError):
            pass

    def install_signal_handlers(self) -> None:
        def on_signal(signum, _frame):
            self.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self, *, max_cycles: int | None = None) -> int:
        lock = InstanceLock(self.config.state_dir)
        lock.acquire()
        try:
            self._note_run("start")
            if self.engine is None:
                self.engine = Engine(self.config, log=self.log)
            removed = remove_orphan_temp_files(self.config.cache_path)
            if removed:
                self.log(f"removed {removed} temp file(s) left by an interrupted write", NOTICE)
            self.log(
                f"started (pid {os.getpid()}, {len(self.engine.probes)} probes, every {self.config.interval_seconds:g} s, "
                f"cache {self.config.cache_path})"
            )
            previous: Snapshot | None = None
            publish_failing = False
            slot = self.clock()
            watched = ConfigWatcher(self.config_file)
            while not self.stop.is_set():
                self._maybe_reload(watched)
                snapshot = self.engine.cycle(stop=self.stop)
                if snapshot is None:
                    break
                try:
                    snapshot = self.engine.publish(snapshot)
                    if publish_failing:
                        self.log("cache writable again", NOTICE)
                    publish_failing = False
                except Exception as exc:  # noqa: BLE001 - keep running; the next cycle retries
                    if not publish_failing:
                        self.log(f"cannot write cache {self.config.cache_path}: {exc}", ERR)
                    publish_failing = True
                for line in describe_changes(previous, snapshot):
                    self.log(line, NOTICE)  # the machine's news, not the refresher's trouble
                self._tend_mem0_flush()
                status = one_line_status(snapshot)
                if previous is None:
                    self.log(f"first cycle: {status}")
                    self.notifier.ready(status)
                else:
                    self.notifier.watchdog(status)
                previous = snapshot
                self.cycles += 1
                if max_cycles is not None and self.cycles >= max_cycles:
                    break
                slot = next_slot(slot, self.config.interval_seconds, self.clock())
                self._sleep_until(slot)
            self._kill_abandoned_commands()
            self.notifier.stopping()
            self._stop_mem0_flush()
            self.engine.close()
            self.log(f"stopped after {self.cycles} cycles")
            self._note_run("stop")
            return 0
        finally:
            self._kill_abandoned_commands()  # also when the loop ended by an exception
            lock.release()

    def _kill_abandoned_commands(self) -> None:
        """A cycle abandoned by a stop leaves its command probes running in their own
        sessions, where our exit would not reach them: kill their process trees."""
        from aiki_hooks.proc import kill_running_commands

        killed = kill_running_commands()
        if killed:
            self.log(f"killed {killed} process(es) of command probes still running", NOTICE)

    def _note_run(self, event: str) -> None:
        try:
            record_run_event(self.config.state_dir, event, time.time())
        except OSError as exc:
            self.log(f"cannot note this {event} in the state dir: {exc.strerror or exc}", WARNING)

    def _tend_mem0_flush(self) -> None:
        """Reap the flush helper, kill it past its deadline, start one when records wait.

        The helper imports mem0 (~1 s, ~100 MiB) so this process never does; killing it
        is safe: a record leaves the spool only once the backend confirmed it.
        """
        helper = self.flush_helper
        if helper is not None:
            code = helper.poll()
            if code is None:
                if time.monotonic() - self.flush_started < self.config.mem0.timeout_seconds:
                    return
                self.log(f"mem0 flush helper exceeded {self.config.mem0.timeout_seconds:g} s; killed", WARNING)
                self._stop_mem0_flush()
                # A hung backend is an outage too: backoff, and the mem0:delivery WARNING.
                self._record_flush_failure(f"the flush helper did not finish within "
                                           f"{self.config.mem0.timeout_seconds:g} s (killed)")
            elif code == 3:
                self.log("mem0 flush helper: invalid mem0 configuration (run `aiki-hooks mem0-flush` to see it)", WARNING)
                self._note_config_failure()
            self.flush_helper = None
        try:
            self.flush_helper = start_mem0_flush(self.config)
        except OSError as exc:
            self.log(f"cannot start the mem0 flush helper: {exc.strerror or exc}", ERR)
            self.flush_helper = None
        self.flush_started = time.monotonic()

    def _note_config_failure(self) -> None:
        """The helper counts a mem0 setting that cannot work itself (backoff + WARNING);
        one that failed before it got there (its config file unreadable, say) is counted here."""
        from aiki_hooks.outputs.mem0.spool import CONFIG_ERROR_PREFIX, Spool

        try:
            state = Spool(str(self.config.state_dir), self.config.mem0.max_spool_records).load_state()
        except OSError:
            state = {}
        next_at = state.get("next_attempt_at")
        if str(state.get("last_error") or "").startswith(CONFIG_ERROR_PREFIX) and isinstance(next_at, (int, float)) \
                and next_at > time.time():
            return  # already counted by the helper
        self._record_flush_failure(f"{CONFIG_ERROR_PREFIX}the flush helper could not load its settings "
                                   "(run `aiki-hooks mem0-flush` to see why)")

    def _record_flush_failure(self, error: str) -> None:
        from aiki_hooks.outputs.mem0.spool import Spool

        try:
            Spool(str(self.config.state_dir), self.config.mem0.max_spool_records).record_failure(
                error, time.time(), self.config.mem0)
        except OSError as exc:
            self.log(f"cannot note the mem0 failure in the spool: {exc.strerror or exc}", WARNING)

    def _stop_mem0_flush(self) -> None:
        helper = self.flush_helper
        if helper is None or helper.poll() is not None:
            return
        try:
            os.killpg(helper.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        helper.wait(timeout=5)

    def _maybe_reload(self, watched: "ConfigWatcher") -> None:
        """Pick up an edited config at the next cycle; a broken edit keeps the old one."""
        if self.reload_config is None or not watched.changed():
            return
        try:
            config = self.reload_config()
        except ConfigError as exc:
            self.log(f"config changed but is invalid, keeping the previous one: {exc.message()}", WARNING)
            return
        if config.state_dir != self.config.state_dir:
            self.log("the new config moves [state] dir: restart the refresher for that; other changes applied", WARNING)
            config = dataclasses.replace(config, state_dir=self.config.state_dir)
        if self.interval_overridden:
            config = dataclasses.replace(config, interval_seconds=self.config.interval_seconds)
        self.config = config
        assert self.engine is not None  # run() made it before the first reload
        self.engine.reconfigure(self.config)
        self.log(f"config reloaded from {watched.path} ({len(self.engine.probes)} probes)")

    def _sleep_until(self, slot: float) -> None:
        ping = self.notifier.watchdog_seconds
        while not self.stop.is_set():
            remaining = slot - self.clock()
            if remaining <= 0:
                return
            step = min(remaining, ping / 2) if ping else remaining
            if self.stop.wait(step):
                return
            if ping and slot - self.clock() > 0:
                self.notifier.watchdog()
