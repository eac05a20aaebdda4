"""The Claude Code plugin, proven with the real CLI: the built plugin folder validates,
installs from its local marketplace, and a session with only the plugin (no hooks in
settings.json) receives the status block."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiki_hooks.install.plugin import build_plugin
from aiki_hooks.install.settings import hook_entries

from ..conftest import REPO, cli_env, wait_for
from .anthropic_mock import AnthropicMock, TextReply
from .test_claude_code import system_messages


def claude(session, mock_url: str, *args: str, env_extra=None, timeout=120) -> subprocess.CompletedProcess:
    env = cli_env(HOME=str(session.root), CLAUDE_CONFIG_DIR=str(session.config_dir), ANTHROPIC_BASE_URL=mock_url,
                  ANTHROPIC_API_KEY="sk-ant-test", DISABLE_TELEMETRY="1", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
                  DISABLE_AUTOUPDATER="1", **(env_extra or {}))
    return subprocess.run([session.claude, *args], cwd=session.project, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_plugin_validates_installs_and_delivers_the_block(claude_session, tmp_path):
    marketplace = tmp_path / "marketplace"
    plugin = build_plugin(REPO, marketplace)
    # Only the plugin registers hooks in this Claude home.
    (claude_session.config_dir / "settings.json").write_text("{}\n")
    for target in (marketplace / ".claude-plugin" / "marketplace.json", plugin):
        checked = claude(claude_session, "http://127.0.0.1:9", "plugin", "validate", str(target))
        assert checked.returncode == 0 and "Validation passed" in checked.stdout, checked.stdout + checked.stderr
    assert claude(claude_session, "http://127.0.0.1:9", "plugin", "marketplace", "add", str(marketplace)).returncode == 0
    installed = claude(claude_session, "http://127.0.0.1:9", "plugin", "install", "aiki-hooks@aiki-local",
                       "--scope", "user")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    settings = json.loads((claude_session.config_dir / "settings.json").read_text())
    assert settings["enabledPlugins"] == {"aiki-hooks@aiki-local": True} and "hooks" not in settings

    claude_session.write_aiki_config("[resources]\nenabled = false\n[costs]\nenabled = false\n"
                                     '[[probes.tcp]]\nname = "postgres"\nhost = "127.0.0.1"\nport = 1\n')
    assert claude_session.aiki("refresh").returncode == 0
    plugin_env = {"AIKI_HOOKS_PYTHON": sys.executable, "AIKI_HOOKS_CONFIG": str(claude_session.aiki_config),
                  "AIKI_HOOKS_STATE_DIR": str(claude_session.state_dir)}
    with AnthropicMock([TextReply("Hello.")]) as mock:
        result = claude(claude_session, mock.url, "-p", "hello", "--output-format", "json", env_extra=plugin_env)
    assert result.returncode == 0, result.stdout + result.stderr
    (block,) = [m for m in system_messages(mock.requests[0]) if m.startswith("SessionStart hook additional context:")]
    assert "System health" in block and "tcp:postgres CRITICAL" in block


def test_repository_root_is_a_valid_plugin_too(claude_bin, tmp_path):
    """For development: `claude --plugin-dir .` works on the checkout itself."""
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run([claude_bin, "plugin", "validate", str(REPO)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "Validation passed" in result.stdout, result.stdout + result.stderr


# -- plugin-run and plugin-bootstrap, without the Claude Code CLI ---------------------------

PLUGIN_CONFIG = ('[resources]\nenabled = false\n[costs]\nenabled = false\n'
                 '[[probes.tcp]]\nname = "postgres"\nhost = "127.0.0.1"\nport = 1\n')
SESSION_INPUT = json.dumps({"session_id": "s-plugin", "hook_event_name": "SessionStart", "source": "startup"})


class PluginHome:
    """A user with only the plugin: a fresh HOME, Claude config dir, plugin data dir and
    project; no install.sh venv (so plugin-run must set up its own)."""

    def __init__(self, root: Path, plugin: Path = REPO) -> None:
        self.root = root
        self.plugin = plugin
        self.home = root / "home"
        self.config_dir = self.home / ".claude"
        self.data = root / "plugin-data"
        self.project = root / "project"
        for folder in (self.config_dir, self.data, self.project):
            folder.mkdir(parents=True, exist_ok=True)
        self.config = root / "aiki.toml"
        self.config.write_text(PLUGIN_CONFIG)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AIKI_HOOKS_", "CLAUDE_", "XDG_", "PYTHONPATH"))}
        self.env.update(HOME=str(self.home), XDG_DATA_HOME=str(self.home / ".local" / "share"),
                        XDG_STATE_HOME=str(self.home / ".local" / "state"),
                        XDG_CONFIG_HOME=str(self.home / ".config"), CLAUDE_CONFIG_DIR=str(self.config_dir),
                        CLAUDE_PLUGIN_ROOT=str(plugin), CLAUDE_PLUGIN_DATA=str(self.data),
                        CLAUDE_PROJECT_DIR=str(self.project), AIKI_HOOKS_CONFIG=str(self.config))

    @property
    def marker(self) -> Path:
        return self.data / "bootstrap.started"

    def run(self, hook: str = "session_start", stdin: str = SESSION_INPUT, **extra: str):
        return subprocess.run(["sh", str(self.plugin / "hooks" / "plugin-run"), hook], input=stdin, text=True,
                              capture_output=True, env=dict(self.env, **extra), cwd=self.project, timeout=30)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def pid_alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def fake_plugin(tmp_path: Path) -> Path:
    """plugin-run beside a plugin-bootstrap that only records that it was started."""
    plugin = tmp_path / "fake-plugin"
    (plugin / "hooks").mkdir(parents=True)
    shutil.copy2(REPO / "hooks" / "plugin-run", plugin / "hooks" / "plugin-run")
    shutil.copy2(REPO / "hooks" / "session_start.py", plugin / "hooks" / "session_start.py")
    (plugin / "hooks" / "plugin-bootstrap").write_text('#!/bin/sh\necho started >> "$2/fake-bootstrap.log"\n')
    os.symlink(REPO / "aiki_hooks", plugin / "aiki_hooks")
    return plugin


@pytest.mark.parametrize("marker, minutes_old, starts", [
    (None, 0, True),  # first session
    ("dead", 0, True),  # the set-up was killed
    ("live", 0, False),  # the set-up is running
    ("live", 31, True),  # too old: that pid is someone else's by now
    ("", 0, False),  # just created, the set-up has not written its pid yet
    ("", 2, True),  # created, but the set-up never started
])
def test_plugin_run_starts_the_set_up_unless_one_is_running(tmp_path, marker, minutes_old, starts):
    user = PluginHome(tmp_path, fake_plugin(tmp_path))
    if marker is not None:
        user.marker.write_text({"dead": str(dead_pid()), "live": str(os.getpid()), "": ""}[marker])
        then = time.time() - minutes_old * 60
        os.utime(user.marker, (then, then))
    result = user.run()
    assert result.returncode == 0 and "System health" in result.stdout, result.stdout + result.stderr
    log = user.data / "fake-bootstrap.log"
    if starts:
        wait_for(log.exists, timeout=10)
        assert log.read_text() == "started\n"
    else:
        time.sleep(0.5)
        assert not log.exists()


def test_plugin_stands_down_when_install_sh_registered_the_hooks(tmp_path):
    user = PluginHome(tmp_path, fake_plugin(tmp_path))
    installed = hook_entries("/venv/bin/python", tmp_path / "share" / "aiki-hooks" / "hooks")
    pre_tool_input = json.dumps({"session_id": "s-plugin", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                                 "tool_input": {"command": "ls"}})
    for settings in (user.config_dir / "settings.json", user.project / ".claude" / "settings.local.json"):
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps({"hooks": installed}, indent=2) + "\n")
        result = user.run(AIKI_HOOKS_PYTHON=sys.executable)
        assert result.returncode == 0 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "standing down" in result.stderr and str(settings) in result.stderr
        quiet = user.run("pre_tool_use", pre_tool_input, AIKI_HOOKS_PYTHON=sys.executable)
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
        assert not (user.data / "fake-bootstrap.log").exists()
        settings.unlink()
    # Only foreign hooks: the plugin runs.
    (user.config_dir / "settings.json").write_text(json.dumps({"hooks": {"SessionStart": [
        {"hooks": [{"type": "command", "command": "~/bin/session_start.py"}]}]}}))
    result = user.run(AIKI_HOOKS_PYTHON=sys.executable)
    assert result.returncode == 0 and "System health" in result.stdout and result.stderr == ""


@pytest.mark.slow
def test_plugin_sets_itself_up_on_the_first_session(tmp_path):
    """No AIKI_HOOKS_PYTHON, no install.sh venv: the first SessionStart answers at once and
    builds the plugin's venv in the background (a real pip install of the built plugin
    folder), which then runs a refresher that fills the cache the next session reads. A
    marker left by a killed earlier set-up does not block it."""
    plugin = build_plugin(REPO, tmp_path / "marketplace")
    user = PluginHome(tmp_path, plugin)
    user.marker.write_text(f"{dead_pid()}\n")
    state = user.data / "state"
    started = time.monotonic()
    first = user.run()
    assert time.monotonic() - started < 5, "the hook waited for the set-up"
    assert first.returncode == 0 and "System health: no data yet" in first.stdout, first.stdout + first.stderr
    refresher = None
    try:
        wait_for((user.data / "venv" / "aiki-hooks.ready").exists, timeout=900, step=1)
        lock = state / "refresher.lock"
        wait_for(lambda: lock.exists() and lock.read_text().strip().isdigit(), timeout=60, step=0.2)
        refresher = int(lock.read_text().split()[0])
        assert pid_alive(refresher)
        wait_for((state / "system_health.json").exists, timeout=60, step=0.2)
        # The refresher writes the cache before `refresher --daemon` has returned to the
        # bootstrap, which logs "bootstrap done" only then: wait for that line too.
        log_file = user.data / "bootstrap.log"
        wait_for(lambda: "bootstrap done" in log_file.read_text(), timeout=60, step=0.2)
        log = log_file.read_text()
        assert "bootstrap done" in log and not user.marker.exists(), log
        # The venv's own console script works (its shebang names the final path).
        version = subprocess.run([str(user.data / "venv" / "bin" / "aiki-hooks"), "--version"],
                                 capture_output=True, text=True, env=user.env, timeout=60)
        assert version.returncode == 0, version.stderr
        second = user.run()
        assert second.returncode == 0 and "tcp:postgres CRITICAL" in second.stdout, second.stdout + second.stderr
        assert not user.marker.exists()  # a ready venv: no second set-up
    finally:
        if refresher is None and user.marker.exists() and user.marker.read_text().strip().isdigit():
            os.kill(int(user.marker.read_text()), signal.SIGTERM)
        if refresher is not None and pid_alive(refresher):
            os.kill(refresher, signal.SIGTERM)
            wait_for(lambda: not pid_alive(refresher), timeout=30)
