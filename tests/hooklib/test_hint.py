"""What the agent reads of a check's `hint`: beside that issue in the SessionStart block,
in PreToolUse's change notice and in a guard's reason, attributed to the user's config and
quoted, within the text budget (shortened, then left out, before an issue is lost); and
in `aiki-hooks status`. Run through the real hook scripts too."""

from __future__ import annotations

import time

from aiki_hooks.cycle.cache import write_cache
from aiki_hooks.hooklib import text
from aiki_hooks.model.result import Issue
from aiki_hooks.model.status import Status
from aiki_hooks.render import render_status
from tests.hooklib.test_hooks import context_of, hook_env, run_hook, snapshot  # noqa: F401 - hook_env is a fixture

RUNBOOK = "restart: systemctl --user restart aiki-memory; logs in ~/aiki/logs"
FRAMED = f'. Hint (from the user\'s config): "{RUNBOOK}"'


def issue(issue_id, severity=Status.CRITICAL, summary="connection refused", hint=None, since=None):
    return Issue(id=issue_id, severity=severity, summary=summary, since=since or time.time() - 300, probe="p",
                 hint=hint)


def test_the_block_carries_the_hint_beside_its_issue_only():
    now = time.time()
    data = snapshot(issues=[issue("http:qdrant", hint=RUNBOOK, since=now - 300),
                            issue("disk:/", Status.WARNING, "91% used", since=now - 60)], generated_at=now)
    block = text.session_block(data, now=now)
    assert f"http:qdrant CRITICAL for 5 min: connection refused{FRAMED}; disk:/ WARNING for 1 min: 91% used." in block
    assert block.count("Hint (from the user's config)") == 1


def test_no_hint_no_words_about_one():
    now = time.time()
    data = snapshot(issues=[issue("http:qdrant")], generated_at=now)
    assert "Hint" not in text.session_block(data, now=now)
    assert "Hint" not in (text.change_notice({}, data, now=now) or "")


def test_a_crowded_block_shortens_then_drops_hints_before_losing_an_issue():
    now = time.time()
    long_hint = "h" * 200
    summaries = [f"problem {n} " + "x" * 100 for n in range(5)]
    issues = [issue(f"command:c{n}", summary=summaries[n], hint=long_hint) for n in range(5)]
    block = text.session_block(snapshot(issues=issues, generated_at=now), now=now)
    assert len(block) <= text.ISSUE_BLOCK_LIMIT
    for summary in summaries:  # every issue and its whole summary still told
        assert summary in block
    assert long_hint not in block

    two = [issue("command:a", hint=long_hint), issue("command:b", hint=long_hint)]
    roomy = text.session_block(snapshot(issues=two, generated_at=now), now=now)
    assert roomy.count(f'"{long_hint}"') == 2  # in full when there is room

    three = [issue(f"command:{n}", summary="s" * 120, hint=long_hint) for n in "abc"]
    tight = text.session_block(snapshot(issues=three, generated_at=now), now=now)
    assert len(tight) <= text.ISSUE_BLOCK_LIMIT and long_hint not in tight
    assert tight.count("Hint (from the user's config)") == 3  # shortened, not dropped
    assert tight.count('hhhh…"') == 3


def test_a_hint_from_elsewhere_is_clipped_and_one_line():
    # The refresher bounds and cleans hints; a cache from elsewhere is clipped all the same.
    hint = "line one\nline two\t" + "z" * 500
    phrase = text.hint_phrase({"hint": hint})
    assert "\n" not in phrase and "\t" not in phrase
    assert len(phrase) <= len(". Hint (from the user's config): \"\"") + text.HINT_CHARS[0]
    assert text.hint_phrase({"hint": 5}) == "" and text.hint_phrase({"hint": "  "}) == ""


