"""`aiki-hooks costs daily|monthly|session|blocks` against the real ccusage, pinned, on the
same generated transcripts, both in the same pinned time zone.

ccusage is installed by run-tests.sh into .cache/ccusage (npm, pinned like Claude Code for
the end-to-end tests). Without it the comparisons fail under CI=true and are skipped on a
laptop without npm.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiki_hooks.config.load import parse_config
from aiki_hooks.costs import command
from tests.conftest import REPO, cli_env, find_pinned_tool, missing_real_tool

CCUSAGE_VERSION = "20.0.24"  # the same as bench/costs_vs_ccusage.py and run-tests.sh
LOCAL_INSTALL = REPO / ".cache" / "ccusage" / "node_modules" / ".bin" / "ccusage"
# A zone an hour off UTC, so that a day boundary the tools disagreed on would show.
ZONE = "Europe/Berlin"
CORPUS_NOW = "2026-11-24T12:00:00+00:00"
SINCE, UNTIL = "20261025", "20261124"  # all of it: two months
CUT_SINCE, CUT_UNTIL = "20261105", "20261120"


def find_ccusage() -> str | None:
    return find_pinned_tool((os.environ.get("AIKI_CCUSAGE_BIN"), str(LOCAL_INSTALL), shutil.which("ccusage")),
                            lambda version: version.endswith(CCUSAGE_VERSION))


@pytest.fixture(scope="module")
def ccusage_bin() -> str:
    found = find_ccusage()
    if found is None:
        missing_real_tool(f"ccusage {CCUSAGE_VERSION} not found (run ./run-tests.sh, which installs it into "
                          f".cache/ccusage, or set AIKI_CCUSAGE_BIN)")
    return found


class Tools:
    """ccusage and aiki-hooks over one Claude config dir, in ZONE."""

    def __init__(self, ccusage: str, claude_dir: Path, work: Path) -> None:
        self.ccusage = ccusage
        self.claude_dir = claude_dir
        config = work / "aiki.toml"
        config.write_text(f'[state]\ndir = "{work / "state"}"\n[resources]\nenabled = false\n'
                          f'[costs]\nclaude_config_dirs = ["{claude_dir}"]\n')
        self.env = cli_env(TZ=ZONE, CLAUDE_CONFIG_DIR=str(claude_dir), AIKI_HOOKS_CONFIG=str(config))

    def theirs(self, *args: str) -> dict:
        done = subprocess.run([self.ccusage, "claude", *args, "--offline", "--json"], capture_output=True, text=True,
                              env=self.env, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def ours(self, *args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "costs", *args, "--json"], capture_output=True,
                              text=True, env=self.env, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, ccusage_bin) -> Tools:
    """A 12 MiB corpus of 30 days up to CORPUS_NOW (streaming duplicates, resumed sessions
    repeating other files' lines, subagent files, torn lines, a model ccusage cannot price)."""
    root = tmp_path_factory.mktemp("vs-ccusage")
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(root / "claude"), "--size-mib", "12",
                    "--seed", "21", "--max-session-kib", "400", "--now", CORPUS_NOW], check=True, capture_output=True)
    return Tools(ccusage_bin, root / "claude", root)


TOKENS = ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")


def _per_model(report: dict, list_name: str, key: str) -> dict[tuple, dict]:
    found = {}
    for row in report[list_name]:
        row_key = (row[key], row.get("projectPath"))
        for model in row["modelBreakdowns"]:
            found[row_key + (model["modelName"],)] = model
    return found


def _assert_same(ours: dict, theirs: dict, list_name: str, key: str) -> int:
    """Every row and every (row, model) with the same tokens (and totalTokens); costs
    within rounding where ccusage prices the model. Returns how many (row, model) pairs."""
    mine, cc = _per_model(ours, list_name, key), _per_model(theirs, list_name, key)
    assert set(mine) == set(cc)
    for pair, theirs_model in cc.items():
        assert {t: mine[pair][t] for t in TOKENS} == {t: theirs_model[t] for t in TOKENS}, pair
        if not theirs_model.get("missingPricing"):
            assert mine[pair]["cost"] == pytest.approx(theirs_model["cost"], rel=1e-9, abs=1e-9), pair
        else:  # ccusage counts a model it cannot price as $0; ours may know it
            assert mine[pair]["cost"] >= 0
    rows = {(r[key], r.get("projectPath")): r for r in ours[list_name]}
    for row in theirs[list_name]:
        mine_row = rows[(row[key], row.get("projectPath"))]
        assert {t: mine_row[t] for t in (*TOKENS, "totalTokens")} == {t: row[t] for t in (*TOKENS, "totalTokens")}
    for t in (*TOKENS, "totalTokens"):
        assert ours["totals"][t] == theirs["totals"][t], t
    return len(cc)


@pytest.mark.parametrize("kind, list_name, key", [("daily", "daily", "date"), ("monthly", "monthly", "month"),
                                                  ("session", "sessions", "sessionId")])
