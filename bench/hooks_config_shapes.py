#!/usr/bin/env python3
"""Hook latency for each documented way of configuring the state dir.

How the hooks find the state dir decides what they read before the cache: nothing more
(no config file), the config file (no `[state]` table), the config's `[state] dir`, or
$AIKI_HOOKS_STATE_DIR. For each shape below, each hook (SessionStart, silent
PreToolUse, statusline) is timed as Claude Code runs it (`sh -c` with an absolute
interpreter path), against a bare Python that reads the same cache:

    baseline: <same python> -c "import json,sys; sys.stdin.read(); json.load(open(CACHE))"

Every round runs every command once (the baseline once per shape), in a random order,
so machine noise hits all alike; medians over the rounds, and each median's ratio to the
baseline's median of the same run, for wall time and for CPU time (which a loaded
machine distorts less). Target: <= 1.3x for every hook and shape.

The interpreter is a bare venv (no pip, no site-packages) made from the running
Python's base interpreter, or --python; the hooks run from this checkout.

Usage: python3 bench/hooks_config_shapes.py [--runs 40] [--python /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from hooks_latency import realistic_snapshot  # noqa: E402

from aiki_hooks.cycle.cache import write_cache  # noqa: E402

TARGET = 1.3
# The complete example of docs/configuration.md, less its [state] table: what a config
# with a few services looks like.
SERVICES = """\
interval_seconds = 60                 # seconds between refresher cycles

[resources]
enabled = true
disk_paths = ["/", "/home"]

[[probes.systemd]]
unit = "aiki-memory.service"

[[probes.http]]
name = "qdrant"
url = "http://localhost:6333"
kind = "qdrant"
api_key_env = "QDRANT_API_KEY"

[[probes.tcp]]
name = "postgres"
host = "127.0.0.1"
port = 5432

