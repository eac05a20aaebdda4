#!/usr/bin/env python3
"""The cost probe against ccusage (npm ccusage@20.0.24), same run, same corpus.

1. Builds (once, cached under bench/out/) a 200 MiB transcript corpus with
   bench/gen_transcripts.py and a 1,000-file corpus for the no-new-bytes refresh;
   installs ccusage (npm, pinned) under .cache/ccusage.
2. Cold full scan, as whole processes (aiki-hooks as pip installs it, in a venv of its own
   under bench/out/: not the development venv, whose editable install adds an import
   hook to every start-up), 5 runs each, interleaved:
   `ccusage claude daily --offline --json --breakdown` (the baseline) and
   `aiki-hooks costs --json` on an empty index; median wall time (plain runs), then peak
   RSS and PSS of the whole process tree (parent + forked workers) in separate sampled
   runs (run_measured), as the sampler's own CPU would skew the times.
3. Warm command: `aiki-hooks costs --json` again on the index the cold runs left
   (nothing new to read), 5 runs; median wall time against ccusage's cold median (ccusage
   keeps no index: every run of it reads everything).
4. Checks the two reports agree over the fixed days SINCE..UNTIL (independent of today's
   date): every (day, model) token total identical, costs within 0.5% for the models
   ccusage prices. Exits 1 when they do not.
   Then the named reports, warm: `aiki-hooks costs daily|monthly|session --json
   --breakdown --since --until` against ccusage's same reports: every (row, model) token
   count identical, costs within 0.5% where ccusage prices the model; median wall time.
5. Warm refresh: append ~1 MiB across 4 sessions, then one probe refresh (in process);
   median of 5. Baseline: reading those appended bytes with plain Python.
6. No new bytes, 1,000 files: one probe refresh with nothing new (in process); median of
   30, with the inotify watch and without it. Baseline: os.stat of the same 1,000 files.

Targets: cold wall <= 1.0x ccusage and warm command <= 0.25x ccusage (issue 14's guard),
peak RSS <= 60 MiB; warm refresh <= 50 ms; no-new-bytes <= 5 ms (issue 4).

`--warm-only` times just the warm command, interleaved with ccusage (a ratio per pair of
runs and of the medians), on an index kept under bench/out/ between invocations (built by
one untimed run the first time): a quick check of the warm guard, ~1 s a pair.

Usage: python3 bench/costs_vs_ccusage.py [--size-mib 200] [--runs 5] [--warm-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
CCUSAGE_VERSION = "20.0.24"
# The corpora are generated as of UNTIL (30 days back): the comparison covers these days.
SINCE, UNTIL = "2026-10-01", "2026-11-24"
sys.path.insert(0, str(REPO))


def ensure_ccusage() -> str:
    prefix = REPO / ".cache" / "ccusage"
    binary = prefix / "node_modules" / ".bin" / "ccusage"
    if not binary.exists():
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
                        f"ccusage@{CCUSAGE_VERSION}"], check=True)
    return str(binary)


def ensure_installed() -> str:
    """aiki-hooks as a user gets it: its own venv and a regular (not editable) pip install,
    byte-compiled; made again when the sources change. Only the dependencies the costs
    command loads (no mem0). Returns its `aiki-hooks` command."""
    venv = OUT / "venv"
    sources = sorted((REPO / "aiki_hooks").rglob("*.py"))
    digest = hashlib.sha256()
    for path in [REPO / "pyproject.toml", *sources]:
        digest.update(path.read_bytes())
    stamp = venv / ".installed-from"
    if not stamp.exists() or stamp.read_text() != digest.hexdigest():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "psutil", "filelock", "orjson", "prometheus-client", "tomli-w"], check=True)
        subprocess.run([*pip, "--no-deps", str(REPO)], check=True)
        stamp.write_text(digest.hexdigest())
    return str(venv / "bin" / "aiki-hooks")


def ensure_corpus(name: str, *args: str) -> Path:
    target = OUT / name
    if not (target / "projects").exists():
        subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(target), *args], check=True)
    return target


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (workers are children of any of its threads)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as file:
                    stack.extend(int(child) for child in file.read().split())
        except OSError:
            continue
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; PSS shares each page among the processes mapping it."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            for text in file:
                if text.startswith("Rss:"):
                    rss = int(text.split()[1])
                elif text.startswith("Pss:"):
                    pss = int(text.split()[1])
    except OSError:
        pass
    return rss, pss


def run_timed(argv: list[str], env: dict) -> tuple[float, bytes]:
    """(wall seconds, stdout) of one run with nothing else going on: the memory sampler
    of run_measured reads /proc every 5 ms, which costs CPU on a small machine (more for a
    tree of processes than for one), so wall times come from these runs."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"failed: {argv}")
    return wall, done.stdout


