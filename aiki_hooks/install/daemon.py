"""The refresher without systemd: started detached, stopped by its lock's pid.

Design: `aiki-hooks refresher --daemon` does not fork itself into the background. It
calls `start_daemon()`, which spawns the ordinary foreground `aiki-hooks refresher`
(the very command the systemd unit runs) in a new session, and returns. So:

- there is one code path for the refresher, with its signal handling, flock and logs;
  no Python code runs between fork() and exec() (subprocess does that part in C),
  which matters in a process that may already run threads;
- "already running" is decided by the same flock the refresher takes
  (`<state>/refresher.lock`, holding its pid), never by a pid file that can go stale;
- the caller learns whether the start worked: it waits until the child holds the lock,
  and reports the child's exit code and last log line if it died instead.

The child is detached: its own session (no controlling terminal, so closing the
terminal sends it no SIGHUP), stdin /dev/null, stdout+stderr appended to
`<state>/refresher.log` (0600, rotated once past 1 MiB at each start), cwd /. It
outlives the command that started it; it is re-parented to init (or to the nearest
subreaper) when that command exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from aiki_hooks import paths
from aiki_hooks.config.load import Config
from aiki_hooks.paths import check_private_dir, ensure_private_dir, holder_pid, open_state_file

LOG_NAME = "refresher.log"
# Written while a detached refresher is wanted: the hooks read it to restart that
# refresher (not just refresh once) when they find its data stale, e.g. after a reboot.
# Removed by stop_daemon; a systemd unit keeps its refresher alive by itself.
RESTART_NAME = "refresher.restart.json"
LOG_ROTATE_BYTES = 1024 * 1024
START_WAIT_SECONDS = 5.0
STOP_WAIT_SECONDS = 10.0

# A daemon started from inside a service must not talk to that service's manager.
_SCRUBBED_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "LISTEN_FDS", "LISTEN_PID")


class DaemonError(Exception):
    pass


def log_path(config: Config) -> Path:
    return Path(config.state_dir) / LOG_NAME


def default_argv_prefix() -> list[str]:
    """This interpreter running this package: right for a venv and for a checkout."""
    return [sys.executable, "-m", "aiki_hooks.cli"]


def refresher_argv(config: Config, *, argv_prefix: Sequence[str] | None = None,
                   extra_args: Sequence[str] = ()) -> list[str]:
    argv = list(argv_prefix) if argv_prefix else default_argv_prefix()
    if not config.source.startswith("<"):
        argv += ["--config", os.path.abspath(os.path.expanduser(config.source))]
    return argv + ["refresher", *extra_args]


def _child_env(config: Config) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    # The same state dir whatever the child's config resolution would pick.
    env["AIKI_HOOKS_STATE_DIR"] = str(config.state_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return paths.put_package_on_path(env)


def _write_restart_command(state_dir: Path, argv: list[str]) -> None:
    import json

    from aiki_hooks.cycle.cache import atomic_write_bytes

    atomic_write_bytes(state_dir / RESTART_NAME, json.dumps({"argv": argv}).encode("utf-8"))


def _open_log(path: Path) -> int:
    try:
        if path.lstat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    fd = open_state_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # no link, no FIFO
    os.fchmod(fd, 0o600)  # also tighten a file created by someone with a looser umask
    return fd


def _last_line(path: Path) -> str:
    try:
        with os.fdopen(open_state_file(path), "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
            lines = [line for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def start_daemon(config: Config, *, argv_prefix: Sequence[str] | None = None,
                 extra_args: Sequence[str] = ()) -> tuple[bool, int | None, str]:
    """Start a detached refresher for *config* unless one runs for its state dir.

    Returns (started, pid, message): (False, pid, "already running") when one holds the
    lock, (True, pid, ...) once the new one holds it, (False, None, why) if it died.
    *argv_prefix* replaces `python -m aiki_hooks.cli` (tests, or the `aiki-hooks` path).
    """
    state_dir = Path(config.state_dir)
    ensure_private_dir(state_dir)
    restart = refresher_argv(config, argv_prefix=argv_prefix, extra_args=("--daemon", *extra_args))
    pid = holder_pid(state_dir)
    if pid:
        _write_restart_command(state_dir, restart)
        return False, pid, "already running"
    log = log_path(config)
    log_fd = _open_log(log)
    try:
        child = subprocess.Popen(
            refresher_argv(config, argv_prefix=argv_prefix, extra_args=extra_args),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            cwd="/",
            env=_child_env(config),
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log_fd)
    deadline = time.monotonic() + START_WAIT_SECONDS
    while True:
        holder = holder_pid(state_dir)
        if holder == child.pid:
            _write_restart_command(state_dir, restart)
            return True, child.pid, f"started (pid {child.pid}, log {log})"
        code = child.poll()
        if code is not None:
            if holder:  # lost a race with another start: that one is the refresher
                _write_restart_command(state_dir, restart)
                return False, holder, "already running"
            last = _last_line(log)
            return False, None, f"the refresher exited with code {code}" + (f": {last}" if last else f" (see {log})")
        if time.monotonic() >= deadline:
            _write_restart_command(state_dir, restart)  # slow to start, but running
            return True, child.pid, (f"started (pid {child.pid}) but it has not taken {state_dir}/refresher.lock "
                                     f"after {START_WAIT_SECONDS:g} s; see {log}")
        time.sleep(0.05)


def stop_daemon(config: Config, *, wait_seconds: float = STOP_WAIT_SECONDS) -> int | None:
    """SIGTERM the refresher holding the state dir's lock; wait until it let go.

    Returns its pid, or None when none runs. Raises DaemonError if it does not stop in
    time. Under systemd prefer `systemctl --user stop`: this works there too (the
    refresher exits 0, so Restart=on-failure leaves it stopped) but systemd is not told.
    """
    state_dir = Path(config.state_dir)
    untrusted = check_private_dir(state_dir, missing_ok=True)
    if untrusted:  # the pid in its lock file is only believed in a dir of ours
        raise DaemonError(f"not using the state dir: {untrusted}")
    try:
        (state_dir / RESTART_NAME).unlink()
    except FileNotFoundError:
        pass
    pid = holder_pid(state_dir)
    if pid is None:
        return None
    if pid <= 0:
        raise DaemonError(f"{state_dir}/refresher.lock is held but names no pid; stop that process by hand")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # exited between the check and the signal; the wait below confirms
    deadline = time.monotonic() + wait_seconds
    while holder_pid(state_dir) is not None:
        if time.monotonic() >= deadline:
            raise DaemonError(f"the refresher (pid {pid}) did not stop within {wait_seconds:g} s after SIGTERM")
        time.sleep(0.05)
    return pid
