"""Tests of the systemd probe: parser and judge tables, the journal's last-run lines, the
probe against an injected runner, and runs of the real `run_command` against the fake
systemctl / journalctl in tests/fake_bin (for timeouts and missing tools; the real tools
are driven in tests/e2e/test_systemd_probe.py).

Where the fixtures come from (tests/fixtures/systemd/README.md has the details):
- `captured/` is real output. The show_* and journal_* files were captured from a real
  systemd user manager by tests/fixtures/systemd/capture.py; timestamps, pids and ids
  in them are whatever they were, so the tests read them from the files. The
  systemctl_*_no_bus files are from a container without any systemd.
- `transcribed/` holds what no real systemd 252 prints: malformed lines, UINT64_MAX
  memory (older systemd).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from aiki_hooks.config.validators import redact_text
from aiki_hooks.model.status import Status
from aiki_hooks.probes.systemd import (
    CLD_DUMPED,
    CLD_EXITED,
    CLD_KILLED,
    JOURNAL_ENTRIES,
    JOURNAL_FIELDS,
    LINE_WIDTH,
    PRECISE_TIMESTAMPS,
    SHOW_PROPERTIES,
    JournalEntry,
    Scope,
    ShowBlock,
    SystemdProbe,
    SystemdProbeConfig,
    UnitState,
    classify_failure,
    clean_line,
    describe_unit,
    journal_argv,
    judge_unit,
    last_run_lines,
    mangled_unit_name,
    parse_journal_json,
    parse_show,
    parse_timestamp,
    pick_lines,
    select_last_run,
    unit_state,
    unit_values,
)
from aiki_hooks.proc import CommandNotFound, CommandOutput

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "systemd"
CAPTURED = FIXTURES / "captured"
TRANSCRIBED = FIXTURES / "transcribed"
FAKE_BIN = Path(__file__).resolve().parents[1] / "fake_bin"

UTC = dt.timezone.utc
MONDAY_0912 = dt.datetime(2026, 11, 23, 9, 12, 1, tzinfo=UTC).timestamp()
NOW = dt.datetime(2026, 11, 26, 15, 0, 0, tzinfo=UTC).timestamp()

PROPERTY_ARG = "--property=" + ",".join(SHOW_PROPERTIES)
QDRANT = SystemdProbeConfig(unit="qdrant.service", scope="user", name="qdrant", timeout_seconds=2.0)
MEM0 = SystemdProbeConfig(unit="mem0-server.service", scope="user", name="mem0", timeout_seconds=4.0)
WORKER = SystemdProbeConfig(unit="worker.service", scope="user", name="worker", timeout_seconds=4.0)


def captured(name: str, stream: str = "stdout") -> str:
    return (CAPTURED / f"{name}.{stream}").read_text()


def captured_answer(name: str, *, seconds: float = 0.01) -> CommandOutput:
    return CommandOutput(argv=tuple(json.loads(captured(name, "argv"))), returncode=int(captured(name, "exit")),
                         stdout=captured(name), stderr=captured(name, "stderr"), seconds=seconds)


def transcribed(name: str) -> str:
    return (TRANSCRIBED / name).read_text()


def raw_properties(name: str) -> dict[str, str]:
    """The `Key=Value` lines of a single-unit capture, read without the parser under test."""
    return dict(line.split("=", 1) for line in captured(name).splitlines() if "=" in line)


def captured_state(name: str) -> UnitState:
    (block,) = parse_show(captured(name))
    return unit_state(block)


def us_utc(text: str) -> float | None:
    """Epoch seconds of systemctl's --timestamp=us+utc style, read with strptime."""
    if not text:
        return None
    return dt.datetime.strptime(text, "%a %Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=UTC).timestamp()


def in_scope(scope: Scope, *units: SystemdProbeConfig) -> list[SystemdProbeConfig]:
    return [SystemdProbeConfig(unit=u.unit, scope=scope, name=u.name, timeout_seconds=u.timeout_seconds) for u in units]


@pytest.fixture
def utc_local_time() -> Iterator[None]:
    """Summaries show clock times in the local zone; pin it so "since 14:05" is stable."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if previous is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = previous
    time.tzset()


# --------------------------------------------------------------------------- parser tables

CAPTURED_SHOWS = [
    "show_active",
    "show_failed_exit_code",
    "show_failed_signal",
    "show_failed_core_dump",
    "show_auto_restart",
    "show_inactive_never_started",
    "show_not_found",
    "show_masked",
    "show_template_instance",
]


@pytest.mark.parametrize("name", CAPTURED_SHOWS)
def test_parse_agrees_with_the_raw_captured_values(name: str) -> None:
    props = raw_properties(name)
    assert set(props) == set(SHOW_PROPERTIES)  # each property asked for was answered
    state = captured_state(name)
    code = int(props["ExecMainCode"])
    assert dataclasses.asdict(state) == {
        "id": props["Id"],
        "load_state": props["LoadState"],
        "active_state": props["ActiveState"],
        "sub_state": props["SubState"],
        "result": props["Result"],
        "restarts": int(props["NRestarts"]),
        "main_pid": int(props["MainPID"]) or None,
        "memory_bytes": None if props["MemoryCurrent"] == "[not set]" else int(props["MemoryCurrent"]),
        "active_entered_at": us_utc(props["ActiveEnterTimestamp"]),
        "state_changed_at": us_utc(props["StateChangeTimestamp"]),
        "main_started_at": us_utc(props["ExecMainStartTimestamp"]),
        "main_exit_code": code or None,
        "main_exit_status": int(props["ExecMainStatus"]) if code else None,
        "invocation_id": props["InvocationID"] or None,
        "skipped_lines": 0,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("show_active", ("qdrant.service", "loaded", "active", "running", "success", None, None),
                     id="active"),
        pytest.param("show_failed_exit_code",
                     ("mem0-server.service", "loaded", "failed", "failed", "exit-code", CLD_EXITED, 3), id="exit-code"),
        pytest.param("show_failed_signal",
                     ("embedder.service", "loaded", "failed", "failed", "signal", CLD_KILLED, 9), id="sigkill"),
        pytest.param("show_failed_core_dump",
                     ("indexer.service", "loaded", "failed", "failed", "core-dump", CLD_DUMPED, 11), id="core-dump"),
        pytest.param("show_auto_restart",
                     ("worker.service", "loaded", "activating", "auto-restart", "exit-code", CLD_EXITED, 3),
                     id="auto-restart"),
        pytest.param("show_inactive_never_started",
                     ("backup.service", "loaded", "inactive", "dead", "success", None, None), id="never-started"),
        pytest.param("show_not_found", ("nope.service", "not-found", "inactive", "dead", "success", None, None),
                     id="not-found"),
        pytest.param("show_masked", ("legacy.service", "masked", "inactive", "dead", "success", None, None),
                     id="masked"),
        pytest.param("show_template_instance",
                     ("agent@bar.service", "loaded", "active", "running", "success", None, None), id="template"),
    ],
)
def test_what_each_captured_unit_is(name: str, expected: tuple) -> None:
    """The states capture.py set out to make (a failed capture shows here first)."""
    state = captured_state(name)
    assert (state.id, state.load_state, state.active_state, state.sub_state, state.result, state.main_exit_code,
            state.main_exit_status) == expected


def test_captured_restart_counts_and_timestamps() -> None:
    active, looping = captured_state("show_active"), captured_state("show_auto_restart")
    assert active.restarts == 2 and active.main_pid and active.memory_bytes
    assert looping.restarts is not None and looping.restarts >= 3
    # Microseconds: a restart loop's runs are told apart by the last run's exact start.
    assert looping.main_started_at is not None and looping.main_started_at % 1 != 0
    never = captured_state("show_inactive_never_started")
    assert (never.active_entered_at, never.main_started_at, never.invocation_id) == (None, None, None)


def test_unix_timestamps_capture_matches_the_precise_one() -> None:
    """`--timestamp=unix` (whole seconds) and us+utc, both captured from the same run."""
    unix, precise = captured_state("show_active_unix_timestamps"), captured_state("show_active")
    assert unix.invocation_id == precise.invocation_id
    for field in ("active_entered_at", "state_changed_at", "main_started_at"):
        assert getattr(precise, field) is not None
        assert getattr(unix, field) == int(getattr(precise, field))


def test_parse_keeps_not_set_as_none_and_empty_as_empty() -> None:
    (block,) = parse_show(captured("show_not_found"))
    assert block.properties["MemoryCurrent"] is None
    assert block.properties["ActiveEnterTimestamp"] == ""
    assert block.skipped_lines == 0


def test_parse_two_units_in_one_output_keeps_their_order() -> None:
    blocks = [unit_state(b) for b in parse_show(captured("show_two_units"))]
    assert [b.id for b in blocks] == ["qdrant.service", "mem0-server.service"]
    # The same runs as in the single captures (memory and such may have moved on).
    singles = (captured_state("show_active"), captured_state("show_failed_exit_code"))
    for state, single in zip(blocks, singles, strict=True):
        assert (state.invocation_id, state.main_started_at, state.active_state) == (
            single.invocation_id, single.main_started_at, single.active_state)


# Hand-written: no systemd 252 prints these (transcribed/).
ACTIVE = UnitState(
    id="qdrant.service",
    load_state="loaded",
    active_state="active",
    sub_state="running",
    result="success",
    restarts=2,
    main_pid=1234,
    memory_bytes=43200512,
    active_entered_at=MONDAY_0912,
    state_changed_at=MONDAY_0912,
)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param("show_memory_uint64_max.txt", dataclasses.replace(ACTIVE, restarts=0, memory_bytes=None),
                     id="uint64-max-memory"),
        pytest.param("show_malformed_line.txt", dataclasses.replace(ACTIVE, skipped_lines=2), id="malformed-lines"),
    ],
)
def test_parse_handwritten(fixture: str, expected: UnitState) -> None:
    (block,) = parse_show(transcribed(fixture))
    assert unit_state(block) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("\n\n", [], id="only-blank-lines"),
        pytest.param(
            "\nId=a.service\n\n\n\nId=b.service\n\n", [{"Id": "a.service"}, {"Id": "b.service"}], id="extra-blank-lines"
        ),
        pytest.param("Id=a.service\r\n\r\nId=b.service\r\n", [{"Id": "a.service"}, {"Id": "b.service"}], id="crlf"),
        pytest.param(
            "Id=a.service\n   \nId=b.service", [{"Id": "a.service"}, {"Id": "b.service"}], id="whitespace-separator"
        ),
        pytest.param("Environment=A=1 B=2\n", [{"Environment": "A=1 B=2"}], id="equals-inside-value"),
        pytest.param("ActiveEnterTimestamp=\n", [{"ActiveEnterTimestamp": ""}], id="empty-value"),
        pytest.param("MemoryCurrent=[not set]\n", [{"MemoryCurrent": None}], id="not-set"),
        pytest.param(
            "Warning: something odd\n\nId=a.service\n", [{"Id": "a.service"}], id="garbage-only-block-dropped"
        ),
    ],
)
def test_parse_show_edge_cases(text: str, expected: list[dict]) -> None:
    assert [dict(b.properties) for b in parse_show(text)] == expected


def test_unit_state_tolerates_garbage_numbers() -> None:
    block = ShowBlock(properties={"NRestarts": "many", "MainPID": "", "MemoryCurrent": "lots", "ActiveState": "active",
                                  "ExecMainCode": "9", "ExecMainStatus": "3"})
    state = unit_state(block)
    assert (state.restarts, state.main_pid, state.memory_bytes) == (None, None, None)
    assert (state.main_exit_code, state.main_exit_status) == (None, None)  # 9 is no CLD_* code


@pytest.mark.parametrize(
    ("text", "local_tz", "expected"),
    [
        pytest.param("Mon 2026-11-23 09:12:01 UTC", None, MONDAY_0912, id="utc"),
        pytest.param("Mon 2026-11-23 09:12:01 GMT", None, MONDAY_0912, id="gmt"),
        pytest.param("Mon 2026-11-23 09:12:01.250000 UTC", None, MONDAY_0912 + 0.25, id="microseconds"),
        pytest.param("@1795425121", None, MONDAY_0912, id="unix"),
        pytest.param("@1795425121.5", None, MONDAY_0912 + 0.5, id="unix-fraction"),
        pytest.param(
            "Mon 2026-11-23 10:12:01 CET", dt.timezone(dt.timedelta(hours=1)), MONDAY_0912, id="abbreviation-is-local"
        ),
        pytest.param("Mon 2026-11-23 14:42:01 +0530", None, MONDAY_0912, id="numeric-zone"),
        pytest.param("Mon 2026-11-23 06:12:01 -03", None, MONDAY_0912, id="numeric-hours-zone"),
        pytest.param("", None, None, id="empty"),
        pytest.param("   ", None, None, id="blank"),
        pytest.param(None, None, None, id="absent"),
        pytest.param("n/a", None, None, id="words"),
        pytest.param("Mon 2026-13-45 09:12:01 UTC", None, None, id="impossible-date"),
        pytest.param("@soon", None, None, id="bad-unix"),
        pytest.param("@inf", None, None, id="infinite-unix"),
    ],
)
def test_parse_timestamp(text: str | None, local_tz: dt.tzinfo | None, expected: float | None) -> None:
    assert parse_timestamp(text, local_tz=local_tz) == expected


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        pytest.param(captured("systemctl_system_no_bus", "stderr"), "no_bus", id="captured-system-not-booted"),
        pytest.param(captured("systemctl_user_no_bus", "stderr"), "no_bus", id="captured-user-no-medium"),
        pytest.param(captured("show_system_scope_no_manager", "stderr"), "no_bus", id="captured-no-system-manager"),
        pytest.param("System has not been booted with systemd as init system (PID 1).\n", "no_bus", id="not-booted"),
        pytest.param("Failed to get properties: Access denied\n", "systemctl_failed", id="access-denied"),
        pytest.param("", "systemctl_failed", id="silent"),
    ],
)
def test_classify_failure(stderr: str, expected: str) -> None:
    assert classify_failure(stderr) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qdrant.service", "qdrant.service"),
        ("qdrant", "qdrant.service"),
        ("backup.timer", "backup.timer"),
        ("worker@1", "worker@1.service"),
        ("my.app", "my.app.service"),
    ],
)
def test_mangled_unit_name(name: str, expected: str) -> None:
    assert mangled_unit_name(name) == expected


# --------------------------------------------------------------------------- journal: parse


def journal(name: str) -> list[JournalEntry]:
    """A captured journal in log order (it was asked --reverse, as the probe asks)."""
    return parse_journal_json(captured(name))[::-1]


def test_parse_captured_journal() -> None:
    text = captured("journal_failed_exit_code")
    entries = parse_journal_json(text)
    assert len(entries) == len(text.splitlines()) > 0
    raw = [json.loads(line) for line in text.splitlines()]
    assert [e.realtime for e in entries] == [int(r["__REALTIME_TIMESTAMP"]) / 1e6 for r in raw]
    assert {e.cgroup for e in entries} == {"/app.slice/mem0-server.service"}
    assert {e.priority for e in entries} == {3, 6}
    # journalctl prints a MESSAGE that is not UTF-8, or holds an escape, as a list of bytes.
    byte_lists = [r["MESSAGE"] for r in raw if isinstance(r["MESSAGE"], list)]
    assert byte_lists, "the capture has no binary MESSAGE"
    decoded = [e.message for e, r in zip(entries, raw, strict=True) if isinstance(r["MESSAGE"], list)]
    assert decoded == [bytes(b).decode("utf-8", errors="replace") for b in byte_lists]
    assert any("\ufffd" in m for m in decoded) and any("\x1b[" in m for m in decoded)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param('{"MESSAGE":"hi","PRIORITY":"3","__REALTIME_TIMESTAMP":"1500000"}',
                     JournalEntry(message="hi", priority=3, realtime=1.5), id="plain"),
        pytest.param('{"MESSAGE":[104,255]}', JournalEntry(message="h\ufffd"), id="bytes"),
        pytest.param('{"MESSAGE":["first",[115,101,99]]}', JournalEntry(message="first"), id="field-twice"),
        pytest.param('{"MESSAGE":null}', JournalEntry(message=None), id="too-large-is-null"),
        pytest.param('{"MESSAGE":"x","_SYSTEMD_INVOCATION_ID":"abc","_SYSTEMD_CGROUP":"/a.slice/x.service"}',
                     JournalEntry(message="x", invocation_id="abc", cgroup="/a.slice/x.service"), id="ids"),
        pytest.param('{"MESSAGE":"x","PRIORITY":"high","__REALTIME_TIMESTAMP":"soon"}', JournalEntry(message="x"),
                     id="garbage-numbers"),
    ],
)
def test_parse_journal_fields(line: str, expected: JournalEntry) -> None:
    assert parse_journal_json(line + "\n") == [expected]


def test_parse_journal_skips_what_is_not_an_object() -> None:
    text = '{"MESSAGE":"a"}\n-- No entries --\n[1,2]\n\n{"MESSAGE":"b"}\n{"MESSAGE":"cut of'
    assert [e.message for e in parse_journal_json(text)] == ["a", "b"]


# --------------------------------------------------------------------------- journal: choose and clean


def test_the_captured_failed_unit_shows_its_last_run_only() -> None:
    state = captured_state("show_failed_exit_code")
    entries = journal("journal_failed_exit_code")
    assert any("(run 1)" in (e.message or "") for e in entries)  # the capture holds both runs

    last_run = select_last_run(entries, scope="user", since=state.main_started_at, invocation_id=state.invocation_id)
    messages = [e.message or "" for e in last_run]
    assert messages[0] == "mem0-server starting (run 2)"
    assert not any("run 1" in m for m in messages)
    assert select_last_run(entries, scope="user", since=None) == entries

    lines = pick_lines(last_run)
    assert lines == (
        "cannot reach qdrant at localhost:6333 (run 2)",  # PRIORITY 3: first though printed earlier
        *[clean_line(m) for m in messages[-4:]],
    )
    assert lines[-1] == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_the_captured_lines_are_cleaned_and_redacted() -> None:
    state = captured_state("show_failed_exit_code")
    last_run = select_last_run(journal("journal_failed_exit_code"), scope="user", since=state.main_started_at)
    everything = pick_lines(last_run, limit=50)
    assert "config: vector store qdrant at http://admin:***@localhost:6333/?***" in everything
    assert "cache dir /var/tmp/m\ufffdm0 not UTF-8" in everything
    assert not any("hunter2" in line or "k-123" in line or "\x1b" in line for line in everything)


def test_the_captured_restart_loop_shows_the_last_attempt() -> None:
    state = captured_state("show_auto_restart")
    last_run = select_last_run(journal("journal_auto_restart"), scope="user", since=state.main_started_at)
    assert state.restarts is not None
    assert pick_lines(last_run) == (f"worker attempt {state.restarts + 1}: cannot reach qdrant at localhost:6333",)


def entry(message: str, *, at: float = 10.0, priority: int | None = 6, cgroup: str | None = None,
          invocation: str | None = None) -> JournalEntry:
    return JournalEntry(message=message, priority=priority, realtime=at, cgroup=cgroup, invocation_id=invocation)


def test_select_drops_a_system_unit_of_the_same_name_for_a_user_unit() -> None:
    mine = entry("user unit", cgroup="/user.slice/user-1000.slice/user@1000.service/app.slice/x.service")
    root_manager = entry("user manager run as root", cgroup="/app.slice/x.service")
    system = entry("system unit", cgroup="/system.slice/x.service")
    assert select_last_run([mine, root_manager, system], scope="user", since=None) == [mine, root_manager]
    assert select_last_run([mine, root_manager, system], scope="system", since=None) == [mine, root_manager, system]


def test_select_by_time_keeps_entries_from_the_start_on() -> None:
    before, at, after, undated = entry("a", at=9.999), entry("b", at=10.0), entry("c", at=11.0), JournalEntry(message="d")
    assert select_last_run([before, at, after, undated], scope="user", since=10.0) == [at, after, undated]


def test_select_by_invocation_when_the_entries_carry_it() -> None:
    old, new = entry("old run", at=12.0, invocation="aaa"), entry("new run", at=12.5, invocation="bbb")
    # The same second, by time both would be kept; the invocation names the run.
    assert select_last_run([old, new], scope="user", since=11.0, invocation_id="bbb") == [new]
    # An id no entry carries (the journal did not record it): by time.
    assert select_last_run([old, new], scope="user", since=12.2, invocation_id="ccc") == [new]
    assert select_last_run([old, new], scope="user", since=None, invocation_id=None) == [old, new]


@pytest.mark.parametrize(
    ("entries", "limit", "expected"),
    [
        pytest.param([entry(str(i)) for i in range(8)], 5, ("3", "4", "5", "6", "7"), id="last-five"),
        pytest.param([entry("boom", priority=3), *(entry(str(i)) for i in range(8))], 3, ("boom", "6", "7"),
                     id="error-first"),
        pytest.param([entry("late"), entry("crit", priority=2), entry("info")], 5, ("crit", "late", "info"),
                     id="errors-before-others"),
        pytest.param([entry(f"e{i}", priority=3) for i in range(4)], 2, ("e2", "e3"), id="last-errors"),
        pytest.param([entry("warn", priority=4), entry("x")], 1, ("x",), id="warning-is-no-error"),
        pytest.param([entry("same"), entry("other"), entry("same")], 5, ("other", "same"), id="no-line-twice"),
        pytest.param([entry("oops", priority=3), entry("oops")], 5, ("oops",), id="error-not-repeated"),
        pytest.param([entry(""), entry("  "), entry("\x1b[0m"), JournalEntry(message=None), entry("x")], 5, ("x",),
                     id="empty-skipped"),
        pytest.param([entry("a")], 0, (), id="limit-zero"),
        pytest.param([], 5, (), id="nothing"),
    ],
)
def test_pick_lines(entries: list[JournalEntry], limit: int, expected: tuple[str, ...]) -> None:
    assert pick_lines(entries, limit=limit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("\x1b[31mERROR\x1b[0m boom", "ERROR boom", id="colour"),
        pytest.param("\x1b]0;title\x07after", "after", id="osc"),
        pytest.param("a\tb\nc", "a b c", id="tab-newline"),
        pytest.param("bell\x07 nul\x00 del\x7f c1\x9b", "bell nul del c1", id="control"),
        pytest.param("  indented  ", "indented", id="stripped"),
        pytest.param("token=abc123 password: hunter2", "token=*** password: ***", id="redacted"),
        pytest.param("x" * (LINE_WIDTH + 50), "x" * (LINE_WIDTH - 1) + "…", id="clipped"),
        pytest.param("x" * LINE_WIDTH, "x" * LINE_WIDTH, id="at-width"),
    ],
)
def test_clean_line(text: str, expected: str) -> None:
    assert clean_line(text) == expected


def test_clean_line_redacts_before_clipping() -> None:
    """A secret cut in half by the clip would no longer look like one."""
    line = "x" * (LINE_WIDTH - 20) + " sk-ant-api03-" + "A1b2" * 10
    assert clean_line(line) == "x" * (LINE_WIDTH - 20) + " ***"


# --------------------------------------------------------------------------- journal: measure


class ScriptedRunner:
    """Answers each call with the next scripted CommandOutput (or raises it)."""

    def __init__(self, *answers: CommandOutput | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float, env=None) -> CommandOutput:
        self.calls.append((list(argv), timeout))
        reply = self.answers.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def answer(
    stdout: str = "", stderr: str = "", returncode: int | None = 0, *, seconds: float = 0.01, timed_out: bool = False
) -> CommandOutput:
    return CommandOutput(
        argv=(), returncode=returncode, stdout=stdout, stderr=stderr, seconds=seconds, timed_out=timed_out
    )


COMMON_JOURNAL_ARGS = ["journalctl", "--no-pager", "--quiet", "--output=json",
                       "--output-fields=" + ",".join(JOURNAL_FIELDS), "--reverse", f"--lines={JOURNAL_ENTRIES}"]


@pytest.mark.parametrize(
    ("scope", "since", "matches"),
    [
        pytest.param("user", None, ["_SYSTEMD_USER_UNIT=x.service", "+", "_SYSTEMD_UNIT=x.service"], id="user"),
        pytest.param("system", 1796289958.691484, ["--since=@1796289958.691484", "_SYSTEMD_UNIT=x.service"],
                     id="system-since"),
    ],
)
def test_journal_argv(scope: Scope, since: float | None, matches: list[str]) -> None:
    assert journal_argv("x.service", scope=scope, since=since) == COMMON_JOURNAL_ARGS + matches


def test_last_run_lines_asks_journalctl_once_and_picks() -> None:
    state = captured_state("show_failed_exit_code")
    runner = ScriptedRunner(captured_answer("journal_failed_exit_code"))
    lines = last_run_lines("mem0-server", scope="user", since=state.main_started_at,
                           invocation_id=state.invocation_id, run=runner, timeout=2.5, limit=2)
    assert runner.calls == [(journal_argv("mem0-server.service", scope="user", since=state.main_started_at), 2.5)]
    assert lines == ("cannot reach qdrant at localhost:6333 (run 2)",
                     "ConnectionRefusedError: [Errno 111] Connection refused")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(CommandNotFound("journalctl: No such file or directory"), id="missing"),
        pytest.param(answer(captured("journal_failed_exit_code"), "Failed to open journal\n", 1), id="exit-1"),
        pytest.param(answer("", "", None, timed_out=True), id="timeout"),
    ],
)
def test_last_run_lines_is_empty_when_journalctl_fails(reply: CommandOutput | Exception) -> None:
    assert last_run_lines("x.service", scope="user", since=None, run=ScriptedRunner(reply)) == ()


def test_last_run_lines_without_time_does_not_start_journalctl() -> None:
    runner = ScriptedRunner()
    assert last_run_lines("x.service", scope="user", since=None, run=runner, timeout=0.05) == ()
    assert runner.calls == []


# --------------------------------------------------------------------------- judge and render tables

NOT_FOUND = UnitState(load_state="not-found", active_state="inactive", sub_state="dead", result="success")
STARTING = UnitState(load_state="loaded", active_state="activating", sub_state="start", restarts=0)
INACTIVE = UnitState(load_state="loaded", active_state="inactive", sub_state="dead", result="success", restarts=0)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(captured_state("show_active"), Status.OK, id="active"),
        pytest.param(captured_state("show_template_instance"), Status.OK, id="template-instance"),
        pytest.param(captured_state("show_failed_exit_code"), Status.CRITICAL, id="failed"),
        pytest.param(captured_state("show_failed_core_dump"), Status.CRITICAL, id="core-dump"),
        pytest.param(captured_state("show_auto_restart"), Status.CRITICAL, id="restart-loop"),
        pytest.param(captured_state("show_inactive_never_started"), Status.CRITICAL, id="inactive"),
        pytest.param(captured_state("show_not_found"), Status.CRITICAL, id="not-found"),
        pytest.param(captured_state("show_masked"), Status.CRITICAL, id="masked"),
        pytest.param(UnitState(load_state="bad-setting", active_state="inactive"), Status.CRITICAL, id="bad-setting"),
        pytest.param(STARTING, Status.WARNING, id="activating-start"),
        pytest.param(UnitState(load_state="loaded", active_state="reloading"), Status.WARNING, id="reloading"),
        pytest.param(UnitState(load_state="loaded", active_state="deactivating"), Status.WARNING, id="deactivating"),
        pytest.param(UnitState(load_state="loaded", active_state=None), Status.UNKNOWN, id="no-active-state"),
        pytest.param(UnitState(load_state="loaded", active_state="sleepy"), Status.UNKNOWN, id="undocumented-state"),
    ],
)
def test_judge_unit(state: UnitState, expected: Status) -> None:
    assert judge_unit(state) is expected


def hhmm(epoch: float | None) -> str:
    assert epoch is not None
    return dt.datetime.fromtimestamp(epoch, UTC).strftime("%H:%M")


def test_describe_captured_units() -> None:
    def describe(name: str) -> str:
        state = captured_state(name)
        # A minute after the last change: "since HH:MM" of the same day.
        return describe_unit(state, now=(state.state_changed_at or 0) + 60, local_tz=UTC)

    active = captured_state("show_active")
    assert describe("show_active").startswith("active (running) 1m, 2 restarts, ")
    assert describe("show_active").endswith(" KiB") or describe("show_active").endswith(" MiB")
    changed = {name: hhmm(captured_state(name).state_changed_at) for name in CAPTURED_SHOWS
               if captured_state(name).state_changed_at is not None}
    assert describe("show_failed_exit_code") == (
        f"failed (exit-code) since {changed['show_failed_exit_code']}, last run: exit status 3")
    assert describe("show_failed_signal") == (
        f"failed (signal) since {changed['show_failed_signal']}, last run: killed by SIGKILL")
    assert describe("show_failed_core_dump") == (
        f"failed (core-dump) since {changed['show_failed_core_dump']}, last run: core dumped (SIGSEGV)")
    restarts = captured_state("show_auto_restart").restarts
    assert describe("show_auto_restart") == f"activating (auto-restart), {restarts} restarts, last run: exit status 3"
    assert describe("show_inactive_never_started") == "inactive (dead)"
    assert describe("show_not_found") == "unit not found"
    assert describe("show_masked") == "inactive (dead), masked"
    assert describe("show_template_instance").startswith("active (running) 1m, ")
    assert active.memory_bytes is not None


FAILED = UnitState(load_state="loaded", active_state="failed", sub_state="failed", result="exit-code",
                   state_changed_at=dt.datetime(2026, 11, 26, 14, 5, 33, tzinfo=UTC).timestamp(),
                   main_exit_code=CLD_EXITED, main_exit_status=3)
ACTIVATING = UnitState(load_state="loaded", active_state="activating", sub_state="auto-restart", restarts=5,
                       main_exit_code=CLD_KILLED, main_exit_status=9)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(ACTIVE, "active (running) 3d, 2 restarts, 41.2 MiB", id="active"),
        pytest.param(
            dataclasses.replace(ACTIVE, restarts=1), "active (running) 3d, 1 restart, 41.2 MiB", id="one-restart"
        ),
        pytest.param(FAILED, "failed (exit-code) since 14:05, last run: exit status 3", id="failed-today"),
        pytest.param(
            dataclasses.replace(FAILED, state_changed_at=MONDAY_0912),
            "failed (exit-code) since 2026-11-23 09:12, last run: exit status 3",
            id="failed-earlier-day",
        ),
        pytest.param(dataclasses.replace(FAILED, result="timeout", main_exit_status=0),
                     "failed (timeout) since 14:05", id="failed-but-main-exited-0"),
        pytest.param(dataclasses.replace(FAILED, main_exit_code=None, main_exit_status=None),
                     "failed (exit-code) since 14:05", id="failed-before-main-ran"),
        pytest.param(dataclasses.replace(FAILED, main_exit_code=CLD_KILLED, main_exit_status=64),
                     "failed (exit-code) since 14:05, last run: killed by SIGRTMAX", id="signal-name-from-python"),
        pytest.param(dataclasses.replace(FAILED, main_exit_code=CLD_KILLED, main_exit_status=99),
                     "failed (exit-code) since 14:05, last run: killed by signal 99", id="unknown-signal"),
        pytest.param(ACTIVATING, "activating (auto-restart), 5 restarts, last run: killed by SIGKILL",
                     id="restart-loop"),
        pytest.param(STARTING, "activating (start)", id="starting"),
        pytest.param(INACTIVE, "inactive (dead)", id="inactive-never-started"),
        pytest.param(dataclasses.replace(INACTIVE, main_exit_code=CLD_EXITED, main_exit_status=1), "inactive (dead)",
                     id="stopped-unit-says-no-ending"),
        pytest.param(NOT_FOUND, "unit not found", id="not-found"),
        pytest.param(
            UnitState(load_state="error", active_state="inactive"), "unit failed to load (error)", id="load-error"
        ),
        pytest.param(UnitState(load_state="loaded"), "systemctl output has no ActiveState", id="no-active-state"),
    ],
)
def test_describe_unit(state: UnitState, expected: str) -> None:
    assert describe_unit(state, now=NOW, local_tz=UTC) == expected


def test_values_of_an_active_unit() -> None:
    state = captured_state("show_active")
    now = (state.active_entered_at or 0) + 100.0
    assert unit_values(state, now=now) == {
        "load_state": "loaded",
        "active_state": "active",
        "sub_state": "running",
        "result": "success",
        "restarts": 2,
        "main_pid": state.main_pid,
        "memory_bytes": state.memory_bytes,
        "active_since": state.active_entered_at,
        "uptime_seconds": 100.0,
        "state_changed_at": state.state_changed_at,
        "last_run_started_at": state.main_started_at,
        "exit_status": None,
        "exit_signal": None,
        "core_dumped": None,
        "invocation_id": state.invocation_id,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("show_failed_exit_code", (3, None, False), id="exit-code"),
        pytest.param("show_failed_signal", (None, "SIGKILL", False), id="signal"),
        pytest.param("show_failed_core_dump", (None, "SIGSEGV", True), id="core-dump"),
        pytest.param("show_auto_restart", (3, None, False), id="auto-restart"),
        pytest.param("show_inactive_never_started", (None, None, None), id="never-ran"),
    ],
)
def test_values_say_how_the_last_run_ended(name: str, expected: tuple) -> None:
    state = captured_state(name)
    values = unit_values(state, now=(state.state_changed_at or 0) + 1)
    assert (values["exit_status"], values["exit_signal"], values["core_dumped"]) == expected
    assert values["active_since"] is None and values["uptime_seconds"] is None
    assert values["last_run_started_at"] == state.main_started_at
    json.dumps(values)  # they go to the cache as JSON


# --------------------------------------------------------------------------- probe with an injected runner


def probe(runner: ScriptedRunner, *units: SystemdProbeConfig, scope: Scope = "user") -> SystemdProbe:
    return SystemdProbe(
        in_scope(scope, *units) if units else [QDRANT, MEM0], scope=scope, run=runner, clock=lambda: NOW
    )


def test_probe_identity() -> None:
    checker = probe(ScriptedRunner())
    assert checker.kind == "systemd"
    assert checker.names == ("qdrant", "mem0")
    assert checker.timeout_seconds == 4.0


@pytest.mark.parametrize(("scope", "flag"), [("user", "--user"), ("system", "--system")])
def test_one_systemctl_call_for_all_units_then_journal_for_the_failed_one(scope: Scope, flag: str) -> None:
    runner = ScriptedRunner(captured_answer("show_two_units", seconds=1.5),
                            captured_answer("journal_failed_exit_code"))
    qdrant, mem0 = probe(runner, QDRANT, MEM0, scope=scope).check()

    failed = captured_state("show_failed_exit_code")
    assert runner.calls == [
        (["systemctl", flag, "show", "--no-pager", PRECISE_TIMESTAMPS, PROPERTY_ARG, "qdrant.service",
          "mem0-server.service"], 4.0),
        (journal_argv("mem0-server.service", scope=scope, since=failed.main_started_at), 2.5),
    ]
    assert captured("show_two_units", "argv") == captured("show_active", "argv").replace(
        '"qdrant.service"]', '"qdrant.service", "mem0-server.service"]')  # the capture ran this very command
    assert (qdrant.name, qdrant.kind, qdrant.status) == ("qdrant", "systemd", Status.OK)
    assert qdrant.summary.startswith("active (running) ") and ", 2 restarts, " in qdrant.summary
    assert qdrant.details == ()
    assert (mem0.status, mem0.error_kind) == (Status.CRITICAL, None)
    assert mem0.summary.startswith("failed (exit-code) since ") and mem0.summary.endswith(", last run: exit status 3")
    assert mem0.details[0] == "cannot reach qdrant at localhost:6333 (run 2)"
    assert len(mem0.details) == 5 and not any("run 1" in line for line in mem0.details)
    assert (mem0.values["exit_status"], mem0.values["invocation_id"]) == (3, failed.invocation_id)


def test_a_restart_loop_is_critical_with_its_last_run() -> None:
    runner = ScriptedRunner(captured_answer("show_auto_restart"), captured_answer("journal_auto_restart"))
    (worker,) = probe(runner, WORKER).check()
    state = captured_state("show_auto_restart")
    assert state.restarts is not None
    assert (worker.status, worker.summary) == (
        Status.CRITICAL, f"activating (auto-restart), {state.restarts} restarts, last run: exit status 3")
    assert worker.details == (f"worker attempt {state.restarts + 1}: cannot reach qdrant at localhost:6333",)
    assert runner.calls[1][0] == journal_argv("worker.service", scope="user", since=state.main_started_at)


def test_an_older_systemctl_without_timestamp_option_is_asked_again() -> None:
    # getopt's message, as systemd < 247 prints it (none here to capture it from).
    rejected = answer("", "systemctl: unrecognized option '--timestamp=us+utc'\n", 1, seconds=0.5)
    runner = ScriptedRunner(rejected, captured_answer("show_active_unix_timestamps"))
    (result,) = probe(runner, QDRANT).check()
    assert result.status is Status.OK
    assert [call[0] for call in runner.calls] == [
        ["systemctl", "--user", "show", "--no-pager", PRECISE_TIMESTAMPS, PROPERTY_ARG, "qdrant.service"],
        ["systemctl", "--user", "show", "--no-pager", PROPERTY_ARG, "qdrant.service"],
    ]
    assert runner.calls[1][1] == pytest.approx(2.0 - 0.5)


def test_no_journal_when_the_budget_is_spent() -> None:
    runner = ScriptedRunner(captured_answer("show_two_units", seconds=3.95))
    _, mem0 = probe(runner).check()
    assert len(runner.calls) == 1
    assert mem0.status is Status.CRITICAL and mem0.details == ()


def test_each_journalctl_is_charged_to_the_budget() -> None:
    runner = ScriptedRunner(
        answer(captured("show_failed_exit_code") + "\n" + captured("show_auto_restart"), seconds=1.0),
        captured_answer("journal_failed_exit_code", seconds=2.0),
        captured_answer("journal_auto_restart"),
    )
    probe(runner, MEM0, WORKER).check()
    assert [timeout for _, timeout in runner.calls] == [4.0, 3.0, pytest.approx(1.0)]


@pytest.mark.parametrize(
    "journal_reply",
    [
        pytest.param(CommandNotFound("journalctl: No such file or directory"), id="missing"),
        pytest.param(answer("", "Failed to open journal\n", 1), id="exit-1"),
        pytest.param(answer("", "", None, timed_out=True), id="timeout"),
    ],
)
def test_a_journalctl_failure_leaves_details_empty(journal_reply: CommandOutput | Exception) -> None:
    runner = ScriptedRunner(captured_answer("show_failed_exit_code"), journal_reply)
    (mem0,) = probe(runner, MEM0).check()
    assert (mem0.status, mem0.details) == (Status.CRITICAL, ())


def test_systemctl_missing_makes_every_unit_unknown() -> None:
    results = probe(ScriptedRunner(CommandNotFound("systemctl: No such file or directory"))).check()
    assert [(r.name, r.status, r.error_kind, r.summary) for r in results] == [
        ("qdrant", Status.UNKNOWN, "tool_missing", "systemctl not found"),
        ("mem0", Status.UNKNOWN, "tool_missing", "systemctl not found"),
    ]


def test_systemctl_timeout_makes_every_unit_unknown() -> None:
    results = probe(ScriptedRunner(answer(returncode=None, seconds=4.0, timed_out=True))).check()
    assert {(r.status, r.error_kind) for r in results} == {(Status.UNKNOWN, "timeout")}
    assert results[0].summary == "systemctl gave no answer within 4 s"


@pytest.mark.parametrize(
    ("scope", "capture", "summary"),
    [
        pytest.param(
            "system",
            "systemctl_system_no_bus",
            "systemctl --system: System has not been booted with systemd as init system (PID 1). Can't operate.",
            id="system",
        ),
        pytest.param(
            "user", "systemctl_user_no_bus", "systemctl --user: Failed to connect to bus: No medium found", id="user"
        ),
        pytest.param(
            "system", "show_system_scope_no_manager",
            "systemctl --system: Failed to connect to bus: No such file or directory", id="no-system-manager"
        ),
    ],
)
def test_no_bus_is_unknown(scope: Scope, capture: str, summary: str) -> None:
    reply = answer(captured(capture), captured(capture, "stderr"), int(captured(capture, "exit")))
    results = probe(ScriptedRunner(reply), QDRANT, MEM0, scope=scope).check()
    assert [(r.status, r.error_kind, r.summary) for r in results] == [(Status.UNKNOWN, "no_bus", summary)] * 2


@pytest.mark.parametrize(
    ("stderr", "summary"),
    [
        pytest.param(
            "Failed to get properties: Access denied\nmore\n",
            "systemctl --user: Failed to get properties: Access denied",
            id="first-line",
        ),
        pytest.param("", "systemctl --user: exit code 1", id="silent"),
    ],
)
def test_other_systemctl_failures(stderr: str, summary: str) -> None:
    (result,) = probe(ScriptedRunner(answer("", stderr, 1)), QDRANT).check()
    assert (result.status, result.error_kind, result.summary) == (Status.UNKNOWN, "systemctl_failed", summary)


@pytest.mark.parametrize(
    "stdout",
    [
        pytest.param(captured("show_active"), id="one-block-for-two-units"),
        pytest.param("", id="nothing"),
    ],
)
def test_block_count_mismatch_is_unparsable(stdout: str) -> None:
    results = probe(ScriptedRunner(answer(stdout))).check()
    assert {(r.status, r.error_kind) for r in results} == {(Status.UNKNOWN, "unparsable")}


def test_a_block_for_another_requested_unit_is_unparsable() -> None:
    swapped = captured("show_failed_exit_code") + "\n" + captured("show_active")
    results = probe(ScriptedRunner(answer(swapped))).check()
    assert [(r.status, r.error_kind) for r in results] == [(Status.UNKNOWN, "unparsable")] * 2
    assert results[0].summary == "systemctl answered for mem0-server.service in place of qdrant.service"


def test_an_alias_id_is_accepted_and_its_journal_asked_by_the_id() -> None:
    alias = SystemdProbeConfig(unit="vectors", scope="user", name="vectors")
    runner = ScriptedRunner(captured_answer("show_failed_exit_code"), answer(""))
    (result,) = probe(runner, alias).check()
    assert result.status is Status.CRITICAL
    assert "_SYSTEMD_UNIT=mem0-server.service" in runner.calls[1][0]


def test_malformed_lines_are_reported_in_details() -> None:
    (result,) = probe(ScriptedRunner(answer(transcribed("show_malformed_line.txt"))), QDRANT).check()
    assert result.status is Status.OK
    assert result.details == ("skipped 2 malformed line(s) of systemctl output",)


def test_missing_active_state_is_unparsable() -> None:
    (result,) = probe(ScriptedRunner(answer("Id=qdrant.service\nLoadState=loaded\n")), QDRANT).check()
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "unparsable")


@pytest.mark.parametrize(
    ("units", "scope", "message"),
    [
        pytest.param([QDRANT], "session", "scope must be", id="bad-scope"),
        pytest.param([], "user", "at least one unit", id="no-units"),
        pytest.param([QDRANT], "system", "another scope", id="mixed-scope"),
    ],
)
def test_constructor_rejects_misuse(units: list[SystemdProbeConfig], scope: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SystemdProbe(units, scope=scope)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real run_command, fake binaries


class FakeSystemd:
    """A scenario directory for tests/fake_bin/{systemctl,journalctl} and their argv log."""

    def __init__(self, root: Path) -> None:
        self.scenario = root / "scenario"
        self.scenario.mkdir()
        self.argv_log = root / "argv.jsonl"

    def stage(self, tool: str, *, capture: str | None = None, sleep: float | None = None) -> None:
        if capture is not None:
            for stream in ("stdout", "stderr", "exit"):
                shutil.copyfile(CAPTURED / f"{capture}.{stream}", self.scenario / f"{tool}.{stream}")
        if sleep is not None:
            (self.scenario / f"{tool}.sleep").write_text(str(sleep))

    def calls(self) -> list[list[str]]:
        if not self.argv_log.exists():
            return []
        return [json.loads(line) for line in self.argv_log.read_text().splitlines()]


@pytest.fixture
def fake_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemd:
    fake = FakeSystemd(tmp_path)
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_SYSTEMD_FIXTURE_DIR", str(fake.scenario))
    monkeypatch.setenv("FAKE_SYSTEMD_ARGV_LOG", str(fake.argv_log))
    return fake


def real_probe(scope: Scope, *units: SystemdProbeConfig) -> SystemdProbe:
    return SystemdProbe(in_scope(scope, *units), scope=scope, clock=lambda: NOW)


def test_fake_binaries_replay_through_run_command(fake_systemd: FakeSystemd) -> None:
    fake_systemd.stage("systemctl", capture="show_two_units")
    fake_systemd.stage("journalctl", capture="journal_failed_exit_code")

    qdrant, mem0 = real_probe("user", QDRANT, MEM0).check()

    since = captured_state("show_failed_exit_code").main_started_at
    assert fake_systemd.calls() == [json.loads(captured("show_two_units", "argv")),
                                    journal_argv("mem0-server.service", scope="user", since=since)]
    assert (qdrant.status, mem0.status) == (Status.OK, Status.CRITICAL)
    assert mem0.details[0] == "cannot reach qdrant at localhost:6333 (run 2)"


@pytest.mark.parametrize(
    ("scope", "capture", "first_line"),
    [
        ("system", "systemctl_system_no_bus", "System has not been booted with systemd"),
        ("user", "systemctl_user_no_bus", "Failed to connect to bus: No medium found"),
    ],
)
def test_fake_no_bus(fake_systemd: FakeSystemd, scope: Scope, capture: str, first_line: str) -> None:
    fake_systemd.stage("systemctl", capture=capture)
    results = real_probe(scope, QDRANT, MEM0).check()
    assert [(r.status, r.error_kind) for r in results] == [(Status.UNKNOWN, "no_bus")] * 2
    assert first_line in results[0].summary
    assert [call[0] for call in fake_systemd.calls()] == ["systemctl"]


def test_systemctl_absent_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    results = real_probe("user", QDRANT, MEM0).check()
    assert [(r.status, r.error_kind, r.summary) for r in results] == [
        (Status.UNKNOWN, "tool_missing", "systemctl not found")
    ] * 2


def test_systemctl_past_the_timeout(fake_systemd: FakeSystemd) -> None:
    fake_systemd.stage("systemctl", capture="show_active", sleep=10)
    quick = SystemdProbeConfig(unit="qdrant.service", scope="user", name="qdrant", timeout_seconds=0.5)

    started = time.monotonic()
    (result,) = real_probe("user", quick).check()
    elapsed = time.monotonic() - started

    assert (result.status, result.error_kind) == (Status.UNKNOWN, "timeout")
    assert elapsed < 0.5 + 0.5


def test_slow_journalctl_stays_inside_the_probe_timeout(fake_systemd: FakeSystemd) -> None:
    fake_systemd.stage("systemctl", capture="show_failed_exit_code")
    fake_systemd.stage("journalctl", capture="journal_failed_exit_code", sleep=10)
    quick = SystemdProbeConfig(unit="mem0-server.service", scope="user", name="mem0", timeout_seconds=0.8)

    started = time.monotonic()
    (result,) = real_probe("user", quick).check()
    elapsed = time.monotonic() - started

    assert (result.status, result.details) == (Status.CRITICAL, ())
    assert elapsed < 0.8 + 0.5
    assert [call[0] for call in fake_systemd.calls()] == ["systemctl", "journalctl"]


# --------------------------------------------------------------------------- config.redact_text (log lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("qdrant at http://admin:hunter2@localhost:6333/c?api_key=k-1 down",
                     "qdrant at http://admin:***@localhost:6333/c?*** down", id="url-credentials-and-query"),
        pytest.param("see http://localhost:6333/collections.", "see http://localhost:6333/collections.",
                     id="plain-url-kept"),
        pytest.param("password=hunter2 user=bob", "password=*** user=bob", id="password"),
        pytest.param("DB_PASSWD: 'x y' next", "DB_PASSWD: '***' next", id="quoted"),
        pytest.param('{"api_key": "k-123", "n": 1}', '{"api_key": "***", "n": 1}', id="json"),
        pytest.param("QDRANT_API_KEY=abc secret:xyz", "QDRANT_API_KEY=*** secret:***", id="env-style"),
        pytest.param("Authorization: Bearer abc.def", "Authorization: Bearer ***", id="bearer"),
        pytest.param("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***", id="basic"),
        pytest.param("headers={'Authorization': 'Bearer abc'}", "headers={'Authorization': '***'}",
                     id="quoted-header"),
        pytest.param("using sk-ant-api03-AbCdEf0123456789xyz now", "using *** now", id="anthropic-key"),
        pytest.param("ghp_ABCDEFGHIJKLMNOP1234567890", "***", id="github-token"),
        pytest.param("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "jwt ***", id="jwt"),
        pytest.param("sk-learn is a typo", "sk-learn is a typo", id="prefix-without-token"),
        pytest.param("invalid token provided", "invalid token provided", id="prose-kept"),
        pytest.param("tokenizer.py:45: in encode", "tokenizer.py:45: in encode", id="file-and-line-kept"),
        pytest.param("author: Bob", "author: Bob", id="author-is-no-auth"),
        pytest.param("qdrant_client.http.exceptions.ResponseHandlingException: [Errno 111] Connection refused",
                     "qdrant_client.http.exceptions.ResponseHandlingException: [Errno 111] Connection refused",
                     id="long-names-kept"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
