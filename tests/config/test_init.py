"""`aiki-hooks init`'s detection of the user's own services, without systemd: what looking
at ~/.config/systemd/user finds, what is offered when systemctl is missing or fails, and
how the entries are written. Detection under a real systemd: tests/e2e/test_init_units.py."""

from __future__ import annotations

import shutil
import tomllib

import pytest

from aiki_hooks.config.init import Detected, FoundUnit, detect_user_units, render_config, scan_unit_dir
from aiki_hooks.config.load import parse_config
from aiki_hooks.install.service import UNIT_NAME
from aiki_hooks.proc import CommandOutput, run_command
from tests.conftest import cli_env, run_cli

SERVICE = "[Service]\nExecStart=/bin/sleep 600\n[Install]\nWantedBy=default.target\n"


def user_units(home):
    """A unit directory with one of everything `init` must tell apart."""
    folder = home / ".config" / "systemd" / "user"
    (folder / "daemon.service.d").mkdir(parents=True)
    (folder / "daemon.service.d" / "override.conf").write_text("[Service]\nNice=5\n")
    for name in ("daemon.service", "backup.service", UNIT_NAME, "greeter@.service", "nightly.timer",
                 "echo.socket", "work.target", "bad name.service", "new\nline.service"):
        (folder / name).write_text(SERVICE)
    (folder / "empty.service").write_text("")  # an empty file is masked too
    (folder / "masked.service").symlink_to("/dev/null")
    (folder / "broken.service").symlink_to("gone.service")
    (folder / "folder.service").mkdir()
    (folder / "alias.service").symlink_to("daemon.service")
    elsewhere = home / "src" / "linked.service"  # what `systemctl --user link` makes
    elsewhere.parent.mkdir()
    elsewhere.write_text(SERVICE)
    (folder / "linked.service").symlink_to(elsewhere)
    for wants, name, target in (("default.target.wants", "daemon.service", "../daemon.service"),
                                ("default.target.wants", "vendor.service", "/usr/lib/systemd/user/vendor.service"),
                                ("timers.target.wants", "nightly.timer", "../nightly.timer")):
        (folder / wants).mkdir(exist_ok=True)
        (folder / wants / name).symlink_to(target)
    return folder


def test_the_unit_directory_is_read_by_looking(isolated_home):
    found = scan_unit_dir(user_units(isolated_home))
    assert found.services == ("backup.service", "daemon.service", "linked.service")
    assert found.templates == {"greeter@.service"}
    assert found.linked == {"daemon.service", "vendor.service"}


def test_a_missing_unit_directory_is_no_services(tmp_path):
    found = scan_unit_dir(tmp_path / "nowhere")
    assert (found.services, found.templates, found.linked) == ((), set(), set())


def test_without_systemctl_the_files_are_offered_enabled_ones_watched(isolated_home, tmp_path, monkeypatch):
    user_units(isolated_home)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # the real lookup, finding no systemctl
    units, _, problem = detect_user_units()
    assert units == (
        FoundUnit("daemon.service", True, "enabled"),
        FoundUnit("backup.service", False, "not enabled, commented out",
                  "not enabled, and whether it runs is unknown; a stopped unit is CRITICAL to this probe"),
        FoundUnit("linked.service", False, "not enabled, commented out",
                  "not enabled, and whether it runs is unknown; a stopped unit is CRITICAL to this probe"),
    )
    assert problem == ("systemctl not found: only the unit files in ~/.config/systemd/user were looked at, "
                       "whether they run is unknown")


