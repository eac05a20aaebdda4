"""Incremental scan of Claude Code transcripts into the cost index.

Each refresh stats every `projects/**/*.jsonl` under each Claude config dir and reads
only the bytes appended since the last one, up to the last complete line (a line still
being written is left for the next refresh). A file whose inode changed or that shrank
is forgotten and read again from the start; a file that vanished is forgotten. A file
that cannot be read is skipped and tried again next time.

Each line that can carry usage (it holds `"output_tokens"`) or Claude Code's own
session price (`"type":"cost-state"`) is parsed as JSON; the others (tool results, user
turns: most of a transcript's bytes) cannot count and are not parsed. A response Claude
Code wrote once per content block is taken once (its first line).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Sequence

import orjson

from .prices import PriceBook
from .store import CostStore, FileState, Message

# A single line larger than this (a pathological tool result) is skipped, never held whole.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Every usage object has output_tokens: a line without it has no tokens to count.
USAGE_MARK = b'"output_tokens"'
COST_STATE_MARK = b'"type":"cost-state"'
# A token count is a whole number below 2**53 (JSON's exact integers, RFC 8259 section 6):
# beyond that a line is corrupt, and its count would not survive the index (or ccusage).
MAX_COUNT = 2**53


def claude_config_dirs(configured: Sequence[str] = (), env=None) -> list[str]:
    """`[costs] claude_config_dirs`, else $CLAUDE_CONFIG_DIR (comma-separated), else
    ~/.claude and ~/.config/claude."""
    env = os.environ if env is None else env
    if configured:
        return [os.path.expanduser(d) for d in configured]
    if env.get("CLAUDE_CONFIG_DIR"):
        return [os.path.expanduser(d.strip()) for d in env["CLAUDE_CONFIG_DIR"].split(",") if d.strip()]
    home = env.get("HOME") or os.path.expanduser("~")
    return [os.path.join(home, ".claude"), os.path.join(home, ".config", "claude")]


def transcript_files(config_dirs: Sequence[str]) -> list[str]:
    """Every *.jsonl below each dir's projects/ (subagent folders included), sorted."""
    found = set()
    for config_dir in config_dirs:
        for folder, _, names in os.walk(os.path.join(config_dir, "projects")):
            found.update(os.path.join(folder, name) for name in names if name.endswith(".jsonl"))
    return sorted(found)


@dataclass
class ScanStats:
    """What one refresh of the index read, found and skipped."""

    files: int = 0
    files_read: int = 0
    files_forgotten: int = 0
    bytes_read: int = 0
    usage_lines: int = 0  # lines with usage read, before deduplication
    bad_lines: int = 0
    oversized_lines: int = 0
    vanished: int = 0
    unreadable: int = 0  # files skipped on an OS error (their messages in `errors`)
    errors: list[str] = field(default_factory=list)


def parse_timestamp(text: object) -> float | None:
    """ISO 8601 with or without fractional seconds, `Z` or an offset."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    try:
        moment = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()


def _count(value: object) -> int | None:
    """A token count: a whole number in [0, 2**53), as an int; None for anything else."""
    if type(value) is float and value.is_integer():
        value = int(value)
    return value if type(value) is int and 0 <= value < MAX_COUNT else None


def usage_of(entry: dict) -> dict | None:
    """The usage object of an assistant line (a model call); None for other lines."""
    body = entry.get("message")
    usage = body.get("usage") if entry.get("type") == "assistant" and isinstance(body, dict) else None
    return usage if isinstance(usage, dict) else None


def response_key(entry: dict) -> str | None:
    """`message.id:requestId` of an assistant line, as ccusage deduplicates: Claude Code
    writes a response once per content block. None where an id is missing."""
    message_id = entry["message"].get("id")
    request_id = entry.get("requestId") or entry.get("requestRef")
    return f"{message_id}:{request_id}" if message_id and request_id else None


def message_from_line(entry: dict, prices: PriceBook, key: str) -> Message | None:
    """The usage of one assistant line (see usage_of) as a priced Message; None where a
    count is not valid, there is no timestamp or not a single token."""
    body = entry["message"]
    usage = body["usage"]
    input_tokens, output = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if input_tokens is None or output is None:
        return None
    cache_write = _count(usage.get("cache_creation_input_tokens", 0)) or 0
    cache_read = _count(usage.get("cache_read_input_tokens", 0)) or 0
    split = usage.get("cache_creation")
    # Without the split, all cache writes are 5-minute writes.
    write_1h = (_count(split.get("ephemeral_1h_input_tokens", 0)) or 0) if isinstance(split, dict) else 0
    write_1h = min(write_1h, cache_write)
    write_5m = cache_write - write_1h
    ts = parse_timestamp(entry.get("timestamp"))
    if ts is None or not (input_tokens or output or cache_write or cache_read):
        return None
    model = str(body.get("model") or "unknown")
    cost = prices.cost(model, ts, input=input_tokens, output=output, cache_write_5m=write_5m,
                       cache_write_1h=write_1h, cache_read=cache_read)
    return Message(key=key, ts=ts, session=str(entry.get("sessionId") or ""), model=model,
                   sidechain=1 if entry.get("isSidechain") else 0, input=input_tokens, output=output,
                   cache_write_5m=write_5m, cache_write_1h=write_1h, cache_read=cache_read, cost=cost)


def session_costs_from_line(entry: dict) -> tuple[str, dict[str, float]] | None:
    """Claude Code's own running price of a session, per model (`cost-state` lines)."""
    if entry.get("type") != "cost-state" or not isinstance(entry.get("modelUsage"), dict):
        return None
    costs = {}
    for model, usage in entry["modelUsage"].items():
        if isinstance(usage, dict) and isinstance(usage.get("costUSD"), (int, float)):
            costs[str(model)] = float(usage["costUSD"])
    return str(entry.get("sessionId") or ""), costs


