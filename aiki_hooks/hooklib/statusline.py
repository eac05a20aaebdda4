"""Claude Code `statusLine` command: one line with the worst status, the issues and the
costs, fitted to $COLUMNS."""

from __future__ import annotations

import os
import sys

from aiki_hooks.cycle.cache import cache_path, read_cache
from aiki_hooks.hooklib import runtime, text

DEFAULT_COLUMNS = 80


def render(hook_input: dict, directory: str, now: float, env=None) -> str:
    env = os.environ if env is None else env
    try:
        columns = int(env.get("COLUMNS", "") or DEFAULT_COLUMNS)
    except ValueError:
        columns = DEFAULT_COLUMNS
    if runtime.untrusted(directory):
        return text.untrusted_status(columns)
    read = read_cache(cache_path(directory), now=now)
    cost = (hook_input.get("cost") or {}).get("total_cost_usd") if isinstance(hook_input.get("cost"), dict) else None
    session_cost = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
    return text.status_line(read.data, state=read.state, age=read.age_seconds, session_cost_usd=session_cost,
                            columns=columns, color=not env.get("NO_COLOR"))


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
