"""The Claude Code plugin, proven with the real CLI: the built plugin folder validates,
installs from its local marketplace, and a session with only the plugin (no hooks in
settings.json) receives the status block."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from aiki_hooks.plugin import build_plugin

from ..conftest import REPO, cli_env
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