[[probes.command]]
name = "backup"
command = ["/usr/lib/nagios/plugins/check_file_age", "-f", "/var/backups/last", "-w", "93600", "-c", "172800"]
"""
HOOKS = {
    "SessionStart": ("session_start.py", {"session_id": "bench-start", "source": "startup",
                                          "hook_event_name": "SessionStart"}),
    "PreToolUse": ("pre_tool_use.py", {"session_id": "bench", "hook_event_name": "PreToolUse",
                                       "tool_name": "Bash", "tool_input": {"command": "ls"}}),
    "statusline": ("statusline.py", {"session_id": "bench", "cost": {"total_cost_usd": 0.42}}),
}


def bare_venv(tmp: Path) -> str:
    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def shapes(tmp: Path, clean_env: dict[str, str]) -> dict[str, tuple[dict[str, str], Path]]:
    """name -> (environment, state dir) for each documented configuration, each in its
    own home so their config files and state dirs do not meet."""
    result = {}

    def home(name: str) -> Path:
        path = tmp / name
        path.mkdir(mode=0o700)
        return path

    h = home("no-config")
    result["no config file"] = ({**clean_env, "HOME": str(h)}, h / ".local/state/aiki-hooks")

    h = home("env-state")
    result["AIKI_HOOKS_STATE_DIR"] = ({**clean_env, "HOME": str(h), "AIKI_HOOKS_STATE_DIR": str(h / "state")},
                                      h / "state")

    h = home("config-no-state")
    (h / ".config/aiki-hooks").mkdir(parents=True)
    (h / ".config/aiki-hooks/config.toml").write_text(SERVICES)
    result["config, no [state]"] = ({**clean_env, "HOME": str(h)}, h / ".local/state/aiki-hooks")

    h = home("config-state")
    (h / ".config/aiki-hooks").mkdir(parents=True)
    (h / ".config/aiki-hooks/config.toml").write_text(f'[state]\ndir = "{h / "state"}"\n\n' + SERVICES)
    result["config, [state] dir"] = ({**clean_env, "HOME": str(h)}, h / "state")

    h = home("explicit-config-state")
    (h / "aiki.toml").write_text(SERVICES + f'\n[state]\ndir = "{h / "state"}"\n')
    result["AIKI_HOOKS_CONFIG, [state] dir"] = (
        {**clean_env, "HOME": str(h), "AIKI_HOOKS_CONFIG": str(h / "aiki.toml")}, h / "state")
    return result


def time_command(command: str, stdin: bytes, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the shell and the hook)."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["sh", "-c", command], input=stdin, stdout=subprocess.DEVNULL, env=env, check=True)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--python", help="interpreter to run the hooks and the baseline with (default: a bare venv)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        python = args.python or bare_venv(tmp)
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
        clean_env.pop("PYTHONPATH", None)
        # An installed package has its bytecode; without it every hook would compile.
        clean_env.pop("PYTHONDONTWRITEBYTECODE", None)
        configured = shapes(tmp, clean_env)
        # A config file written this very second is treated with care by whatever
        # memoises it; the hooks of a real session meet a config that has settled.
        time.sleep(3.5)

        jobs: list[tuple[str, str, str, bytes, dict[str, str]]] = []  # (shape, hook, command, stdin, env)
        for shape, (env, state) in configured.items():
            cache = state / "system_health.json"
            write_cache(cache, realistic_snapshot(with_issues=False))
            baseline_command = f"{shlex.quote(python)} -c " + shlex.quote(
                f"import json,sys; sys.stdin.read(); json.load(open({str(cache)!r}))")
            jobs.append((shape, "baseline", baseline_command, b'{"session_id": "bench", "tool_name": "Bash"}', env))
            for hook, (script, payload) in HOOKS.items():
                command = f"{shlex.quote(python)} {shlex.quote(str(REPO / 'hooks' / script))}"
                jobs.append((shape, hook, command, json.dumps(payload).encode(), env))
            # The session has seen the current state, so PreToolUse takes its silent path.
            primed = subprocess.run(["sh", "-c", jobs[-3][2]], input=jobs[-3][3].replace(b"bench-start", b"bench"),
                                    capture_output=True, env=env, check=True)
            assert b"System health" in primed.stdout, (shape, primed)

        for job in jobs:  # warm-up: page cache, pyc, whatever the hooks keep
            time_command(job[2], job[3], job[4])
        samples: dict[tuple[str, str], list[float]] = {(job[0], job[1]): [] for job in jobs}
        cpu: dict[tuple[str, str], list[float]] = {(job[0], job[1]): [] for job in jobs}
        for _ in range(args.runs):
            order = list(jobs)
            random.shuffle(order)
            for shape, hook, command, stdin, env in order:
                wall, used = time_command(command, stdin, env)
                samples[(shape, hook)].append(wall)
                cpu[(shape, hook)].append(used)
        for shape, (env, _state) in configured.items():
            silent = subprocess.run(["sh", "-c", next(j[2] for j in jobs if j[:2] == (shape, "PreToolUse"))],
                                    input=json.dumps(HOOKS["PreToolUse"][1]).encode(), capture_output=True, env=env)
            assert silent.returncode == 0 and not silent.stdout, (shape, silent)

    print(f"hook latency by config shape: medians of {args.runs} interleaved rounds; interpreter {python}")
    missed = report("wall time", samples, configured)
    report("CPU time (user + system; less sensitive to a loaded machine)", cpu, configured)
    print(f"target <= {TARGET}x the baseline's wall time: "
          + ("met everywhere" if not missed else "MISSED for " + "; ".join(missed)))


def report(title: str, samples: dict[tuple[str, str], list[float]], configured) -> list[str]:
    """Print one table of medians and ratios to the baseline; return the cells over TARGET."""
    baseline = statistics.median(v for (_shape, hook), values in samples.items() if hook == "baseline" for v in values)
    per_shape = ", ".join(f"{statistics.median(samples[(shape, 'baseline')]) * 1000:.1f}" for shape in configured)
    print(f"{title}: baseline (bare python reading the cache) {baseline * 1000:.1f} ms (per shape: {per_shape})")
    print(f"  {'shape':<32}" + "".join(f"{hook:>22}" for hook in HOOKS))
    missed = []
    for shape in configured:
        cells = []
        for hook in HOOKS:
            median = statistics.median(samples[(shape, hook)])
            ratio = median / baseline
            if ratio > TARGET:
                missed.append(f"{shape} / {hook}")
            cells.append(f"{median * 1000:6.1f} ms {ratio:5.2f}x{'!' if ratio > TARGET else ' '}")
        print(f"  {shape:<32}" + "".join(f"{cell:>22}" for cell in cells))
    return missed

if __name__ == "__main__":
    main()
