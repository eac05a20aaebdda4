"""Incremental scan of Claude Code transcripts into the cost index.

Each refresh stats every `projects/**/*.jsonl` under each Claude config dir and reads
only the bytes appended since the last one, up to the last complete line (a line still
being written is left for the next refresh). A file whose inode changed or that shrank
is forgotten and read again from the start; a file that vanished is forgotten.

Only lines that can carry usage are parsed: the scan looks for the `"usage"` and
`"cost-state"` markers with bytes.find and hands just those lines to the JSON parser, so
the tool results that make up most of a transcript's bytes are never decoded.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

try:  # orjson parses these lines ~3x faster; the standard library is the fallback
    from orjson import loads as json_loads
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    from json import loads as json_loads

from .prices import PriceBook
from .store import CostStore, FileState, Message

CHUNK_BYTES = 4 * 1024 * 1024
# A single line larger than this (a pathological tool result) is skipped, not buffered.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Every usage object has output_tokens; a long needle with a rare last byte lets the
# search skip ahead fast (a 2-3x difference over `"usage"` on 200 MiB).
USAGE_MARK = b'"output_tokens":'
COST_STATE_MARK = b'"type":"cost-state"'


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
    found: list[str] = []
    stack = [os.path.join(d, "projects") for d in config_dirs]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.name.endswith(".jsonl") and entry.is_file():
                            found.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return sorted(set(found))


@dataclass
class ScanStats:
    files: int = 0
    files_read: int = 0
    files_forgotten: int = 0
    bytes_read: int = 0
    usage_lines: int = 0  # lines with usage read, before deduplication
    bad_lines: int = 0
    oversized_lines: int = 0
    vanished: int = 0
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
    if type(value) is int:  # the common case, checked first: this runs ~5 times per message
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def row_from_line(entry: dict, prices: PriceBook, fallback_key: str) -> tuple | None:
    """The usage of one assistant line as an index row (see CostStore.add_rows), priced;
    None for lines that carry none. Kept lean: it runs once per message of a cold scan."""
    if entry.get("type") != "assistant":
        return None
    body = entry.get("message")
    usage = body.get("usage") if type(body) is dict else None
    if type(usage) is not dict:
        return None
    input_tokens = _count(usage.get("input_tokens"))
    output = _count(usage.get("output_tokens"))
    ts = parse_timestamp(entry.get("timestamp"))
    if ts is None or input_tokens is None or output is None:
        return None
    cache_write = _count(usage.get("cache_creation_input_tokens", 0)) or 0
    cache_read = _count(usage.get("cache_read_input_tokens", 0)) or 0
    split = usage.get("cache_creation")
    write_1h = min(_count(split.get("ephemeral_1h_input_tokens", 0)) or 0, cache_write) if type(split) is dict else 0
    # Without the split, all cache writes are 5-minute writes.
    write_5m = cache_write - write_1h
    if not (input_tokens or output or cache_write or cache_read):
        return None
    message_id = body.get("id")
    request_id = entry.get("requestId") or entry.get("requestRef")
    # The same response is written once per content block: count each id pair once.
    key = f"{message_id}:{request_id}" if message_id and request_id else fallback_key
    model = str(body.get("model") or "unknown")
    cost = prices.cost(model, ts, input=input_tokens, output=output, cache_write_5m=write_5m,
                       cache_write_1h=write_1h, cache_read=cache_read)
    return (key, ts, str(entry.get("sessionId") or ""), model, 1 if entry.get("isSidechain") else 0,
            input_tokens, output, write_5m, write_1h, cache_read, cost)


def message_from_line(entry: dict, prices: PriceBook, fallback_key: str) -> Message | None:
    """row_from_line as a Message (for tests and tools; the scan keeps rows)."""
    row = row_from_line(entry, prices, fallback_key)
    return None if row is None else Message(*row[:4], bool(row[4]), *row[5:])


def session_costs_from_line(entry: dict) -> tuple[str, dict[str, float]] | None:
    """Claude Code's own running price of a session, per model (`cost-state` lines)."""
    if entry.get("type") != "cost-state" or not isinstance(entry.get("modelUsage"), dict):
        return None
    costs = {}
    for model, usage in entry["modelUsage"].items():
        if isinstance(usage, dict) and isinstance(usage.get("costUSD"), (int, float)):
            costs[str(model)] = float(usage["costUSD"])
    return str(entry.get("sessionId") or ""), costs


