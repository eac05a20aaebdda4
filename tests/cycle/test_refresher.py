"""The refresher as a real process: schedule, single instance, signals, sd_notify, kill -9."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiki_hooks.cycle.cache import read_cache
from aiki_hooks.cycle.refresher import describe_changes, next_slot
from aiki_hooks.paths import holder_pid
from aiki_hooks.model.result import Issue, Snapshot
from aiki_hooks.model.status import Status
from tests.conftest import CALM_RESOURCES, cli_env, wait_for


@pytest.mark.parametrize(
    "previous, interval, now, expected",
    [
        pytest.param(100.0, 10.0, 101.0, 110.0, id="on-time"),
        pytest.param(100.0, 10.0, 109.999, 110.0, id="slow-cycle-still-in-slot"),
        pytest.param(100.0, 10.0, 112.0, 120.0, id="one-slot-missed-skipped"),
        pytest.param(100.0, 10.0, 100.0 + 3600 * 8 + 5, 100.0 + 3600 * 8 + 10, id="after-suspend-no-storm"),
        pytest.param(100.0, 10.0, 110.0, 120.0, id="exactly-on-boundary"),
    ],
)
def test_next_slot_stays_on_grid_and_skips_missed(previous, interval, now, expected):
    assert next_slot(previous, interval, now) == pytest.approx(expected)


def _snap(*issues):
    return Snapshot(generated_at=0, interval_seconds=60, host="h", probes=(), issues=tuple(issues))


def _issue(issue_id, severity):
    return Issue(id=issue_id, severity=severity, summary=f"{issue_id} bad", since=0, probe="p")


def test_describe_changes_lists_opened_escalated_resolved():
    before = _snap(_issue("disk:/", Status.WARNING), _issue("http:q", Status.CRITICAL))
    after = _snap(_issue("disk:/", Status.CRITICAL), _issue("tcp:pg", Status.WARNING))
    assert describe_changes(before, after) == [
        "issue disk:/ WARNING -> CRITICAL: disk:/ bad",
        "issue opened: tcp:pg WARNING: tcp:pg bad",
        "issue resolved: http:q (was CRITICAL)",
    ]
    assert describe_changes(after, after) == []


def _write_config(home: Path, body: str = "") -> Path:
    path = home / ".config" / "aiki-hooks" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def _start(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "aiki_hooks.cli", "refresher", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or cli_env(),
    )


def test_refresher_keeps_cache_fresh_and_stops_cleanly_on_sigterm(isolated_home, state_dir):
    _write_config(isolated_home, "interval_seconds = 0.2\n" + CALM_RESOURCES)
    proc = _start()
    try:
        cache = state_dir / "system_health.json"
        first = wait_for(lambda: read_cache(cache).data)
        second = wait_for(lambda: (d := read_cache(cache).data) and d["generated_at"] != first["generated_at"] and d)
        assert second["interval_seconds"] == 0.2
        assert holder_pid(state_dir) == proc.pid
        # The CPU figure appears from the second cycle on.
        cpu = next(p for p in second["probes"] if p["name"] == "cpu")
        assert cpu["values"]["cpu_percent"] is not None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "started" in err and "first cycle: OK" in err and "stopped after" in err
    assert "Traceback" not in err
    assert read_cache(state_dir / "system_health.json").data is not None
    assert holder_pid(state_dir) is None


def test_second_instance_is_refused(isolated_home, state_dir):
    _write_config(isolated_home, "interval_seconds = 5\n")
    first = _start()
    try:
        wait_for(lambda: holder_pid(state_dir))
        second = _start()
        out, err = second.communicate(timeout=10)
        assert second.returncode == 1
        assert f"already running for this state dir (pid {first.pid}" in err
    finally:
        first.terminate()
        first.communicate(timeout=10)


def test_sd_notify_ready_watchdog_and_status(isolated_home, tmp_path):
    # No resources probe: its CPU figure (from the second cycle on) follows this machine's load.
    _write_config(isolated_home, "interval_seconds = 0.1\n[resources]\nenabled = false\n")
    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.settimeout(10)
    proc = _start("--cycles", "3", env=cli_env(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000"))
    try:
        messages = [listener.recv(4096).decode() for _ in range(3)]
        assert proc.wait(timeout=10) == 0
    finally:
        listener.close()
        proc.kill()
        proc.communicate()
    assert messages[0].startswith("READY=1\nSTATUS=OK: ")
    assert messages[1].startswith("WATCHDOG=1\nSTATUS=OK: ")
    assert "checks fine" in messages[2]


HANGING_PLUGIN = """#!/bin/sh
echo "slow plugin OK | t=1s"
if [ -e "$1" ]; then sleep 30; fi
exit 0
"""


def test_kill_9_mid_cycle_leaves_a_valid_cache(isolated_home, state_dir, tmp_path):
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(HANGING_PLUGIN)
    plugin.chmod(0o755)
    hang_flag = tmp_path / "hang"
    _write_config(isolated_home, f"""
