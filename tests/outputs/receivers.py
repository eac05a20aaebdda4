"""Loopback receivers that check a webhook body the way Slack, Discord and ntfy document
it, and refuse what breaks a rule (400 with the problems, as the services do), so a test
that posts through the real webhook sink sees a rejection as a delivery failure.

The checks are written from the services' documented payload rules:

- Slack incoming webhooks: a JSON object; `text` is required (the notification, and the
  fallback when `blocks` are used); `blocks` at most 50, each a section or context of
  text objects (`mrkdwn` or `plain_text`) of 1 to 3000 characters; `&`, `<` and `>` in
  text must be escaped as `&amp;`, `&lt;`, `&gt;` (an unescaped `<` is markup: links,
  `<!channel>`).
- Discord execute webhook: `content` (at most 2000) and/or `embeds` (at most 10); an
  embed's title at most 256, description 4096, fields 25 of name 256 and value 1024,
  footer text 2048, all of an embed's text together 6000; `color` an integer;
  `username`/`avatar_url` optional. Our rule on top: `allowed_mentions` parses nothing,
  and issue text cannot form a masked link, an autolink or a `<...>` tag.
- ntfy publish: POST to /<topic> (letters, digits, - and _, at most 64), the message as
  the body (UTF-8, at most 4096 bytes, the default message-size-limit); `Title`,
  `Priority` (1-5 or min, low, default, high, urgent, max) and `Tags` (comma-separated)
  headers; a protected topic wants `Authorization: Bearer <token>` (403 without).

Lengths count UTF-16 code units, as the services' JavaScript does.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    path: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Received:
    request: Request
    problems: list[str] = field(default_factory=list)
    status: int = 200


Check = Callable[[Request], list[str]]


class Receiver:
    """A loopback HTTP server answering POSTs: 400 with the problems *check* finds, else
    *ok_status*. `received` holds every request with its problems and the answer sent."""

    def __init__(self, check: Check | None = None, *, ok_status: int = 200, token: str | None = None) -> None:
        self.received: list[Received] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                # Header values as sent: http.server decodes them as Latin-1.
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.path, headers, self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if token is not None and headers.get("authorization") != f"Bearer {token}":
                    entry = Received(request, ["forbidden"], 403)
                else:
                    problems = check(request) if check else []
                    entry = Received(request, problems, 400 if problems else ok_status)
                outer.received.append(entry)
                answer = "\n".join(entry.problems).encode() or b"ok"
                self.send_response(entry.status)
                self.send_header("Content-Length", str(len(answer)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer)
                outer.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _json_object(request: Request, problems: list[str]) -> dict[str, Any] | None:
    if not request.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content-type {request.headers.get('content-type')!r} is not application/json")
    try:
        body = json.loads(request.body)
    except ValueError as exc:
        problems.append(f"body is not JSON: {exc}")
        return None
    if not isinstance(body, dict):
        problems.append("body is not a JSON object")
        return None
    return body


# --------------------------------------------------------------------------- Slack

SLACK_KEYS = {"text", "blocks", "attachments", "thread_ts", "mrkdwn", "unfurl_links", "unfurl_media"}
SLACK_BLOCK_KEYS = {"section": {"type", "text", "fields", "block_id", "accessory"},
                    "context": {"type", "elements", "block_id"},
                    "header": {"type", "text", "block_id"},
                    "divider": {"type", "block_id"}}
# `&` only as one of the three escapes Slack documents.
_SLACK_BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def _slack_text(value: Any, where: str, problems: list[str], limit: int = 3000) -> None:
    if not isinstance(value, dict) or value.get("type") not in ("mrkdwn", "plain_text"):
        problems.append(f"{where}: not a text object (mrkdwn or plain_text)")
        return
    text = value.get("text")
    if not isinstance(text, str) or not 1 <= units(text) <= limit:
        problems.append(f"{where}.text: not a string of 1 to {limit} characters")
        return
    _slack_markup(text, where, problems)


def _slack_markup(text: str, where: str, problems: list[str]) -> None:
    if "<" in text or ">" in text:
        problems.append(f"{where}: unescaped < or > (markup: a link or a mention)")
    if _SLACK_BARE_AMPERSAND.search(text):
        problems.append(f"{where}: unescaped &")


def slack_problems(request: Request) -> list[str]:
    problems: list[str] = []
    body = _json_object(request, problems)
    if body is None:
        return problems
    if unknown := set(body) - SLACK_KEYS:
        problems.append(f"unknown keys {sorted(unknown)}")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("text: missing (required, and the fallback when blocks are used)")
    else:
        _slack_markup(text, "text", problems)
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        problems.append("blocks: not a list of at most 50 blocks")
        return problems
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in SLACK_BLOCK_KEYS:
            problems.append(f"{where}: unknown block type {kind!r}")
            continue
        if unknown := set(block) - SLACK_BLOCK_KEYS[kind]:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        if kind == "section":
            _slack_text(block.get("text"), f"{where}.text", problems)
        elif kind == "header":
            _slack_text(block.get("text"), f"{where}.text", problems, limit=150)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}.elements: not a list of 1 to 10 elements")
                continue
            for number, element in enumerate(elements):
                _slack_text(element, f"{where}.elements[{number}]", problems)
    for key in ("unfurl_links", "unfurl_media", "mrkdwn"):
        if key in body and not isinstance(body[key], bool):
            problems.append(f"{key}: not a boolean")
    return problems


# --------------------------------------------------------------------------- Discord

DISCORD_KEYS = {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions", "flags", "thread_name",
                "components", "attachments", "poll", "applied_tags"}
DISCORD_EMBED_KEYS = {"title", "type", "description", "url", "timestamp", "color", "footer", "image", "thumbnail",
                      "video", "provider", "author", "fields"}
# Issue text must not form these (our texts have none of them): a masked link, an
# autolink, a `<...>` tag (mentions, custom emoji, timestamps). Escaped with \ is text.
_DISCORD_UNESCAPED = [
    (re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\("), "a masked link"),
    (re.compile(r"(?<!\\)://"), "an autolink"),
    (re.compile(r"(?<!\\)<"), "a <...> tag"),
    (re.compile(r"(?<!\\)@(?:everyone|here)"), "a mass mention"),
]


def _discord_markup(text: str, where: str, problems: list[str]) -> None:
    for pattern, what in _DISCORD_UNESCAPED:
        if pattern.search(text):
            problems.append(f"{where}: unescaped markup forming {what}")


def _limited(value: Any, limit: int, where: str, problems: list[str], *, required: bool = False) -> int:
    if value is None and not required:
        return 0
    if not isinstance(value, str) or not (1 if required else 0) <= units(value) <= limit:
        problems.append(f"{where}: not a string of at most {limit} characters" + (" (required)" if required else ""))
        return 0
    return units(value)


def discord_problems(request: Request) -> list[str]:
    problems: list[str] = []
    body = _json_object(request, problems)
    if body is None:
        return problems
    if unknown := set(body) - DISCORD_KEYS:
        problems.append(f"unknown keys {sorted(unknown)}")
    content, embeds = body.get("content"), body.get("embeds", [])
    _limited(content, 2000, "content", problems)
    if isinstance(content, str):
        _discord_markup(content, "content", problems)
    if not isinstance(embeds, list) or len(embeds) > 10:
        problems.append("embeds: not a list of at most 10 embeds")
        embeds = []
    if not content and not embeds:
        problems.append("neither content nor embeds")
    if body.get("allowed_mentions") != {"parse": []}:
        problems.append("allowed_mentions: not {parse: []} (issue text could ping)")
    if "username" in body:
        name = body["username"]
        if not isinstance(name, str) or not 1 <= units(name) <= 80 or re.search("discord|clyde", name, re.I):
            problems.append("username: not 1 to 80 characters without discord or clyde")
    total = 0
    for index, embed in enumerate(embeds):
        where = f"embeds[{index}]"
        if not isinstance(embed, dict):
            problems.append(f"{where}: not an object")
            continue
        if unknown := set(embed) - DISCORD_EMBED_KEYS:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        total += _limited(embed.get("title"), 256, f"{where}.title", problems)
        total += _limited(embed.get("description"), 4096, f"{where}.description", problems)
        if isinstance(embed.get("description"), str):
            _discord_markup(embed["description"], f"{where}.description", problems)
        fields = embed.get("fields", [])
        if not isinstance(fields, list) or len(fields) > 25:
            problems.append(f"{where}.fields: not a list of at most 25 fields")
            fields = []
        for number, item in enumerate(fields):
            spot = f"{where}.fields[{number}]"
            if not isinstance(item, dict):
                problems.append(f"{spot}: not an object")
                continue
            total += _limited(item.get("name"), 256, f"{spot}.name", problems, required=True)
            total += _limited(item.get("value"), 1024, f"{spot}.value", problems, required=True)
            if "inline" in item and not isinstance(item["inline"], bool):
                problems.append(f"{spot}.inline: not a boolean")
        footer = embed.get("footer")
        if footer is not None:
            if not isinstance(footer, dict):
                problems.append(f"{where}.footer: not an object")
            else:
                total += _limited(footer.get("text"), 2048, f"{where}.footer.text", problems, required=True)
        if isinstance(embed.get("author"), dict):
            total += _limited(embed["author"].get("name"), 256, f"{where}.author.name", problems)
        color = embed.get("color")
        if color is not None and (not isinstance(color, int) or isinstance(color, bool)
                                  or not 0 <= color <= 0xFFFFFF):
            problems.append(f"{where}.color: not an integer 0x000000-0xFFFFFF")
        if "timestamp" in embed:
            try:
                datetime.datetime.fromisoformat(str(embed["timestamp"]).replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{where}.timestamp: not ISO 8601")
    if total > 6000:
        problems.append(f"embeds: {total} characters of text, more than 6000")
    return problems


# --------------------------------------------------------------------------- ntfy

NTFY_PRIORITIES = {"1", "2", "3", "4", "5", "min", "low", "default", "high", "urgent", "max"}
_NTFY_TOPIC = re.compile(r"/[-_A-Za-z0-9]{1,64}")
_ENCODED_WORD = re.compile(r"=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def ntfy_title(request: Request) -> str | None:
    """The Title header as ntfy shows it (an RFC 2047 encoded word decoded)."""
    title = request.headers.get("title", request.headers.get("x-title"))
    if title is None:
        return None
    match = _ENCODED_WORD.fullmatch(title)
    return base64.b64decode(match.group(1)).decode("utf-8") if match else title


def ntfy_problems(request: Request) -> list[str]:
    problems: list[str] = []
    if not _NTFY_TOPIC.fullmatch(request.path):
        problems.append(f"path {request.path!r} is not /<topic>")
    try:
        message = request.body.decode("utf-8")
    except UnicodeDecodeError:
        problems.append("body is not UTF-8")
        message = ""
    if not message.strip() or len(request.body) > 4096:
        problems.append(f"body: {len(request.body)} bytes, not 1 to 4096")
    if _CONTROL.search(message):
        problems.append("body: control characters")
    try:
        title = ntfy_title(request)
    except (ValueError, UnicodeDecodeError):
        problems.append("Title: a broken encoded word")
        title = None
    if title is not None and (not title.strip() or _CONTROL.search(title)):
        problems.append("Title: empty or with control characters")
    priority = request.headers.get("priority", request.headers.get("x-priority"))
    if priority is not None and priority.lower() not in NTFY_PRIORITIES:
        problems.append(f"Priority {priority!r}: not 1-5 or min, low, default, high, urgent, max")
    tags = request.headers.get("tags", request.headers.get("x-tags"))
    if tags is not None and not all(re.fullmatch(r"[\w+-]+", tag.strip()) for tag in tags.split(",")):
        problems.append(f"Tags {tags!r}: not comma-separated tag names")
    if request.headers.get("markdown") or request.headers.get("x-markdown"):
        problems.append("Markdown: the body is plain text")
    return problems
