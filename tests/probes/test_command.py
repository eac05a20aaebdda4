"""Tests of the command (Nagios plugin) probe: parser and judge tables, then real
executables (sh scripts written into tmp_path) run through the real `run_command`."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from aiki_hooks.model.result import ProbeResult
from aiki_hooks.model.status import Status
from aiki_hooks.probes.command import (
    CommandProbe,
    CommandProbeConfig,
    PerfDatum,
    PluginOutput,
    describe_outcome,
    judge_exit_code,
    parse_perfdata,
    parse_plugin_output,
    perf_key,
    plugin_values,
)

KIB, MIB, GIB, TIB = 1024, 1024**2, 1024**3, 1024**4

# The multi-line example of the Monitoring Plugins guidelines ("Plugin Output").
GUIDELINES_EXAMPLE = """\
DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968
/ 15272 MB (77%);
/boot 68 MB (69%);
/home 69357 MB (27%);
/var/log 819 MB (84%); | /boot=68MB;88;93;0;98
/home=69357MB;253404;253409;0;253414
/var/log=818MB;970;975;0;980
"""


# --------------------------------------------------------------------------- parser tables


def datum(label: str, key: str, value: float | int | None) -> PerfDatum:
    return PerfDatum(label=label, key=key, value=value)


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        pytest.param("", PluginOutput(summary=""), id="empty"),
        pytest.param("\n", PluginOutput(summary=""), id="blank-line"),
        pytest.param("OK - all good\n", PluginOutput(summary="OK - all good"), id="summary-only"),
        pytest.param(
            "OK - 5 files | files=5;10;20;0;\n",
            PluginOutput(summary="OK - 5 files", perfdata=(datum("files", "files", 5),)),
            id="summary-and-perfdata",
        ),
        pytest.param(
            "WARNING - slow\nfirst detail\n\n  second detail  \n",
            PluginOutput(summary="WARNING - slow", details=("first detail", "  second detail")),
            id="long-text",
        ),
        pytest.param(
            "OK\n1\n2\n3\n4\n5\n6\n7\n",
            PluginOutput(summary="OK", details=("1", "2", "3", "4", "5")),
            id="at-most-five-details",
        ),
        pytest.param(
            GUIDELINES_EXAMPLE,
            PluginOutput(
                summary="DISK OK - free space: / 3326 MB (56%);",
                details=("/ 15272 MB (77%);", "/boot 68 MB (69%);", "/home 69357 MB (27%);", "/var/log 819 MB (84%);"),
                perfdata=(
                    datum("/", "root_bytes", 2643 * MIB),
                    datum("/boot", "boot_bytes", 68 * MIB),
                    datum("/home", "home_bytes", 69357 * MIB),
                    datum("/var/log", "var_log_bytes", 818 * MIB),
                ),
            ),
            id="guidelines-multi-line",
        ),
        pytest.param(
            "OK\ndetail | a=1\nnot a detail b=2\n",
            PluginOutput(summary="OK", details=("detail",), perfdata=(datum("a", "a", 1), datum("b", "b", 2))),
            id="everything-after-later-bar-is-perfdata",
        ),
        pytest.param("| a=1\n", PluginOutput(summary="", perfdata=(datum("a", "a", 1),)), id="perfdata-without-text"),
    ],
)
def test_parse_plugin_output(stdout: str, expected: PluginOutput) -> None:
    assert parse_plugin_output(stdout) == expected


def test_a_huge_summary_is_shortened() -> None:
    summary = parse_plugin_output("x" * 5000).summary
    assert len(summary) == 300 and summary.endswith("…")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("time=0.25s;1;2;0;10", [("time_seconds", 0.25)], id="seconds"),
        pytest.param("rt=250ms", [("rt_seconds", 0.25)], id="milliseconds"),
        pytest.param("lat=1500us", [("lat_seconds", 1500e-6)], id="microseconds"),
        pytest.param("cpu=93%;90;95", [("cpu_percent", 93)], id="percent"),
        pytest.param("size=10B", [("size_bytes", 10)], id="bytes"),
        pytest.param("mem=2KB", [("mem_bytes", 2 * KIB)], id="kilobytes-are-1024"),
        pytest.param("heap=3MB", [("heap_bytes", 3 * MIB)], id="megabytes"),
        pytest.param("disk=1.5GB", [("disk_bytes", 1.5 * GIB)], id="fractional-gigabytes"),
        pytest.param("archive=2TB", [("archive_bytes", 2 * TIB)], id="terabytes"),
        pytest.param("requests=1234c", [("requests_total", 1234)], id="counter"),
        pytest.param("load1=0.52;4;8;0", [("load1", 0.52)], id="no-unit"),
        pytest.param("delta=-1.5e3", [("delta", -1500.0)], id="negative-exponent"),
        pytest.param("x=.5", [("x", 0.5)], id="leading-dot"),
        pytest.param("x=U;1;2", [("x", None)], id="undetermined"),
        pytest.param("'Response Time'=3s", [("response_time_seconds", 3)], id="quoted-label"),
        pytest.param("'it''s'=1", [("it_s", 1)], id="escaped-quote"),
        pytest.param("'a=b'=1", [("a_b", 1)], id="equals-in-quoted-label"),
        pytest.param("cpuLoad=5", [("cpu_load", 5)], id="camel-case"),
        pytest.param("/=2643MB", [("root_bytes", 2643 * MIB)], id="root-filesystem"),
        pytest.param("time_seconds=2s", [("time_seconds", 2)], id="suffix-not-doubled"),
        pytest.param("a=1 b=2s  c=3%", [("a", 1), ("b_seconds", 2), ("c_percent", 3)], id="several"),
        pytest.param("", [], id="empty"),
        pytest.param("novalue", [], id="no-equals"),
        pytest.param("x=", [], id="no-value"),
        pytest.param("x=abc", [], id="not-a-number"),
        pytest.param("x=5parsecs", [], id="unknown-unit"),
        pytest.param("x=1,5", [], id="decimal-comma"),
        pytest.param("=5", [], id="no-label"),
        pytest.param("'unterminated=5", [], id="unterminated-quote"),
        pytest.param("a=1 garbage 'bad b=2", [("a", 1), ("b", 2)], id="malformed-between-good"),
    ],
)
def test_parse_perfdata(text: str, expected: list[tuple[str, float | int | None]]) -> None:
    parsed = [(d.key, d.value) for d in parse_perfdata(text)]
    assert parsed == [(key, pytest.approx(value) if isinstance(value, float) else value) for key, value in expected]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Response Time", "response_time"),
        ("cpuLoad", "cpu_load"),
        ("/var/log", "var_log"),
        ("/", "root"),
        ("eth0::rx-bytes", "eth0_rx_bytes"),
        ("%%", "value"),
    ],
)
def test_perf_key(label: str, expected: str) -> None:
    assert perf_key(label) == expected


# --------------------------------------------------------------------------- judge and render tables


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [
        (0, (Status.OK, None)),
        (1, (Status.WARNING, None)),
        (2, (Status.CRITICAL, None)),
        (3, (Status.UNKNOWN, None)),
        (4, (Status.UNKNOWN, "bad_exit_code")),
        (7, (Status.UNKNOWN, "bad_exit_code")),
        (127, (Status.UNKNOWN, "bad_exit_code")),
        (-9, (Status.UNKNOWN, "bad_exit_code")),
    ],
)
def test_judge_exit_code(exit_code: int, expected: tuple[Status, str | None]) -> None:
    assert judge_exit_code(exit_code) == expected


@pytest.mark.parametrize(
    ("exit_code", "summary", "expected"),
    [
        (0, "OK - fine", "OK - fine"),
        (2, "", "(no output)"),
        (7, "weird", "exit code 7: weird"),
        (-9, "", "killed by SIGKILL: (no output)"),
        (-200, "x", "killed by signal 200: x"),
    ],
)
def test_describe_outcome(exit_code: int, summary: str, expected: str) -> None:
    assert describe_outcome(exit_code, PluginOutput(summary=summary)) == expected


def test_plugin_values_keep_colliding_keys_apart() -> None:
    perfdata = (datum("a b", "a_b", 1), datum("a_b", "a_b", 2), datum("exit code", "exit_code", 3))
    assert plugin_values(0, perfdata) == {"exit_code": 0, "a_b": 1, "a_b_2": 2, "exit_code_2": 3}


# --------------------------------------------------------------------------- real executables


def plugin(tmp_path: Path, body: str, name: str = "check_thing") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def run_probe(*command: str, timeout: float = 5.0) -> ProbeResult:
    probe = CommandProbe(CommandProbeConfig(name="thing", command=tuple(command), timeout_seconds=timeout))
    (result,) = probe.check()
    return result


def test_probe_identity() -> None:
    probe = CommandProbe(CommandProbeConfig(name="thing", command=("true",), timeout_seconds=2.5))
    assert (probe.kind, probe.names, probe.timeout_seconds) == ("command", ("thing",), 2.5)


@pytest.mark.parametrize(
    ("exit_code", "status"),
    [(0, Status.OK), (1, Status.WARNING), (2, Status.CRITICAL), (3, Status.UNKNOWN)],
)
def test_exit_codes(tmp_path: Path, exit_code: int, status: Status) -> None:
    script = plugin(
        tmp_path, f"echo 'THING {status.name} - queue 12 | queue=12;50;100;0 age=1500ms'\nexit {exit_code}\n"
    )
    result = run_probe(script)
    assert (result.name, result.kind, result.status, result.error_kind) == ("thing", "command", status, None)
    assert result.summary == f"THING {status.name} - queue 12"
    assert result.values == {"exit_code": exit_code, "queue": 12, "age_seconds": 1.5}


def test_guidelines_output_from_a_real_script(tmp_path: Path) -> None:
    data = tmp_path / "output.txt"
    data.write_text(GUIDELINES_EXAMPLE)
    result = run_probe(plugin(tmp_path, f"cat '{data}'\n"))
    assert result.status is Status.OK
    assert result.summary == "DISK OK - free space: / 3326 MB (56%);"
    assert len(result.details) == 4
    assert result.values == {
        "exit_code": 0,
        "root_bytes": 2643 * MIB,
        "boot_bytes": 68 * MIB,
        "home_bytes": 69357 * MIB,
        "var_log_bytes": 818 * MIB,
    }


def test_exit_code_7_is_unknown(tmp_path: Path) -> None:
    result = run_probe(plugin(tmp_path, "echo 'something odd'\nexit 7\n"))
    assert (result.status, result.error_kind, result.summary) == (
        Status.UNKNOWN,
        "bad_exit_code",
        "exit code 7: something odd",
    )
    assert result.values == {"exit_code": 7}


def test_no_output_keeps_the_exit_code_verdict(tmp_path: Path) -> None:
    result = run_probe(plugin(tmp_path, "exit 2\n"))
    assert (result.status, result.summary, result.details) == (Status.CRITICAL, "(no output)", ())


def test_stderr_explains_a_silent_stdout(tmp_path: Path) -> None:
    result = run_probe(plugin(tmp_path, "echo 'cannot reach the database' >&2\nexit 2\n"))
    assert (result.status, result.summary, result.details) == (
        Status.CRITICAL,
        "(no output)",
        ("cannot reach the database",),
    )


def test_arguments_reach_the_program_literally(tmp_path: Path) -> None:
    script = plugin(tmp_path, 'printf "OK %s|%s\\n" "$1" "$2"\n')
    result = run_probe(script, "a b; echo injected", "$HOME")
    assert result.summary == "OK a b; echo injected"
    assert result.values == {"exit_code": 0}  # "$HOME" after the bar is not perfdata


@pytest.mark.parametrize("program", ["/nonexistent/check_nothing", "aiki-hooks-no-such-plugin"])
def test_missing_program(program: str) -> None:
    result = run_probe(program)
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "tool_missing")
    assert program in result.summary


def test_not_executable(tmp_path: Path) -> None:
    path = tmp_path / "check_plain_file"
    path.write_text("#!/bin/sh\necho OK\n")
    result = run_probe(str(path))
    assert (result.status, result.error_kind) == (Status.UNKNOWN, "tool_missing")


def test_timeout_kills_the_plugin_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = plugin(tmp_path, 'sleep 30 &\necho $! > "$1"\nsleep 30\n')

    started = time.monotonic()
    result = run_probe(script, str(pid_file), timeout=0.5)
    elapsed = time.monotonic() - started

    assert (result.status, result.error_kind, result.summary) == (Status.UNKNOWN, "timeout", "no result within 0.5 s")
    assert result.values == {"exit_code": None}
    assert elapsed < 0.5 + 0.5
    assert _gone(int(pid_file.read_text()))


def _gone(pid: int, wait: float = 1.0) -> bool:
    """True once *pid* no longer runs (a zombie awaiting its reaper counts as gone)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
