"""A check's `hint` reaches the model through the real Claude Code CLI: a real config with
a hint, a real `aiki-hooks refresh` with a failing check, the hooks as installed, and the
requests the CLI sends to the API mock."""

from __future__ import annotations

from .anthropic_mock import AnthropicMock, TextReply, ToolCall
from .test_claude_code import refresh, setup_queue, system_messages

RUNBOOK = "restart: systemctl --user restart aiki-queue; logs in ~/aiki/logs"
HINT = f'hint = "{RUNBOOK}"\n'  # right after the queue's table: that check's key
FRAMED = f'Hint (from the user\'s config): "{RUNBOOK}"'


def test_session_start_block_carries_the_hint_of_the_failing_check(claude_session, tmp_path):
    flag, _ = setup_queue(claude_session, tmp_path, HINT)
    flag.touch()
    refresh(claude_session)
    with AnthropicMock([TextReply("Noted.")]) as mock:
        result = claude_session.run(mock, "hello")
    assert result["is_error"] is False
    (block,) = [m for m in system_messages(mock.requests[0]) if m.startswith("SessionStart hook additional context:")]
    told = block.split("\n\n")[0]
    assert "Issues (1): command:queue CRITICAL for " in told
    assert f" s: queue stuck: 9000 jobs waiting. {FRAMED}." in told, told


def test_change_notice_carries_the_hint_and_a_healthy_check_tells_none(claude_session, tmp_path):
    flag, _ = setup_queue(claude_session, tmp_path, HINT)
    refresh(claude_session)

    def queue_breaks_after_first_request(index, body):
        if index == 0:
            flag.touch()
            refresh(claude_session)

    script = [ToolCall("Bash", {"command": "echo one", "description": "first"}), TextReply("Done.")]
    with AnthropicMock(script, before_reply=queue_breaks_after_first_request) as mock:
        claude_session.run(mock)
    first, second = mock.requests[:2]
    assert not any("Hint" in m for m in system_messages(first))  # the check was OK: no hint
    (notice,) = [m for m in system_messages(second) if m.startswith("PreToolUse:Bash hook additional context:")]
    assert "System health change: command:queue CRITICAL since" in notice
    assert f"queue stuck: 9000 jobs waiting. {FRAMED} (now CRITICAL, 1 open issue(s))." in notice, notice
