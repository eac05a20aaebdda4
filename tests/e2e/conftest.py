"""Fixtures for driving the real Claude Code CLI against the loopback API mock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiki_hooks.install.settings import hook_entries

from ..conftest import REPO, cli_env, find_pinned_tool, missing_real_tool
from .anthropic_mock import AnthropicMock
from .user_manager import UserManager

CLAUDE_CODE_VERSION = "2.1.328"
LOCAL_INSTALL = REPO / ".cache" / "claude-code" / "node_modules" / ".bin" / "claude"


def find_claude() -> str | None:
    return find_pinned_tool((os.environ.get("AIKI_CLAUDE_BIN"), str(LOCAL_INSTALL), shutil.which("claude")),
                            lambda version: version.startswith(CLAUDE_CODE_VERSION))


@pytest.fixture(scope="session")
def claude_bin() -> str:
    found = find_claude()
    if found is None:
        missing_real_tool(f"Claude Code CLI {CLAUDE_CODE_VERSION} not found (run ./run-tests.sh, which installs it "
                          f"into .cache/claude-code, or set AIKI_CLAUDE_BIN)")
    return found


@dataclass
class ClaudeSession:
    """A throwaway Claude Code home whose settings.json registers our hooks as installed."""

    claude: str
    root: Path
    config_dir: Path
    project: Path
    state_dir: Path
    aiki_config: Path

    def write_aiki_config(self, text: str) -> None:
        self.aiki_config.write_text(f'[state]\ndir = "{self.state_dir}"\n' + text)

    def env(self, mock: AnthropicMock) -> dict[str, str]:
        return cli_env(
            HOME=str(self.root),
            CLAUDE_CONFIG_DIR=str(self.config_dir),
            ANTHROPIC_BASE_URL=mock.url,
            ANTHROPIC_API_KEY="sk-ant-test",
            DISABLE_TELEMETRY="1",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
            AIKI_HOOKS_CONFIG=str(self.aiki_config),
        )

    def aiki(self, *args: str) -> subprocess.CompletedProcess:
        env = cli_env(AIKI_HOOKS_CONFIG=str(self.aiki_config), HOME=str(self.root))
        return subprocess.run([sys.executable, "-m", "aiki_hooks.cli", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    def run(self, mock: AnthropicMock, prompt: str = "run a command", *extra: str) -> dict:
        result = subprocess.run(
            [self.claude, "-p", prompt, "--allowedTools", "Bash", "--output-format", "json", *extra],
            cwd=self.project, env=self.env(mock), capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"claude failed ({result.returncode}): {result.stdout}\n{result.stderr}"
        return json.loads(result.stdout)


@pytest.fixture
def claude_session(claude_bin, tmp_path) -> ClaudeSession:
    root = tmp_path / "claude-home"
    config_dir = root / ".claude"
    project = root / "project"
    for folder in (config_dir, project):
        folder.mkdir(parents=True)
    settings = {"hooks": hook_entries(sys.executable, REPO / "hooks")}
    (config_dir / "settings.json").write_text(json.dumps(settings, indent=2))
    session = ClaudeSession(claude=claude_bin, root=root, config_dir=config_dir, project=project,
                            state_dir=tmp_path / "state", aiki_config=tmp_path / "aiki.toml")
    return session


def start_user_manager(home: Path) -> UserManager:
    """A real systemd user manager whose HOME is *home*; fails under CI=true where none can
    run, skips elsewhere (a developer laptop without root)."""
    from .user_manager import ManagerUnavailable, UserManager

    try:
        return UserManager.start(home)
    except ManagerUnavailable as exc:
        missing_real_tool(f"no real systemd user manager here: {exc}")


@pytest.fixture
def user_manager(tmp_path):
    """A real systemd user manager (tests/e2e/user-manager.sh) with a throwaway home."""
    manager = start_user_manager(tmp_path / "home")
    yield manager
    manager.stop()
