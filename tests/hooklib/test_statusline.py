"""The status line: context use from Claude Code's `context_window`, the 5-hour block
(cost, time left, burn rate) from the costs check's values, the order in which parts
give way to a narrow $COLUMNS (display width, wide characters included), and silence
about what is not known. The last tests run the real hook on a cache the real costs
probe filled from real transcript files."""

from __future__ import annotations

import json
import re
import time

import jsonschema
import pytest

from aiki_hooks.config.load import parse_config
from aiki_hooks.cycle.cache import write_cache
from aiki_hooks.hooklib import statusline, text
from aiki_hooks.model.result import Snapshot, utc_iso
from aiki_hooks.model.status import Status
from aiki_hooks.probes.costs import CostsProbe
from tests.conftest import REPO
from tests.costs.test_report import assistant
from tests.hooklib import test_hooks
from tests.hooklib.test_hooks import issue, run_hook, snapshot

hook_env = test_hooks.hook_env  # the fixture, shared

NOW = 1_790_000_000.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# What Claude Code 2.1.328 sent to a status line command in a pty: before the first answer
# (current_usage and the percentages null), then after one.
FIRST_RUN = {"total_input_tokens": 0, "total_output_tokens": 0, "context_window_size": 1000000,
             "current_usage": None, "used_percentage": None, "remaining_percentage": None}
