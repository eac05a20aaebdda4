"""PreToolUse: silent unless the health state changed since this session last saw it,
plus the opt-in guard (deny / ask before some tools while the machine is in a bad state).

This runs on every tool call. The silent path reads the cache and the session's small
memory file, compares, and exits without output or writes. With a state dir that fails
the trust check it reads and writes nothing and says why on stderr only (SessionStart
told the agent; repeating it on every tool call would bury the agent's context).
"""

from __future__ import annotations

from aiki_hooks.cycle.cache import FRESH, cache_path, read_cache
from aiki_hooks.hooklib import runtime, text

EVENT = "PreToolUse"


def build(hook_input: dict, directory: str, now: float):
    """(hookSpecificOutput or None, new session memory or None if unchanged, notice,
    the open issues the notice tells of as new or changed (for the journal), the snapshot)."""
    session_id = str(hook_input.get("session_id") or "")
    memory = (runtime.load_session(directory, session_id) if session_id else None) or {"fresh": True, "seen": {}}
    read = read_cache(cache_path(directory), now=now)
    decision = notice = None
    new_memory = None
    told: list = []
    data = read.data if read.state == FRESH else None  # fresh always has data
    if data is not None:
        guard_rules = (data.get("hooks") or {}).get("guard") or []
        decision = text.guard_decision(guard_rules, data, str(hook_input.get("tool_name") or ""), now=now)
        if not memory.get("fresh", True):
            notice = "System health data is current again. " + text.session_block(data, now=now)
        else:
            notice = text.change_notice(memory.get("seen") or {}, data, now=now)
        if notice:
            told = text.changed_issues(memory.get("seen") or {}, data)
            new_memory = {**memory, "fresh": True, "seen": text.issue_memory(data),
                          "fingerprint": text.block_fingerprint(data), "updated": now}
    elif memory.get("fresh", True):
        # Tell once that the data went stale or bad; the guard fails open without data.
        started = runtime.start_background_refresh(directory, read.stamp)
        notice = text.degraded_line(read.state, read.reason, read.age_seconds, read.data, started)
        new_memory = {**memory, "fresh": False, "fingerprint": read.state, "updated": now}

    if not decision and not notice:
        return None, None, None, [], None
    output: dict = {"hookEventName": EVENT}
    if decision:
        output["permissionDecision"], output["permissionDecisionReason"] = decision
    if notice:
        output["additionalContext"] = notice
    return output, new_memory, notice, told, read.data


def run(stdin=None) -> None:
    hook_input = runtime.read_input(stdin)
    directory = runtime.state_dir()
    untrusted = runtime.untrusted(directory)
    if untrusted:
        # SessionStart told the agent; on every tool call the least that is honest is the
        # debug log. No guard either: rules from an untrusted dir are not ours.
        runtime.note_failure(EVENT, PermissionError(f"state dir not trusted: {untrusted}"))
        return
    now = runtime.now()
    output, memory, notice, told, data = build(hook_input, directory, now)
    if output is None:
        return
    runtime.emit({"hookSpecificOutput": output})
    session_id = str(hook_input.get("session_id") or "")
    if session_id and memory is not None:
        runtime.save_session(directory, session_id, memory)
    if session_id and notice:
        runtime.record_told(directory, session_id, EVENT, notice, now=now)
    if session_id and "permissionDecision" in output:
        runtime.record_told(directory, session_id, EVENT + ":guard", output["permissionDecisionReason"], now=now)
    if session_id and told:
        from aiki_hooks.hooklib import journaling

        journaling.note_session_event(directory, data, told, event=EVENT, told=True, session_id=session_id,
                                      cwd=hook_input.get("cwd"), now=now)



def main() -> int:
    return runtime.guarded(EVENT, run)
