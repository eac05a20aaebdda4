"""Issue 13, items 4 and 7: commands that flood their output or leave processes behind,
run as real processes (`yes`, sh, setsid, the real `aiki-hooks refresh`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from aiki_hooks import proc
from aiki_hooks.model.status import Status
from aiki_hooks.probes.command import CommandProbe, CommandProbeConfig

from .conftest import cli_env

MIB = 1024 * 1024

# Runs `aiki-hooks refresh` and prints its exit code, seconds and peak RSS (KiB). Its
# address space is capped, so the old behaviour (buffer the whole flood) fails the test
# at 2 GiB instead of eating the machine.
MEASURE = """
import resource, subprocess, sys, time
cap = 2 * 1024**3
started = time.monotonic()
code = subprocess.call([sys.executable, "-m", "aiki_hooks.cli", "refresh"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
print(code, time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measured_refresh(write_config, state_dir, command: list[str], timeout: float) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS in MiB) of a real `aiki-hooks refresh` whose only
    probe runs *command*."""
    write_config(f'[state]\ndir = "{state_dir}"\n[resources]\nenabled = false\n[costs]\nenabled = false\n'
                 f'[[probes.command]]\nname = "noisy"\ncommand = {json.dumps(command)}\n'
                 f"timeout_seconds = {timeout}\n")
    out = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, env=cli_env(),
                         timeout=timeout + 30).stdout.split()
    return int(out[0]), float(out[1]), int(out[2]) / 1024


def cached_probe(state_dir) -> dict:
    data = json.loads((state_dir / "system_health.json").read_text())
    (probe,) = [p for p in data["probes"] if p["name"] == "noisy"]
    return probe


# --------------------------------------------------------------------------- item 4: floods


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_flooding_command_probe_is_stopped_and_refresh_stays_small(write_config, state_dir, stream):
    quiet = measured_refresh(write_config, state_dir, ["sh", "-c", "echo 'OK - quiet'"], timeout=5)
    flood = ["yes"] if stream == "stdout" else ["sh", "-c", "yes >&2"]
    code, seconds, peak = measured_refresh(write_config, state_dir, flood, timeout=5)

    assert code == 0 and quiet[0] == 0
    assert seconds < 5, seconds  # stopped as a flood, not read until the probe's timeout
    assert peak < quiet[2] + 16, (peak, quiet[2])  # MiB: the kept 64 KiB, not the flood
    probe = cached_probe(state_dir)
    assert (probe["status"], probe["error_kind"]) == ("UNKNOWN", "output_flood")
    assert probe["summary"] == "stopped: printed more than 1.0 MiB (a plugin prints a few lines)"


def test_a_chatty_plugin_keeps_its_verdict_and_says_its_output_was_cut(tmp_path):
    # 200 KiB on stdout, then exit 2: more than is kept, less than a flood.
    script = tmp_path / "check_chatty"
    script.write_text("#!/bin/sh\necho 'CHATTY CRITICAL - see below | lines=5000'\n"
                      "head -c 204800 /dev/zero | tr '\\0' 'x'\nexit 2\n")
    script.chmod(0o755)
    output = proc.run_command([str(script)], timeout=5)
    assert (output.returncode, output.stdout_truncated, output.stderr_truncated, output.flooded) == (2, True, False,
                                                                                                     False)
    assert len(output.stdout.encode()) == proc.MAX_OUTPUT_BYTES

    (result,) = CommandProbe(CommandProbeConfig(name="chatty", command=(str(script),), timeout_seconds=5)).check()
    assert (result.status, result.summary) == (Status.CRITICAL, "CHATTY CRITICAL - see below")
    assert result.values == {"exit_code": 2, "lines": 5000, "output_truncated": True}
    assert result.details[-1] == "(output beyond 64.0 KiB not kept)"


def test_output_on_both_streams_is_read_as_it_comes(tmp_path):
    """Neither pipe may fill while the other is read: 1 MiB on stderr before anything on
    stdout used to be fine with communicate() and must stay fine."""
    script = tmp_path / "check_both"
    script.write_text("#!/bin/sh\nhead -c 900000 /dev/zero >&2\necho 'OK - done'\n")
    script.chmod(0o755)
    output = proc.run_command([str(script)], timeout=5)
    assert (output.returncode, output.stdout, output.stderr_truncated, output.flooded) == (0, "OK - done\n", True,
                                                                                           False)


# --------------------------------------------------------------------------- item 7: leaked processes


def marked_sleep() -> str:
    """A `sleep` duration no other process uses: it finds this test's processes in /proc."""
    return f"300.{uuid.uuid4().int % 10**9:09d}"


def alive_with(token: str) -> list[psutil.Process]:
    """Running processes whose command line holds *token* (zombies are dead: they only wait
    for whoever they were re-parented to)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] != psutil.STATUS_ZOMBIE and token in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


def wait_until_gone(token: str, seconds: float = 2.0) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    while (left := alive_with(token)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


@pytest.mark.parametrize("script", [
    pytest.param("setsid sleep {token} & sleep {token}", id="setsid-child"),
    # The subshell exits at once: its setsid child is re-parented away from the plugin.
    pytest.param("(setsid sleep {token} &); sleep {token}", id="setsid-orphan"),
    pytest.param("setsid sh -c 'sleep {token} & sleep {token}' & sleep {token}", id="setsid-subtree"),
])
def test_a_timed_out_probe_leaves_no_process_cycle_after_cycle(script):
    token = marked_sleep()
    probe = CommandProbe(CommandProbeConfig(name="leaky", command=("sh", "-c", script.format(token=token)),
                                            timeout_seconds=1.0))
    try:
        for _cycle in range(3):
            started = time.monotonic()
            (result,) = probe.check()
            assert (result.status, result.error_kind) == (Status.UNKNOWN, "timeout")
            assert time.monotonic() - started < 1.0 + 0.5
            assert wait_until_gone(token) == []
    finally:
        for process in alive_with(token):
            process.kill()


def test_kill_running_commands_kills_what_is_still_running_and_starts_nothing_more(monkeypatch):
    import threading

    monkeypatch.setattr(proc, "_stopping", False)
    token = marked_sleep()
    outputs = []
    worker = threading.Thread(target=lambda: outputs.append(
        proc.run_command(["sh", "-c", f"setsid sleep {token} & sleep {token}"], timeout=60)))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while len(alive_with(token)) < 3 and time.monotonic() < deadline:  # sh and both sleeps
            time.sleep(0.02)
        assert len(alive_with(token)) == 3
        assert proc.kill_running_commands() == 3
        worker.join(5)
        assert not worker.is_alive() and outputs[0].returncode == -9
        assert wait_until_gone(token) == []
        later = proc.run_command(["sh", "-c", f"sleep {token}"], timeout=60)
        assert later.timed_out and alive_with(token) == []
    finally:
        monkeypatch.setattr(proc, "_stopping", False)
        for process in alive_with(token):
            process.kill()