AFTER_ANSWER = {"total_input_tokens": 10, "total_output_tokens": 5, "context_window_size": 1000000,
                "current_usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                                  "cache_read_input_tokens": 0}, "used_percentage": 0, "remaining_percentage": 100}


def usage(input_tokens=1000, output=500, created=2000, read=40000):
    return {"input_tokens": input_tokens, "output_tokens": output, "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read}


# --------------------------------------------------------------------------- context use


@pytest.mark.parametrize("window, expected", [
    pytest.param(None, None, id="no-context_window"),
    pytest.param("43", None, id="context_window-a-string"),
    pytest.param(FIRST_RUN, None, id="claude-code-first-run-all-null"),
    pytest.param(AFTER_ANSWER, 0.0, id="claude-code-after-an-answer"),
    pytest.param({"used_percentage": 43}, 43.0, id="used_percentage"),
    pytest.param({"used_percentage": 43.6, "current_usage": usage(), "context_window_size": 10}, 43.6,
                 id="used_percentage-wins"),
    pytest.param({"current_usage": usage(), "context_window_size": 200_000}, 21.5, id="computed-no-output-tokens"),
    pytest.param({"used_percentage": None, "current_usage": usage(), "context_window_size": 200_000}, 21.5,
                 id="computed-when-null"),
    pytest.param({"used_percentage": "43", "current_usage": usage(), "context_window_size": 200_000}, 21.5,
                 id="string-percentage-falls-back"),
    pytest.param({"used_percentage": "43"}, None, id="string-percentage-alone"),
    pytest.param({"used_percentage": True}, None, id="bool-percentage"),
    pytest.param({"used_percentage": -3}, None, id="negative"),
    pytest.param({"used_percentage": 140}, None, id="over-100"),
    pytest.param({"used_percentage": float("nan")}, None, id="nan"),
    pytest.param({"used_percentage": float("inf")}, None, id="inf"),
    pytest.param({"current_usage": usage(), "context_window_size": 0}, None, id="size-zero"),
    pytest.param({"current_usage": usage(), "context_window_size": "200000"}, None, id="size-a-string"),
    pytest.param({"current_usage": usage(), "context_window_size": True}, None, id="size-a-bool"),
    pytest.param({"current_usage": usage(), "context_window_size": 20_000}, None, id="computed-over-100"),
    pytest.param({"current_usage": {**usage(), "input_tokens": -5}, "context_window_size": 200_000}, None,
                 id="negative-tokens"),
    pytest.param({"current_usage": {"output_tokens": 5}, "context_window_size": 200_000}, None,
                 id="tokens-missing"),
    pytest.param({"current_usage": [1, 2], "context_window_size": 200_000}, None, id="usage-a-list"),
])
def test_context_percent(window, expected):
    hook_input = {"session_id": "s"} if window is None else {"context_window": window}
    found = statusline.context_percent(hook_input)
    assert found == (pytest.approx(expected) if expected is not None else None)


# --------------------------------------------------------------------------- the block


def costs_probe(**values) -> dict:
    base = {"today_usd": 4.12, "today_unpriced_tokens": 0, "block_usd": 3.2, "block_unpriced_tokens": 0,
            "block_tokens": 2_400_000, "block_started_at": NOW - 2.5 * 3600, "block_ends_at": NOW + 2 * 3600 + 14 * 60 + 30,
            "block_first_activity_at": NOW - 2.2 * 3600, "block_last_activity_at": NOW - 30,
            "block_tokens_per_minute": 18_300.0, "block_usd_per_hour": 1.45}
    return {"name": "claude-costs", "kind": "costs", "status": "OK", "summary": "x", "values": {**base, **values}}


def line_for(*, values=None, issues=(), state="fresh", columns=200, context=43.0, session=0.42, color=False,
             now=NOW, age=3.0) -> str:
    data = snapshot(issues=list(issues))
    data["probes"].append(costs_probe(**(values or {})))
    return text.status_line(data, state=state, age=age, session_cost_usd=session, columns=columns, color=color,
                            context_percent=context, now=now)


def test_the_whole_line():
    line = line_for(issues=[issue("tcp:postgres"), issue("command:backup", Status.WARNING)])
    assert line == ("aiki ✖ CRITICAL · 2 issues: tcp:postgres, command:backup · ctx 43% · "
                    "block $3.20 · 2h14m left · $1.45/h · today $4.12 · session $0.42")


@pytest.mark.parametrize("ends_in, shown, a_minute_later", [
    (2 * 3600 + 14 * 60 + 59, "2h14m left", "2h13m left"), (3600, "1h00m left", "59m left"),
    (45 * 60 + 10, "45m left", "44m left"), (119, "1m left", "<1m left"), (59, "<1m left", None)])
def test_time_left_is_counted_from_now_at_render_time(ends_in, shown, a_minute_later):
    values = {"block_ends_at": NOW + ends_in}
    assert f"block $3.20 · {shown} · $1.45/h" in line_for(values=values)
    later = line_for(values=values, now=NOW + 60)  # the same cache, a minute later
    if a_minute_later:
        assert f"block $3.20 · {a_minute_later} · $1.45/h" in later
    else:  # the block has ended by then
        assert "block" not in later


@pytest.mark.parametrize("values, state", [
    pytest.param({"block_ends_at": NOW - 1}, "fresh", id="block-ended"),
    pytest.param({"block_ends_at": NOW}, "fresh", id="block-ends-now"),
    pytest.param({"block_ends_at": NOW + 6 * 3600}, "fresh", id="end-beyond-5-hours"),
    pytest.param({"block_usd": None, "block_ends_at": None}, "fresh", id="no-active-block"),
    pytest.param({"block_ends_at": "2026-12-03T15:00:00Z"}, "fresh", id="end-a-string"),
    pytest.param({"block_usd": True}, "fresh", id="cost-a-bool"),
    pytest.param({}, "stale", id="stale-cache"),
    pytest.param({}, "skewed", id="cache-dated-ahead"),
])
def test_no_block_part_without_a_current_block_or_fresh_data(values, state):
    line = line_for(values=values, state=state)
    assert "block" not in line and "left" not in line and "/h" not in line
    assert "ctx 43%" in line  # the rest is still there


def test_no_block_part_without_costs_data():
    data = snapshot()
    line = text.status_line(data, state="fresh", age=1, session_cost_usd=None, columns=200, color=False,
                            context_percent=None, now=NOW)
    assert line == "aiki ● OK"


@pytest.mark.parametrize("values, rate", [
    pytest.param({}, "$1.45/h", id="dollars-an-hour"),
    pytest.param({"block_first_activity_at": NOW - 30 - 599}, None, id="under-10-minutes-of-activity"),
    pytest.param({"block_first_activity_at": NOW - 30 - 600}, "$1.45/h", id="10-minutes"),
    pytest.param({"block_first_activity_at": None}, None, id="first-activity-unknown"),
    pytest.param({"block_usd_per_hour": None, "block_tokens_per_minute": None}, None, id="no-rate-published"),
    pytest.param({"block_unpriced_tokens": 1234}, "18.3k tok/min", id="unpriced-tokens-rate-in-tokens"),
    pytest.param({"block_usd_per_hour": -1.0, "block_tokens_per_minute": None}, None, id="negative-rate"),
])
def test_burn_rate_only_when_known(values, rate):
    line = line_for(values=values)
    cost = "block $3.20+" if values.get("block_unpriced_tokens") else "block $3.20"
    expected = f"{cost} · 2h14m left" + (f" · {rate}" if rate else "")
    assert f"{expected} · today" in line


# --------------------------------------------------------------------------- fitting


FULL = dict(issues=[issue("tcp:postgres"), issue("command:backup", Status.WARNING)])
# Each width and the line it gets: the costs go first, then the burn rate and the block's
# cost, the issue names, the block, the context, the issue count; the status is only cut.
EXPECTED_BY_WIDTH = {
    106: "aiki ✖ CRITICAL · 2 issues: tcp:postgres, command:backup · ctx 43% · block $3.20 · 2h14m left · $1.45/h",
    100: "aiki ✖ CRITICAL · 2 issues: tcp:postgres, command:backup · ctx 43% · block $3.20 · 2h14m left",
    90: "aiki ✖ CRITICAL · 2 issues: tcp:postgres, command:backup · ctx 43% · block 2h14m left",
    60: "aiki ✖ CRITICAL · 2 issues · ctx 43% · block 2h14m left",
    40: "aiki ✖ CRITICAL · 2 issues · ctx 43%",
    28: "aiki ✖ CRITICAL · 2 issues",
    20: "aiki ✖ CRITICAL",
    10: "aiki ✖ CR…",
    2: "a…",
    1: "…",
}


@pytest.mark.parametrize("columns", sorted(EXPECTED_BY_WIDTH, reverse=True))
def test_parts_give_way_in_order(columns):
    line = line_for(columns=columns, **FULL)
    assert line == EXPECTED_BY_WIDTH[columns]
    assert text.display_width(line) <= columns


PRIORITY = ("aiki", "issue", "ctx", "left", "session", "today")  # first to stay, first to go at the end


@pytest.mark.parametrize("columns", range(1, 150))
def test_never_wider_than_columns_and_never_a_part_without_those_before_it(columns):
    line = line_for(columns=columns, color=True, **FULL)
    visible = ANSI.sub("", line)
    assert text.display_width(visible) <= columns
    present = [word in visible for word in PRIORITY]
    # Once a part is gone, every part that gives way earlier is gone too.
    assert present == sorted(present, reverse=True), visible


def test_wide_characters_count_two_columns():
    wide_id = "disk:/データ"  # 3 wide characters: 6 columns, 3 by len()
    for columns in range(1, 80):
        line = line_for(columns=columns, issues=[issue(wide_id)], context=None, session=None,
                        values={"today_usd": None, "block_usd": None})
        assert text.display_width(line) <= columns, line
    assert line_for(columns=39, issues=[issue(wide_id)], context=None, session=None,
                    values={"today_usd": None, "block_usd": None}) == "aiki ✖ CRITICAL · 1 issue: disk:/データ"
    # 36 characters but 39 columns: at 38 the name must go.
    assert line_for(columns=38, issues=[issue(wide_id)], context=None, session=None,
                    values={"today_usd": None, "block_usd": None}) == "aiki ✖ CRITICAL · 1 issue"
    assert text.fit("aiki データ", 9) == "aiki デ…" and text.display_width("aiki データ") == 11
    assert text.display_width("e\u0301") == 1  # a combining accent takes no column


@pytest.mark.parametrize("columns", [0, -5])
def test_no_limit_when_columns_is_not_positive(columns):
    assert line_for(columns=columns, **FULL) == line_for(columns=1000, **FULL)


# --------------------------------------------------------------------------- colour


@pytest.mark.parametrize("percent, code", [(43, None), (69.4, None), (70, "33"), (89, "33"), (90, "31"), (100, "31")])
def test_high_context_use_is_coloured(percent, code):
    line = line_for(context=percent, color=True)
    shown = f"ctx {percent:.0f}%"
    if code is None:
        assert f" · {shown} · " in line
    else:
        assert f" · \033[{code}m{shown}\033[0m · " in line
    assert "\033" not in line_for(context=percent, color=False)


def test_colour_goes_to_the_parts_not_to_look_alike_issue_names():
    line = line_for(context=95, color=True, issues=[issue("x · ctx 95% · ✖ CRITICAL")])
    assert line.startswith("aiki \033[31m✖ CRITICAL\033[0m · 1 issue: x · ctx 95% · ✖ CRITICAL · \033[31mctx 95%\033[0m · ")
    assert ANSI.sub("", line) == line_for(context=95, color=False, issues=[issue("x · ctx 95% · ✖ CRITICAL")])


# --------------------------------------------------------------------------- the hook, for real


def test_hook_shows_claude_codes_context_and_is_silent_without_it(hook_env):
    env, state = hook_env
    env = {**env, "COLUMNS": "120", "NO_COLOR": "1"}
    write_cache(state / "system_health.json", snapshot(issues=[issue("tcp:postgres")]))
    base = {"session_id": "s9", "model": {"id": "claude-opus-5-5", "display_name": "Opus 5.5"},
            "cost": {"total_cost_usd": 1.234}}
    lines = {}
    for name, window in (("none", None), ("first", FIRST_RUN), ("after", AFTER_ANSWER),
                         ("used", {**AFTER_ANSWER, "used_percentage": 87}), ("hostile", {"used_percentage": "9e999"})):
        stdin = base if window is None else {**base, "context_window": window}
        result = run_hook("statusline", stdin, env)
        assert result.returncode == 0 and not result.stderr
        lines[name] = result.stdout.decode()
    assert lines["none"] == lines["first"] == lines["hostile"] == "aiki ✖ CRITICAL · 1 issue: tcp:postgres · session $1.23\n"
    assert lines["after"] == "aiki ✖ CRITICAL · 1 issue: tcp:postgres · ctx 0% · session $1.23\n"
    assert lines["used"] == "aiki ✖ CRITICAL · 1 issue: tcp:postgres · ctx 87% · session $1.23\n"


@pytest.mark.parametrize("payload", [
    b"", b"null", b"[]", b'{"context_window": []}', b'{"context_window": {"used_percentage": NaN}}',
    b'{"context_window": {"current_usage": {"input_tokens": 1e400}, "context_window_size": 1}}',
    b'{"cost": {"total_cost_usd": -1}, "context_window": {"used_percentage": -0.0}}',
    '{"context_window": {"used_percentage": 12}, "cost": {"total_cost_usd": "\u001b[2J"}}'.encode(),
])
def test_hook_survives_odd_input(hook_env, payload):
    env, state = hook_env
    write_cache(state / "system_health.json", snapshot())
    result = run_hook("statusline", payload, {**env, "COLUMNS": "80", "NO_COLOR": "1"})
    assert result.returncode == 0 and not result.stderr
    out = result.stdout.decode()
    assert out.startswith("aiki ● OK") and out.count("\n") == 1 and "\x1b" not in out and "-0" not in out


def test_hook_on_a_cache_the_costs_probe_filled_from_transcripts(hook_env, tmp_path):
    """Transcripts of a block that started 2 hours ago -> the real costs probe -> the cache
    -> the real hook: the block's cost, its time left and ccusage's burn rate."""
    env, state = hook_env
    now = time.time()
    project = tmp_path / "claude" / "projects" / "proj"
    project.mkdir(parents=True)
    stamps = [now - 7200, now - 3600, now - 600, now - 60]
    (project / "s1.jsonl").write_text("".join(
        assistant(f"msg_{n}", f"req_{n}", ts=utc_iso(ts), input=2000, output=800, cache_read=30_000)
        for n, ts in enumerate(stamps)))
    config = parse_config({"costs": {"timezone": "UTC", "claude_config_dirs": [str(tmp_path / "claude")]}}).costs
    probe = CostsProbe(config, tmp_path / "index", one_shot=True)
    (result,) = probe.check()
    probe.close()
    values = result.values
    block_start = stamps[0] - stamps[0] % 3600
    assert values["block_started_at"] == block_start and values["block_ends_at"] == block_start + 5 * 3600
    assert values["block_first_activity_at"] == pytest.approx(stamps[0], abs=0.001)
    assert values["block_last_activity_at"] == pytest.approx(stamps[-1], abs=0.001)
    assert values["block_tokens"] == 4 * 32_800
    minutes = (stamps[-1] - stamps[0]) / 60
    assert values["block_tokens_per_minute"] == pytest.approx(4 * 32_800 / minutes, rel=1e-3)
    assert values["block_usd_per_hour"] == pytest.approx(values["block_usd"] / minutes * 60, rel=1e-3)

    data = Snapshot(generated_at=time.time(), interval_seconds=60, host="h", probes=(result,), issues=()).to_dict()
    write_cache(state / "system_health.json", data)
    stdin = {"session_id": "s1", "cost": {"total_cost_usd": 0.5}, "context_window": {**AFTER_ANSWER, "used_percentage": 12}}
    out = run_hook("statusline", stdin, {**env, "COLUMNS": "200", "NO_COLOR": "1"}).stdout.decode().rstrip("\n")
    left = block_start + 5 * 3600 - time.time()
    assert left > 0
    hours, minutes_left = divmod(int(left // 60), 60)
    # The minute may turn between our clock and the hook's.
    expected = [f"{h}h{m:02d}m left" if h else f"{m}m left" for h, m in
                {(hours, minutes_left), divmod(int(left // 60) - 1, 60)}]
    assert any(e in out for e in expected), out
    assert out.startswith(f"aiki ● OK · ctx 12% · block ${values['block_usd']:.2f} · ")
    assert f" · ${values['block_usd_per_hour']:.2f}/h · today ${values['today_usd']:.2f} · session $0.50" in out

    # docs/cache.schema.json types the new values: this cache passes, a rate as a string fails.
    schema = json.loads((REPO / "docs" / "cache.schema.json").read_text())
    validator = jsonschema.Draft202012Validator({"$ref": "#/$defs/probe", "$defs": schema["$defs"]})
    written = data["probes"][0]
    assert not list(validator.iter_errors(written))
    written["values"]["block_usd_per_hour"] = "1.45"
    assert list(validator.iter_errors(written))