class Runner:
    """systemctl's answers replayed, for failures a real one gives only by accident (a hang,
    `show` failing after `list-units` answered); records the calls."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, argv, *, timeout, env=None):
        self.calls.append((list(argv), timeout))
        return self.answers.pop(0)


def output(argv=("systemctl",), returncode=0, stdout="", stderr="", timed_out=False):
    return CommandOutput(argv=tuple(argv), returncode=returncode, stdout=stdout, stderr=stderr, seconds=0.01,
                         timed_out=timed_out)


def test_a_systemctl_without_a_manager_is_asked_once_and_said_in_the_note(isolated_home, tmp_path, monkeypatch):
    if shutil.which("systemctl") is None:
        pytest.skip("no systemctl here (the missing case is tested above)")
    user_units(isolated_home)
    # The real systemctl, told to look for the manager where none listens.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    calls = []

    def run(argv, *, timeout, env=None):
        calls.append((list(argv), timeout))
        return run_command(argv, timeout=timeout, env=env)

    units, _, problem = detect_user_units(run=run)
    assert [unit.name for unit in units] == ["daemon.service", "backup.service", "linked.service"]
    assert calls == [(["systemctl", "--user", "list-units", "--type=service", "--state=running",
                       "--no-legend", "--plain", "--no-pager"], 3.0)]
    assert problem.startswith("systemctl --user list-units failed (Failed to connect to bus: "), problem


def test_a_systemctl_that_hangs_is_given_up_on(isolated_home):
    user_units(isolated_home)
    units, _, problem = detect_user_units(run=Runner(output(returncode=None, timed_out=True)))
    assert [unit.watch for unit in units] == [True, False, False]
    assert problem.startswith("systemctl gave no answer within 3 s: ")


def test_when_only_show_fails_what_runs_and_the_links_still_count(isolated_home):
    user_units(isolated_home)
    running = "backup.service loaded active running backup\nvendor.service loaded active running vendor\n"
    run = Runner(output(stdout=running), output(returncode=1, stderr="Access denied\n"))
    units, _, problem = detect_user_units(run=run)
    assert [(unit.name, unit.state) for unit in units] == [
        ("backup.service", "running"), ("daemon.service", "enabled"), ("vendor.service", "running"),
        ("linked.service", "not enabled, commented out")]
    assert run.calls[1][0][:4] == ["systemctl", "--user", "show", "--no-pager"]
    assert run.calls[1][0][-5:] == ["--", "backup.service", "daemon.service", "linked.service", "vendor.service"]
    assert problem == ("systemctl --user show failed (Access denied): what runs is from list-units, what is "
                       "enabled from the links in ~/.config/systemd/user, nothing more")


def test_unit_names_are_written_as_toml_strings_and_control_characters_skipped():
    found = Detected(qdrant_url=None, notes=("a note",), user_units=(
        FoundUnit("greeter@a\\x2db.service", True, "running"),
        FoundUnit('odd"quote.service', True, "running"),
        FoundUnit("bell\x07.service", True, "running"),
        FoundUnit("stopped.service", False, "disabled, commented out", "disabled and not running"),
    ))
    text = render_config(found)
    # tomllib only: the config's own check refuses a quote, which no unit name has.
    assert tomllib.loads(text)["probes"]["systemd"] == [
        {"unit": "greeter@a\\x2db.service", "scope": "user"}, {"unit": 'odd"quote.service', "scope": "user"}]
    assert ('# Commented out, disabled and not running.\n# [[probes.systemd]]\n# unit = "stopped.service"\n'
            '# scope = "user"\n') in text
    assert "bell" not in text


def test_init_follows_xdg_config_home_and_says_what_it_found(isolated_home, tmp_path):
    config_home = tmp_path / "xdg-config"
    (config_home / "systemd" / "user").mkdir(parents=True)
    (config_home / "systemd" / "user" / "memory-daemon.service").write_text(SERVICE)
    user_units(isolated_home)  # under ~/.config, which XDG_CONFIG_HOME replaces
    env = cli_env(XDG_CONFIG_HOME=str(config_home), PATH=str(tmp_path / "empty-bin"), QDRANT_URL="")
    result = run_cli("init", "--stdout", env=env)
    assert result.returncode == 0, result.stderr
    assert [probe.unit for probe in parse_config(tomllib.loads(result.stdout), "init", env={}).entries("systemd")] == []
    assert '# unit = "memory-daemon.service"' in result.stdout
    assert 'unit = "daemon.service"' not in result.stdout and 'unit = "backup.service"' not in result.stdout
    assert (f"; 1 user service of yours: memory-daemon.service (not enabled, commented out); systemctl not found: "
            f"only the unit files in {config_home}/systemd/user were looked at") in result.stdout
