"""Tests of the systemd probe: parser and judge tables, the probe against an injected
runner, and end-to-end runs of the real `run_command` against the fake systemctl /
journalctl in tests/fake_bin.

Where the fixtures come from (tests/fixtures/systemd/README.md has the details):
- `captured/` is real output captured on the development machine (Debian 12,
  systemd 252, no systemd bus): the two "Failed to connect to bus" failures and
  journalctl's "-- No entries --".
- `transcribed/` (active, failed, not-found with `[not set]`, activating, inactive,
  UINT64_MAX memory, malformed lines, `@epoch` timestamps, two units in one answer, a
  journal excerpt) is written by hand in systemd 252's exact `systemctl show` format,
  because this machine has no systemd bus that could produce it.
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

from aiki_hooks.config import SystemdProbeConfig
from aiki_hooks.probes.systemd import (
    SHOW_PROPERTIES,
    Scope,
    ShowBlock,
    SystemdProbe,
    UnitState,
    classify_failure,
    describe_unit,
    judge_unit,
    mangled_unit_name,
    parse_journal,
    parse_show,
    parse_timestamp,
    unit_state,
    unit_values,
)
from aiki_hooks.proc import CommandNotFound, CommandOutput
from aiki_hooks.status import Status

FIXTURES = Path(__file__).parent / "fixtures" / "systemd"
CAPTURED = FIXTURES / "captured"
TRANSCRIBED = FIXTURES / "transcribed"
FAKE_BIN = Path(__file__).parent / "fake_bin"

UTC = dt.timezone.utc
MONDAY_0912 = dt.datetime(2026, 11, 23, 9, 12, 1, tzinfo=UTC).timestamp()
THURSDAY_0959_40 = dt.datetime(2026, 11, 26, 9, 59, 40, tzinfo=UTC).timestamp()
THURSDAY_0959_58 = dt.datetime(2026, 11, 26, 9, 59, 58, tzinfo=UTC).timestamp()
THURSDAY_1405_31 = dt.datetime(2026, 11, 26, 14, 5, 31, tzinfo=UTC).timestamp()
THURSDAY_1405_33 = dt.datetime(2026, 11, 26, 14, 5, 33, tzinfo=UTC).timestamp()
NOW = dt.datetime(2026, 11, 26, 15, 0, 0, tzinfo=UTC).timestamp()

PROPERTY_ARG = "--property=" + ",".join(SHOW_PROPERTIES)
QDRANT = SystemdProbeConfig(unit="qdrant.service", scope="user", name="qdrant", timeout_seconds=2.0)
MEM0 = SystemdProbeConfig(unit="mem0-server.service", scope="user", name="mem0", timeout_seconds=4.0)
JOURNAL_ERRORS = (
    "2026-11-25T22:40:02+0000 aiki mem0-server[41877]: ERROR qdrant connection refused (localhost:6333)",
    "2026-11-26T14:05:31+0000 aiki mem0-server[48213]: ERROR qdrant connection refused (localhost:6333)",
    "2026-11-26T14:05:31+0000 aiki mem0-server[48213]: CRITICAL startup aborted: vector store unavailable",
)


def transcribed(name: str) -> str:
    return (TRANSCRIBED / name).read_text()


def captured(name: str, stream: str) -> str:
    return (CAPTURED / f"{name}.{stream}").read_text()


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
FAILED = UnitState(
    id="mem0-server.service",
    load_state="loaded",
    active_state="failed",
    sub_state="failed",
    result="exit-code",
    restarts=0,
    main_pid=None,
    memory_bytes=None,
    active_entered_at=THURSDAY_1405_31,
    state_changed_at=THURSDAY_1405_33,
)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        pytest.param("show_active.txt", ACTIVE, id="active"),
        pytest.param("show_failed.txt", FAILED, id="failed"),
        pytest.param(
            "show_not_found.txt",
            UnitState(
                id="nope.service",
                load_state="not-found",
                active_state="inactive",
                sub_state="dead",
                result="success",
                restarts=0,
            ),
            id="not-found-with-not-set",
        ),
        pytest.param(
            "show_activating.txt",
            UnitState(
                id="worker.service",
                load_state="loaded",
                active_state="activating",
                sub_state="auto-restart",
                result="exit-code",
                restarts=5,
                active_entered_at=THURSDAY_0959_40,
                state_changed_at=THURSDAY_0959_58,
            ),
            id="activating",
        ),
        pytest.param(
            "show_inactive_never_started.txt",
            UnitState(
                id="backup.service",
                load_state="loaded",
                active_state="inactive",
                sub_state="dead",
                result="success",
                restarts=0,
            ),
            id="empty-timestamp",
        ),
        pytest.param(
            "show_memory_uint64_max.txt",
            dataclasses.replace(ACTIVE, restarts=0, memory_bytes=None),
            id="uint64-max-memory",
        ),
        pytest.param(
            "show_malformed_line.txt",
            dataclasses.replace(ACTIVE, skipped_lines=2),
            id="malformed-lines",
        ),
        pytest.param("show_epoch_timestamp.txt", ACTIVE, id="epoch-timestamp"),
    ],
)
def test_parse_single_unit(fixture: str, expected: UnitState) -> None:
    blocks = parse_show(transcribed(fixture))
    assert len(blocks) == 1
    assert unit_state(blocks[0]) == expected


def test_parse_keeps_not_set_as_none_and_empty_as_empty() -> None:
    (block,) = parse_show(transcribed("show_not_found.txt"))
    assert block.properties["MemoryCurrent"] is None
    assert block.properties["ActiveEnterTimestamp"] == ""
    assert block.skipped_lines == 0


def test_parse_two_units_in_one_output_keeps_their_order() -> None:
    blocks = parse_show(transcribed("show_two_units.txt"))
    assert [unit_state(b) for b in blocks] == [ACTIVE, FAILED]


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
    block = ShowBlock(properties={"NRestarts": "many", "MainPID": "", "MemoryCurrent": "lots", "ActiveState": "active"})
    state = unit_state(block)
    assert (state.restarts, state.main_pid, state.memory_bytes) == (None, None, None)


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
    ("text", "expected"),
    [
        pytest.param(transcribed("journal_errors.txt"), JOURNAL_ERRORS, id="skips-boot-separator"),
        pytest.param(captured("journalctl_user_no_entries", "stdout"), (), id="captured-no-entries"),
        pytest.param("a\nb\nc\nd\ne\n", ("c", "d", "e"), id="last-three"),
        pytest.param("", (), id="empty"),
    ],
)
def test_parse_journal(text: str, expected: tuple[str, ...]) -> None:
    assert parse_journal(text) == expected


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        pytest.param(captured("systemctl_system_no_bus", "stderr"), "no_bus", id="captured-system-not-booted"),
        pytest.param(captured("systemctl_user_no_bus", "stderr"), "no_bus", id="captured-user-no-medium"),
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


# --------------------------------------------------------------------------- judge and render tables

NOT_FOUND = UnitState(load_state="not-found", active_state="inactive", sub_state="dead", result="success")
ACTIVATING = UnitState(load_state="loaded", active_state="activating", sub_state="auto-restart", restarts=5)
INACTIVE = UnitState(load_state="loaded", active_state="inactive", sub_state="dead", result="success", restarts=0)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(ACTIVE, Status.OK, id="active"),
        pytest.param(FAILED, Status.CRITICAL, id="failed"),
        pytest.param(INACTIVE, Status.CRITICAL, id="inactive"),
        pytest.param(NOT_FOUND, Status.CRITICAL, id="not-found"),
        pytest.param(UnitState(load_state="bad-setting", active_state="inactive"), Status.CRITICAL, id="bad-setting"),
        pytest.param(ACTIVATING, Status.WARNING, id="activating"),
        pytest.param(UnitState(load_state="loaded", active_state="reloading"), Status.WARNING, id="reloading"),
        pytest.param(UnitState(load_state="loaded", active_state="deactivating"), Status.WARNING, id="deactivating"),
        pytest.param(UnitState(load_state="masked", active_state="inactive"), Status.CRITICAL, id="masked"),
        pytest.param(UnitState(load_state="loaded", active_state=None), Status.UNKNOWN, id="no-active-state"),
        pytest.param(UnitState(load_state="loaded", active_state="sleepy"), Status.UNKNOWN, id="undocumented-state"),
    ],
)
def test_judge_unit(state: UnitState, expected: Status) -> None:
    assert judge_unit(state) is expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(ACTIVE, "active (running) 3d, 2 restarts, 41.2 MiB", id="active"),
        pytest.param(
            dataclasses.replace(ACTIVE, restarts=1), "active (running) 3d, 1 restart, 41.2 MiB", id="one-restart"
        ),
        pytest.param(FAILED, "failed (exit-code) since 14:05", id="failed-today"),
        pytest.param(
            dataclasses.replace(FAILED, state_changed_at=MONDAY_0912),
            "failed (exit-code) since 2026-11-23 09:12",
            id="failed-earlier-day",
        ),
        pytest.param(INACTIVE, "inactive (dead)", id="inactive-never-started"),
        pytest.param(NOT_FOUND, "unit not found", id="not-found"),
        pytest.param(
            UnitState(load_state="error", active_state="inactive"), "unit failed to load (error)", id="load-error"
        ),
        pytest.param(ACTIVATING, "activating (auto-restart), 5 restarts", id="activating"),
        pytest.param(
            UnitState(load_state="masked", active_state="inactive", sub_state="dead"),
            "inactive (dead), masked",
            id="masked",
        ),
        pytest.param(UnitState(load_state="loaded"), "systemctl output has no ActiveState", id="no-active-state"),
    ],
)
def test_describe_unit(state: UnitState, expected: str) -> None:
    assert describe_unit(state, now=NOW, local_tz=UTC) == expected


def test_values_of_an_active_unit() -> None:
    assert unit_values(ACTIVE, now=NOW) == {
        "load_state": "loaded",
        "active_state": "active",
        "sub_state": "running",
        "result": "success",
        "restarts": 2,
        "main_pid": 1234,
        "memory_bytes": 43200512,
        "active_since": MONDAY_0912,
        "uptime_seconds": NOW - MONDAY_0912,
        "state_changed_at": MONDAY_0912,
    }


def test_a_stopped_unit_has_no_active_since_or_uptime() -> None:
    values = unit_values(FAILED, now=NOW)
    assert values["active_since"] is None and values["uptime_seconds"] is None
    assert values["state_changed_at"] == THURSDAY_1405_33


# --------------------------------------------------------------------------- probe with an injected runner


def answer(
    stdout: str = "", stderr: str = "", returncode: int | None = 0, *, seconds: float = 0.01, timed_out: bool = False
):
    return CommandOutput(
        argv=(), returncode=returncode, stdout=stdout, stderr=stderr, seconds=seconds, timed_out=timed_out
    )


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


def probe(runner: ScriptedRunner, *units: SystemdProbeConfig, scope: Scope = "user") -> SystemdProbe:
    return SystemdProbe(
        in_scope(scope, *units) if units else [QDRANT, MEM0], scope=scope, run=runner, clock=lambda: NOW
    )


def test_probe_identity() -> None:
    checker = probe(ScriptedRunner())
    assert checker.kind == "systemd"
    assert checker.names == ("qdrant", "mem0")
    assert checker.timeout_seconds == 4.0


@pytest.mark.parametrize(
    ("scope", "flag", "journal_scope"), [("user", "--user", ["--user"]), ("system", "--system", [])]
)
def test_one_systemctl_call_for_all_units_then_journal_for_the_failed_one(
    scope: Scope, flag: str, journal_scope: list[str], utc_local_time: None
) -> None:
    runner = ScriptedRunner(
        answer(transcribed("show_two_units.txt"), seconds=1.5), answer(transcribed("journal_errors.txt"))
    )
    qdrant, mem0 = probe(runner, QDRANT, MEM0, scope=scope).check()

    assert runner.calls == [
        (["systemctl", flag, "show", "--no-pager", PROPERTY_ARG, "qdrant.service", "mem0-server.service"], 4.0),
        (
            [
                "journalctl",
                *journal_scope,
                "-u",
                "mem0-server.service",
                "-p",
                "err",
                "-n",
                "3",
                "--no-pager",
                "-o",
                "short-iso",
            ],
            2.5,
        ),
    ]
    assert (qdrant.name, qdrant.kind, qdrant.status) == ("qdrant", "systemd", Status.OK)
    assert qdrant.summary == "active (running) 3d, 2 restarts, 41.2 MiB"
    assert qdrant.details == ()
    assert (mem0.status, mem0.summary, mem0.error_kind) == (Status.CRITICAL, "failed (exit-code) since 14:05", None)
    assert mem0.details == JOURNAL_ERRORS


def test_no_journal_when_the_budget_is_spent() -> None:
    runner = ScriptedRunner(answer(transcribed("show_two_units.txt"), seconds=3.95))
    _, mem0 = probe(runner).check()
    assert len(runner.calls) == 1
    assert mem0.status is Status.CRITICAL and mem0.details == ()


@pytest.mark.parametrize(
    "journal_reply",
    [
        pytest.param(CommandNotFound("journalctl: No such file or directory"), id="missing"),
        pytest.param(answer("", "Failed to open journal\n", 1), id="exit-1"),
        pytest.param(answer("", "", None, timed_out=True), id="timeout"),
    ],
)
def test_a_journalctl_failure_leaves_details_empty(journal_reply: CommandOutput | Exception) -> None:
    runner = ScriptedRunner(answer(transcribed("show_failed.txt")), journal_reply)
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
    ],
)
def test_no_bus_is_unknown(scope: Scope, capture: str, summary: str) -> None:
    reply = answer(captured(capture, "stdout"), captured(capture, "stderr"), int(captured(capture, "exit")))
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
        pytest.param(transcribed("show_active.txt"), id="one-block-for-two-units"),
        pytest.param("", id="nothing"),
    ],
)
def test_block_count_mismatch_is_unparsable(stdout: str) -> None:
    results = probe(ScriptedRunner(answer(stdout))).check()
    assert {(r.status, r.error_kind) for r in results} == {(Status.UNKNOWN, "unparsable")}


def test_a_block_for_another_requested_unit_is_unparsable() -> None:
    swapped = transcribed("show_failed.txt") + "\n" + transcribed("show_active.txt")
    results = probe(ScriptedRunner(answer(swapped))).check()
    assert [(r.status, r.error_kind) for r in results] == [(Status.UNKNOWN, "unparsable")] * 2
    assert results[0].summary == "systemctl answered for mem0-server.service in place of qdrant.service"


def test_an_alias_id_is_accepted() -> None:
    alias = SystemdProbeConfig(unit="vectors", scope="user", name="vectors")
    (result,) = probe(ScriptedRunner(answer(transcribed("show_active.txt"))), alias).check()
    assert result.status is Status.OK


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


# --------------------------------------------------------------------------- end to end: real binaries (fakes)


class FakeSystemd:
    """A scenario directory for tests/fake_bin/{systemctl,journalctl} and their argv log."""

    def __init__(self, root: Path) -> None:
        self.scenario = root / "scenario"
        self.scenario.mkdir()
        self.argv_log = root / "argv.jsonl"

    def stage(
        self, tool: str, *, stdout_from: Path | None = None, capture: str | None = None, sleep: float | None = None
    ) -> None:
        if capture is not None:
            for stream in ("stdout", "stderr", "exit"):
                shutil.copyfile(CAPTURED / f"{capture}.{stream}", self.scenario / f"{tool}.{stream}")
        if stdout_from is not None:
            shutil.copyfile(stdout_from, self.scenario / f"{tool}.stdout")
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


def test_e2e_user_scope(fake_systemd: FakeSystemd, utc_local_time: None) -> None:
    fake_systemd.stage("systemctl", stdout_from=TRANSCRIBED / "show_two_units.txt")
    fake_systemd.stage("journalctl", stdout_from=TRANSCRIBED / "journal_errors.txt")

    qdrant, mem0 = real_probe("user", QDRANT, MEM0).check()

    assert fake_systemd.calls() == [
        ["systemctl", "--user", "show", "--no-pager", PROPERTY_ARG, "qdrant.service", "mem0-server.service"],
        ["journalctl", "--user", "-u", "mem0-server.service", "-p", "err", "-n", "3", "--no-pager", "-o", "short-iso"],
    ]
    assert (qdrant.status, qdrant.summary) == (Status.OK, "active (running) 3d, 2 restarts, 41.2 MiB")
    assert qdrant.values["memory_bytes"] == 43200512
    assert (mem0.status, mem0.summary) == (Status.CRITICAL, "failed (exit-code) since 14:05")
    assert mem0.details == JOURNAL_ERRORS


def test_e2e_system_scope_with_captured_empty_journal(fake_systemd: FakeSystemd) -> None:
    fake_systemd.stage("systemctl", stdout_from=TRANSCRIBED / "show_two_units.txt")
    fake_systemd.stage("journalctl", capture="journalctl_user_no_entries")

    qdrant, mem0 = real_probe("system", QDRANT, MEM0).check()

    assert fake_systemd.calls() == [
        ["systemctl", "--system", "show", "--no-pager", PROPERTY_ARG, "qdrant.service", "mem0-server.service"],
        ["journalctl", "-u", "mem0-server.service", "-p", "err", "-n", "3", "--no-pager", "-o", "short-iso"],
    ]
    assert (qdrant.status, mem0.status, mem0.details) == (Status.OK, Status.CRITICAL, ())


@pytest.mark.parametrize(
    ("scope", "capture", "first_line"),
    [
        ("system", "systemctl_system_no_bus", "System has not been booted with systemd"),
        ("user", "systemctl_user_no_bus", "Failed to connect to bus: No medium found"),
    ],
)
def test_e2e_no_bus(fake_systemd: FakeSystemd, scope: Scope, capture: str, first_line: str) -> None:
    fake_systemd.stage("systemctl", capture=capture)
    results = real_probe(scope, QDRANT, MEM0).check()
    assert [(r.status, r.error_kind) for r in results] == [(Status.UNKNOWN, "no_bus")] * 2
    assert first_line in results[0].summary
    assert [call[0] for call in fake_systemd.calls()] == ["systemctl"]


def test_e2e_systemctl_absent_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    results = real_probe("user", QDRANT, MEM0).check()
    assert [(r.status, r.error_kind, r.summary) for r in results] == [
        (Status.UNKNOWN, "tool_missing", "systemctl not found")
    ] * 2


def test_e2e_systemctl_past_the_timeout(fake_systemd: FakeSystemd) -> None:
    fake_systemd.stage("systemctl", stdout_from=TRANSCRIBED / "show_active.txt", sleep=10)
    quick = SystemdProbeConfig(unit="qdrant.service", scope="user", name="qdrant", timeout_seconds=0.5)

    started = time.monotonic()
    (result,) = real_probe("user", quick).check()
    elapsed = time.monotonic() - started

    assert (result.status, result.error_kind) == (Status.UNKNOWN, "timeout")
    assert elapsed < 0.5 + 0.5


def test_e2e_slow_journalctl_stays_inside_the_probe_timeout(fake_systemd: FakeSystemd) -> None:
    fake_systemd.stage("systemctl", stdout_from=TRANSCRIBED / "show_failed.txt")
    fake_systemd.stage("journalctl", stdout_from=TRANSCRIBED / "journal_errors.txt", sleep=10)
    quick = SystemdProbeConfig(unit="mem0-server.service", scope="user", name="mem0", timeout_seconds=0.8)

    started = time.monotonic()
    (result,) = real_probe("user", quick).check()
    elapsed = time.monotonic() - started

    assert (result.status, result.details) == (Status.CRITICAL, ())
    assert elapsed < 0.8 + 0.5
    assert [call[0] for call in fake_systemd.calls()] == ["systemctl", "journalctl"]
