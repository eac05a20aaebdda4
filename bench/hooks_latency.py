#!/usr/bin/env python3
"""Hook latency: whole-process wall time of each hook, as Claude Code runs it.

The package is installed into a fresh venv (not editable, as install.sh does), the
hooks are registered with the same command strings the installer writes (absolute
interpreter path, run through `sh -c` as Claude Code does), and each command is run
>= 30 times, interleaved with the baseline so machine noise hits all alike:

    baseline: <same python> -c "import json,sys; sys.stdin.read(); json.load(open(CACHE))"

Prints the median of each and its ratio to the baseline (target <= 1.3 for SessionStart
and for the silent PreToolUse), and the size of the status block healthy and with issues
(characters and ~tokens at 4 characters a token).

Usage: python3 bench/hooks_latency.py [--runs 40] [--python /path/to/installed/venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiki_hooks.cycle.cache import write_cache  # noqa: E402
from aiki_hooks.install.settings import hook_command, hook_entries  # noqa: E402
from aiki_hooks.hooklib import text  # noqa: E402
from aiki_hooks.model.result import Issue, ProbeResult, Snapshot  # noqa: E402
from aiki_hooks.model.status import Status  # noqa: E402

GIB = 1024**3


def realistic_snapshot(with_issues: bool) -> dict:
    now = time.time()

    def probe(name, kind, summary, status=Status.OK, **values):
        return ProbeResult(name=name, kind=kind, status=status, summary=summary, values=values, checked_at=now)

    probes = [
        probe("cpu", "resources", "12% busy (8 cores)", cpu_percent=12.0, cpu_count=8),
        probe("load", "resources", "0.21/core over 5 min", load1=1.9, load5=1.7, load5_per_core=0.21),
        probe("memory", "resources", "39% used (6.1 GiB of 15.6 GiB)", memory_used_bytes=6.1 * GIB,
              memory_total_bytes=15.6 * GIB, memory_used_ratio=0.39),
        probe("swap", "resources", "none configured", swap_total_bytes=0, swap_used_bytes=0),
        probe("disk:/", "resources", "71% used, 81.0 GiB free", disk_free_bytes=81 * GIB, disk_used_ratio=0.71),
        probe("aiki-memory.service", "systemd", "active (running) 3d, 2 restarts, 41.2 MiB", active_state="active"),
        probe("qdrant", "http", "ready 12 ms, v1.12.4, 4 collections", result="ok", collections=4),
        probe("postgres", "tcp", "connected in 0.4 ms", result="ok"),
    ]
    issues = []
    if with_issues:
        probes[6] = probe("qdrant", "http", "connection refused", Status.CRITICAL, result="connection_failed")
        probes[4] = probe("disk:/", "resources", "91% used, 18.2 GiB free; warn at 90%", Status.WARNING,
                          disk_free_bytes=18.2 * GIB, disk_used_ratio=0.91)
        issues = [Issue(id="http:qdrant", severity=Status.CRITICAL, summary="connection refused", since=now - 840,
                        probe="qdrant"),
                  Issue(id="disk:/", severity=Status.WARNING, summary="91% used, 18.2 GiB free; warn at 90%",
                        since=now - 7500, probe="disk:/")]
    data = Snapshot(generated_at=now, interval_seconds=60, host="workstation", probes=tuple(probes),
                    issues=tuple(issues)).to_dict()
    data["status"] = "CRITICAL" if with_issues else "OK"
    return data


def installed_python(tmp: Path) -> str:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO)], check=True)
    return str(venv / "bin" / "python")


def time_command(command: str, stdin: bytes, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(["sh", "-c", command], input=stdin, stdout=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--python", help="interpreter of an existing installation (default: a fresh venv)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        python = args.python or installed_python(tmp)
        state = tmp / "state"
        cache = state / "system_health.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
        env.update(HOME=str(tmp), AIKI_HOOKS_STATE_DIR=str(state))
        write_cache(cache, realistic_snapshot(with_issues=False))

        entries = hook_entries(python, REPO / "hooks")
        commands = {
            "baseline": f"{shlex.quote(python)} -c "
                        + shlex.quote(f"import json,sys; sys.stdin.read(); json.load(open({str(cache)!r}))"),
            "SessionStart": entries["SessionStart"][0]["hooks"][0]["command"],
            "PreToolUse (silent)": entries["PreToolUse"][0]["hooks"][0]["command"],
            "statusline": hook_command(python, REPO / "hooks" / "statusline.py"),
            # The plugin's entry: a sh wrapper that picks the interpreter, then the same hook.
            "PreToolUse (plugin)": f"{shlex.quote(str(REPO / 'hooks' / 'plugin-run'))} pre_tool_use",
        }
        stdins = {
            "baseline": b'{"session_id": "bench", "tool_name": "Bash"}',
            "SessionStart": json.dumps({"session_id": "bench-start", "source": "startup",
                                        "hook_event_name": "SessionStart"}).encode(),
            "PreToolUse (silent)": json.dumps({"session_id": "bench", "hook_event_name": "PreToolUse",
                                               "tool_name": "Bash", "tool_input": {"command": "ls"}}).encode(),
            "statusline": json.dumps({"session_id": "bench", "cost": {"total_cost_usd": 0.42}}).encode(),
        }
        stdins["PreToolUse (plugin)"] = stdins["PreToolUse (silent)"]
        env["AIKI_HOOKS_PYTHON"] = python
        # The heaviest SessionStart: open issues with occurrence ids and a new session every
        # run, so each run appends to the journal (lock and fsyncs included).
        issues_state = tmp / "state-issues"
        journaled = realistic_snapshot(with_issues=True)
        for number, item in enumerate(journaled["issues"]):
            item["occurrence_id"] = f"bench-occ-{number}"
        write_cache(issues_state / "system_health.json", journaled)
        envs = {name: env for name in commands}
        commands["SessionStart (issues)"] = commands["SessionStart"]
        envs["SessionStart (issues)"] = {**env, "AIKI_HOOKS_STATE_DIR": str(issues_state)}
        runs = iter(range(10**9))
        stdins["SessionStart (issues)"] = lambda: json.dumps({
            "session_id": f"bench-{next(runs)}", "source": "startup", "cwd": "/home/me/proj",
            "hook_event_name": "SessionStart"}).encode()
        # The session has seen the current state, so PreToolUse takes its silent path.
        subprocess.run(["sh", "-c", commands["SessionStart"]], input=stdins["SessionStart"].replace(
            b"bench-start", b"bench"), stdout=subprocess.DEVNULL, env=env, check=True)
        def stdin_of(name: str) -> bytes:
            value = stdins[name]
            return value() if callable(value) else value

        for name in commands:  # warm-up: page cache, pyc
            time_command(commands[name], stdin_of(name), envs[name])
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                samples[name].append(time_command(command, stdin_of(name), envs[name]))
        journal_lines = len((issues_state / "journal.jsonl").read_text().splitlines())
        silent = subprocess.run(["sh", "-c", commands["PreToolUse (silent)"]], input=stdins["PreToolUse (silent)"],
                                capture_output=True, env=env).stdout

    base = statistics.median(samples["baseline"])
    print(f"hook latency, median of {args.runs} runs each, interleaved; interpreter {python}")
    for name, values in samples.items():
        median = statistics.median(values)
        target = "   target <= 1.3" if name in ("SessionStart", "PreToolUse (silent)") else ""
        verdict = (": met" if median / base <= 1.3 else ": MISSED") if target else ""
        print(f"  {name:<22} {median * 1000:6.1f} ms   {median / base:5.2f}x baseline{target}{verdict}")
    print(f"  (PreToolUse silent path printed {len(silent)} bytes; SessionStart (issues) is a new session each "
          f"run with 2 open issues: {journal_lines} journal records written)")
    now = time.time()
    for label, with_issues in (("healthy", False), ("with issues", True)):
        block = text.session_block(realistic_snapshot(with_issues), now=now)
        print(f"status block {label:<12} {len(block):4d} chars  ~{round(len(block) / 4):3d} tokens: {block}")


if __name__ == "__main__":
    main()