interval_seconds = 0.1
[[probes.command]]
name = "slow"
command = ["{plugin}", "{hang_flag}"]
timeout_seconds = 20
""")
    proc = _start()
    cache = state_dir / "system_health.json"
    try:
        wait_for(lambda: read_cache(cache).data)
        hang_flag.touch()  # the next cycle now hangs inside the plugin
        time.sleep(0.5)
        before = cache.read_bytes()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        proc.kill()
        proc.communicate()
    read = read_cache(cache)
    assert read.state == "fresh"
    assert cache.read_bytes() == before
    assert any(p["name"] == "slow" and p["status"] == "OK" for p in read.data["probes"])
    # The lock died with the process: a new refresher starts at once.
    assert holder_pid(state_dir) is None
    hang_flag.unlink()
    again = _start("--cycles", "1")
    assert again.wait(timeout=20) == 0, again.communicate()[1]


def test_edited_config_is_picked_up_and_a_broken_edit_is_survived(isolated_home, state_dir, tmp_path):
    config = _write_config(isolated_home, "interval_seconds = 0.1\n")
    proc = _start()
    cache = state_dir / "system_health.json"
    try:
        wait_for(lambda: read_cache(cache).data)
        config.write_text("interval_seconds = 0.1\ncolour = 'red'\n")
        time.sleep(0.5)
        plugin = tmp_path / "check.sh"
        plugin.write_text("#!/bin/sh\necho 'queue length 9000'\nexit 2\n")
        plugin.chmod(0o755)
        config.write_text(f'interval_seconds = 0.1\n[[probes.command]]\nname = "queue"\ncommand = ["{plugin}"]\n'
                          "[[guard.rules]]\nissue = 'command:queue'\ntools = ['Bash']\n")
        data = wait_for(lambda: (d := read_cache(cache).data) and any(p["name"] == "queue" for p in d["probes"]) and d)
        assert data["status"] == "CRITICAL"
        assert data["hooks"]["guard"] == [{"name": "guard rule 1", "tools": ["Bash"], "decision": "deny",
                                          "issue": "command:queue", "min_severity": "CRITICAL"}]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "config changed but is invalid, keeping the previous one" in err and "colour: unknown key" in err
    assert "config reloaded from" in err


def test_sigterm_mid_probe_leaves_no_process_of_the_probe(isolated_home, state_dir):
    """Issue 13 item 7: the abandoned cycle's command runs in its own session, so the
    refresher's exit alone would leave it (and its setsid child) running."""
    import psutil

    token = f"300.{os.getpid()}{time.monotonic_ns() % 10**6:06d}"  # a sleep no other process has

    def alive():
        return [p for p in psutil.process_iter(["cmdline", "status"])
                if p.info["status"] != psutil.STATUS_ZOMBIE and token in " ".join(p.info["cmdline"] or ())]

    _write_config(isolated_home, f"""
interval_seconds = 60
[resources]
enabled = false
[costs]
enabled = false
[[probes.command]]
name = "stuck"
command = ["sh", "-c", "setsid sleep {token} & sleep {token}"]
timeout_seconds = 30
""")
    proc = _start()
    try:
        wait_for(lambda: len(alive()) == 3)  # sh and both sleeps
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - started
        deadline = time.monotonic() + 2.0
        while alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        left = alive()
    finally:
        proc.kill()
        for process in alive():
            process.kill()
    assert proc.returncode == 0, err
    assert took < 2.0, took
    assert left == []
    assert "killed 3 process(es) of command probes still running" in err
