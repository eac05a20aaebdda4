#!/usr/bin/env python3
"""Status line latency: the statusline hook as Claude Code runs it, against a bare Python.

Each round runs, in a random order, the baseline

    <same python> -c "import json,sys; json.load(sys.stdin); json.load(open(CACHE))"

and `hooks/statusline.py` of this checkout (and of each --compare checkout, e.g. an
older commit unpacked with `git archive`), each at a wide and a narrow $COLUMNS. The
input is what Claude Code 2.1.328 sends (context_window, cost, model, workspace...);
the cache has two open issues and a costs check with today's, the block's and the
burn rate's values. Medians over the rounds and their ratio to the baseline, for wall
time and CPU time (user + system, less sensitive to a loaded machine). Target: <= 1.3x.

The interpreter is a bare venv (no site-packages) made from the running Python's base
interpreter, or --python; bytecode is allowed, as in an installation.

Usage: python3 bench/statusline_latency.py [--runs 40] [--python PY] [--compare DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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

from hooks_config_shapes import bare_venv, time_command  # noqa: E402
from hooks_latency import realistic_snapshot  # noqa: E402

from aiki_hooks.cycle.cache import write_cache  # noqa: E402

TARGET = 1.3
WIDTHS = (200, 40)


def claude_code_input(cwd: str) -> dict:
    """A status line input shaped as Claude Code 2.1.328 sends it after a few turns."""
    return {
        "session_id": "0b7c1e9e-3f7e-4a7e-9d55-1d2f0c6b9a11", "transcript_path": f"{cwd}/t.jsonl", "cwd": cwd,
        "model": {"id": "claude-sonnet-4-5-20250929", "display_name": "Sonnet 4.5"},
        "workspace": {"current_dir": cwd, "project_dir": cwd, "added_dirs": []},
        "version": "2.1.328", "output_style": {"name": "default"},
        "cost": {"total_cost_usd": 0.4213, "total_duration_ms": 812345, "total_api_duration_ms": 91234,
                 "total_lines_added": 156, "total_lines_removed": 23},
        "context_window": {"total_input_tokens": 86123, "total_output_tokens": 4312, "context_window_size": 200000,
                           "used_percentage": 43, "remaining_percentage": 57,
                           "current_usage": {"input_tokens": 12, "output_tokens": 410,
                                             "cache_creation_input_tokens": 1530, "cache_read_input_tokens": 84581}},
        "exceeds_200k_tokens": False, "fast_mode": False, "thinking": {"enabled": True},
        "prompt_id": "p-7", "prompt_cache": {"warm": True, "ttl": 300, "hit_ratio": 0.97},
    }


def snapshot_with_costs() -> dict:
    now = time.time()
    data = realistic_snapshot(with_issues=True)
    data["probes"].append({
        "name": "claude-costs", "kind": "costs", "status": "OK", "summary": "today $4.12, block $3.20 until 15:00",
        "values": {"today_usd": 4.12, "today_tokens": 3_100_000, "today_unpriced_tokens": 0,
                   "today_unpriced_usd_claude_code": None, "block_usd": 3.2, "block_tokens": 2_400_000,
                   "block_unpriced_tokens": 0, "block_unpriced_usd_claude_code": None,
                   "block_started_at": now - 3600 * 2.5, "block_ends_at": now + 3600 * 2.5,
                   "block_first_activity_at": now - 3600 * 2.2, "block_last_activity_at": now - 30,
                   "block_tokens_per_minute": 18_300.0, "block_usd_per_hour": 1.45},
        "checked_at": data["generated_at"], "duration_ms": 12.0, "error_kind": None, "details": []})
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--python", help="interpreter (default: a bare venv)")
    parser.add_argument("--compare", action="append", default=[], type=Path,
                        help="another checkout (holding aiki_hooks/ and hooks/) to time alike")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        python = args.python or bare_venv(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installation has its bytecode
        env.pop("NO_COLOR", None)
        state = tmp / "state"
        env.update(HOME=str(tmp), AIKI_HOOKS_STATE_DIR=str(state))
        cache = state / "system_health.json"
        write_cache(cache, snapshot_with_costs())
        stdin = json.dumps(claude_code_input(str(tmp))).encode()

        jobs: dict[str, tuple[str, dict[str, str]]] = {
            "baseline": (f"{shlex.quote(python)} -c " + shlex.quote(
                f"import json,sys; json.load(sys.stdin); json.load(open({str(cache)!r}))"), env)}
        for label, checkout in [("this checkout", REPO)] + [(str(c), c.resolve()) for c in args.compare]:
            script = shlex.quote(str(checkout / "hooks" / "statusline.py"))
            for width in WIDTHS:
                jobs[f"{label}, COLUMNS={width}"] = (f"{shlex.quote(python)} {script}",
                                                     {**env, "COLUMNS": str(width)})
        lines = {}
        for name, (command, job_env) in jobs.items():  # warm-up (bytecode, page cache) and a look
            out = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, env=job_env, check=True)
            lines[name] = out.stdout.decode().rstrip("\n")
        wall: dict[str, list[float]] = {name: [] for name in jobs}
        cpu: dict[str, list[float]] = {name: [] for name in jobs}
        for _ in range(args.runs):
            order = list(jobs.items())
            random.shuffle(order)
            for name, (command, job_env) in order:
                spent_wall, spent_cpu = time_command(command, stdin, job_env)
                wall[name].append(spent_wall)
                cpu[name].append(spent_cpu)

    print(f"status line latency: medians of {args.runs} interleaved rounds; interpreter {python}")
    base_wall, base_cpu = statistics.median(wall["baseline"]), statistics.median(cpu["baseline"])
    print(f"  {'':<40} {'wall':>9} {'ratio':>6}  {'CPU':>9} {'ratio':>6}")
    for name in jobs:
        median_wall, median_cpu = statistics.median(wall[name]), statistics.median(cpu[name])
        verdict = "" if name == "baseline" else ("  met" if median_wall / base_wall <= TARGET else "  MISSED")
        print(f"  {name:<40} {median_wall * 1000:6.1f} ms {median_wall / base_wall:5.2f}x  "
              f"{median_cpu * 1000:6.1f} ms {median_cpu / base_cpu:5.2f}x{verdict}")
    for name, line in lines.items():
        if name != "baseline":
            print(f"  {name}: {line!r}")


if __name__ == "__main__":
    main()
