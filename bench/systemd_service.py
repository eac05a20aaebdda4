#!/usr/bin/env python3
"""The refresher as a user service under a real systemd user manager (tests/e2e/user-manager.sh).

Measures, each against a baseline taken in the same run (these machines are noisy):
- install: `./install.sh` in a throwaway home (venv, pip install, hooks, unit, first
  refresh, preview), against a bare `python -m venv` + `pip install` of the same checkout;
- ready: `systemctl --user restart` until it returns (Type=notify: READY=1 comes after
  the first cycle), against a minimal Type=notify unit (python3 that sends READY=1);
- memory: the unit's MemoryCurrent (cgroup: RSS, page cache and kernel memory) after
  --minutes of running at the default 60 s interval, against the minimal unit's;
- kill -9: from SIGKILL of the main process to the next one running (RestartSec=2, then
  the first cycle), against the minimal unit with the same RestartSec.

Needs root (a private mount namespace). Usage: python3 bench/systemd_service.py [--minutes 10]
Sample output (2 cores; issue 12's figures):
    install              35.1 s   1.07x  bare venv + pip install 32.8 s
    restart -> READY=1   0.61 s   4.5x   minimal notify unit 0.14 s
    MemoryCurrent 10 min 18.9 MiB 2.5x   minimal python unit 7.6 MiB
    kill -9 -> running   2.71 s   1.19x  minimal unit 2.28 s
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.user_manager import HOME, UserManager  # noqa: E402 - the repo root first

UNIT = "aiki-hooks-refresher.service"
MINIMAL = "minimal-notify.service"
MINIMAL_TEXT = """[Service]
Type=notify
Restart=always
RestartSec=2
ExecStart=/usr/bin/env python3 -c "import os, socket, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); \
s.connect(os.environ['NOTIFY_SOCKET']); s.send(b'READY=1'); time.sleep(1e9)"
"""
INSTALL_ENV = {"PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(REPO / ".cache" / "pip")}


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def running_pid(manager: UserManager, unit: str, other_than: int = 0) -> int:
    def pid() -> int:
        props = manager.show(unit, "ActiveState", "SubState", "MainPID")
        ok = (props["ActiveState"], props["SubState"]) == ("active", "running")
        return int(props["MainPID"]) if ok and int(props["MainPID"]) != other_than else 0

    return int(manager.wait_for(pid, timeout=60, what=f"{unit} running", step=0.01))


def checked(result):
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {result.args}\n{result.stdout}\n{result.stderr}")
    return result


def ready_seconds(manager: UserManager, unit: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        manager.systemctl("reset-failed", unit)  # the start limit counts these restarts
        times.append(timed(lambda: checked(manager.systemctl("restart", unit))))
    return statistics.median(times)


def kill_seconds(manager: UserManager, unit: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        manager.systemctl("reset-failed", unit)
        pid = running_pid(manager, unit)
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        running_pid(manager, unit, other_than=pid)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def memory_bytes(manager: UserManager, unit: str) -> int:
    return int(manager.show(unit, "MemoryCurrent")["MemoryCurrent"])


def row(name: str, value: str, ratio: float, baseline: str) -> None:
    print(f"{name:<22}{value:>10}  {ratio:5.2f}x  {baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the unit runs before MemoryCurrent")
    parser.add_argument("--runs", type=int, default=5, help="restarts and kills measured (median)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="aiki-bench-systemd-"))
    baseline_venv = root / "baseline-venv"
    bare_install = timed(lambda: (checked(run_here([sys.executable, "-m", "venv", str(baseline_venv)])),
                                  checked(run_here([str(baseline_venv / "bin" / "python"), "-m", "pip",
                                                                "install", "--quiet", str(REPO)]))))
    with UserManager.start(root / "home") as manager:
        manager.write_unit(MINIMAL, MINIMAL_TEXT)
        checked(manager.systemctl("daemon-reload"))
        checked(manager.systemctl("start", MINIMAL))
        install = timed(lambda: checked(manager.run([str(REPO / "install.sh")], timeout=1800, cwd=str(REPO),
                                                    env=INSTALL_ENV)))
        ready, ready_base = ready_seconds(manager, UNIT, args.runs), ready_seconds(manager, MINIMAL, args.runs)
        kill, kill_base = kill_seconds(manager, UNIT, args.runs), kill_seconds(manager, MINIMAL, args.runs)
        checked(manager.systemctl("restart", UNIT, MINIMAL))
        time.sleep(args.minutes * 60)
        memory, memory_base = memory_bytes(manager, UNIT), memory_bytes(manager, MINIMAL)
        nrestarts = manager.show(UNIT, "NRestarts")["NRestarts"]
        manager.run([str(REPO / "install.sh"), "--uninstall"], cwd=str(REPO), env=INSTALL_ENV)

    mib = 1024 * 1024
    print(f"refresher under systemd --user ({HOME} home, {os.cpu_count()} cores); medians of {args.runs}")
    row("install", f"{install:.1f} s", install / bare_install, f"bare venv + pip install {bare_install:.1f} s")
    row("restart -> READY=1", f"{ready:.2f} s", ready / ready_base, f"minimal notify unit {ready_base:.2f} s")
    row(f"MemoryCurrent {args.minutes:g} min", f"{memory / mib:.1f} MiB", memory / memory_base,
        f"minimal python unit {memory_base / mib:.1f} MiB (restarts meanwhile: {nrestarts})")
    row("kill -9 -> running", f"{kill:.2f} s", kill / kill_base, f"minimal unit {kill_base:.2f} s (RestartSec=2 both)")


def run_here(argv):
    import subprocess

    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **INSTALL_ENV})


if __name__ == "__main__":
    main()