def test_change_notice_tells_the_hint_for_new_and_changed_issues_not_resolved_ones():
    now = time.time()
    since = now - 120
    data = snapshot(issues=[issue("command:queue", hint=RUNBOOK, since=since),
                            issue("tcp:db", Status.CRITICAL, hint="pg_ctl restart", since=since)], generated_at=now)
    seen = {"tcp:db": ["WARNING", None, "slow"], "http:gone": ["CRITICAL", None, "refused"]}
    notice = text.change_notice(seen, data, now=now)
    assert f"command:queue CRITICAL since {time.strftime('%H:%M', time.localtime(since))}: connection refused{FRAMED}" \
        in notice
    assert 'tcp:db escalated WARNING -> CRITICAL: connection refused. Hint (from the user\'s config): "pg_ctl restart"' \
        in notice
    assert "http:gone resolved (was CRITICAL)" in notice and notice.count("Hint") == 2
    # Nothing changed: no notice, hint or not.
    assert text.change_notice(text.issue_memory(data), data, now=now) is None


def test_a_long_change_notice_shortens_hints_to_keep_every_change():
    now = time.time()
    issues = [issue(f"command:c{n}", summary="s" * 130, hint="k" * 200) for n in range(5)]
    notice = text.change_notice({}, snapshot(issues=issues, generated_at=now), now=now)
    assert len(notice) <= text.ISSUE_BLOCK_LIMIT
    assert all(f"command:c{n} CRITICAL" in notice for n in range(5))
    assert notice.endswith("(now CRITICAL, 5 open issue(s)).")


def test_the_guard_reason_carries_the_hint():
    now = time.time()
    data = snapshot(issues=[issue("command:queue", hint=RUNBOOK)], generated_at=now)
    rules = [{"name": "queue-stuck", "issue": "command:queue", "tools": ["Bash"], "decision": "deny"}]
    decision, reason = text.guard_decision(rules, data, "Bash", now=now)
    assert decision == "deny"
    assert reason.endswith(f"(connection refused){FRAMED}.")


def test_status_report_shows_the_hint_under_its_issue():
    now = time.time()
    data = snapshot(issues=[issue("command:queue", hint=RUNBOOK + "\x1b]0;pwned\x07"), issue("tcp:db")],
                    generated_at=now)
    lines = render_status(data, now=now).splitlines()
    at = next(i for i, line in enumerate(lines) if "command:queue" in line)
    assert lines[at + 1].strip() == f"hint: {RUNBOOK}"
    assert sum("hint:" in line for line in lines) == 1
    assert "\x1b" not in "\n".join(lines)


def test_the_real_hooks_tell_the_hint(hook_env):  # noqa: F811 - the fixture
    env, state = hook_env
    now = time.time()
    write_cache(state / "system_health.json", snapshot(generated_at=now))
    first = context_of(run_hook("session_start", {"session_id": "s1", "source": "startup"}, env), "SessionStart")
    assert "Hint" not in first
    told = Issue(id="command:queue", severity=Status.CRITICAL, summary="queue stuck", since=now - 300, probe="queue",
                 hint=RUNBOOK, occurrence_id="0" * 32)
    write_cache(state / "system_health.json", snapshot(issues=[told], generated_at=now))
    notice = context_of(run_hook("pre_tool_use", {"session_id": "s1", "tool_name": "Bash"}, env), "PreToolUse")
    assert "command:queue CRITICAL since" in notice and f"queue stuck{FRAMED}" in notice
    block = context_of(run_hook("session_start", {"session_id": "s2", "source": "startup"}, env), "SessionStart")
    assert f"command:queue CRITICAL for 5 min: queue stuck{FRAMED}." in block
    # What the hooks journal of it (and so what the mem0 spool gets) carries the hint too.
    from aiki_hooks.issues import journal

    records = [r for r in journal.read(str(state)) if r["issue_id"] == "command:queue"]
    assert {r["transition"] for r in records} == {"session_told", "session_began"}
    assert all(r["hint"] == RUNBOOK for r in records)
