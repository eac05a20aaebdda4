"""The Claude Code settings entries that register our hooks.

One definition, used by the installer and by the end-to-end tests, so the tests run the
hooks exactly as users get them: an absolute interpreter path (a pyenv shim would cost
~100 ms per call) and a `timeout` in seconds.
"""

from __future__ import annotations

import shlex
from pathlib import Path

SESSION_START_MATCHER = "startup|resume|clear|compact"
SESSION_START_TIMEOUT_SECONDS = 5
PRE_TOOL_USE_TIMEOUT_SECONDS = 2
HOOK_SCRIPTS = {"SessionStart": "session_start.py", "PreToolUse": "pre_tool_use.py"}


def hook_command(python: str | Path, script: str | Path) -> str:
    return f"{shlex.quote(str(python))} {shlex.quote(str(script))}"


def hook_entries(python: str | Path, hooks_dir: str | Path) -> dict[str, list[dict]]:
    """The value of settings.json's "hooks" key for our two hooks."""
    hooks_dir = Path(hooks_dir)
    return {
        "SessionStart": [{
            "matcher": SESSION_START_MATCHER,
            "hooks": [{"type": "command", "command": hook_command(python, hooks_dir / HOOK_SCRIPTS["SessionStart"]),
                       "timeout": SESSION_START_TIMEOUT_SECONDS}],
        }],
        "PreToolUse": [{
            "hooks": [{"type": "command", "command": hook_command(python, hooks_dir / HOOK_SCRIPTS["PreToolUse"]),
                       "timeout": PRE_TOOL_USE_TIMEOUT_SECONDS}],
        }],
    }


def statusline_entry(python: str | Path, hooks_dir: str | Path) -> dict:
    return {"type": "command", "command": hook_command(python, Path(hooks_dir) / "statusline.py"), "padding": 0}
