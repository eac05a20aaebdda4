"""install.sh as a new user runs it: a fresh HOME and CLAUDE_CONFIG_DIR, a real venv and
pip install, and no systemd user manager to talk to (XDG_RUNTIME_DIR is an empty dir: the
real systemctl finds no bus), so the refresher runs detached. The service under a real
user manager is tests/e2e/test_service_systemd.py. The venv is shared by the tests of
this module (XDG_DATA_HOME) so pip runs once in full."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, missing_real_tool

USER_SETTINGS = {
    "theme": "dark",
    "permissions": {"allow": ["Bash(git status)"], "deny": ["Read(./.env)"]},
    "hooks": {
        "SessionStart": [{"matcher": "startup", "hooks": [{"type": "command", "command": "~/bin/greet.sh"}]}],
        "PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "ruff format"}]}],
    },
    "statusLine": {"type": "command", "command": "~/bin/my-status.sh"},
    "someFutureKey": {"nested": [1, 2, {"x": None}]},
}


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("xdg-data")


class User:
    def __init__(self, root: Path, data: Path) -> None:
        self.home = root / "user-home"
        self.home.mkdir(parents=True)
        self.claude = self.home / ".claude"
        self.settings = self.claude / "settings.json"
        self.data = data
        runtime = root / "runtime"  # no user manager listens here
        runtime.mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("XDG_", "AIKI_HOOKS_", "PYTHON", "DBUS_"))}
        self.env.update(HOME=str(self.home), XDG_DATA_HOME=str(data), CLAUDE_CONFIG_DIR=str(self.claude),
                        XDG_RUNTIME_DIR=str(runtime))

    def install(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["bash", str(REPO / "install.sh"), *args], capture_output=True, text=True,
                                env=self.env, timeout=900, stdin=subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    @property
    def unit(self) -> Path:
        return self.home / ".config" / "systemd" / "user" / "aiki-hooks-refresher.service"

    @property
    def state(self) -> Path:
        return self.home / ".local" / "state" / "aiki-hooks"


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.slow
def test_install_repeat_and_uninstall_keep_the_users_settings(tmp_path, shared_data):
    user = User(tmp_path, shared_data)
    user.claude.mkdir(parents=True)
    original = json.dumps(USER_SETTINGS, indent=4) + "\n"
    user.settings.write_text(original)
    os.chmod(user.settings, 0o640)

    first = user.install("--no-service")
    assert "what the agent sees when a Claude Code session starts" in first.stdout
    assert "System health" in first.stdout
    settings = json.loads(user.settings.read_text())
    python = shared_data / "aiki-hooks" / "venv" / "bin" / "python"
    hooks_dir = shared_data / "aiki-hooks" / "hooks"
    ours = [h["command"] for event in ("SessionStart", "PreToolUse") for group in settings["hooks"][event]
            for h in group["hooks"] if str(hooks_dir) in h["command"]]
    assert ours == [f"{python} {hooks_dir}/session_start.py", f"{python} {hooks_dir}/pre_tool_use.py"]
    assert settings["hooks"]["SessionStart"][0]["hooks"][0]["command"] == "~/bin/greet.sh"
    assert {k: settings[k] for k in ("theme", "permissions", "statusLine", "someFutureKey")} == {
        k: USER_SETTINGS[k] for k in ("theme", "permissions", "statusLine", "someFutureKey")}
    assert (user.settings.stat().st_mode & 0o777) == 0o640
    assert Path(str(user.settings) + ".aiki-hooks.bak").read_text() == original
    # Nothing points back into the clone.
    assert str(REPO) not in user.settings.read_text()

    installed = user.settings.read_bytes()
    user.install("--no-service")
    assert user.settings.read_bytes() == installed  # byte-identical

    user.install("--uninstall", "--no-service")
    assert user.settings.read_bytes() == original.encode()  # exactly the user's file
    assert not Path(str(user.settings) + ".aiki-hooks.bak").exists()
    assert not user.unit.exists()


def test_invalid_settings_are_refused_before_anything_is_changed(tmp_path):
    data = tmp_path / "data"
    user = User(tmp_path, data)
    user.claude.mkdir(parents=True)
    user.settings.write_text('{"theme": "dark",,}\n')
    result = user.install(check=False)
    assert result.returncode != 0
    assert str(user.settings) in result.stderr and "nothing was written" in result.stderr
    assert user.settings.read_text() == '{"theme": "dark",,}\n'
    assert sorted(p.name for p in user.claude.iterdir()) == ["settings.json"]
    # No venv, no config, no hook scripts, no unit.
    assert not data.exists() and not (user.home / ".config").exists()


def test_project_settings_and_dry_run(tmp_path, shared_data):
    user = User(tmp_path, shared_data)
    project = tmp_path / "proj"
    project.mkdir()
    dry = User(tmp_path / "dry", tmp_path / "dry-data")
    preview = dry.install("--dry-run")
    assert "session_start.py" in preview.stdout and "would create" in preview.stdout
    assert not dry.settings.exists() and not dry.unit.exists() and not (tmp_path / "dry-data" / "aiki-hooks").exists()
    user.install("--project", str(project), "--no-service")
    settings = json.loads((project / ".claude" / "settings.json").read_text())
    assert {"SessionStart", "PreToolUse"} <= set(settings["hooks"])
    assert not user.settings.exists()
    # The project had no settings file: uninstalling leaves none (and no backup).
    user.install("--uninstall", "--project", str(project), "--no-service")
    assert sorted(p.name for p in (project / ".claude").iterdir()) == []


@pytest.mark.slow
def test_without_systemd_one_detached_refresher(tmp_path, shared_data):
    user = User(tmp_path, shared_data)
    try:
        first = user.install()
        assert "no systemd user manager (Failed to connect to bus" in first.stdout, first.stdout
        pid = int((user.state / "refresher.lock").read_text().split()[0])
        os.kill(pid, 0)
        user.install()  # restarts it on the new code: still exactly one
        second_pid = int((user.state / "refresher.lock").read_text().split()[0])
        os.kill(second_pid, 0)
        if second_pid != pid:
            assert not alive(pid), "the old refresher still runs beside the new one"
        user.install("--uninstall")
        assert (user.state / "refresher.lock").read_text().strip() == ""
    finally:
        text = (user.state / "refresher.lock").read_text().strip() if (user.state / "refresher.lock").exists() else ""
        if text.isdigit():
            try:
                os.kill(int(text), signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_a_claude_code_session_with_the_installed_settings_gets_the_block(tmp_path, shared_data):
    from tests.e2e.anthropic_mock import AnthropicMock, TextReply
    from tests.e2e.conftest import find_claude
    from tests.e2e.test_claude_code import system_messages

    claude = find_claude()
    if claude is None:
        missing_real_tool("Claude Code CLI not found")
    user = User(tmp_path, shared_data)
    user.install("--no-service")
    project = tmp_path / "proj"
    project.mkdir()
    with AnthropicMock([TextReply("Hi.")]) as mock:
        env = dict(user.env, ANTHROPIC_BASE_URL=mock.url, ANTHROPIC_API_KEY="sk-ant-test", DISABLE_TELEMETRY="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1")
        result = subprocess.run([claude, "-p", "hello", "--output-format", "json"], cwd=project, env=env,
                                capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    (block,) = [m for m in system_messages(mock.requests[0]) if m.startswith("SessionStart hook additional context:")]
    assert "System health" in block


def test_install_help_and_unknown_option(tmp_path, shared_data):
    user = User(tmp_path, shared_data)
    help_text = user.install("--help").stdout
    assert help_text.startswith("Install aiki-hooks for this user") and "--uninstall" in help_text
    assert "set -" not in help_text and "#" not in help_text
    bad = user.install("--bogus", check=False)
    assert bad.returncode == 1 and "unknown option '--bogus'" in bad.stderr


# -- --uninstall --purge: only what is ours (no venv needed: the checkout's CLI runs) ----------

def installed_layout(user: User, state: Path) -> dict[str, Path]:
    """What an installation leaves: the data dir (venv, hook scripts), the state, our
    settings entries, the ~/.local/bin link and a config."""
    from aiki_hooks.install.settings import hook_entries

    data = user.data / "aiki-hooks"
    (data / "venv" / "bin").mkdir(parents=True)
    (data / "hooks").mkdir()
    state.mkdir(parents=True, exist_ok=True)
    (state / "system_health.json").write_text("{}")
    (user.home / ".local" / "bin").mkdir(parents=True)
    (user.home / ".local" / "bin" / "aiki-hooks").symlink_to(data / "venv" / "bin" / "aiki-hooks")
    user.claude.mkdir(parents=True)
    user.settings.write_text(json.dumps({"theme": "dark", "hooks": hook_entries("/v/bin/python", data / "hooks")}))
    config = user.home / ".config" / "aiki-hooks" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("interval_seconds = 30\n")
    return {"data": data, "config": config, "link": user.home / ".local" / "bin" / "aiki-hooks"}


def test_purge_removes_our_state_dir_and_venv_and_keeps_the_config(tmp_path):
    user = User(tmp_path, tmp_path / "data")
    layout = installed_layout(user, user.state)
    dry = user.install("--uninstall", "--purge", "--no-service", "--dry-run")
    assert f"would remove {layout['data']} and {user.state}" in dry.stdout and user.state.exists()
    done = user.install("--uninstall", "--purge", "--no-service")
    assert not layout["data"].exists() and not user.state.exists() and not layout["link"].is_symlink()
    assert layout["config"].read_text() == "interval_seconds = 30\n"
    assert json.loads(user.settings.read_text()) == {"theme": "dark"}
    assert "your config is kept" in done.stdout


def test_purge_leaves_a_shared_state_dir_alone(tmp_path):
    """`[state] dir` may name a directory other programs use too: it is not ours to remove."""
    user = User(tmp_path, tmp_path / "data")
    shared = user.home / ".local" / "state"
    layout = installed_layout(user, shared)
    (shared / "other-app").mkdir()
    (shared / "other-app" / "history").write_text("keep me")
    layout["config"].write_text(f'[state]\ndir = "{shared}"\n')
    done = user.install("--uninstall", "--purge", "--no-service")
    assert (shared / "other-app" / "history").read_text() == "keep me"
    assert f"kept the state dir {shared}" in done.stdout
    assert not layout["data"].exists()


def test_uninstall_with_an_invalid_config_changes_nothing(tmp_path):
    user = User(tmp_path, tmp_path / "data")
    layout = installed_layout(user, user.state)
    layout["config"].write_text("interval_seconds = \"soon\"\n")
    before = user.settings.read_bytes()
    result = user.install("--uninstall", "--purge", "--no-service", check=False)
    assert result.returncode != 0
    assert str(layout["config"]) in result.stderr and "interval_seconds" in result.stderr
    assert user.settings.read_bytes() == before
    assert layout["data"].exists() and user.state.exists() and layout["link"].is_symlink()
