"""SessionStart: tell the agent the machine's state, from the cache only.

No probes, no network, no waiting: a missing, stale or unreadable cache gets one line
and one detached background refresh. On resume and compact the block is repeated only
if the status or the open issues changed since this session last saw them.
"""

from __future__ import annotations

from ..cache import FRESH, cache_path, read_cache
from . import runtime, text

EVENT = "SessionStart"


def build(hook_input: dict, directory: str, now: float) -> tuple[str | None, dict]:
    """(context to add or None, the session's new memory)."""
    read = read_cache(cache_path(directory), now=now)
    if read.state == FRESH:
        context = text.session_block(read.data, now=now)
        fingerprint = text.block_fingerprint(read.data)
    else:
        started = runtime.start_background_refresh(directory)
        context = text.degraded_line(read.state, read.reason, read.age_seconds, read.data, started)
        fingerprint = read.state
    memory = {
        "fresh": read.state == FRESH,
        "seen": text.issue_memory(read.data) if read.data else {},
        "fingerprint": fingerprint,
        "updated": now,
    }
    source = hook_input.get("source") or "startup"
    session_id = str(hook_input.get("session_id") or "")
    if source in ("resume", "compact") and session_id:
        before = runtime.load_session(directory, session_id)
        if before and before.get("fingerprint") == fingerprint:
            return None, memory
    return context, memory


def run(stdin=None) -> None:
    hook_input = runtime.read_input(stdin)
    directory = runtime.state_dir()
    now = runtime.now()
    context, memory = build(hook_input, directory, now)
    if context:
        runtime.emit({"hookSpecificOutput": {"hookEventName": EVENT, "additionalContext": context}})
    session_id = str(hook_input.get("session_id") or "")
    if session_id:
        runtime.save_session(directory, session_id, memory)
        if context:
            runtime.record_told(directory, session_id, EVENT, context, now=now)
    if hook_input.get("source", "startup") == "startup":
        runtime.prune_sessions(directory, now=now)



def main() -> int:
    return runtime.guarded(EVENT, run)
