"""`aiki-hooks init` under a REAL systemd user manager (tests/e2e/user-manager.sh): which
user services it offers, which it writes commented out, and what it leaves alone."""

from __future__ import annotations

import sys
import tomllib

import pytest

from aiki_hooks.config.load import parse_config

from ..conftest import REPO
from .conftest import start_user_manager

SLEEPER = "[Service]\nExecStart=/bin/sleep 600\n"
INSTALL = "[Install]\nWantedBy=default.target\n"
# A unit installed for every user, as a desktop's dbus or pipewire is: enabled by a link
# outside the home. /run is the namespace's own tmpfs, so nothing reaches the host.
FOR_EVERYONE = """
mkdir -p /run/systemd/user/default.target.wants
printf '[Service]\\nExecStart=/bin/sleep 600\\n[Install]\\nWantedBy=default.target\\n' \
  > /run/systemd/user/desktop-bus.service
ln -s ../desktop-bus.service /run/systemd/user/default.target.wants/desktop-bus.service
"""
WATCHED = ["greeter@a\\x2db.service", "memory-daemon.service", "syncer.service"]
COMMENTED = ["backup.service", "echo.service", "nightly.service", "setup.service"]


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    """The user's units, set up once: the manager may wait on another run's lock."""
    manager = start_user_manager(tmp_path_factory.mktemp("init-units") / "home")
    try:
        units = {
            # enabled and running
            "memory-daemon.service": SLEEPER + INSTALL,
            # has an [Install] section, never enabled or started
            "backup.service": SLEEPER + INSTALL,
            # our own refresher, enabled and running: never offered
            "aiki-hooks-refresher.service": SLEEPER + INSTALL,
            # a template with one running instance
            "greeter@.service": SLEEPER,
            # a timer and the oneshot service it starts
            "nightly.timer": "[Timer]\nOnCalendar=*-*-* 03:00:00\n[Install]\nWantedBy=timers.target\n",
            "nightly.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
            # a socket and the service it starts on the first connection
            "echo.socket": "[Socket]\nListenStream=%t/echo.sock\n[Install]\nWantedBy=sockets.target\n",
            "echo.service": SLEEPER,
            # an enabled oneshot: ran at start-up, stopped since
            "setup.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n" + INSTALL,
            "memory-daemon.service.d/override.conf": "[Service]\nNice=5\n",
        }
        for name, text in units.items():
            manager.write_unit(name, text)
        unit_dir = manager.home / ".config" / "systemd" / "user"
        (unit_dir / "masked.service").symlink_to("/dev/null")
        # A unit of a package installed in the home, which the user enabled.
        package_dir = manager.home / ".local" / "share" / "systemd" / "user"
        package_dir.mkdir(parents=True)
        (package_dir / "syncer.service").write_text(SLEEPER + INSTALL)
        assert manager.sh(FOR_EVERYONE).returncode == 0
        assert manager.systemctl("daemon-reload").returncode == 0
        for args in (["enable", "--now", "memory-daemon.service", "aiki-hooks-refresher.service", "syncer.service",
                      "nightly.timer", "echo.socket", "setup.service"],
                     ["start", "greeter@a\\x2db.service", "desktop-bus.service"]):
            result = manager.systemctl(*args)
            assert result.returncode == 0, result.stderr
        running = manager.systemctl("list-units", "--type=service", "--state=running", "--no-legend", "--plain").stdout
        assert {line.split()[0] for line in running.splitlines()} >= {
            "memory-daemon.service", "syncer.service", "greeter@a\\x2db.service", "desktop-bus.service",
            "aiki-hooks-refresher.service"}
        yield manager
    finally:
        manager.stop()


def init(manager, **env: str) -> str:
    result = manager.run([sys.executable, "-m", "aiki_hooks.cli", "init", "--stdout"],
                         env={"PYTHONPATH": str(REPO), "QDRANT_URL": "", **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def systemd_units(text: str) -> list[str]:
    """The units of the config's systemd probes, as the refresher will load them."""
    probes = parse_config(tomllib.loads(text), "init --stdout", env={}).entries("systemd")
    assert {probe.scope for probe in probes} <= {"user"}
    return [probe.unit for probe in probes]


def uncommented(text: str, units: list[str]) -> str:
    """*text* with the commented-out entries of *units* made active, as a user would."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if any(line == f'# unit = "{unit}"' for unit in units):
            for at in (index - 1, index, index + 1):
                lines[at] = lines[at].removeprefix("# ")
    return "\n".join(lines) + "\n"


def test_init_offers_the_users_services_found_by_looking(manager):
    text = init(manager)
    assert systemd_units(text) == WATCHED
    for unit in COMMENTED:
        assert f'# [[probes.systemd]]\n# unit = "{unit}"\n# scope = "user"\n' in text
    assert systemd_units(uncommented(text, COMMENTED)) == WATCHED + COMMENTED
    for never in ("aiki-hooks-refresher.service", "masked.service", "greeter@.service", "desktop-bus.service",
                  "override.conf"):
        assert never not in text
    # The timer and the socket are named only as what starts their service.
    assert 'unit = "nightly.timer"' not in text and 'unit = "echo.socket"' not in text
    note = next(line for line in text.splitlines() if line.startswith("# Detected"))
    assert note.endswith(
        "7 user services of yours: greeter@a\\x2db.service (running), memory-daemon.service (running), "
        "syncer.service (running), backup.service (disabled, commented out), "
        "echo.service (started by echo.socket, commented out), "
        "nightly.service (started by nightly.timer, commented out), setup.service (runs once, commented out).")


def test_without_an_answer_from_the_manager_the_unit_files_are_still_offered(manager, tmp_path):
    # The real systemctl, pointed at a runtime directory where no manager listens.
    text = init(manager, XDG_RUNTIME_DIR=str(tmp_path))
    # Enabled is still known from the links `systemctl enable` wrote; running, timers,
    # sockets and instances are not, so only the enabled files are watched.
    assert systemd_units(text) == ["memory-daemon.service", "setup.service"]
    for unit in ("backup.service", "echo.service", "nightly.service"):
        assert f'# Commented out, not enabled, and whether it runs is unknown; a stopped unit is CRITICAL to this ' \
               f'probe.\n# [[probes.systemd]]\n# unit = "{unit}"\n' in text
    for never in ("greeter@", "syncer.service", "aiki-hooks-refresher.service", "masked.service"):
        assert never not in text
    note = next(line for line in text.splitlines() if line.startswith("# Detected"))
    assert "5 user services of yours: memory-daemon.service (enabled), setup.service (enabled), " \
           "backup.service (not enabled, commented out), " in note
    assert "; systemctl --user list-units failed (" in note
    assert note.endswith("): only the unit files in ~/.config/systemd/user were looked at, whether they run is unknown.")
