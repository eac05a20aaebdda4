"""The refresher as a user service, end to end under a REAL systemd user manager.

One manager and one `./install.sh` (a real venv, a real pip install) serve the whole
module; the tests run in file order on that installation, each leaving the unit running,
and the destructive ones (a failed install, uninstall) come last. Nothing here is
faked: systemctl, journald, sd_notify, the watchdog and the unit's sandbox are systemd's.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from aiki_hooks.install.service import UNIT_NAME

from ..conftest import REPO
from .conftest import start_user_manager
from .user_manager import HOME, UserManager

pytestmark = pytest.mark.slow

VENV_AIKI = f"{HOME}/.local/share/aiki-hooks/venv/bin/aiki-hooks"
UNIT_FILE = Path(".config/systemd/user") / UNIT_NAME
DROP_IN = Path(".config/systemd/user") / f"{UNIT_NAME}.d" / "test.conf"
STATE = Path(".local/state/aiki-hooks")
OUTPUT_DIR = Path(".local/share/aiki-out")
CONFIG = f"""\
interval_seconds = 1

[resources]
enabled = true
disk_paths = ["/"]

# Proves the sandbox from inside: the home is read-only, /tmp is private.
[[probes.command]]
name = "sandbox"
command = ["/bin/sh", "-c", "touch {HOME}/forbidden 2>/dev/null && echo home-writable && exit 2; \
echo private > /tmp/aiki-private-tmp-probe && echo home read-only"]

