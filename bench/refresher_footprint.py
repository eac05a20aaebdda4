#!/usr/bin/env python3
"""Refresher footprint: steady-state RSS, RSS growth and CPU time per cycle.

Runs the real `aiki-hooks refresher` as a child process for 1,000 fast cycles
(interval 0.01 s, resources probe + one HTTP probe against a loopback server started
here), samples its RSS from /proc while it runs, and takes its CPU time from wait4().

Baselines measured in the same run, because these machines are noisy:
- RSS of a bare `python3 -c` process (interpreter alone);
- CPU time of a refresher run of 1 cycle (start-up), subtracted to get per-cycle CPU,
  and CPU time of starting `python3 -c pass`, as a unit the ratio is printed in.

Targets (issue 2): RSS <= 30 MiB with no growth; <= 20 ms CPU per cycle.

Usage: python3 bench/refresher_footprint.py [--cycles 1000]
Sample output:
    steady RSS      24.6 MiB  (2.4x bare interpreter 10.2 MiB)   target <= 30 MiB
    ...
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def run_child(argv: list[str], env: dict, sample_every: float = 0.05):
    """Run *argv*, sampling RSS; returns (cpu_seconds, wall_seconds, [(t, rss_kib)])."""
    started = time.monotonic()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        rss = rss_kib(child.pid)
        if rss:
            samples.append((time.monotonic() - started, rss))
        time.sleep(sample_every)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {argv}")
    return usage.ru_utime + usage.ru_stime, time.monotonic() - started, samples


def bare_python_rss(env) -> float:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"], env=env)
    time.sleep(0.3)
    rss = rss_kib(child.pid)
    child.wait()
    return rss / 1024


def python_start_cpu(env, runs: int = 10) -> float:
    cpus = []
    for _ in range(runs):
        child = subprocess.Popen([sys.executable, "-c", "pass"], env=env)
        _, _, usage = os.wait4(child.pid, 0)
        cpus.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--mem0", action="store_true", help="also measure with mem0 delivery on")
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'[state]\ndir = "{tmp}/state"\n'
            # What the issue measures: resources + one http probe (the costs probe has its own bench).
            f'[costs]\nenabled = false\n'
            f'[[probes.http]]\nname = "local"\nurl = "http://127.0.0.1:{port}/"\ntimeout_seconds = 2\n'
        )
        # A temp HOME: nothing of the user's (~/.claude, ~/.config) is read.
        env = dict(os.environ, AIKI_HOOKS_CONFIG=str(config), PYTHONPATH=str(REPO), HOME=tmp)
        env.pop("NOTIFY_SOCKET", None)
        base = [sys.executable, "-m", "aiki_hooks.cli", "refresher", "--interval", "0.01", "--cycles"]

        bare_rss = bare_python_rss(env)
        start_cpu = python_start_cpu(env)
        one_cpu, _, _ = run_child(base + ["1"], env)
        cpu, wall, samples = run_child(base + [str(args.cycles)], env)

    server.shutdown()
    report(args, bare_rss, start_cpu, one_cpu, cpu, wall, samples)
    if args.mem0:
        mem0_run(args, samples)


def report(args, bare_rss, start_cpu, one_cpu, cpu, wall, samples) -> None:
    rss = [kib / 1024 for _, kib in samples]
    tenth = max(1, len(rss) // 10)
    warm = statistics.median(rss[tenth : 2 * tenth]) if len(rss) >= 2 * tenth else rss[0]
    final = statistics.median(rss[-tenth:])
    per_cycle_ms = (cpu - one_cpu) / (args.cycles - 1) * 1000

    print(f"refresher, {args.cycles} cycles at 0.01 s (resources, 1 http probe), {wall:.1f} s wall, "
          f"{len(samples)} RSS samples")
    print(f"steady RSS      {final:6.1f} MiB  ({final / bare_rss:.2f}x bare interpreter {bare_rss:.1f} MiB)"
          f"   target <= 30 MiB: {'met' if final <= 30 else 'MISSED'}")
    print(f"peak RSS        {max(rss):6.1f} MiB")
    print(f"RSS growth      {final - warm:+6.2f} MiB from the first 10% to the last 10% of the run "
          f"({(final - warm) / warm * 100:+.1f}%)   target: none")
    print(f"CPU per cycle   {per_cycle_ms:6.2f} ms  ({per_cycle_ms / (start_cpu * 1000):.2f}x the CPU of "
          f"starting `python3 -c pass`, {start_cpu * 1000:.1f} ms)   target <= 20 ms: "
          f"{'met' if per_cycle_ms <= 20 else 'MISSED'}")
    print(f"start-up CPU    {one_cpu * 1000:6.1f} ms for a 1-cycle run")


class FakeMem0(http.server.BaseHTTPRequestHandler):
    """mem0's REST API, enough for delivery: POST /memories stores, POST /search finds."""

    memories: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path == "/memories":
            FakeMem0.memories.append(body)
            payload = {"results": [{"id": str(len(FakeMem0.memories)), "event": "ADD"}]}
        else:
            wanted = (body.get("filters") or {}).get("record_id")
            hits = [m for m in FakeMem0.memories if (m.get("metadata") or {}).get("record_id") == wanted]
            payload = {"results": [{"id": "x", "metadata": m["metadata"]} for m in hits]}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def mem0_run(args, baseline_samples) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeMem0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        flap = Path(tmp) / "flap.sh"
        # CRITICAL for 3 cycles in every 6: an occurrence opens and resolves over and over.
        flap.write_text(f'#!/bin/sh\nn=$(cat {tmp}/n 2>/dev/null || echo 0); echo $((n+1)) > {tmp}/n\n'
                        'if [ $((n % 6)) -lt 3 ]; then echo "flapping"; exit 2; fi; echo fine; exit 0\n')
        flap.chmod(0o755)
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'[state]\ndir = "{tmp}/state"\n[costs]\nenabled = false\n'
            f'[journal]\nopen_after_cycles = 1\nresolve_after_cycles = 1\n'
            f'[mem0]\nbackend = "rest"\nhost = "http://127.0.0.1:{server.server_address[1]}"\n'
            f'backoff_initial_seconds = 0.1\nbackoff_max_seconds = 0.5\n'
            f'[[probes.command]]\nname = "flap"\ncommand = ["{flap}"]\n'
        )
        env = dict(os.environ, AIKI_HOOKS_CONFIG=str(config), PYTHONPATH=str(REPO), HOME=tmp)
        cycles = max(200, args.cycles // 5)
        cpu, wall, samples = run_child([sys.executable, "-m", "aiki_hooks.cli", "refresher", "--interval", "0.05",
                                        "--cycles", str(cycles)], env)
    server.shutdown()
    base = statistics.median(kib / 1024 for _, kib in baseline_samples[-len(baseline_samples) // 10:])
    rss = [kib / 1024 for _, kib in samples]
    tenth = max(1, len(rss) // 10)
    warm, final = statistics.median(rss[tenth:2 * tenth]), statistics.median(rss[-tenth:])
    print(f"with mem0 on, {cycles} cycles at 0.05 s, {len(FakeMem0.memories)} memories delivered by the helper:")
    print(f"steady RSS      {final:6.1f} MiB  ({final / base:.2f}x the run without mem0); growth "
          f"{final - warm:+.2f} MiB; peak {max(rss):.1f} MiB   target: no growth, mem0 never imported")


if __name__ == "__main__":
    main()
