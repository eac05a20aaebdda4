"""A mock of the Anthropic Messages API on 127.0.0.1 for driving the real Claude Code CLI.

It answers `POST /v1/messages` with the streaming (SSE) event sequence the CLI expects,
from a script of replies consumed one per request, and keeps every request body so tests
can assert what reached the model. `count_tokens` gets a fixed answer.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class ToolCall:
    name: str
    input: dict


@dataclass
class TextReply:
    text: str


Reply = ToolCall | TextReply


@dataclass
class MockState:
    script: list[Reply]
    requests: list[dict] = field(default_factory=list)
    before_reply: Callable[[int, dict], None] | None = None  # (request index, body)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Any = field(default_factory=lambda: itertools.count(1))


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def stream_for(reply: Reply, model: str, message_id: str) -> bytes:
    events = [_sse("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1}}})]
    if isinstance(reply, ToolCall):
        events += [
            _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": f"toolu_{message_id}", "name": reply.name, "input": {}}}),
            _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(reply.input)}}),
        ]
        stop = "tool_use"
    else:
        events += [
            _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
            _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": reply.text}}),
        ]
        stop = "end_turn"
    events += [
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": {"output_tokens": 5}}),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(events)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "AnthropicMock"

    def do_POST(self) -> None:  # noqa: N802 - http.server's dispatch name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if "/count_tokens" in self.path:
            return self._json({"input_tokens": 10})
        if not self.path.startswith("/v1/messages"):
            return self._json({"error": "not mocked"}, status=404)
        state = self.server.state
        with state.lock:
            index = len(state.requests)
            state.requests.append(body)
            reply = state.script[index] if index < len(state.script) else TextReply("Done.")
            if state.before_reply is not None:
                state.before_reply(index, body)
        if not body.get("stream"):
            return self._json({"id": f"msg_{index}", "type": "message", "role": "assistant",
                               "model": body.get("model", "claude"), "stop_reason": "end_turn",
                               "content": [{"type": "text", "text": "ok"}],
                               "usage": {"input_tokens": 10, "output_tokens": 1}})
        payload = stream_for(reply, body.get("model", "claude"), f"msg_{next(state.ids)}")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        self._json({})

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, data: dict, status: int = 200) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


class AnthropicMock(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, script: list[Reply], before_reply=None) -> None:
        self.state = MockState(script=list(script), before_reply=before_reply)
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def requests(self) -> list[dict]:
        return self.state.requests

    def __enter__(self) -> "AnthropicMock":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


def text_of(body: dict) -> str:
    """Every text the request carries to the model (system, messages, tool results)."""
    return json.dumps(body, ensure_ascii=False)
