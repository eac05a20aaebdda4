"""SessionStart: tell the agent the machine's state, from the cache only.

No probes, no network, no waiting: a missing, stale or unreadable cache gets one line
and one detached background refresh. On resume and compact the block is repeated only
if the status or the open issues changed since this session last saw them. A state dir
that fails the trust check (runtime.untrusted) gets one line saying so, and nothing is
read from it or written to it.
"""

from __future__ import annotations

from aiki_hooks.cycle.cache import FRESH, CacheRead, cache_path, read_cache
from aiki_hooks.hooklib import runtime, text

EVENT = "SessionStart"


def build(hook_input: dict, directory: str, now: float) -> tuple[str | None, dict | None, CacheRead | None]:
    """(context to add or None, the session's new memory, the cache as read); memory and
    cache None for a state dir that fails the trust check: nothing may be read from it
    or written to it."""
    untrusted = runtime.untrusted(directory)
    if untrusted:
        return text.untrusted_line(untrusted), None, None
    read = read_cache(cache_path(directory), now=now)
    fresh = read.data if read.state == FRESH else None  # fresh always has data
    if fresh is not None:
        context = text.session_block(fresh, now=now)
        fingerprint = text.block_fingerprint(fresh)
    else:
        started = runtime.start_background_refresh(directory, read.stamp)
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
            return None, memory, read
    return context, memory, read


def run(stdin=None) -> None:
    hook_input = runtime.read_input(stdin)
    directory = runtime.state_dir()
    now = runtime.now()
    context, memory, read = build(hook_input, directory, now)
    if context:
        runtime.emit({"hookSpecificOutput": {"hookEventName": EVENT, "additionalContext": context}})
    if memory is None or read is None:  # untrusted: one line, and no refresh, memory or journal
        return
    session_id = str(hook_input.get("session_id") or "")
    if session_id:
        runtime.save_session(directory, session_id, memory)
        if context:
            runtime.record_told(directory, session_id, EVENT, context, now=now)
    source = hook_input.get("source") or "startup"
    if source == "startup":
        runtime.prune_sessions(directory, now=now)
    if source in ("startup", "clear", "fork"):  # each of these is a new session id
        if session_id:
            journal_session_start(directory, session_id, hook_input.get("cwd"), now, read)


def journal_session_start(directory: str, session_id: str, cwd, now: float, read: CacheRead) -> None:
    """Note in the issue journal (which the refresher feeds to mem0) that this session
    began while issues were open: once per session and occurrence."""
    data = read.data if read.state == FRESH else None
    if not data:
        return
    from aiki_hooks.hooklib import journaling

    journaling.note_session_event(directory, data, data.get("issues"), event=EVENT, told=False,
                                  session_id=session_id, cwd=cwd, now=now)


def main() -> int:
    return runtime.guarded(EVENT, run)