def parse_line(line: bytes) -> object:
    """The JSON value of one line. Invalid UTF-8 (a cut multi-byte character, a binary
    paste) is decoded with replacement, as ccusage does, so the line's tokens still
    count. Raises ValueError for what is not JSON."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return orjson.loads(line.decode("utf-8", "replace"))


@dataclass
class FileRead:
    """What reading one file after its offset found."""

    messages: list[Message] = field(default_factory=list)  # each response once (its first line)
    session_costs: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    offset: int = 0  # after the last complete line read


def read_file(path: str, file_id: int, offset: int, prices: PriceBook, stats: ScanStats) -> FileRead:
    """Read the complete lines of *path* after *offset*. A line still being written is
    left for the next refresh; one longer than MAX_LINE_BYTES is skipped (once complete).
    Raises OSError."""
    found = FileRead(offset=offset)
    taken: set[str] = set()  # the keys of found.messages
    with open(path, "rb") as file:
        file.seek(offset)
        while True:
            line = file.readline(MAX_LINE_BYTES)
            stats.bytes_read += len(line)
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                stats.oversized_lines += 1
                length = len(line)
                while line and not line.endswith(b"\n"):  # skipped to its end, a piece at a time
                    line = file.readline(MAX_LINE_BYTES)
                    stats.bytes_read += len(line)
                    length += len(line)
                if not line:  # not complete yet: skipped again next time
                    break
                found.offset += length
                continue
            if not line.endswith(b"\n"):  # the end of the file, or a line still being written
                break
            start = found.offset
            found.offset += len(line)
            if USAGE_MARK not in line and COST_STATE_MARK not in line:
                continue
            try:
                entry = parse_line(line)
            except ValueError:
                stats.bad_lines += 1
                continue
            if not isinstance(entry, dict):
                continue
            if usage_of(entry) is not None:
                stats.usage_lines += 1
                key = response_key(entry) or f"@{file_id}:{start}"
                message = message_from_line(entry, prices, key) if key not in taken else None
                if message is not None:
                    taken.add(key)
                    found.messages.append(message)
                continue
            costs = session_costs_from_line(entry)
            if costs and costs[0]:
                found.session_costs.append(costs)
    return found


class Scanner:
    def __init__(self, store: CostStore, prices: PriceBook) -> None:
        self.store = store
        self.prices = prices

    def refresh(self, files: Sequence[str]) -> ScanStats:
        """Bring the index up to date with *files*, in one transaction (another process
        scanning the same index waits for it)."""
        stats = ScanStats(files=len(files))
        self.store.begin()
        try:
            if self.store.get_meta("prices") != self.prices.fingerprint:
                self.store.reprice(self.prices)
                self.store.set_meta("prices", self.prices.fingerprint)
            known = self.store.files()
            for path in set(known) - set(files):
                self.store.forget_file(known[path].id)
                stats.files_forgotten += 1
            for path in dict.fromkeys(files):  # (a config dir listed twice: each file once)
                self._refresh_file(path, known.get(path), stats)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        return stats

    def _refresh_file(self, path: str, state: FileState | None, stats: ScanStats) -> None:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            stats.vanished += 1
            return
        except OSError as exc:
            stats.unreadable += 1
            stats.errors.append(f"{path}: {exc.strerror}")
            return
        if state is not None and state.inode == info.st_ino and state.size == info.st_size:
            return  # nothing new: the common case, one stat per file
        if state is None:  # (size 0 until it is read: tried again if that fails)
            file_id, offset = self.store.add_file(path, info.st_ino), 0
        elif state.inode != info.st_ino or info.st_size < state.offset:
            # Replaced or truncated: this file's contribution is recomputed from scratch.
            self.store.forget_file_contents(state.id)
            self.store.set_file(state.id, info.st_ino, 0, 0)
            stats.files_forgotten += 1
            file_id, offset = state.id, 0
        else:
            file_id, offset = state.id, state.offset
        try:
            found = read_file(path, file_id, offset, self.prices, stats)
        except FileNotFoundError:
            stats.vanished += 1
            self.store.forget_file(file_id)
            return
        except OSError as exc:  # skipped; the others still count, and it is tried again next time
            stats.unreadable += 1
            stats.errors.append(f"{path}: {exc.strerror or exc}")
            return
        stats.files_read += 1
        self.store.add_messages(file_id, found.messages)
        for session, costs in found.session_costs:
            self.store.set_session_costs(file_id, session, costs)
        self.store.set_file(file_id, info.st_ino, info.st_size, found.offset)
