"""Values that can never work are refused at load, naming file, key and expectation; a
huge or deeply nested file is a one-line config error; a config with thousands of probes
runs at most MAX_CONCURRENT_PROBES at once and its cycle still ends within its bound."""

from __future__ import annotations

import time

import pytest

from aiki_hooks.config.load import MAX_NESTING, ConfigError, load_config
from aiki_hooks.cycle.runner import MAX_CONCURRENT_PROBES, NOT_RUN, cycle_deadline, run_probes
from aiki_hooks.model.status import Status
from aiki_hooks.cycle.build import build_probes
from tests.conftest import run_cli


def _problems(tmp_path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message()
    assert str(path) in message
    return message


@pytest.mark.parametrize("toml, fragment", [
    pytest.param("[[probes.http]]\nname='a'\nurl='http://127.0.0.1:99999/'",
                 'probes.http[0].url = "http://127.0.0.1:99999/...": expected an http:// or https:// URL whose port '
                 "is a number from 1 to 65535", id="url-port-too-big"),
    pytest.param("[[probes.http]]\nname='a'\nurl='http://127.0.0.1:0/'", "whose port is a number from 1 to 65535",
                 id="url-port-zero"),
    pytest.param("[[probes.http]]\nname='a'\nurl='http://exa mple.org/'",
                 'probes.http[0].url = "http://exa/...": expected an http:// or https:// URL with a host '
                 "(no spaces or control characters)", id="url-space"),
    pytest.param('[[probes.http]]\nname="a"\nurl="http://example.org/\\u001b[2J"', "probes.http[0].url",
                 id="url-control"),
    pytest.param("[[probes.http]]\nname='a'\nurl='http:///health'", "probes.http[0].url", id="url-without-host"),
    pytest.param("[mem0]\nbackend='rest'\nhost='http://h:70000'", "mem0.host", id="mem0-host-port"),
    pytest.param("[[probes.tcp]]\nname='a'\nhost='db'\nport=99999",
                 "probes.tcp[0].port = 99999: expected a whole number from 1 to 65535", id="tcp-port"),
    pytest.param("[[probes.tcp]]\nname='a'\nhost='db:5432'\nport=5432",
                 'probes.tcp[0].host = "db:5432": expected a host name or IP address', id="tcp-host-with-port"),
    pytest.param('[[probes.command]]\nname="a"\ncommand=["/bin/echo", "a\\u0000b"]',
                 "probes.command[0].command = ['/bin/echo', 'a\\x00b']: expected a non-empty list of non-empty "
                 "strings (program and arguments) without NUL or other control characters", id="command-nul"),
    pytest.param('[costs.external]\ncommand=["/bin/tracker", "\\u001b[2J"]', "costs.external.command",
                 id="tracker-command-escape"),
    pytest.param("[resources]\ndisk_paths=['/', 'home']",
                 "resources.disk_paths = ['/', 'home']: expected a non-empty list of absolute paths", id="disk-relative"),
    pytest.param("[[probes.command]]\nname='a'\ncommand=['/bin/true']\ntimeout_seconds=0.0001",
                 "probes.command[0].timeout_seconds = 0.0001: expected a number >= 0.01 and <= 600", id="timeout"),
    pytest.param('[[probes.command]]\nname="a\\n"\ncommand=["/bin/true"]', 'probes.command[0].name = "a\\n"',
                 id="name-with-newline"),
])
def test_values_that_can_never_work_are_refused_at_load(tmp_path, toml, fragment):
    assert fragment in _problems(tmp_path, toml)


def test_valid_edge_values_still_load(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("""
[resources]
disk_paths = ["/", "/home"]
[[probes.http]]
name = "a"
url = "https://[::1]:65535/x?y=1"
[[probes.tcp]]
name = "v6"
host = "::1"
port = 1
[[probes.tcp]]
name = "db"
host = "db-1.internal."
port = 5432
[[probes.command]]
name = "script"
command = ["/bin/sh", "-c", "printf 'a\\tb\\n'\\nexit 0"]
timeout_seconds = 0.01
""")
    config = load_config(path)
    assert config.entries("command")[0].command[2] == "printf 'a\tb\n'\nexit 0"  # tabs and newlines in an argument
    assert [p.host for p in config.entries("tcp")] == ["::1", "db-1.internal."]


@pytest.mark.parametrize("text", [
    pytest.param("a = " + "[" * 5000 + "]" * 5000, id="arrays"),
    pytest.param("a = " + "{b = " * 3000 + "1" + "}" * 3000, id="inline-tables"),
    pytest.param("[" + ".".join(["t"] * 20000) + "]\nx = 1", id="dotted-tables"),
    pytest.param("[mem0]\nbackend = 'local'\n[mem0.config" + ".x" * (MAX_NESTING + 1) + "]\ny = 1", id="mem0-config"),
])
def test_deep_nesting_is_a_one_line_config_error_naming_the_file(tmp_path, text):
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message()
    assert message.startswith(f"invalid config {path}: ") and "\n" not in message
    assert "nested" in message


def test_deep_nesting_through_the_command_line(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000)
    result = run_cli("--config", str(path), "config")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert result.stderr.startswith(f"aiki-hooks: invalid config {path}: ") and result.stderr.count("\n") == 1


def _overlap(events: list[tuple[float, int]]) -> int:
    running = peak = 0
    for _, step in sorted(events):
        running += step
        peak = max(peak, running)
    return peak


def test_ten_thousand_command_probes_run_bounded_and_within_the_cycle_deadline(tmp_path):
    log = tmp_path / "runs.log"
    script = f'echo "$EPOCHREALTIME 1" >> {log}; sleep 0.2; echo "$EPOCHREALTIME -1" >> {log}'
    entry = f"[[probes.command]]\ncommand = ['/bin/bash', '-c', '{script}']\ntimeout_seconds = 1\n"
    path = tmp_path / "config.toml"
    path.write_text("[resources]\nenabled = false\n[costs]\nenabled = false\n"
                    + "".join(f"{entry}name = 'c{index}'\n" for index in range(10_000)))
    probes = build_probes(load_config(path))
    assert len(probes) == 10_000

    started = time.monotonic()
    results = run_probes(probes)
    elapsed = time.monotonic() - started

    bound = cycle_deadline(probes)
    assert elapsed <= bound + 0.2, f"the cycle took {elapsed:.2f} s against its {bound:.2f} s bound"
    assert len(results) == 10_000 and [r.name for r in results] == [f"c{i}" for i in range(10_000)]
    ran = [r for r in results if r.status is Status.OK]
    not_run = [r for r in results if r.error_kind == "not_run"]
    assert ran and not_run, "some probes run, the rest are reported, none silently dropped"
    assert all(r.status is Status.UNKNOWN and r.summary == NOT_RUN for r in not_run)
    assert len(ran) + len(not_run) + sum(r.error_kind == "timeout" for r in results) == 10_000

    # The ones cut at the deadline end within their own timeout; then count what ran at once.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        lines = log.read_text().split("\n")[:-1]
        if sum(line.endswith(" 1") for line in lines) == sum(line.endswith(" -1") for line in lines):
            break
        time.sleep(0.05)
    events = [(float(stamp), int(step)) for stamp, step in (line.split() for line in lines)]
    assert len(events) >= 2 * len(ran)
    assert 1 < _overlap(events) <= MAX_CONCURRENT_PROBES