[[outputs]]
type = "cache"
[[outputs]]
type = "journal"
[[outputs]]
type = "jsonl"
name = "archive"
path = "{HOME}/{OUTPUT_DIR}/health.jsonl"
what = "snapshot"
"""
# The throwaway home has no pip cache: a shared one makes the second install quick.
INSTALL_ENV = {"PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(REPO / ".cache" / "pip")}
CRASHER = ("[Service]\nExecStart=\nExecStart=/bin/sh -c 'echo starting up; "
           "echo \"cannot reach qdrant at localhost:6333\" >&2; exit 1'\n")


class Installed:
    def __init__(self, manager: UserManager, install_seconds: float, output: str) -> None:
        self.manager = manager
        self.install_seconds = install_seconds
        self.output = output

    @property
    def home(self) -> Path:
        return self.manager.home

    def install(self, *args: str, timeout: float = 900):
        return self.manager.run([str(REPO / "install.sh"), *args], timeout=timeout, cwd=str(REPO), env=INSTALL_ENV)

    def aiki(self, *args: str, timeout: float = 120):
        return self.manager.run([VENV_AIKI, *args], timeout=timeout)

    def props(self, *names: str) -> dict[str, str]:
        return self.manager.show(UNIT_NAME, *names)

    def main_pid(self) -> int:
        return int(self.props("MainPID")["MainPID"])

    def wait_running(self, *, other_than: int = 0, timeout: float = 60) -> int:
        """The MainPID once the unit is active (running) with a pid other than *other_than*."""
        def running() -> int:
            props = self.props("ActiveState", "SubState", "MainPID")
            pid = int(props["MainPID"] or 0)
            ok = props["ActiveState"] == "active" and props["SubState"] == "running" and pid not in (0, other_than)
            return pid if ok else 0

        return int(self.manager.wait_for(running, timeout=timeout, what="the unit to run (again)", step=0.05))

    def refresher_pids(self) -> list[int]:
        """Every refresher process, whoever started it; not its forked helpers (the cost
        scan's workers share its command line)."""
        # This home's installation only: the machine may run other refreshers (other tests, users).
        out = self.manager.run(["pgrep", "-f", rf"{HOME}/.*(bin/aiki-hooks|-m aiki_hooks\.cli) .*refresher"]).stdout
        pids = [int(pid) for pid in out.split()]
        return [pid for pid in pids if _parent(pid) not in pids]

    def drop_in(self, text: str | None) -> None:
        path = self.home / DROP_IN
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert self.manager.systemctl("daemon-reload").returncode == 0


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone meanwhile
    return int(stat.rpartition(")")[2].split()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("service-systemd")
    home = root / "home"
    (home / ".config" / "aiki-hooks").mkdir(parents=True)
    (home / ".config" / "aiki-hooks" / "config.toml").write_text(CONFIG)
    (home / OUTPUT_DIR).mkdir(parents=True)
    Path("/tmp/aiki-private-tmp-probe").unlink(missing_ok=True)
    manager = start_user_manager(home)
    try:
        started = time.monotonic()
        result = manager.run([str(REPO / "install.sh")], timeout=900, cwd=str(REPO), env=INSTALL_ENV)
        seconds = time.monotonic() - started
        assert result.returncode == 0, f"install.sh exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        yield Installed(manager, seconds, result.stdout)
    finally:
        manager.run([str(REPO / "install.sh"), "--uninstall"], timeout=120, cwd=str(REPO), env=INSTALL_ENV)
        manager.stop()


@pytest.fixture(autouse=True)
def fresh_start_limit(installed):
    """Each test starts the unit a few times; systemd counts starts against the unit's
    start limit (5 in 2 minutes) across tests unless it is reset."""
    installed.manager.systemctl("reset-failed", UNIT_NAME)


# --------------------------------------------------------------------------- install


def test_install_starts_the_unit_and_it_reports_ready(installed):
    props = installed.props("ActiveState", "SubState", "Type", "StatusText", "UnitFileState", "NRestarts",
                            "Documentation", "ExecStart")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    assert props["Type"] == "notify" and props["UnitFileState"] == "enabled"
    # STATUS= comes with READY=1 after the first cycle: systemd shows the refresher's own line.
    assert props["StatusText"].startswith(("OK:", "WARNING:", "CRITICAL:", "UNKNOWN:")), props["StatusText"]
    assert props["NRestarts"] == "0"
    assert props["Documentation"].startswith("file://") and Path(props["Documentation"][7:]).name == "README.md"
    assert "refresher" in props["ExecStart"] and "--config" in props["ExecStart"]
    assert "what the agent sees" in installed.output
    # The cache the unit's refresher keeps fresh: private, and newer than the install.
    cache = installed.home / STATE / "system_health.json"
    first = json.loads(cache.read_bytes())["generated_at"]
    installed.manager.wait_for(lambda: json.loads(cache.read_bytes())["generated_at"] > first, timeout=10,
                               what="the next cycle's cache")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE((installed.home / STATE).stat().st_mode) == 0o700


def test_restart_waits_for_ready(installed):
    """Type=notify: `systemctl restart` returns once READY=1 came, after the first cycle."""
    before = installed.main_pid()
    started = time.monotonic()
    result = installed.manager.systemctl("restart", UNIT_NAME)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    props = installed.props("ActiveState", "SubState", "MainPID", "StatusText")
    assert props["ActiveState"] == "active" and props["SubState"] == "running"
    assert int(props["MainPID"]) != before and props["StatusText"]
    assert seconds < 30


def test_sandbox_lets_it_write_its_state_and_outputs_only(installed):
    props = installed.props("ProtectSystem", "ProtectHome", "PrivateTmp", "MemoryMax", "ReadWritePaths",
                            "NoNewPrivileges")
    assert props["ProtectSystem"] == "strict" and props["ProtectHome"] == "read-only"
    assert props["PrivateTmp"] == "yes" and props["NoNewPrivileges"] == "yes"
    assert props["MemoryMax"] == str(512 * 1024 * 1024)
    assert f"{HOME}/{STATE}" in props["ReadWritePaths"] and f"{HOME}/{OUTPUT_DIR}" in props["ReadWritePaths"]
    archive = installed.home / OUTPUT_DIR / "health.jsonl"
    installed.manager.wait_for(lambda: archive.exists() and archive.read_text().count("\n") >= 2, timeout=15,
                               what="the jsonl output to be written by the unit")
    cache = json.loads((installed.home / STATE / "system_health.json").read_bytes())
    sandbox = next(p for p in cache["probes"] if p["name"] == "sandbox")
    # (install.sh's one refresh, outside the sandbox, could write there: it said "home-writable")
    assert sandbox["status"] == "OK" and sandbox["summary"] == "home read-only", sandbox
    # PrivateTmp: what the probe wrote in its /tmp is not in the real one.
    assert not installed.manager.run(["test", "-e", "/tmp/aiki-private-tmp-probe"]).returncode == 0


def test_refresher_lines_reach_journald_with_priorities(installed):
    entries = installed.manager.journal(UNIT_NAME)
    by_text = {e["MESSAGE"]: int(e["PRIORITY"]) for e in entries if isinstance(e.get("MESSAGE"), str)}
    started = [p for text, p in by_text.items() if text.startswith("aiki-hooks refresher: started (pid")]
    assert started and set(started) == {6}, by_text
    # The prefix is taken by journald, not stored in the message.
    assert not any(text.startswith("<") for text in by_text), by_text


def test_kill_9_is_undone(installed):
    pid = installed.main_pid()
    os.kill(pid, signal.SIGKILL)  # the same pid namespace: a plain kill from outside the mount namespace
    started = time.monotonic()
    new = installed.wait_running(other_than=pid, timeout=30)
    delay = time.monotonic() - started
    assert new != pid and 1.5 < delay < 20, delay  # RestartSec=2, then the first cycle
    assert installed.refresher_pids() == [new]


def test_plain_kill_is_undone_too(installed):
    """SIGTERM from `kill PID` (exit 0) brings it back: Restart=always."""
    pid = installed.main_pid()
    os.kill(pid, signal.SIGTERM)
    new = installed.wait_running(other_than=pid, timeout=30)
    assert installed.refresher_pids() == [new]


def test_stop_stops_it(installed):
    assert installed.manager.systemctl("stop", UNIT_NAME).returncode == 0
    time.sleep(3)  # longer than RestartSec: an explicit stop is not undone
    assert installed.props("ActiveState")["ActiveState"] == "inactive"
    assert installed.refresher_pids() == []
    status = installed.aiki("service", "status")
    assert status.returncode == 1 and status.stdout.startswith("stopped:"), status.stdout
    assert installed.manager.systemctl("start", UNIT_NAME).returncode == 0
    installed.wait_running()


def test_watchdog_restarts_a_hung_refresher(installed):
    """SIGSTOP: no more WATCHDOG=1; systemd aborts it (SIGABRT, then SIGKILL after
    TimeoutAbortSec) and restarts it. The drop-in shortens WatchdogSec for the test."""
    installed.drop_in("[Service]\nWatchdogSec=3\nTimeoutAbortSec=2\n")
    try:
        assert installed.manager.systemctl("restart", UNIT_NAME).returncode == 0
        pid = installed.wait_running()
        time.sleep(4)  # more than WatchdogSec while it runs: the pings keep it alive
        assert installed.main_pid() == pid
        os.kill(pid, signal.SIGSTOP)
        new = installed.wait_running(other_than=pid, timeout=30)
        assert new != pid and int(installed.props("NRestarts")["NRestarts"]) >= 1
    finally:
        installed.drop_in(None)
        installed.manager.systemctl("restart", UNIT_NAME)
    installed.wait_running()


# --------------------------------------------------------------------------- the truth about a broken unit


def test_crash_loop_is_a_failure_with_the_log_lines(installed):
    installed.drop_in(CRASHER)
    try:
        installed.manager.systemctl("restart", UNIT_NAME)  # fails: the process exits 1
        installed.manager.wait_for(lambda: installed.props("SubState")["SubState"] == "auto-restart", timeout=10,
                                   what="the unit to wait for its restart")
        status = installed.aiki("service", "status")
        assert status.returncode == 1, status.stdout
        assert status.stdout.startswith("restart-loop:") and "exit status 1" in status.stdout, status.stdout
        assert "cannot reach qdrant at localhost:6333" in status.stdout
        assert "journalctl" in status.stdout
        doctor = installed.aiki("doctor", timeout=180)
        assert doctor.returncode == 1
        unit_lines = [line for line in doctor.stdout.splitlines() if "refresher unit" in line]
        assert unit_lines and unit_lines[0].startswith("[FAIL]"), doctor.stdout
        assert "cannot reach qdrant at localhost:6333" in doctor.stdout
        # Five starts within two minutes: systemd gives up instead of looping forever.
        installed.manager.wait_for(lambda: installed.props("ActiveState")["ActiveState"] == "failed", timeout=60,
                                   what="the start limit to end the loop")
        restarts = installed.props("NRestarts")["NRestarts"]
        time.sleep(3)  # longer than RestartSec: the loop has ended
        assert installed.props("ActiveState", "NRestarts") == {"ActiveState": "failed", "NRestarts": restarts}
        failed = installed.aiki("service", "status")
        assert failed.returncode == 1 and failed.stdout.startswith("failed:"), failed.stdout
        assert "cannot reach qdrant at localhost:6333" in failed.stdout
    finally:
        installed.drop_in(None)
        installed.manager.systemctl("reset-failed", UNIT_NAME)
        installed.manager.systemctl("restart", UNIT_NAME)
    installed.wait_running()
    healthy = installed.aiki("service", "status")
    assert healthy.returncode == 0 and healthy.stdout.startswith("running:"), healthy.stdout


def test_a_config_error_fails_the_unit_once_and_says_which_key(installed):
    """Exit status 3 (a config it cannot use) is not restarted: the unit fails and its
    error line is in the journal at priority err."""
    config = installed.home / ".config" / "aiki-hooks" / "config.toml"
    good = config.read_text()
    config.write_text(good.replace("interval_seconds = 1", "interval_seconds = -5"))
    try:
        installed.manager.systemctl("restart", UNIT_NAME)
        installed.manager.wait_for(lambda: installed.props("ActiveState")["ActiveState"] == "failed", timeout=20,
                                   what="the unit to fail")
        props = installed.props("Result", "NRestarts", "ExecMainStatus")
        assert props["ExecMainStatus"] == "3" and props["NRestarts"] == "0", props
        errors = [e for e in installed.manager.journal(UNIT_NAME, "-p", "err")
                  if "interval_seconds" in str(e.get("MESSAGE"))]
        assert errors and int(errors[-1]["PRIORITY"]) == 3, errors
        status = installed.aiki("service", "status")
        assert status.stdout.startswith("failed:") and "interval_seconds" in status.stdout, status.stdout
    finally:
        config.write_text(good)
        installed.manager.systemctl("reset-failed", UNIT_NAME)
        installed.manager.systemctl("restart", UNIT_NAME)
    installed.wait_running()


# --------------------------------------------------------------------------- install again, fail, uninstall


def test_dry_run_prints_the_unit_and_changes_nothing(installed):
    unit = (installed.home / UNIT_FILE).read_bytes()
    (installed.home / UNIT_FILE).write_text(unit.decode().replace("RestartSec=2", "RestartSec=9"))  # outdated
    try:
        result = installed.install("--dry-run")
        assert result.returncode == 0, result.stderr
        assert "[Service]" in result.stdout and "Type=notify" in result.stdout and "RestartSec=2" in result.stdout
        assert "ExecStart=" in result.stdout and f"would write {HOME}/{UNIT_FILE}" in result.stdout
        assert "RestartSec=9" in (installed.home / UNIT_FILE).read_text()  # untouched
    finally:
        (installed.home / UNIT_FILE).write_bytes(unit)


def test_install_again_upgrades_in_place(installed):
    settings = installed.home / ".claude" / "settings.json"
    before = settings.read_bytes()
    unit_before = (installed.home / UNIT_FILE).read_bytes()
    pid = installed.main_pid()
    result = installed.install()
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert settings.read_bytes() == before
    assert (installed.home / UNIT_FILE).read_bytes() == unit_before
    units = installed.manager.systemctl("list-units", "--all", "--no-legend", "--plain", "aiki-hooks*").stdout
    assert [line.split()[0] for line in units.splitlines()] == [UNIT_NAME]
    new = installed.wait_running(other_than=pid)  # restarted: the package was reinstalled
    assert installed.refresher_pids() == [new]


def test_a_failed_service_start_leaves_hooks_and_a_detached_refresher(installed):
    installed.drop_in(CRASHER)
    try:
        result = installed.install()
        assert result.returncode == 2, f"{result.stdout}\n{result.stderr}"
        assert "cannot reach qdrant at localhost:6333" in result.stderr
        assert "runs detached" in result.stdout and "what the agent sees" in result.stdout
        assert not (installed.home / UNIT_FILE).exists()
        time.sleep(3)  # longer than RestartSec: nothing restarts
        assert installed.props("LoadState", "ActiveState") == {"LoadState": "not-found", "ActiveState": "inactive"}
        pids = installed.refresher_pids()
        assert len(pids) == 1, pids
        lock_pid = int((installed.home / STATE / "refresher.lock").read_text())
        assert pids == [lock_pid]
        # The state it is in is the documented one: doctor sees the detached refresher running.
        doctor = installed.aiki("doctor", timeout=180)
        assert f"refresher running (pid {lock_pid})" in doctor.stdout, doctor.stdout
    finally:
        installed.drop_in(None)


def test_uninstall_leaves_no_unit_and_no_process(installed):
    assert installed.install().returncode == 0  # back under systemd
    installed.wait_running()
    result = installed.install("--uninstall")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert not (installed.home / UNIT_FILE).exists()
    units = installed.manager.systemctl("list-units", "--all", "--no-legend", "--plain", "aiki-hooks*").stdout
    assert units.strip() == ""
    assert installed.refresher_pids() == []
    settings = installed.home / ".claude" / "settings.json"
    assert not settings.exists() or "aiki" not in json.dumps(json.loads(settings.read_text()).get("hooks", {}))
