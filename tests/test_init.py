"""`aiki-hooks init`'s detection of the user's own aiki-* units, through the real command
line and the fake systemctl (tests/fake_bin) replaying `systemctl --user list-units`."""

from __future__ import annotations

import json
import os

from aiki_hooks.init import detect_user_units
from aiki_hooks.service import UNIT_NAME

from .conftest import FAKE_BIN, cli_env, run_cli

LIST_UNITS = (f"aiki-memory-daemon.service loaded active running aiki memory daemon\n"
              f"{UNIT_NAME} loaded active running aiki-hooks refresher: system health for Claude Code\n"
              "aiki-indexer.service loaded active running aiki indexer\n")


def scenario(tmp_path, stdout: str):
    folder = tmp_path / "systemd-scenario"
    folder.mkdir(exist_ok=True)
    (folder / "systemctl.stdout").write_text(stdout)
    return cli_env(PATH=f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}", FAKE_SYSTEMD_FIXTURE_DIR=str(folder),
                   FAKE_SYSTEMD_ARGV_LOG=str(tmp_path / "calls.jsonl"), QDRANT_URL="")


def test_init_probes_the_users_units_but_not_our_own_refresher(tmp_path, isolated_home):
    result = run_cli("init", "--stdout", env=scenario(tmp_path, LIST_UNITS))
    assert result.returncode == 0, result.stderr
    assert 'unit = "aiki-memory-daemon.service"' in result.stdout
    assert 'unit = "aiki-indexer.service"' in result.stdout
    assert UNIT_NAME not in result.stdout
    assert "running user units: aiki-memory-daemon.service, aiki-indexer.service" in result.stdout
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert ["systemctl", "--user", "list-units", "aiki-*", "--state=running", "--no-legend", "--plain",
            "--no-pager"] in calls


def test_only_our_refresher_running_means_no_units_to_probe(tmp_path, isolated_home, monkeypatch):
    env = scenario(tmp_path, f"{UNIT_NAME} loaded active running aiki-hooks refresher\n")
    for key in ("PATH", "FAKE_SYSTEMD_FIXTURE_DIR"):
        monkeypatch.setenv(key, env[key])
    assert detect_user_units() == ((), None)
    result = run_cli("init", "--stdout", env=env)
    assert result.returncode == 0 and "[[probes.systemd]]\nunit" not in result.stdout
