"""Claude Code `statusLine` command: one line with the worst status, the issues, this
session's context use, the 5-hour block (cost, time left, burn rate) and the costs,
fitted to $COLUMNS. Reads the cache only."""

from __future__ import annotations

import os
import sys

from aiki_hooks.cycle.cache import cache_path, read_cache
from aiki_hooks.hooklib import runtime, text

DEFAULT_COLUMNS = 80
# The tokens that fill the context window (Claude Code's used_percentage leaves output out).
CONTEXT_TOKEN_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def context_percent(hook_input: dict) -> float | None:
    """This session's context use in percent from Claude Code's `context_window`: its
    used_percentage, else current_usage over context_window_size; None when absent, null
    or not a number, or outside 0..100 (a figure that cannot be right is not shown)."""
    window = hook_input.get("context_window")
    if not isinstance(window, dict):
        return None
    used = text.finite_number(window.get("used_percentage"))
    if used is None:
        size, usage = text.finite_number(window.get("context_window_size")), window.get("current_usage")
        if size is None or size <= 0 or not isinstance(usage, dict):
            return None
        total = 0.0
        for key in CONTEXT_TOKEN_KEYS:
            count = text.finite_number(usage.get(key))
            if count is None or count < 0:
                return None
            total += count
        used = total / size * 100
    return used + 0.0 if 0 <= used <= 100 else None  # (+ 0.0: no "-0%" for a -0.0)


def session_cost(hook_input: dict) -> float | None:
    cost = hook_input.get("cost")
    value = text.finite_number(cost.get("total_cost_usd")) if isinstance(cost, dict) else None
    return value if value is not None and value >= 0 else None


def columns_of(env) -> int:
    try:
        return int(env.get("COLUMNS", "") or DEFAULT_COLUMNS)
    except ValueError:
        return DEFAULT_COLUMNS


def render(hook_input: dict, directory: str, now: float, env=None) -> str:
    env = os.environ if env is None else env
    columns = columns_of(env)
    if runtime.untrusted(directory):
        return text.untrusted_status(columns)
    read = read_cache(cache_path(directory), now=now)
    return text.status_line(read.data, state=read.state, age=read.age_seconds, session_cost_usd=session_cost(hook_input),
                            columns=columns, color=not env.get("NO_COLOR"),
                            context_percent=context_percent(hook_input), now=now)


def main() -> int:
    runtime.install_deadline()
    try:
        line = render(runtime.read_input(), runtime.state_dir(), runtime.now())
        runtime.disarm_deadline()
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - an empty status line is better than a broken one
        pass
    finally:
        runtime.end_deadline()
    return 0
