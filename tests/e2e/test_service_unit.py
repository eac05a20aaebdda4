"""aiki_hooks.install.service against a REAL systemd user manager: install, reinstall, uninstall
and the unit's health, through the library functions with systemctl run inside the
manager's namespace (no venv install here: tests/e2e/test_service_systemd.py does the
whole install.sh). The unit runs this checkout's refresher through a small wrapper.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from aiki_hooks.config.load import load_config
from aiki_hooks.paths import holder_pid
from aiki_hooks.install import service
from aiki_hooks.install.daemon import start_daemon, stop_daemon
from aiki_hooks.install.service import UNIT_NAME, ServiceError

from ..conftest import REPO
from .user_manager import UserManager

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(user_manager: UserManager, tmp_path, monkeypatch):
    """(manager, runner, config, executable). The test process's HOME is the manager's home
    (tests/conftest.py and the user_manager fixture both use tmp_path/"home"), so
    service.unit_path() here is the file the manager reads."""
    assert Path(os.environ["HOME"]) == user_manager.home
    exe = tmp_path / "bin" / "aiki-hooks"
    exe.parent.mkdir()
    exe.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec {shlex.quote(sys.executable)} "
                   f"-m aiki_hooks.cli \"$@\"\n")
    exe.chmod(0o755)
    config_file = user_manager.home / ".config" / "aiki-hooks" / "config.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("interval_seconds = 5\n[costs]\nenabled = false\n")
    yield user_manager, user_manager.runner(), load_config(config_file), str(exe)
    service.uninstall_unit(run=user_manager.runner())


def running_pid(manager: UserManager, *, other_than: int = 0) -> int:
    """The unit's MainPID once it runs, with a pid other than *other_than*."""
    def pid() -> int:
        props = manager.show(UNIT_NAME, "ActiveState", "SubState", "MainPID")
        running = (props["ActiveState"], props["SubState"]) == ("active", "running")
        return int(props["MainPID"]) if running and int(props["MainPID"]) != other_than else 0

    return int(manager.wait_for(pid, timeout=30, what="the unit to run"))


def test_install_twice_leaves_the_running_unit_alone(setup):
    manager, run, config, exe = setup
    lines = service.install_unit(exe, config, run=run)
    assert f"run: systemctl --user restart {UNIT_NAME} (the unit changed)" in lines
    pid = running_pid(manager)
    before = service.unit_path().stat()
    lines = service.install_unit(exe, config, run=run)
    assert lines[-1] == f"{UNIT_NAME} is active: left running"
    after = service.unit_path().stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert manager.show(UNIT_NAME, "MainPID")["MainPID"] == str(pid)
    assert holder_pid(config.state_dir) == pid  # the unit's process holds the refresher lock


def test_install_restarts_a_stopped_unit_and_a_changed_one(setup, tmp_path):
    manager, run, config, exe = setup
    service.install_unit(exe, config, run=run)
    first = running_pid(manager)
    assert manager.systemctl("stop", UNIT_NAME).returncode == 0
    lines = service.install_unit(exe, config, run=run)
    assert lines[-1].endswith("(it was inactive)")
    second = running_pid(manager)
    assert second != first
    slower = Path(config.source)
    slower.write_text(slower.read_text() + '[[probes.tcp]]\nname = "db"\nhost = "127.0.0.1"\nport = 9\n'
                                           'timeout_seconds = 40\n')
    lines = service.install_unit(exe, load_config(slower), run=run)
    assert f"run: systemctl --user restart {UNIT_NAME} (the unit changed)" in lines
    assert running_pid(manager) != second
    assert manager.show(UNIT_NAME, "WatchdogUSec")["WatchdogUSec"] == "2min"  # 3 x the slowest timeout


