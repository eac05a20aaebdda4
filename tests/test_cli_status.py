"""`aiki-hooks status` as a person sees it: stale data is measured again, and colour
appears on a terminal (a real pty) but not in a pipe."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from aiki_hooks.cycle.cache import read_cache, write_cache
from aiki_hooks.model.result import Snapshot

from .conftest import CALM_RESOURCES, REPO, cli_env, run_cli


def test_status_on_a_stale_cache_measures_again_and_says_so(write_config, state_dir):
    write_config("[costs]\nenabled = false\n")
    old = Snapshot(generated_at=time.time() - 3600, interval_seconds=60, host="old-host", probes=(), issues=())
    write_cache(state_dir / "system_health.json", old.to_dict())
    result = run_cli("status")
    assert result.returncode in (0, 1, 2, 3) and "Traceback" not in result.stderr, result.stderr
    assert "measured just now (refresher not running)" in result.stdout
    assert "old-host" not in result.stdout and "memory" in result.stdout
    fresh = read_cache(state_dir / "system_health.json")
    assert fresh.state == "fresh" and fresh.data["host"] != "old-host"


def _run_on_a_pty(argv: list[str], env: dict, timeout: float = 30) -> bytes:
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdout is the pty's terminal side
        os.execvpe(argv[0], argv, env)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    return output


def test_status_is_coloured_on_a_terminal_and_plain_in_a_pipe(write_config):
    write_config("[costs]\nenabled = false\n" + CALM_RESOURCES)
    env = cli_env()
    argv = [sys.executable, "-m", "aiki_hooks.cli", "status"]
    on_tty = _run_on_a_pty(argv, env)
    assert b"\x1b[" in on_tty and b"OK" in on_tty
    piped = subprocess.run(argv, capture_output=True, env=env, timeout=30, cwd=REPO)
    assert b"\x1b[" not in piped.stdout and b"OK" in piped.stdout
    no_color = _run_on_a_pty(argv, {**env, "NO_COLOR": "1"})
    assert b"\x1b[" not in no_color and b"OK" in no_color
