"""The hook scripts as Claude Code runs them: a child process, JSON on stdin, and whatever
happens, exit 0 with valid JSON or nothing on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from aiki_hooks.cycle.cache import read_cache, write_cache
from aiki_hooks.hooklib import text
from aiki_hooks.model.result import Issue, ProbeResult, Snapshot, utc_iso
from aiki_hooks.model.status import Status
from tests.conftest import REPO, wait_for

HOOKS = REPO / "hooks"
GIB = 1024**3


def probe(name, kind, status=Status.OK, summary="fine", **values):
    return ProbeResult(name=name, kind=kind, status=status, summary=summary, values=values, checked_at=time.time())


def healthy_probes():
    return (
        probe("cpu", "resources", summary="12% busy (4 cores)", cpu_percent=12.0, cpu_count=4),
        probe("memory", "resources", memory_used_bytes=6.1 * GIB, memory_total_bytes=15.6 * GIB, memory_used_ratio=0.39),
        probe("load", "resources", load5_per_core=0.2),
        probe("disk:/", "resources", disk_free_bytes=81 * GIB, disk_used_ratio=0.6),
        probe("memory-daemon.service", "systemd", summary="active (running) 3d, 41.2 MiB"),
        probe("qdrant", "http", summary="ready 12 ms, v1.12.4, 4 collections", collections=4),
    )


def snapshot(*, probes=None, issues=(), guard=(), generated_at=None, interval=60.0) -> dict:
    """A snapshot dict; its status is the worst of the given issues (the probes stay OK)."""
    data = Snapshot(generated_at=generated_at or time.time(), interval_seconds=interval, host="h",
                    probes=tuple(probes if probes is not None else healthy_probes()), issues=tuple(issues),
                    hook_settings={"guard": list(guard)}).to_dict()
    if issues:
        data["status"] = max((i.severity for i in issues), key=lambda s: s.severity).name
    return data


def issue(issue_id, severity=Status.CRITICAL, summary="connection refused", since=None):
    return Issue(id=issue_id, severity=severity, summary=summary, since=since or time.time() - 300, probe="p")


@pytest.fixture
def hook_env(tmp_path):
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
    env.update(HOME=str(tmp_path), AIKI_HOOKS_STATE_DIR=str(state), PYTHONPATH=str(REPO))
    return env, state


def run_hook(name: str, payload, env, timeout=10) -> subprocess.CompletedProcess:
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return subprocess.run([sys.executable, str(HOOKS / f"{name}.py")], input=data if isinstance(data, bytes)
                          else data.encode(), capture_output=True, env=env, timeout=timeout)


def context_of(result, event) -> str | None:
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    if not out.strip():
        return None
    data = json.loads(out)
    assert data["hookSpecificOutput"]["hookEventName"] == event
    return data["hookSpecificOutput"].get("additionalContext")


# --------------------------------------------------------------------------- pure text


def test_healthy_block_is_short_and_factual():
    now = time.time()
    block = text.session_block(snapshot(generated_at=now - 23), now=now)
    assert block.startswith(f"System health {time.strftime('%H:%M', time.localtime(now - 23))} (23 s old): OK.")
    assert "Services OK: memory-daemon.service active (running) 3d, 41.2 MiB, qdrant ready 12 ms, v1.12.4." in block
    assert "cpu 12%, mem 6.1/15.6 GiB, load 0.20/core, disk / 81.0 GiB free." in block
    assert len(block) <= text.HEALTHY_BLOCK_LIMIT


def test_healthy_block_drops_detail_to_stay_within_320_characters():
    many = healthy_probes() + tuple(probe(f"service-{i:02d}", "tcp", summary="connected in 0.4 ms") for i in range(12))
    block = text.session_block(snapshot(probes=many), now=time.time())
    assert len(block) <= text.HEALTHY_BLOCK_LIMIT
    assert "14 services OK." in block or "Services OK: memory-daemon.service, qdrant, service-00" in block


def test_block_with_issues_lists_them_first_with_durations_and_stays_under_1000():
    now = time.time()
    issues = [issue(f"http:svc{i}", summary="x" * 300, since=now - 840) for i in range(8)]
    block = text.session_block(snapshot(issues=issues, generated_at=now), now=now)
    assert "Issues (8): http:svc0 CRITICAL for 14 min: " in block
    assert "; 3 more." in block
    assert len(block) <= text.ISSUE_BLOCK_LIMIT


# Durations are measured against this moment, not the clock when the test runs (the
# parameters are built at collection time, minutes before a long run gets here).
NOTICE_NOW = time.time()


@pytest.mark.parametrize(
    "seen, issues, expected",
    [
        pytest.param({}, [], None, id="nothing-either-side"),
        pytest.param({}, [issue("http:qdrant")], "http:qdrant CRITICAL since", id="opened"),
        pytest.param({"disk:/": ["WARNING", utc_iso(NOTICE_NOW - 60), ""]},
                     [issue("disk:/", summary="96% used")], "disk:/ escalated WARNING -> CRITICAL: 96% used",
                     id="escalated"),
        pytest.param({"disk:/": ["CRITICAL", utc_iso(NOTICE_NOW - 60), ""]},
                     [issue("disk:/", Status.WARNING, "91% used")], "disk:/ eased CRITICAL -> WARNING", id="eased"),
        pytest.param({"tcp:pg": ["CRITICAL", utc_iso(NOTICE_NOW - 840), "refused"]}, [],
                     "tcp:pg resolved (was CRITICAL) after 14 min (now OK, no open issues)", id="resolved"),
        pytest.param({"tcp:pg": ["CRITICAL", utc_iso(NOTICE_NOW - 840), "refused"]}, [issue("tcp:pg")], None,
                     id="unchanged"),
    ],
)
def test_change_notice(seen, issues, expected):
    data = snapshot(issues=issues)
    notice = text.change_notice(seen, data, now=NOTICE_NOW)
    if expected is None:
        assert notice is None
    else:
        assert notice.startswith("System health change: ") and expected in notice


DENY_DISK = {"name": "disk-full", "issue": "disk:*", "min_severity": "CRITICAL", "tools": ["Write", "Edit", "Bash"],
             "decision": "deny"}
ASK_QDRANT = {"name": "qdrant-down", "issue": "http:qdrant", "min_severity": "WARNING", "tools": ["mcp__qdrant*"],
              "decision": "ask"}
LOW_FREE = {"name": "low-free", "value": "disk:/.disk_free_bytes", "below": 1 * GIB, "tools": ["Bash"],
            "decision": "ask"}


@pytest.mark.parametrize(
    "rules, issues, tool, expected",
    [
        pytest.param([DENY_DISK], [issue("disk:/", summary="99% used")], "Write",
                     ("deny", 'Write is blocked by the aiki-hooks guard rule "disk-full" while disk:/ is CRITICAL'),
                     id="deny-on-issue"),
        pytest.param([DENY_DISK], [issue("disk:/", Status.WARNING)], "Write", None, id="below-min-severity"),
        pytest.param([DENY_DISK], [issue("disk:/")], "Read", None, id="tool-not-listed"),
        pytest.param([ASK_QDRANT], [issue("http:qdrant", Status.WARNING)], "mcp__qdrant__find",
                     ("ask", "mcp__qdrant__find is held for confirmation"), id="ask-glob-tool"),
        pytest.param([ASK_QDRANT, DENY_DISK], [issue("http:qdrant"), issue("disk:/")], "Bash", ("deny", "disk-full"),
                     id="only-matching-rule"),
        pytest.param([LOW_FREE], [], "Bash", ("ask", "disk:/ disk_free_bytes is 512.0 MiB, below 1.0 GiB"),
                     id="value-below"),
        pytest.param([], [issue("disk:/")], "Bash", None, id="no-rules"),
    ],
)
def test_guard_decision(rules, issues, tool, expected):
    probes = healthy_probes() + (probe("disk:/", "resources", disk_free_bytes=0.5 * GIB),)
    data = snapshot(probes=probes[:3] + probes[4:], issues=issues)
    decision = text.guard_decision(rules, data, tool, now=time.time())
    if expected is None:
        assert decision is None
    else:
        assert decision[0] == expected[0] and expected[1] in decision[1]


@pytest.mark.parametrize("columns", [200, 60, 30, 12])
def test_status_line_fits_columns(columns):
    data = snapshot(issues=[issue("tcp:postgres"), issue("command:backup", Status.WARNING)])
    data["status"] = "CRITICAL"
    line = text.status_line(data, state="fresh", age=3, session_cost_usd=0.4213, columns=columns, color=False)
    assert len(line) <= columns
    assert line.startswith("aiki ✖ CRITICAL"[:columns - 1])
    if columns >= 60:  # the costs give way before the issue names
        assert "2 issues: tcp:postgres, command:backup" in line
    if columns == 200:
        assert "session $0.42" in line


# --------------------------------------------------------------------------- the scripts


def test_session_start_prints_the_block_as_json(hook_env):
    env, state = hook_env
    write_cache(state / "system_health.json", snapshot(issues=[issue("tcp:postgres")]))
    result = run_hook("session_start", {"session_id": "s1", "source": "startup"}, env)
    context = context_of(result, "SessionStart")
    assert "tcp:postgres CRITICAL for 5 min: connection refused" in context
    events = [json.loads(line) for line in (state / "hook_events.jsonl").read_text().splitlines()]
    assert events[0]["session_id"] == "s1" and events[0]["text"] == context


def test_session_start_on_resume_repeats_only_a_changed_block(hook_env):
    env, state = hook_env
    cache = state / "system_health.json"
    write_cache(cache, snapshot())
    assert context_of(run_hook("session_start", {"session_id": "s1", "source": "startup"}, env), "SessionStart")
    assert context_of(run_hook("session_start", {"session_id": "s1", "source": "resume"}, env), "SessionStart") is None
    write_cache(cache, snapshot(issues=[issue("http:qdrant")]))
    resumed = context_of(run_hook("session_start", {"session_id": "s1", "source": "compact"}, env), "SessionStart")
    assert "http:qdrant CRITICAL" in resumed


@pytest.mark.parametrize(
    "prepare, expected",
    [
        pytest.param(lambda cache: None, "System health: no data yet (no health data yet).", id="missing"),
        pytest.param(lambda cache: cache.write_text("{not json"), "System health data unreadable (cache is not valid",
                     id="corrupt"),
        pytest.param(lambda cache: cache.write_text('{"schema_version": 7}'), "cache schema 7, expected 1",
                     id="future-schema"),
        pytest.param(lambda cache: write_cache(cache, snapshot(issues=[issue("tcp:pg")],
                                                               generated_at=time.time() - 840)),
                     "System health data is 14 min old (refresher not running); last known: CRITICAL, 1 issue(s): "
                     "tcp:pg.", id="stale"),
    ],
)
def test_session_start_degraded_cache_gives_one_line_and_starts_one_refresh(hook_env, prepare, expected):
    env, state = hook_env
    state.mkdir(mode=0o700)
    cache = state / "system_health.json"
    prepare(cache)
    context = context_of(run_hook("session_start", {"session_id": "s1", "source": "startup"}, env), "SessionStart")
    assert expected in context and "\n" not in context
    assert context.endswith("A background refresh was started.")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and read_cache(cache).state != "fresh":
        time.sleep(0.1)
    assert read_cache(cache).state == "fresh", "the background refresh did not rewrite the cache"


def test_no_refresh_is_started_while_a_refresher_holds_its_lock(hook_env):
    import fcntl

    env, state = hook_env
    state.mkdir(mode=0o700)
    with open(state / "refresher.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        context = context_of(run_hook("session_start", {"session_id": "s1", "source": "startup"}, env), "SessionStart")
    assert context == "System health: no data yet (no health data yet)."


def test_pre_tool_use_silent_until_something_changes_then_once(hook_env):
    env, state = hook_env
    cache = state / "system_health.json"
    write_cache(cache, snapshot())
    payload = {"session_id": "s2", "tool_name": "Bash", "tool_input": {"command": "ls"}}
    run_hook("session_start", {"session_id": "s2", "source": "startup"}, env)
    first = run_hook("pre_tool_use", payload, env)
    assert first.returncode == 0 and first.stdout == b""
    write_cache(cache, snapshot(issues=[issue("http:qdrant")]))
    notice = context_of(run_hook("pre_tool_use", payload, env), "PreToolUse")
    assert notice.startswith("System health change: http:qdrant CRITICAL since")
    assert run_hook("pre_tool_use", payload, env).stdout == b""
    write_cache(cache, snapshot())
    resolved = context_of(run_hook("pre_tool_use", payload, env), "PreToolUse")
    assert "http:qdrant resolved (was CRITICAL) after 5 min" in resolved


def test_pre_tool_use_tells_once_when_data_goes_stale_and_when_it_is_back(hook_env):
    env, state = hook_env
    cache = state / "system_health.json"
    write_cache(cache, snapshot(generated_at=time.time() - 600, interval=60))
    payload = {"session_id": "s3", "tool_name": "Read"}
    with open(state / "refresher.lock", "w") as lock:  # a "refresher" exists: no background refresh
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        stale = context_of(run_hook("pre_tool_use", payload, env), "PreToolUse")
        # A lock is held, so something runs: it is not said to be "not running".
        assert stale.startswith("System health data is 10 min old (the refresher runs but has not updated the cache)")
        assert run_hook("pre_tool_use", payload, env).stdout == b""
    write_cache(cache, snapshot())
    back = context_of(run_hook("pre_tool_use", payload, env), "PreToolUse")
    assert back.startswith("System health data is current again. System health ")


def test_pre_tool_use_guard_denies_with_reason(hook_env):
    env, state = hook_env
    write_cache(state / "system_health.json", snapshot(issues=[issue("disk:/", summary="99% used")], guard=[DENY_DISK]))
    result = run_hook("pre_tool_use", {"session_id": "s4", "tool_name": "Edit"}, env)
    out = json.loads(result.stdout)["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse" and out["permissionDecision"] == "deny"
    assert "while disk:/ is CRITICAL since" in out["permissionDecisionReason"]
    assert run_hook("pre_tool_use", {"session_id": "s4", "tool_name": "Read"}, env).stdout == b""


def test_pre_tool_use_guard_fails_open_on_stale_data(hook_env):
    env, state = hook_env
    write_cache(state / "system_health.json",
                snapshot(issues=[issue("disk:/")], guard=[DENY_DISK], generated_at=time.time() - 3600))
    out = json.loads(run_hook("pre_tool_use", {"session_id": "s5", "tool_name": "Bash"}, env).stdout)
    assert "permissionDecision" not in out["hookSpecificOutput"]


@pytest.mark.parametrize("hook, event", [("session_start", "SessionStart"), ("pre_tool_use", "PreToolUse"),
                                         ("statusline", None)])
@pytest.mark.parametrize(
    "stdin",
    [b"", b"not json", b"[1,2,3]", b"\xff\xfe\x00", b'{"session_id": "../../etc/passwd", "source": 7}',
     b"{" * 100_000, b'{"session_id": "x"}' + b" " * (2 * 1024 * 1024)],
    ids=["empty", "garbage", "array", "binary", "hostile-id", "deep", "huge"],
)
def test_bad_input_never_breaks_a_hook(hook_env, hook, event, stdin):
    env, state = hook_env
    write_cache(state / "system_health.json", snapshot())
    result = run_hook(hook, stdin, env)
    assert result.returncode == 0
    assert b"Traceback" not in result.stdout + result.stderr
    if event and result.stdout.strip():
        assert json.loads(result.stdout)["hookSpecificOutput"]["hookEventName"] == event
    assert not (state.parent / "etc").exists()


def test_hook_gives_up_silently_at_its_deadline(hook_env):
    env, state = hook_env
    write_cache(state / "system_health.json", snapshot())
    started = time.monotonic()
    # Its stdin never ends: reading the input blocks until the deadline.
    hook = subprocess.Popen([sys.executable, str(HOOKS / "session_start.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        hook.stdin.write(b'{"session_id": "s6", ')
        hook.stdin.flush()
        assert hook.wait(timeout=5) == 0
        assert hook.stdout.read() == b""
    finally:
        hook.kill()
        hook.stdin.close()
        hook.wait()
    assert time.monotonic() - started < 2.0


def test_unwritable_state_dir_still_answers(hook_env):
    env, state = hook_env
    write_cache(state / "system_health.json", snapshot(issues=[issue("tcp:pg")]))
    os.chmod(state, 0o500)
    try:
        context = context_of(run_hook("session_start", {"session_id": "s7", "source": "startup"}, env), "SessionStart")
    finally:
        os.chmod(state, 0o700)
    assert "tcp:pg CRITICAL" in context


STDLIB_CHECK = """
import sys
before = set(sys.modules)  # what the interpreter loaded at start-up (site, .pth files)
import runpy, json
sys.argv = [{script!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit:
    pass
added = set(sys.modules) - before
third_party = sorted({{name.split(".")[0] for name in added}} - set(sys.stdlib_module_names) - {{"aiki_hooks"}})
sys.stderr.write("MODULES=" + json.dumps({{"third_party": third_party, "all": sorted(added)}}) + "\\n")
"""


def journaled_snapshot(**kwargs) -> dict:
    """Issues with occurrence ids, as the refresher publishes them: the hooks then also
    write the journal."""
    data = snapshot(**kwargs)
    for number, item in enumerate(data["issues"]):
        item["occurrence_id"] = f"occ{number}"
    return data


@pytest.mark.parametrize("hook, scenario", [
    ("session_start", "healthy-with-issue"), ("pre_tool_use", "healthy-with-issue"), ("statusline", "healthy-with-issue"),
    ("session_start", "journal"), ("pre_tool_use", "journal"),
    ("session_start", "degraded"), ("pre_tool_use", "degraded"),
])
def test_hooks_import_only_the_standard_library(hook_env, hook, scenario):
    env, state = hook_env
    cache = state / "system_health.json"
    if scenario == "healthy-with-issue":
        write_cache(cache, snapshot(issues=[issue("disk:/")], guard=[DENY_DISK]))
    elif scenario == "journal":
        write_cache(cache, journaled_snapshot(issues=[issue("disk:/")]))
    else:
        state.mkdir(mode=0o700)
        cache.write_text("{corrupt")
    code = STDLIB_CHECK.format(script=str(HOOKS / f"{hook}.py"))
    result = subprocess.run([sys.executable, "-c", code], input=json.dumps({"session_id": "s8", "tool_name": "Bash",
                            "source": "startup", "cwd": "/p"}).encode(), capture_output=True, env=env, timeout=10)
    line = [ln for ln in result.stderr.decode().splitlines() if ln.startswith("MODULES=")][0]
    modules = json.loads(line[len("MODULES="):])
    assert modules["third_party"] == []
    heavy = {"psutil", "filelock", "requests", "mem0", "dataclasses", "tomllib", "orjson", "prometheus_client",
             "aiki_hooks.model.status",  # the hooks rank states by model.severity's plain names
             "datetime"}  # our timestamps are read and written with `time` (model/dates.py)
    if scenario != "degraded":
        heavy.add("subprocess")  # only a degraded cache starts a (detached) refresh
    assert not heavy & set(modules["all"])
    if scenario == "healthy-with-issue" and hook != "statusline":
        # Issues without occurrence ids (no journal behind the cache): nothing to note, no journal import.
        assert "aiki_hooks.issues.journal" not in modules["all"]
    if scenario == "journal":  # the path under test really ran
        assert "aiki_hooks.issues.journal" in modules["all"]
        assert (state / "journal.jsonl").exists()


def test_pre_tool_use_journals_what_it_told_once_per_occurrence_and_severity(hook_env):
    env, state = hook_env
    cache = state / "system_health.json"
    write_cache(cache, journaled_snapshot())
    payload = {"session_id": "sess-told-1", "tool_name": "Bash", "cwd": "/home/me/proj"}
    run_hook("session_start", {"session_id": "sess-told-1", "source": "startup"}, env)
    write_cache(cache, journaled_snapshot(issues=[issue("http:qdrant", Status.WARNING, "slow: 900 ms")]))
    assert context_of(run_hook("pre_tool_use", payload, env), "PreToolUse")
    assert run_hook("pre_tool_use", payload, env).stdout == b""
    write_cache(cache, journaled_snapshot(issues=[issue("http:qdrant", Status.CRITICAL)]))
    assert "escalated WARNING -> CRITICAL" in context_of(run_hook("pre_tool_use", payload, env), "PreToolUse")
    records = [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines()]
    told = [r for r in records if r["transition"] == "session_told"]
    assert [(r["record_id"], r["severity"], r["cwd"]) for r in told] == [
        ("told:sess-told-1:occ0:WARNING", "WARNING", "/home/me/proj"),
        ("told:sess-told-1:occ0:CRITICAL", "CRITICAL", "/home/me/proj"),
    ]
    assert told[1]["sentence"].startswith("Claude Code session sess-tol in /home/me/proj was told at ")
    assert "that p (http:qdrant) is CRITICAL: connection refused (since " in told[1]["sentence"]
    assert not (state / "spool").exists()  # the refresher feeds mem0 from the journal


def test_fork_and_clear_are_new_sessions_that_get_the_block(hook_env):
    env, state = hook_env
    write_cache(state / "system_health.json", journaled_snapshot(issues=[issue("tcp:pg")]))
    for number, source in enumerate(("fork", "clear")):
        context = context_of(run_hook("session_start", {"session_id": f"new{number}", "source": source}, env),
                             "SessionStart")
        assert "tcp:pg CRITICAL" in context
    records = [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines()]
    assert sorted(r["record_id"] for r in records) == ["session:new0:occ0", "session:new1:occ0"]


def test_told_log_is_bounded(hook_env):
    from aiki_hooks.hooklib import runtime

    env, state = hook_env
    state.mkdir(mode=0o700)
    for number in range(3):
        runtime.record_told(str(state), "s", "SessionStart", "x" * (600 * 1024), now=float(number))
    assert (state / "hook_events.jsonl.1").exists()
    assert (state / "hook_events.jsonl").stat().st_size <= 2 * 600 * 1024


def test_statusline_reads_claude_code_stdin_and_columns(hook_env):
    env, state = hook_env
    data = snapshot(issues=[issue("tcp:postgres")])
    write_cache(state / "system_health.json", data)
    stdin = {"session_id": "s9", "model": {"id": "claude-sonnet-4-5"}, "cost": {"total_cost_usd": 1.234}}
    wide = run_hook("statusline", stdin, {**env, "COLUMNS": "120", "NO_COLOR": "1"})
    assert wide.stdout.decode().strip() == "aiki ✖ CRITICAL · 1 issue: tcp:postgres · session $1.23"
    narrow = run_hook("statusline", stdin, {**env, "COLUMNS": "30", "NO_COLOR": "1"})
    assert len(narrow.stdout.decode().strip()) <= 30
    coloured = run_hook("statusline", stdin, {**env, "COLUMNS": "120"})
    assert "\033[31m✖ CRITICAL\033[0m" in coloured.stdout.decode()
    via_cli = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "statusline"], input=json.dumps(stdin).encode(),
                             capture_output=True, env={**env, "COLUMNS": "120", "NO_COLOR": "1"}, timeout=10)
    assert via_cli.stdout == wide.stdout


def test_block_carries_one_recurrence_line_for_an_open_issue():
    now = time.time()
    data = snapshot(issues=[issue("http:qdrant")], generated_at=now)
    data["patterns"] = [
        {"issue_id": "disk:/", "count": 5, "text": "disk / full 5x in 7 d, median 2 h"},
        {"issue_id": "http:qdrant", "count": 4, "text": "qdrant down 4x in 7 d, median 11 min, usually 03:00-04:00"},
    ]
    block = text.session_block(data, now=now)
    assert block.count("Recurring:") == 1
    assert "Recurring: qdrant down 4x in 7 d, median 11 min, usually 03:00-04:00." in block
    data["issues"] = []
    data["status"] = "OK"
    assert "Recurring: disk / full 5x in 7 d, median 2 h." in text.session_block(data, now=now)
    data["patterns"] = [{"issue_id": "tcp:pg", "count": 2, "text": "pg down 2x in 7 d"}]
    assert "Recurring" not in text.session_block(data, now=now)


def test_stale_data_restarts_a_detached_refresher_that_died(hook_env, tmp_path):
    """Without systemd, install.sh starts `refresher --daemon`; after a reboot (here: kill -9)
    the first hook that finds the data stale starts that refresher again, not a one-shot."""
    import signal

    from aiki_hooks.paths import holder_pid

    env, state = hook_env
    config = tmp_path / "config.toml"
    config.write_text("interval_seconds = 1\n[costs]\nenabled = false\n")
    cli = [sys.executable, "-m", "aiki_hooks.cli", "--config", str(config)]
    started = subprocess.run([*cli, "refresher", "--daemon"], env=env, capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    first = holder_pid(state)
    try:
        assert first and (state / "refresher.restart.json").exists()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: holder_pid(state) is None, timeout=5)
        write_cache(state / "system_health.json", snapshot(generated_at=time.time() - 600, interval=1))
        context = context_of(run_hook("session_start", {"session_id": "s9", "source": "startup"}, env),
                             "SessionStart")
        assert context.endswith("A background refresh was started.")
        second = wait_for(lambda: holder_pid(state), timeout=20)
        assert second != first
        # A long-lived refresher, not one refresh: the cache stays fresh past 3 intervals.
        wait_for(lambda: read_cache(state / "system_health.json").state == "fresh", timeout=20)
        time.sleep(4.0)
        assert read_cache(state / "system_health.json").state == "fresh"
        assert holder_pid(state) == second
    finally:
        pid = holder_pid(state)
        if pid and pid > 0:
            os.kill(pid, signal.SIGKILL)
