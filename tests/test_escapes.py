"""Text from outside never reaches a terminal, the journal or the agent with escape
sequences or control characters in it; doctor's "run it by hand" line can be pasted."""

from __future__ import annotations

import json
import re
import shlex
import time

from aiki_hooks.cycle.cache import write_cache
from aiki_hooks.render import render_status
from aiki_hooks.sanitize import strip_controls

from .conftest import quiet_config, run_cli

# Every control character but newline (the outputs here are made of lines), plus the
# bidirectional overrides that reorder what a terminal shows.
CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

# A plugin that retitles the terminal (OSC 0), clears the screen (CSI 2J), colours its
# text, moves the cursor with a C1 CSI, returns the carriage and reverses the text.
HOSTILE = (r"\033]0;pwned\007\033[2Jdisk \033[31mfull\033[0m\r\302\233" r"2Jnow \342\200\256reversed"
           r"\n detail \033[1mline\033[0m\t\001end")


def _plugin(tmp_path):
    script = tmp_path / "hostile.sh"
    script.write_text(f"#!/bin/sh\nprintf '{HOSTILE}\\n'\nexit 2\n")
    script.chmod(0o755)
    return script


def _strings(value):
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _hostile_config(tmp_path, state):
    config = tmp_path / "config.toml"
    quiet_config(config, state, interval=60, extra=f"""
[journal]
open_after_cycles = 1
[[probes.command]]
name = "disk"
command = ["{_plugin(tmp_path)}"]
""")
    return config


def test_plugin_escapes_reach_neither_status_nor_journal_nor_the_agent(tmp_path):
    state = tmp_path / "state"
    config = _hostile_config(tmp_path, state)
    assert run_cli("--config", str(config), "refresh").returncode == 0

    status = run_cli("--config", str(config), "status")
    assert status.returncode == 2, status.stderr
    assert "disk full" in status.stdout and "detail line" in status.stdout  # the words are kept
    assert CONTROLS.findall(status.stdout + status.stderr) == []

    as_json = run_cli("--config", str(config), "status", "--json")
    assert [s for s in _strings(json.loads(as_json.stdout)) if CONTROLS.search(s)] == []

    records = [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines()]
    assert any(r.get("issue_id") == "command:disk" for r in records)
    assert [s for r in records for s in _strings(r) if CONTROLS.search(s)] == []

    preview = run_cli("--config", str(config), "preview")
    assert "disk full" in preview.stdout
    assert CONTROLS.findall(preview.stdout) == []

    doctor = run_cli("--config", str(config), "doctor")
    assert "disk full" in doctor.stdout
    assert CONTROLS.findall(doctor.stdout) == []


def test_status_of_a_cache_written_by_an_older_version_prints_no_escapes(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    config = quiet_config(tmp_path / "config.toml", state, interval=60)
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))
    evil = "\x1b]0;pwned\x07\x1b[2Jgone\u202e"
    write_cache(state / "system_health.json", {
        "schema_version": 1, "generated_at": stamp, "interval_seconds": 60, "host": f"box{evil}",
        "status": "CRITICAL",
        "probes": [{"name": f"p{evil}", "kind": "command", "status": "CRITICAL", "summary": f"s{evil}",
                    "values": {}, "checked_at": stamp, "duration_ms": 1, "error_kind": None,
                    "details": [f"d{evil}"]}],
        "issues": [{"id": f"command:p{evil}", "severity": "CRITICAL", "summary": f"s{evil}", "since": stamp,
                    "probe": "p", "occurrence_id": None}],
        "hooks": {}, "patterns": [],
    })
    result = run_cli("--config", str(config), "status")
    assert "sgone" in result.stdout, result.stdout + result.stderr  # read from the cache, not measured anew
    assert CONTROLS.findall(result.stdout) == []


def test_render_status_strips_what_the_snapshot_holds():
    data = {"generated_at": "2025-01-01T00:00:00Z", "status": "WARNING", "host": "h\x1b[2J",
            "issues": [{"id": "x\x07", "severity": "WARNING", "summary": "\x1b]0;t\x07warm", "since": "2025-01-01T00:00:00Z"}],
            "probes": [{"name": "x\x07", "status": "WARNING", "summary": "warm\r", "details": ["\x9b2Jd"]}]}
    text = render_status(data, now=1735689660.0, color=True)
    # Only our own colour codes remain.
    assert CONTROLS.findall(re.sub(r"\x1b\[(?:3[0-9]|0)m", "", text)) == []
    assert "warm" in text and "2Jd" in text


def test_doctor_prints_a_command_that_can_be_pasted(tmp_path):
    state = tmp_path / "state"
    argv = ["/bin/sh", "-c", "echo 'it broke'; exit 2", "an argument with spaces", "it's", "$HOME"]
    config = tmp_path / "config.toml"
    quiet_config(config, state, interval=60, extra=f"""
[[probes.command]]
name = "check"
command = {json.dumps(argv)}
""")
    result = run_cli("--config", str(config), "doctor")
    (line,) = [line for line in result.stdout.splitlines() if "run it by hand" in line]
    shown = line.split("run it by hand to see its full output: ", 1)[1]
    assert shlex.split(shown) == argv


def test_a_config_value_with_escapes_is_shown_escaped(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[[probes.systemd]]\nunit = "a\\u001b]0;pwned\\u0007.service"\n'
                      '[[probes.command]]\nname = "c"\ncommand = ["/bin/echo", "a\\u0000b"]\n')
    result = run_cli("--config", str(config), "config")
    assert result.returncode == 3
    assert CONTROLS.findall(result.stderr) == []
    assert r'probes.systemd[0].unit = "a\x1b]0;pwned\x07.service"' in result.stderr
    assert "probes.command[0].command" in result.stderr and "without NUL" in result.stderr


def test_strip_controls_keeps_lines_only_when_asked():
    assert strip_controls("a\x1b[31mb\x1b[0m\tc\nd\re") == "ab c de"
    assert strip_controls("a\tb\nc\r", multiline=True) == "a\tb\nc"
