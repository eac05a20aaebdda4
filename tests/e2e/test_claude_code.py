"""The hooks proven with the real Claude Code CLI (pinned version, see conftest) against a
mock of the Anthropic API on 127.0.0.1. The health state comes from the real engine: a
Nagios-style plugin whose answer a flag file controls, published by `aiki-hooks refresh`."""

from __future__ import annotations

import json
import time

from aiki_hooks.cycle.cache import read_cache

from .anthropic_mock import AnthropicMock, TextReply, ToolCall, text_of

PLUGIN = """#!/bin/sh
if [ -e "{flag}" ]; then echo "queue stuck: 9000 jobs waiting | jobs=9000"; exit 2; fi
echo "queue flowing | jobs=3"; exit 0
"""


def setup_queue(session, tmp_path, extra: str = "") -> tuple:
    flag = tmp_path / "queue-stuck"
    plugin = tmp_path / "check_queue"
    plugin.write_text(PLUGIN.format(flag=flag))
    plugin.chmod(0o755)
    session.write_aiki_config(
        "[resources]\nenabled = false\n"
        f'[[probes.command]]\nname = "queue"\ncommand = ["{plugin}"]\n' + extra
    )
    return flag, plugin


def refresh(session) -> None:
    result = session.aiki("refresh")
    assert result.returncode == 0, result.stderr


def system_messages(body: dict) -> list[str]:
    out = []
    for message in body.get("messages", []):
        if message.get("role") != "system":
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        else:
            out.extend(part.get("text", "") for part in content or [] if isinstance(part, dict))
    return out


def tool_results(body: dict) -> list[dict]:
    return [part for message in body.get("messages", []) if isinstance(message.get("content"), list)
            for part in message["content"] if isinstance(part, dict) and part.get("type") == "tool_result"]


def test_first_request_carries_the_status_block(claude_session, tmp_path):
    setup_queue(claude_session, tmp_path)
    refresh(claude_session)
    with AnthropicMock([ToolCall("Bash", {"command": "echo hi", "description": "say hi"}), TextReply("Done.")]) as mock:
        result = claude_session.run(mock)
    assert result["is_error"] is False
    first, second = mock.requests[0], mock.requests[1]
    (block,) = [m for m in system_messages(first) if m.startswith("SessionStart hook additional context:")]
    assert "System health" in block and ": OK." in block
    assert "Services OK: queue queue flowing." in block
    # Nothing changed during the session: PreToolUse stayed silent.
    assert "PreToolUse:Bash hook additional context" not in text_of(second)


def test_new_issue_during_the_session_reaches_the_model_once(claude_session, tmp_path):
    flag, _ = setup_queue(claude_session, tmp_path)
    refresh(claude_session)

    def queue_breaks_after_first_request(index, body):
        if index == 0:
            flag.touch()
            refresh(claude_session)

    script = [ToolCall("Bash", {"command": "echo one", "description": "first"}),
              ToolCall("Bash", {"command": "echo two", "description": "second"}),
              TextReply("Done.")]
    with AnthropicMock(script, before_reply=queue_breaks_after_first_request) as mock:
        claude_session.run(mock)
    first, second, third = mock.requests[:3]
    assert "queue stuck" not in text_of(first)
    notices = [m for m in system_messages(second) if m.startswith("PreToolUse:Bash hook additional context:")]
    assert len(notices) == 1, system_messages(second)
    assert "System health change: command:queue CRITICAL since" in notices[0]
    assert "queue stuck: 9000 jobs waiting" in notices[0]
    # The second tool call sees no further change: no second notice.
    later = [m for m in system_messages(third) if m.startswith("PreToolUse:Bash hook additional context:")]
    assert later == notices


def test_guard_denies_the_tool_and_the_reason_reaches_the_model(claude_session, tmp_path):
    flag, _ = setup_queue(claude_session, tmp_path,
                          '[[guard.rules]]\nname = "queue-stuck"\nissue = "command:queue"\ntools = ["Bash"]\n')
    flag.touch()
    refresh(claude_session)
    marker = tmp_path / "bash-ran"
    script = [ToolCall("Bash", {"command": f"touch {marker}", "description": "touch"}), TextReply("Understood.")]
    with AnthropicMock(script) as mock:
        result = claude_session.run(mock)
    assert not marker.exists(), "the guard should have stopped the Bash call"
    (denied,) = tool_results(mock.requests[1])
    assert denied["is_error"] is True
    content = json.dumps(denied["content"])
    assert "Bash is blocked by the aiki-hooks guard rule \\\"queue-stuck\\\" while command:queue is CRITICAL" in content
    assert "queue stuck: 9000 jobs waiting" in content
    assert result.get("permission_denials"), result


def test_corrupt_cache_still_runs_with_one_degraded_line_and_heals(claude_session, tmp_path):
    setup_queue(claude_session, tmp_path)
    claude_session.state_dir.mkdir(mode=0o700)
    cache = claude_session.state_dir / "system_health.json"
    cache.write_text('{"schema_version": 1, "generated_at": ')
    with AnthropicMock([TextReply("Hello.")]) as mock:
        result = claude_session.run(mock, "hello")
    assert result["is_error"] is False
    (line,) = [m for m in system_messages(mock.requests[0]) if m.startswith("SessionStart hook additional context:")]
    degraded = line.split("\n\n")[0]
    assert "System health data unreadable (cache is not valid JSON" in degraded
    assert "A background refresh was started." in degraded
    # The detached refresh rewrites the cache on its own.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and read_cache(cache).state != "fresh":
        time.sleep(0.1)
    assert read_cache(cache).state == "fresh"
