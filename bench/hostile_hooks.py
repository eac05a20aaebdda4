#!/usr/bin/env python3
"""Hostile conditions for the hooks and the state they read (issue 13: items 5, 6), all
measured in one run, with real processes:

- exit codes of a burst of 50 SessionStart hooks started at once on 2 CPUs (a fresh
  cache with an open issue: each answers, then journals), and of the same burst niced
  to 19 with 4 CPU hogs on those CPUs;
- background refreshes started by a burst of 50 on a stale cache: counted as processes
  (a restart command that notes its pid and keeps running, as a slow refresh would), and
  as cycles of the real `aiki-hooks refresh --if-idle` (a command probe notes each);
- wall time of `aiki-hooks status` with a FIFO in place of system_health.json, against
  the same command with a normal fresh cache and with no cache (it then measures a cycle,
  as it does on the FIFO);
- wall time and peak RSS of a SessionStart hook with a sparse 2 GB system_health.json,
  against a normal cache.

Usage: python3 bench/hostile_hooks.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiki_hooks.cycle.cache import read_cache, write_cache  # noqa: E402
from aiki_hooks.model.result import Issue, Snapshot  # noqa: E402
from aiki_hooks.model.status import Status  # noqa: E402

HOOK = REPO / "hooks" / "session_start.py"
TIMEOUT = 60.0


def snapshot(*, age: float = 0.0) -> dict:
    now = time.time()
    data = Snapshot(generated_at=now - age, interval_seconds=60, host="bench", probes=(),
                    issues=(Issue(id="tcp:pg", severity=Status.CRITICAL, summary="connection refused",
                                  since=now - 300, probe="pg"),)).to_dict()
    data["status"] = "CRITICAL"
    data["issues"][0]["occurrence_id"] = "bench-occ"
    return data


def hook_env(home: Path, state: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
    env.update(HOME=str(home), AIKI_HOOKS_STATE_DIR=str(state), PYTHONPATH=str(REPO), **extra)
    return env


def burst(env: dict, *, count: int = 50, nice: bool = False, hogs: int = 0) -> Counter:
    """*count* SessionStart hooks at once, pinned to 2 CPUs; their exit codes."""
    cpus = sorted(os.sched_getaffinity(0))[:2]

    def pin():
        os.sched_setaffinity(0, cpus)

    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin) for _ in range(hogs)]
    try:
        argv = (["nice", "-n", "19"] if nice else []) + [sys.executable, str(HOOK)]
        procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=env, preexec_fn=pin) for _ in range(count)]
        for number, proc in enumerate(procs):
            payload = json.dumps({"session_id": f"b{number}-{time.time_ns()}", "source": "startup", "cwd": "/p"})
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(payload.encode())
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        return Counter(proc.wait(timeout=TIMEOUT) for proc in procs)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def codes_text(codes: Counter) -> str:
    return ", ".join(f"exit {code}: {count}" for code, count in sorted(codes.items()))


def refreshes_as_processes(tmp: Path) -> int:
    state, marker = tmp / "state", tmp / "started"
    write_cache(state / "system_health.json", snapshot(age=3600))
    script = tmp / "refresher.sh"
    script.write_text(f"#!/bin/sh\necho $$ >> '{marker}'\nsleep 30\n")
    script.chmod(0o755)
    (state / "refresher.restart.json").write_text(json.dumps({"argv": [str(script)]}))
    burst(hook_env(tmp, state))
    time.sleep(0.5)
    pids = [int(p) for p in marker.read_text().split()] if marker.exists() else []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    return len(pids)


def refreshes_as_cycles(tmp: Path) -> int:
    state, counter = tmp / "state", tmp / "cycles"
    probe = tmp / "probe.sh"
    probe.write_text(f"#!/bin/sh\necho run >> '{counter}'\necho fine\n")
    probe.chmod(0o755)
    config = tmp / "config.toml"
    config.write_text(f'interval_seconds = 60\n[state]\ndir = "{state}"\n[resources]\nenabled = false\n'
                      f'[costs]\nenabled = false\n[[probes.command]]\nname = "count"\ncommand = ["{probe}"]\n')
    write_cache(state / "system_health.json", snapshot(age=3600))
    burst(hook_env(tmp, state, AIKI_HOOKS_CONFIG=str(config)))
    deadline = time.monotonic() + TIMEOUT
    while read_cache(state / "system_health.json").state != "fresh" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # a second refresh, if one was started, would have run its probe by now
    return len(counter.read_text().split()) if counter.exists() else 0


def time_status(tmp: Path, setup) -> float | None:
    """Seconds `aiki-hooks status` takes after *setup(cache path)*; None past TIMEOUT."""
    state = tmp / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    config = tmp / "config.toml"
    config.write_text(f'interval_seconds = 60\n[state]\ndir = "{state}"\n[resources]\nenabled = false\n'
                      '[costs]\nenabled = false\n[[probes.command]]\nname = "ok"\ncommand = ["/bin/true"]\n')
    setup(state / "system_health.json")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "--config", str(config), "status"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                       env=env, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - started


def time_hook(tmp: Path, setup) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of one SessionStart hook after *setup(cache path)*."""
    state = tmp / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    setup(state / "system_health.json")
    # A "refresher" holds its lock: no background refresh replaces the file meanwhile.
    lock = os.open(state / "refresher.lock", os.O_RDWR | os.O_CREAT, 0o600)
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(HOOK)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=hook_env(tmp, state))
        proc.stdin.write(b'{"session_id": "one", "source": "resume"}')
        proc.stdin.close()
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        return time.perf_counter() - started, usage.ru_maxrss
    finally:
        os.close(lock)


def fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def sparse_2gb(path: Path) -> None:
    with open(path, "wb") as file:
        file.truncate(2 * 1024**3)


def fresh(path: Path) -> None:
    write_cache(path, snapshot())


def nothing(path: Path) -> None:
    pass


def median_of(rounds: int, measure) -> float | None:
    values = []
    for _ in range(rounds):
        value = measure()
        if value is None:
            return None
        values.append(value)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    made: list[Path] = []

    def fresh_dir():
        made.append(Path(tempfile.mkdtemp(prefix="aiki-hostile-")))
        return made[-1]

    try:
        run(args, fresh_dir)
    finally:
        import shutil

        for path in made:
            shutil.rmtree(path, ignore_errors=True)


def run(args, fresh_dir) -> None:

    print(f"hostile hooks, {args.rounds} round(s) each; CPUs used for bursts: "
          f"{sorted(os.sched_getaffinity(0))[:2]}; code under test: {REPO}")
    plain, niced = Counter(), Counter()
    for _ in range(args.rounds):
        tmp = fresh_dir()
        write_cache(tmp / "state" / "system_health.json", snapshot())
        plain += burst(hook_env(tmp, tmp / "state"))
        niced += burst(hook_env(tmp, tmp / "state"), nice=True, hogs=4)
    print(f"  burst of 50 SessionStart x {args.rounds}, 2 CPUs:                 {codes_text(plain)}")
    print(f"  same, nice -n 19 with 4 CPU hogs:                      {codes_text(niced)}")

    processes = [refreshes_as_processes(fresh_dir()) for _ in range(args.rounds)]
    cycles = [refreshes_as_cycles(fresh_dir()) for _ in range(args.rounds)]
    print(f"  background refreshes started by a burst of 50 (stale cache): processes {processes}, "
          f"real refresh cycles {cycles}")

    def status(setup):
        return median_of(args.rounds, lambda: time_status(fresh_dir(), setup))

    on_fifo, on_fresh, on_missing = status(fifo), status(fresh), status(nothing)
    shown = "did not return within %.0f s" % TIMEOUT if on_fifo is None else f"{on_fifo * 1000:.0f} ms"
    print(f"  aiki-hooks status, median: FIFO cache {shown}; fresh cache {on_fresh * 1000:.0f} ms; "
          f"no cache (measures a cycle, as on the FIFO) {on_missing * 1000:.0f} ms"
          + (f"; FIFO / no cache {on_fifo / on_missing:.2f}x" if on_fifo is not None else ""))

    big = [time_hook(fresh_dir(), sparse_2gb) for _ in range(args.rounds)]
    normal = [time_hook(fresh_dir(), fresh) for _ in range(args.rounds)]
    big_s, normal_s = statistics.median(t for t, _ in big), statistics.median(t for t, _ in normal)
    print(f"  SessionStart hook, median: 2 GB cache {big_s * 1000:.0f} ms, peak RSS "
          f"{max(r for _, r in big) / 1024:.0f} MiB; normal cache {normal_s * 1000:.0f} ms, peak RSS "
          f"{max(r for _, r in normal) / 1024:.0f} MiB; ratio {big_s / normal_s:.2f}x")


if __name__ == "__main__":
    main()