def test_reports_equal_ccusage_token_for_token(generated, kind, list_name, key):
    # Days and sessions over a window that cuts the corpus (and sessions running over
    # midnight) at both ends; months over all of it, two months.
    window = ("--since", SINCE, "--until", UNTIL) if kind == "monthly" else ("--since", CUT_SINCE, "--until", CUT_UNTIL)
    ours = generated.ours(kind, "--breakdown", *window)
    theirs = generated.theirs(kind, "--breakdown", *window)
    assert _assert_same(ours, theirs, list_name, key) >= 10
    if kind == "session":  # and the times ccusage gives each session
        times = {(s["sessionId"], s["projectPath"]): (s["firstActivity"], s["lastActivity"]) for s in ours["sessions"]}
        assert times == {(s["sessionId"], s["projectPath"]): (s["firstActivity"], s["lastActivity"])
                         for s in theirs["sessions"]}


def test_blocks_equal_ccusage(generated):
    ours = generated.ours("blocks", "--since", "20261001")["blocks"]
    theirs = [b for b in generated.theirs("blocks")["blocks"] if not b["isGap"]]  # ours lists no gaps
    unpriced = set(generated.theirs("daily")["totals"].get("unpricedModels", []))  # ccusage's $0 models
    assert len(ours) == len(theirs) >= 10
    for a, b in zip(ours, theirs, strict=True):
        for key in ("id", "startTime", "endTime", "actualEndTime", "entries", "tokenCounts", "totalTokens"):
            assert a[key] == b[key], (b["id"], key)
        assert set(a["models"]) == set(b["models"])
        if not unpriced & set(b["models"]):
            assert a["costUSD"] == pytest.approx(b["costUSD"], rel=1e-9), b["id"]


def _write_session(path: Path, session: str, moments: list[float], *, model="claude-sonnet-4-5-20250929",
                   first_id: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, moment in enumerate(moments, start=first_id):
        stamp = dt.datetime.fromtimestamp(moment, dt.timezone.utc).isoformat(timespec="milliseconds")
        usage = {"input_tokens": 40 + index, "output_tokens": 300 + 7 * index, "cache_creation_input_tokens": 900,
                 "cache_read_input_tokens": 20_000 + 1_000 * index}
        entry = {"type": "assistant", "sessionId": session, "timestamp": stamp.replace("+00:00", "Z"),
                 "requestId": f"req_{session}_{index}", "isSidechain": False,
                 "message": {"id": f"msg_{session}_{index}", "model": model, "usage": usage}}
        lines.append(json.dumps(entry, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n")


def test_active_block_burn_rate_and_projection_equal_ccusage(tmp_path, ccusage_bin):
    now = time.time()
    claude = tmp_path / "claude"
    # An earlier block 9 hours ago, then the active one: messages up to 3 minutes ago.
    _write_session(claude / "projects" / "p" / "old.jsonl", "old", [now - 9 * 3600 + i * 300 for i in range(6)])
    _write_session(claude / "projects" / "p" / "live.jsonl", "live",
                   [now - 100 * 60 + i * 97 * 60 / 19 for i in range(20)], first_id=100)
    tools = Tools(ccusage_bin, claude, tmp_path)
    theirs = tools.theirs("blocks", "--active")["blocks"]
    ours = tools.ours("blocks", "--active")["blocks"]
    assert len(theirs) == len(ours) == 1
    a, b = ours[0], theirs[0]
    for key in ("id", "startTime", "endTime", "actualEndTime", "isActive", "entries", "tokenCounts", "totalTokens",
                "models"):
        assert a[key] == b[key], key
    assert a["costUSD"] == pytest.approx(b["costUSD"], rel=1e-9)
    for key in ("tokensPerMinute", "tokensPerMinuteForIndicator", "costPerHour"):
        assert a["burnRate"][key] == pytest.approx(b["burnRate"][key], rel=1e-9), key
    # The projection runs to the block's end from each tool's own "now": the two runs are
    # seconds apart, so a minute of burn either way.
    assert abs(a["projection"]["remainingMinutes"] - b["projection"]["remainingMinutes"]) <= 1
    assert abs(a["projection"]["totalTokens"] - b["projection"]["totalTokens"]) <= a["burnRate"]["tokensPerMinute"]
    assert abs(a["projection"]["totalCost"] - b["projection"]["totalCost"]) <= a["burnRate"]["costPerHour"] / 60 + 0.01


def test_a_warm_run_reads_the_index_not_the_transcripts(generated, tmp_path):
    config = parse_config({"costs": {"claude_config_dirs": [str(generated.claude_dir)]}}).costs
    since = dt.date(2026, 11, 10)
    cold = command.load(config, tmp_path, since)
    warm = command.load(config, tmp_path, since)
    assert cold.stats.bytes_read > 1_000_000 and cold.stats.files_read == cold.stats.files
    assert (warm.stats.bytes_read, warm.stats.files_read) == (0, 0)
    assert warm.rows == cold.rows and len(warm.rows) > 100


@pytest.mark.parametrize("args, message", [
    (["daily", "--since", "2026-11-01"], "--since must be a date as YYYYMMDD"),
    (["monthly", "--until", "20261340"], "--until must be a date as YYYYMMDD"),
    (["session", "--since", "20261120", "--until", "20261110"], "--since 20261120 is after --until 20261110"),
    (["daily", "--since", "20261120", "--days", "3"], "give --since or --days, not both"),
    (["session", "--active"], "--active goes with the blocks report"),
])
def test_bad_options_get_one_line_and_exit_3(tmp_path, args, message):
    env = cli_env(AIKI_HOOKS_CONFIG=str(tmp_path / "none.toml"), CLAUDE_CONFIG_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "costs", *args], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 3
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
