"""The named reports' pure parts, on figures computed by hand: ccusage's session rule,
burn rate and projection, days and months in a zone, and the tables the CLI prints."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest

from aiki_hooks.costs import report
from tests.conftest import cli_env
from tests.costs.test_report import assistant, msg

ROOTS = ["/home/me/.claude/projects"]


@pytest.mark.parametrize("relative, expected", [
    ("proj/3f2a.jsonl", ("proj", "3f2a")),
    ("proj/3f2a/subagents/agent-1.jsonl", ("proj", "3f2a")),  # a subagent counts in its session
    ("proj/x/3f2a/subagents/agent-1.jsonl", ("proj/x", "3f2a")),
    ("proj/subagents/agent-1.jsonl", ("proj", "subagents")),
    ("proj/a/b/c.jsonl", ("proj/a", "b")),  # any other deeper file: the folder holding it
    ("loose.jsonl", ("Unknown Project", "loose.jsonl")),
])
def test_sessions_are_named_from_the_path_as_ccusage_does(relative, expected):
    assert report.session_of(f"{ROOTS[0]}/{relative}", ROOTS) == expected


def test_burn_rate_and_projection_are_ccusages():
    h = 3600.0
    start = 1_763_632_800.0  # 10:00 UTC
    # 3 messages of 10 tokens and $1 each, from 10:10 to 10:40: 30 minutes.
    messages = [msg(start + 600), msg(start + 1800), msg(start + 2400)]
    block = report.blocks(messages)[0]
    rate = report.burn_rate(block)
    assert rate == report.BurnRate(tokens_per_minute=1.0, tokens_per_minute_for_indicator=1.0, cost_per_hour=6.0)
    ahead = report.projection(block, now=start + 1 * h)  # 4 hours left
    assert ahead == report.Projection(remaining_minutes=240.0, total_tokens=30 + 240.0, total_cost=3 + 24.0)
    assert report.projection(block, now=start + 6 * h) is None  # no longer active
    assert report.burn_rate(report.blocks([msg(start)])[0]) is None  # one message: no duration


def test_days_and_months_in_the_zone():
    berlin = report.zone("Europe/Berlin")
    late = dt.datetime(2026, 10, 31, 23, 30, tzinfo=dt.timezone.utc).timestamp()  # Nov 1st in Berlin
    early = dt.datetime(2026, 10, 31, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    months = report.by_day([msg(early), msg(late)], berlin, month=True)
    assert [(g.key, g.breakdown.total.messages) for g in months] == [("2026-10", 1), ("2026-11", 1)]
    days = report.by_day([msg(early), msg(late)], report.zone("UTC"))
    assert [(g.key, g.breakdown.total.messages) for g in days] == [("2026-10-31", 2)]


def test_each_report_prints_its_table(tmp_path):
    project = tmp_path / "claude" / "projects" / "proj"
    project.mkdir(parents=True)
    (project / "s1.jsonl").write_text(
        assistant("m1", "r1", model="claude-haiku-4-5", input=1_000_000, output=0, ts="2026-11-20T09:00:00Z")
        + assistant("m2", "r2", model="claude-opus-4-5", input=0, output=1_000_000, ts="2026-11-20T09:30:00Z"))
    config = tmp_path / "aiki.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "st"}"\n[costs]\ntimezone = "UTC"\n'
                      f'claude_config_dirs = ["{tmp_path / "claude"}"]\n')
    env = cli_env(AIKI_HOOKS_CONFIG=str(config))

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "costs", *args, "--since", "20261101",
                               "--until", "20261130"], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    daily = run("daily", "--breakdown").splitlines()
    assert daily[3].split() == ["2026-11-20", "haiku-4-5,", "opus-4-5", "1,000,000", "1,000,000", "0", "0",
                                "2,000,000", "$26.00"]
    assert daily[4].split()[:2] == ["└", "opus-4-5"] and daily[4].endswith("$25.00")  # costliest model first
    assert "2026-11  " in run("monthly")
    session = run("session").splitlines()
    assert session[3].split()[:2] == ["s1", "proj"] and session[3].endswith("2026-11-20")
    assert "2026-11-20 09:00" in run("blocks")
    blocks = json.loads(run("blocks", "--json"))["blocks"]
    assert [(b["startTime"], b["endTime"], b["costUSD"], b["isActive"]) for b in blocks] == [
        ("2026-11-20T09:00:00.000Z", "2026-11-20T14:00:00.000Z", 26.0, False)]
    assert run("blocks", "--active").startswith("No active 5-hour block")


def test_blocks_since_are_placed_as_over_the_whole_history():
    h = 3600.0
    base = 1_763_632_800.0  # 2026-11-20 10:00 UTC
    # A chain from 20:30 the day before, every 2 hours until 06:30: its blocks start at
    # 20:00 and 02:00 (02:30 is more than 5 hours after 20:00). Counted from midnight
    # alone they would start at 00:00 and 06:00.
    day = base - 10 * h  # midnight
    chain = [msg(day - 3.5 * h + i * 2 * h) for i in range(6)]  # 20:30 ... 06:30
    starts = [(b.start - day) / h for b in report.blocks_since([msg(day - 30 * h), *chain], day)]
    assert starts == [2.0]
    assert [(b.start - day) / h for b in report.blocks(chain)] == [-4.0, 2.0]
    assert [(b.start - day) / h for b in report.blocks(chain[2:])] == [0.0, 6.0]