def run_measured(argv: list[str], env: dict) -> tuple[float, float, float, bytes]:
    """(wall seconds, peak RSS MiB, peak PSS MiB, stdout) of a whole process tree.

    The process and all its descendants (forked workers) are sampled every 5 ms from
    /proc/<pid>/smaps_rollup. Peak RSS = the highest sum of their RSS, which counts a page
    a worker shares copy-on-write with its parent once per process (an upper bound), or
    the kernel's exact ru_maxrss of the largest single process (wait4) if that is higher;
    peak PSS = the highest sum of their PSS (shared pages split among the sharers: what
    the tree really occupies).
    """
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(child.stdout.read()))
    reader.start()
    peak_rss = peak_pss = 0
    while _alive(child.pid):
        samples = [_memory_kib(pid) for pid in _tree(child.pid)]
        peak_rss = max(peak_rss, sum(rss for rss, _ in samples))
        peak_pss = max(peak_pss, sum(pss for _, pss in samples))
        time.sleep(0.005)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {argv}")
    return wall, max(peak_rss, usage.ru_maxrss) / 1024, peak_pss / 1024, b"".join(chunks)


def _alive(pid: int) -> bool:
    """True until the child exits (a zombie is not alive; it is not reaped here, so its
    rusage is still there for wait4)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def compare(ours: dict, theirs: dict, since: str, until: str) -> tuple[int, int, float]:
    """(day, model) pairs, how many differ in any token total, largest relative cost
    difference on models ccusage prices; both restricted to since..until (YYYY-MM-DD)."""
    mine = {(d["date"], m): t for d in ours["daily"] if since <= d["date"] <= until for m, t in d["models"].items()}
    cc = {(d["date"], b["modelName"]): b for d in theirs["daily"] for b in d["modelBreakdowns"]}
    mismatched, worst = 0, 0.0
    for key in set(mine) | set(cc):
        a, b = mine.get(key), cc.get(key)
        if a is None or b is None:
            mismatched += 1
            continue
        if (a["input_tokens"], a["output_tokens"], a["cache_write_tokens"], a["cache_read_tokens"]) != (
                b["inputTokens"], b["outputTokens"], b["cacheCreationTokens"], b["cacheReadTokens"]):
            mismatched += 1
        if not b.get("missingPricing") and b["cost"] > 0:
            worst = max(worst, abs(a["cost_usd"] - b["cost"]) / b["cost"])
    return len(set(mine) | set(cc)), mismatched, worst


# (report, its list in the JSON, the row's key) for the named reports' comparison.
REPORTS = (("daily", "daily", "date"), ("monthly", "monthly", "month"), ("session", "sessions", "sessionId"))


def compare_report(ours: dict, theirs: dict, list_name: str, key: str) -> tuple[int, int, float]:
    """The named reports (same JSON keys as ccusage's): (row, model) pairs, how many differ
    in any token count, largest relative cost difference on models ccusage prices."""
    def per_model(report: dict) -> dict:
        return {(row[key], row.get("projectPath"), model["modelName"]): model
                for row in report[list_name] for model in row["modelBreakdowns"]}

    mine, cc = per_model(ours), per_model(theirs)
    counts = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")
    mismatched, worst = 0, 0.0
    for pair in set(mine) | set(cc):
        a, b = mine.get(pair), cc.get(pair)
        if a is None or b is None or any(a[c] != b[c] for c in counts):
            mismatched += 1
            continue
        if not b.get("missingPricing") and b["cost"] > 0:
            worst = max(worst, abs(a["cost"] - b["cost"]) / b["cost"])
    return len(set(mine) | set(cc)), mismatched, worst


def warm_only(ccusage: str, aiki_hooks: str, corpus: Path, runs: int) -> int:
    """The warm guard alone: `aiki-hooks costs --json` with nothing new to read, each run
    right after a ccusage run (so both see the same load), on an index kept in
    bench/out/warm-state (the first invocation fills it, untimed)."""
    state = OUT / "warm-state"
    config = OUT / "warm-aiki.toml"
    config.write_text(f'[state]\ndir = "{state}"\n[resources]\nenabled = false\n'
                      f'[costs]\ntimezone = "UTC"\nclaude_config_dirs = ["{corpus}"]\n')
    env = dict(os.environ, TZ="UTC", CLAUDE_CONFIG_DIR=str(corpus), AIKI_HOOKS_CONFIG=str(config), PYTHONPATH="")
    days = (dt.datetime.now(dt.timezone.utc).date() - dt.date.fromisoformat(SINCE)).days + 1
    theirs_cmd = [ccusage, "claude", "daily", "--offline", "--json", "--breakdown",
                  "--since", SINCE.replace("-", ""), "--until", UNTIL.replace("-", "")]
    ours_cmd = [aiki_hooks, "costs", "--json", "--days", str(days)]
    run_timed(ours_cmd, env)  # fills the index the first time; then only checks it is up to date

    def timed(argv: list[str]) -> tuple[float, float]:
        """(wall, CPU seconds): the CPU time (user + system, the process and its children)
        moves less with other work on the machine than the wall time does."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = run_timed(argv, env)[0]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    cc, warm = [], []
    for _ in range(runs):
        cc.append(timed(theirs_cmd))
        warm.append(timed(ours_cmd))
    ratios = sorted(w[0] / c[0] for w, c in zip(warm, cc, strict=True))
    cc_wall, warm_wall = statistics.median(c[0] for c in cc), statistics.median(w[0] for w in warm)
    cc_cpu, warm_cpu = statistics.median(c[1] for c in cc), statistics.median(w[1] for w in warm)
    print(f"warm only, {runs} pairs: ccusage {CCUSAGE_VERSION} {cc_wall:.3f} s, aiki-hooks costs --json "
          f"{warm_wall:.3f} s: {warm_wall / cc_wall:.2f}x ccusage (target <= 0.25x); per pair "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; CPU {warm_cpu:.3f} s against {cc_cpu:.3f} s "
          f"({warm_cpu / cc_cpu:.2f}x)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=float, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-only", action="store_true", help="stop after the cold scan and the agreement check")
    parser.add_argument("--warm-only", action="store_true",
                        help="only the warm command against ccusage, interleaved, on a kept index")
    args = parser.parse_args()

    ccusage = ensure_ccusage()
    aiki_hooks = ensure_installed()
    now = f"{UNTIL}T12:00:00+00:00"
    corpus = ensure_corpus(f"corpus-{args.size_mib:g}", "--size-mib", str(args.size_mib), "--now", now)
    many = ensure_corpus("corpus-1000-files", "--files", "1000", "--size-mib", "60", "--max-session-kib", "20",
                         "--seed", "11", "--now", now)
    size = sum(p.stat().st_size for p in corpus.rglob("*.jsonl")) / 1024 / 1024
    if args.warm_only:
        return warm_only(ccusage, aiki_hooks, corpus, args.runs)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "aiki.toml"
        config.write_text(f'[state]\ndir = "{tmp}/state"\n[resources]\nenabled = false\n'
                          f'[costs]\ntimezone = "UTC"\nclaude_config_dirs = ["{corpus}"]\n')
        env = dict(os.environ, TZ="UTC", CLAUDE_CONFIG_DIR=str(corpus), AIKI_HOOKS_CONFIG=str(config),
                   PYTHONPATH="")
        # Both reports cover the same fixed days whatever today's date: ccusage by
        # --since/--until, ours by enough --days to reach SINCE, then cut to the range.
        days = (dt.datetime.now(dt.timezone.utc).date() - dt.date.fromisoformat(SINCE)).days + 1
        theirs_cmd = [ccusage, "claude", "daily", "--offline", "--json", "--breakdown",
                      "--since", SINCE.replace("-", ""), "--until", UNTIL.replace("-", "")]
        ours_cmd = [aiki_hooks, "costs", "--json", "--days", str(days)]
        cc_runs, our_runs, cc_times, our_times = [], [], [], []
        for _ in range(args.runs):
            cc_times.append(run_timed(theirs_cmd, env)[0])
            shutil.rmtree(tmp / "state", ignore_errors=True)  # cold: an empty index every time
            our_times.append(run_timed(ours_cmd, env)[0])
        for _ in range(max(2, args.runs // 2)):  # memory, sampled (slower: not timed)
            cc_runs.append(run_measured(theirs_cmd, env))
            shutil.rmtree(tmp / "state", ignore_errors=True)
            our_runs.append(run_measured(ours_cmd, env))
        warm_times = [run_timed(ours_cmd, env)[0] for _ in range(args.runs)]  # the index the last run left
        cc_wall = statistics.median(cc_times)
        our_wall = statistics.median(our_times)
        warm_wall = statistics.median(warm_times)
        keys, mismatched, worst = compare(json.loads(our_runs[-1][3]), json.loads(cc_runs[-1][3]), SINCE, UNTIL)

        print(f"corpus: {size:.0f} MiB, {len(list(corpus.rglob('*.jsonl')))} files; {args.runs} runs each")
        print(f"cold scan  ccusage {CCUSAGE_VERSION}: {cc_wall:.3f} s, peak RSS "
              f"{max(r[1] for r in cc_runs):.0f} MiB, PSS {max(r[2] for r in cc_runs):.0f} MiB (baseline)")
        print(f"cold scan  aiki-hooks costs: {our_wall:.3f} s ({our_wall / cc_wall:.2f}x ccusage, target <= 1.0x), "
              f"peak RSS {max(r[1] for r in our_runs):.0f} MiB, PSS {max(r[2] for r in our_runs):.0f} MiB "
              f"(process tree; target <= 60)")
        print(f"warm       aiki-hooks costs, nothing new: {warm_wall:.3f} s ({warm_wall / cc_wall:.2f}x ccusage, "
              f"target <= 0.25x)")
        print(f"agreement  {keys} (day, model) pairs {SINCE}..{UNTIL}, {mismatched} with different token totals; "
              f"largest cost difference on priced models {worst * 100:.4f}% (target < 0.5%)")
        disagreement = mismatched > 0 or keys == 0 or worst >= 0.005
        window = ["--since", SINCE.replace("-", ""), "--until", UNTIL.replace("-", "")]
        for kind, list_name, key in REPORTS:
            ours_report = [aiki_hooks, "costs", kind, "--json", "--breakdown", *window]
            times = [run_timed(ours_report, env)[0] for _ in range(args.runs)]  # warm: the index is there
            pairs, differ, cost_gap = compare_report(
                json.loads(run_timed(ours_report, env)[1]),
                json.loads(run_timed([ccusage, "claude", kind, "--offline", "--json", "--breakdown", *window], env)[1]),
                list_name, key)
            print(f"{kind:<10} warm aiki-hooks costs {kind}: {statistics.median(times):.3f} s "
                  f"({statistics.median(times) / cc_wall:.2f}x ccusage daily); {pairs} (row, model) pairs, {differ} "
                  f"with different tokens; largest cost difference on priced models {cost_gap * 100:.4f}%")
            disagreement = disagreement or differ > 0 or pairs == 0 or cost_gap >= 0.005
        if args.cold_only:
            return 1 if disagreement else 0

        from aiki_hooks.config.load import parse_config
        from aiki_hooks.probes.costs import CostsProbe

        # Warm refresh: ~1 MiB appended across 4 sessions, then one refresh.
        work = tmp / "work"
        shutil.copytree(corpus, work)
        probe = CostsProbe(parse_config({"costs": {"timezone": "UTC", "claude_config_dirs": [str(work)]}}).costs,
                           tmp / "warm-state")
        probe.check()
        sessions = sorted(work.rglob("*.jsonl"), key=lambda p: p.stat().st_size)[-4:]
        extra = ensure_corpus("corpus-append", "--size-mib", "6", "--seed", "5", "--now", now)
        payload = b"".join(p.read_bytes() for p in sorted(extra.rglob("*.jsonl")))
        lines = [line for line in payload.splitlines(keepends=True) if line.endswith(b"\n")]
        warm, base = [], []
        for run in range(args.runs):
            chunk, taken = [], 0
            start = run * 300 % len(lines)
            for line in lines[start:] + lines[:start]:  # (round again for many runs)
                chunk.append(line.replace(b'"msg_', f'"msg_w{run}_'.encode()))  # new responses each run
                taken += len(line)
                if taken >= 1024 * 1024:
                    break
            step = (len(chunk) + 3) // 4
            pieces = [(session, b"".join(chunk[i * step:(i + 1) * step])) for i, session in enumerate(sessions)]
            for session, piece in pieces:
                with open(session, "ab") as file:
                    file.write(piece)
            started = time.perf_counter()
            for session, piece in pieces:
                with open(session, "rb") as file:
                    file.seek(-len(piece), os.SEEK_END)
                    file.read()
            base.append(time.perf_counter() - started)
            started = time.perf_counter()
            probe.check()
            warm.append(time.perf_counter() - started)
        appended = sum(len(p) for _, p in pieces) / 1024 / 1024
        warm_ms, base_ms = statistics.median(warm) * 1000, statistics.median(base) * 1000
        print(f"warm       {appended:.2f} MiB appended to 4 sessions: refresh {warm_ms:.1f} ms (target <= 50 ms); "
              f"{warm_ms / base_ms:.1f}x just reading those bytes ({base_ms:.2f} ms)")

        # No new bytes, 1,000 files.
        files = list(many.rglob("*.jsonl"))
        probe = CostsProbe(parse_config({"costs": {"timezone": "UTC", "claude_config_dirs": [str(many)]}}).costs,
                           tmp / "idle-state")
        probe.check()
        idle, stat_only = [], []
        for _ in range(30):
            started = time.perf_counter()
            for path in files:
                os.stat(path)
            stat_only.append(time.perf_counter() - started)
            started = time.perf_counter()
            probe.check()
            idle.append(time.perf_counter() - started)
        idle_ms, stat_ms = statistics.median(idle) * 1000, statistics.median(stat_only) * 1000
        # The same without inotify (another OS, or out of watches): a stat of each file.
        probe._watch.close()
        probe.check()
        fallback = []
        for _ in range(30):
            started = time.perf_counter()
            probe.check()
            fallback.append(time.perf_counter() - started)
        fallback_ms = statistics.median(fallback) * 1000
        print(f"no new bytes, {len(files)} files: refresh {idle_ms:.2f} ms with inotify, {fallback_ms:.2f} ms "
              f"without (target <= 5 ms); a bare os.stat of each file takes {stat_ms:.2f} ms")
    if disagreement:
        print("FAIL: the token totals (or costs) differ from ccusage's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
