"""The status line in the real Claude Code CLI (2.1.328), interactive in a pseudo-terminal,
offline against the API mock: registered as the installer registers it, it is drawn under
the prompt with the health, the block from the cache, and, once Claude Code has an
answer's usage, this session's context use."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time

from aiki_hooks.cycle.cache import write_cache
from aiki_hooks.install.settings import statusline_entry
from tests.conftest import REPO
from tests.hooklib.test_hooks import issue, snapshot

from .anthropic_mock import AnthropicMock, TextReply

COLUMNS, ROWS = 160, 40
# One terminal output token: a CSI sequence (params, final), another escape, a control, text.
TOKEN = re.compile(r"\x1b\[([0-9;?<>=]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b."
                   r"|([\r\n])|([^\x1b\r\n]+)")


def screen_lines(raw: bytes) -> list[str]:
    """The rows the output leaves on a terminal: Claude Code's renderer moves the cursor
    (to a column, up, down) instead of writing spaces, and erases lines it redraws."""
    grid: dict[int, dict[int, str]] = {}
    row = col = 0
    for match in TOKEN.finditer(raw.decode("utf-8", "replace")):
        params, final, control, chars = match.groups()
        if chars:
            for char in chars:
                if char >= " ":
                    grid.setdefault(row, {})[col] = char
                    col += 1
        elif control == "\r":
            col = 0
        elif control == "\n":
            row += 1
        elif final and not (params and params[0] in "?<>="):
            numbers = [int(n) if n else 0 for n in params.split(";")] if params else []
            count = numbers[0] if numbers and numbers[0] else 1
            if final in "Hf":
                row, col = count - 1, (numbers[1] if len(numbers) > 1 and numbers[1] else 1) - 1
            elif final == "G":
                col = count - 1
            elif final == "C":
                col += count
            elif final == "D":
                col = max(0, col - count)
            elif final == "A":
                row = max(0, row - count)
            elif final in "BE":
                row, col = row + count, 0 if final == "E" else col
            elif final == "K":
                mode, cells = (numbers[0] if numbers else 0), grid.get(row, {})
                for column in [c for c in cells if mode == 2 or (c >= col if mode == 0 else c <= col)]:
                    del cells[column]
            elif final == "J":
                mode = numbers[0] if numbers else 0
                for line in [r for r in grid if mode in (2, 3) or (r > row if mode == 0 else r < row)]:
                    del grid[line]
    return ["".join(grid[r].get(c, " ") for c in range(max(grid[r]) + 1)).rstrip() if grid[r] else ""
            for r in sorted(grid)]


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: Claude Code on the pty
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.raw = b""

    def wait_for(self, *needles: str, timeout: float = 60) -> list[str]:
        """The screen lines that hold each of *needles*, once all are drawn."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.fd], [], [], 0.2)
            if readable:
                try:
                    self.raw += os.read(self.fd, 65536)
                except OSError:
                    break
            shown = screen_lines(self.raw)
            found = [next((line for line in shown if needle in line), None) for needle in needles]
            if all(found):
                return [line for line in found if line is not None]
        raise AssertionError(f"not drawn within {timeout} s: {needles}; screen: {screen_lines(self.raw)!r}")

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_status_line_is_drawn_with_block_and_context(claude_bin, tmp_path):
    home, project, state = tmp_path / "home", tmp_path / "project", tmp_path / "state"
    config_dir = home / ".claude"
    for folder in (config_dir, project):
        folder.mkdir(parents=True)
    (config_dir / "settings.json").write_text(json.dumps({"statusLine": statusline_entry(sys.executable,
                                                                                        REPO / "hooks")}))
    # A first start that is past onboarding, trusts the folder and accepts the test key.
    known = {"hasCompletedOnboarding": True, "theme": "dark",
             "customApiKeyResponses": {"approved": ["sk-ant-test"], "rejected": []},
             "projects": {str(project): {"hasTrustDialogAccepted": True}}}
    for path in (config_dir / ".claude.json", home / ".claude.json"):
        path.write_text(json.dumps(known))
    now = time.time()
    data = snapshot(issues=[issue("tcp:postgres")])
    data["probes"].append({
        "name": "claude-costs", "kind": "costs", "status": "OK", "summary": "today $4.12", "checked_at": data["generated_at"],
        "duration_ms": 5.0, "error_kind": None, "details": [],
        "values": {"today_usd": 4.12, "today_unpriced_tokens": 0, "block_usd": 3.2, "block_unpriced_tokens": 0,
                   "block_ends_at": now + 2 * 3600 + 14 * 60 + 50, "block_first_activity_at": now - 3600,
                   "block_last_activity_at": now - 60, "block_usd_per_hour": 1.45, "block_tokens_per_minute": 9000.0}})
    write_cache(state / "system_health.json", data)

    with AnthropicMock([TextReply("hello there")] * 3) as mock:
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "CLAUDE_CONFIG_DIR": str(config_dir),
               "ANTHROPIC_BASE_URL": mock.url, "ANTHROPIC_API_KEY": "sk-ant-test", "DISABLE_TELEMETRY": "1",
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
               "TERM": "xterm-256color", "AIKI_HOOKS_STATE_DIR": str(state), "NO_COLOR": "1"}
        terminal = Terminal([claude_bin], env, str(project))
        try:
            # Before any answer Claude Code sends no context figure: no ctx part.
            (first,) = terminal.wait_for("aiki ✖ CRITICAL · 1 issue: tcp:postgres · block $3.20 · 2h1")
            assert re.search(r"aiki ✖ CRITICAL · 1 issue: tcp:postgres · block \$3\.20 · 2h1[34]m left · \$1\.45/h · "
                             r"today \$4\.12 · session \$0\.00$", first), first
            terminal.type(b"say hi")
            time.sleep(0.5)
            terminal.type(b"\r")
            _, line = terminal.wait_for("hello there", "tcp:postgres · ctx 0% · block $3.20")
        finally:
            terminal.close()
    assert re.search(r"aiki ✖ CRITICAL · 1 issue: tcp:postgres · ctx 0% · block \$3\.20 · 2h1[34]m left · \$1\.45/h · "
                     r"today \$4\.12 · session \$0\.\d\d$", line), line
    assert len(mock.requests) >= 1