def _candidate_lines(buffer: bytes, end: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each complete line in buffer[:end] holding a marker, in order.

    Each marker's next position is searched for once and reused until passed: a rare
    marker must not be looked for across the rest of the buffer on every line.
    """
    next_hit = {mark: buffer.find(mark, 0, end) for mark in (USAGE_MARK, COST_STATE_MARK)}
    position = 0
    while True:
        for mark, hit in next_hit.items():
            if 0 <= hit < position:
                next_hit[mark] = buffer.find(mark, position, end)
        hits = [hit for hit in next_hit.values() if hit >= 0]
        if not hits:
            return
        hit = min(hits)
        start = buffer.rfind(b"\n", 0, hit) + 1
        stop = buffer.find(b"\n", hit, end)
        if stop < 0:
            return
        yield start, stop
        position = stop + 1


class Scanner:
    def __init__(self, store: CostStore, prices: PriceBook) -> None:
        self.store = store
        self.prices = prices

    def refresh(self, files: Sequence[str]) -> ScanStats:
        """Bring the index up to date with *files*, in one transaction."""
        stats = ScanStats(files=len(files))
        self.store.begin()  # IMMEDIATE: another process scanning the same index waits here
        try:
            known = self.store.files()
            if self.store.get_meta("prices") != self.prices.fingerprint:
                self.store.reprice(self.prices)
                self.store.set_meta("prices", self.prices.fingerprint)
            present = set(files)
            for path, state in known.items():
                if path not in present:
                    self.store.forget_file(state.id)
                    stats.files_forgotten += 1
            for path in files:
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    stats.vanished += 1
                    continue
                except OSError as exc:
                    stats.errors.append(f"{path}: {exc.strerror}")
                    continue
                state = known.get(path)
                if state is not None and state.inode == info.st_ino and state.size == info.st_size:
                    continue  # nothing new: the common case, one stat per file
                self._read_file(path, state, info, stats)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        return stats

    def _read_file(self, path: str, state: FileState | None, info: os.stat_result, stats: ScanStats) -> None:
        if state is None:
            file_id, offset = self.store.add_file(path, info.st_ino), 0
        elif state.inode != info.st_ino or info.st_size < state.offset:
            # Replaced or truncated: this file's contribution is recomputed from scratch.
            self.store.forget_file_contents(state.id)
            stats.files_forgotten += 1
            file_id, offset = state.id, 0
        else:
            file_id, offset = state.id, state.offset
        try:
            offset, size = self._read_from(path, file_id, offset, stats)
        except FileNotFoundError:
            stats.vanished += 1
            self.store.forget_file(file_id)
            return
        self.store.update_file(file_id, inode=info.st_ino, size=size, offset=offset)
        stats.files_read += 1

    def _read_from(self, path: str, file_id: int, offset: int, stats: ScanStats) -> tuple[int, int]:
        """Read complete lines after *offset*; returns (new offset, size seen)."""
        messages: list[tuple] = []
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            file.seek(offset)
            carry = b""
            skip_from: int | None = None  # start of a line longer than MAX_LINE_BYTES
            consumed = offset
            while True:
                chunk = file.read(CHUNK_BYTES)
                if not chunk:
                    break
                stats.bytes_read += len(chunk)
                if skip_from is not None:
                    newline = chunk.find(b"\n")
                    if newline < 0:
                        consumed += len(chunk)
                        continue
                    consumed += newline + 1
                    chunk = chunk[newline + 1:]
                    skip_from = None
                buffer = carry + chunk if carry else chunk
                end = buffer.rfind(b"\n") + 1  # complete lines only
                if end == 0:
                    if len(buffer) > MAX_LINE_BYTES:
                        stats.oversized_lines += 1
                        skip_from = consumed
                        consumed += len(buffer)
                        carry = b""
                    else:
                        carry = buffer
                    continue
                self._parse_lines(buffer, end, file_id, consumed, messages, stats)
                consumed += end
                carry = buffer[end:]
            if skip_from is not None:
                consumed = skip_from  # that line is not finished yet: skip it again next time
        self.store.add_rows(file_id, messages)
        stats.usage_lines += len(messages)
        return consumed, size

    def _parse_lines(self, buffer: bytes, end: int, file_id: int, base_offset: int,
                     messages: list[tuple], stats: ScanStats) -> None:
        for start, stop in _candidate_lines(buffer, end):
            try:
                entry = json_loads(buffer[start:stop])
            except (ValueError, UnicodeDecodeError):
                stats.bad_lines += 1
                continue
            if not isinstance(entry, dict):
                continue
            if entry.get("type") == "cost-state":
                found = session_costs_from_line(entry)
                if found and found[0]:
                    self.store.set_session_costs(file_id, found[0], found[1])
                continue
            row = row_from_line(entry, self.prices, f"@{file_id}:{base_offset + start}")
            if row is not None:
                messages.append(row)