def test_install_takes_over_from_a_refresher_running_outside_systemd(setup):
    manager, run, config, exe = setup
    started, stray, message = start_daemon(config)
    assert started, message
    try:
        lines = service.install_unit(exe, config, run=run)
        assert f"stop the refresher running outside systemd (pid {stray})" in lines
        pid = running_pid(manager)
        assert holder_pid(config.state_dir) == pid != stray
    finally:
        if holder_pid(config.state_dir) == stray:  # the install failed to stop it: do not leak it
            stop_daemon(config)


def test_dry_run_and_uninstall(setup):
    manager, run, config, exe = setup
    lines = service.install_unit(exe, config, run=run, dry_run=True)
    assert lines[0].startswith(f"would write {service.unit_path()}:\n")
    assert "Restart=always" in lines[0] and not service.unit_path().exists()
    service.install_unit(exe, config, run=run)
    running_pid(manager)
    assert service.uninstall_unit(run=run, dry_run=True)[0] == f"would run: systemctl --user disable --now {UNIT_NAME}"
    assert service.unit_path().exists()
    service.uninstall_unit(run=run)
    assert not service.unit_path().exists()
    assert manager.show(UNIT_NAME, "LoadState", "ActiveState") == {"LoadState": "not-found", "ActiveState": "inactive"}
    assert holder_pid(config.state_dir) is None
    assert "nothing to uninstall" in service.uninstall_unit(run=run)[0]


def test_health_of_a_unit_not_installed_stopped_or_edited(setup):
    manager, run, config, exe = setup
    health = service.unit_health(run, state_dir=config.state_dir)
    assert (health.state, health.healthy) == ("not-installed", False)
    assert "aiki-hooks service install" in health.detail
    # A unit file written by hand: systemd reads it when asked; nothing runs it.
    path = service.unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(service.unit_text(executable=exe, config=config))
    health = service.unit_health(run, state_dir=config.state_dir)
    assert (health.state, health.healthy) == ("stopped", False), health
    assert "disabled" in health.detail and "daemon-reload" not in health.detail
    path.unlink()
    # Running, then edited by hand: what runs is not what the file says any more.
    service.install_unit(exe, config, run=run)
    running_pid(manager)
    time.sleep(0.05)  # a later mtime than the one systemd noted
    path.write_text(path.read_text().replace("RestartSec=2", "RestartSec=3"))
    health = service.unit_health(run, state_dir=config.state_dir)
    assert not health.healthy, health
    assert "changed on disk since systemd read it: run `systemctl --user daemon-reload`" in health.detail, health


def test_running_health_counts_unplanned_restarts(setup):
    manager, run, config, exe = setup
    service.install_unit(exe, config, run=run)
    pid = running_pid(manager)
    health = service.unit_health(run, state_dir=config.state_dir)
    assert (health.state, health.healthy, health.main_pid) == ("running", True, pid)
    for _ in range(3):  # kill -9 three times: each restart follows a run that did not stop cleanly
        manager.run(["kill", "-9", str(pid)])
        pid = running_pid(manager, other_than=pid)
        manager.systemctl("reset-failed", UNIT_NAME)  # the start limit, not under test here
    health = service.unit_health(run, state_dir=config.state_dir)
    assert (health.state, health.healthy) == ("unstable", False), health
    assert "restarted 3 times in the last hour" in health.detail
    assert any("started (pid" in line for line in health.log_lines), health.log_lines


def test_without_a_manager_systemctl_says_why(setup):
    manager, _, config, exe = setup
    nowhere = manager.runner({"XDG_RUNTIME_DIR": "/run/user/nobody-here"})
    available, why = service.systemd_available(nowhere)
    assert not available and why.startswith("Failed to connect to bus"), why
    with pytest.raises(ServiceError, match="Failed to connect to bus"):
        service.install_unit(exe, config, run=nowhere)
    health = service.unit_health(nowhere, state_dir=config.state_dir)
    assert health.state == "no-systemd" and health.detail == why
    # No logind here: loginctl cannot tell, so no advice rather than a guess.
    assert service.linger_hint("root", run=manager.runner()) is None
