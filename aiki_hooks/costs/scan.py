"""Incremental scan of Claude Code transcripts into the cost index.

Each refresh stats every `projects/**/*.jsonl` under each Claude config dir and reads
only the bytes appended since the last one, up to the last complete line (a line still
being written is left for the next refresh). A file whose inode changed or that shrank
is forgotten and read again from the start; a file that vanished is forgotten.

Only lines that can carry usage are parsed: the scan looks for the usage and
`"cost-state"` markers with bytes.find and hands just those lines to the JSON parser, so
the tool results that make up most of a transcript's bytes are never decoded, and a
repeat of a response already parsed from the file is recognised by its ids and skipped
(see _parse_lines). A file that cannot be read is skipped and tried again next time.

With nothing new, a refresh costs a stat per file and folder (TranscriptLister,
Scanner._nothing_new), or nothing at all where an inotify watch says so (ChangeWatch).
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import errno
import fcntl
import io
import marshal
import os
import select
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import orjson

from aiki_hooks.costs.prices import PriceBook
from aiki_hooks.costs.store import CostStore, FileState, Row, dumps_rows, loads_rows

CHUNK_BYTES = 1024 * 1024
# A single line larger than this (a pathological tool result) is skipped, not buffered.
MAX_LINE_BYTES = 64 * 1024 * 1024
# Every usage object has output_tokens; a long needle with a rare last byte lets the
# search skip ahead fast (a 2-3x difference over `"usage"` on 200 MiB).
USAGE_MARK = b'"output_tokens":'
COST_STATE_MARK = b'"type":"cost-state"'
MESSAGE_ID_MARK = b'"message":{"id":"'
REQUEST_ID_MARK = b'"requestId":"'
MESSAGE_ID_LEN, REQUEST_ID_LEN = len(MESSAGE_ID_MARK), len(REQUEST_ID_MARK)


def claude_config_dirs(configured: Sequence[str] = (), env: Mapping[str, str] | None = None) -> list[str]:
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
    return TranscriptLister().files(config_dirs)


# A directory changed this recently may change again within the file system's timestamp
# granularity without its mtime moving: list it again next time rather than trust it.
RACY_SECONDS = 2.0


class TranscriptLister:
    """transcript_files, remembering each directory's listing while its mtime stays the
    same: a refresh with nothing new costs one stat per directory here, not a listing."""

    def __init__(self, remember: bool = True) -> None:
        self._dirs: dict[str, tuple[int, list[str], list[str]]] = {}  # path -> (mtime_ns, subdirs, files)
        self.complete = False  # every root's projects folder existed at the last listing
        self.remember = remember  # False: one listing only, without a stat of each folder for the next

    @property
    def directories(self) -> list[str]:
        return list(self._dirs)

    def files(self, config_dirs: Sequence[str]) -> list[str]:
        found: list[str] = []
        seen_dirs: dict[str, tuple[int, list[str], list[str]]] = {}
        roots = [os.path.join(d, "projects") for d in config_dirs]
        stack = list(roots)
        now_ns = time.time_ns()
        while stack:
            folder = stack.pop()
            if folder in seen_dirs:
                continue
            if self.remember:
                try:
                    mtime = os.stat(folder).st_mtime_ns
                except OSError:
                    continue
            else:
                mtime = -1  # (a folder that is gone fails its listing below instead)
            cached = self._dirs.get(folder)
            if cached is None or cached[0] != mtime:
                listing = self._list(folder)
                if listing is None:
                    continue
                # mtime -1 (never equal) for a directory that changed just now.
                cached = (mtime if now_ns - mtime > RACY_SECONDS * 1e9 else -1, *listing)
            seen_dirs[folder] = cached
            stack.extend(cached[1])
            found.extend(cached[2])
        self._dirs = seen_dirs
        self.complete = all(root in seen_dirs for root in roots)
        return sorted(set(found))

    @staticmethod
    def _list(folder: str) -> tuple[list[str], list[str]] | None:
        subdirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            subdirs.append(entry.path)
                        elif entry.name.endswith(".jsonl") and entry.is_file():
                            files.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            return None
        return subdirs, files


class ChangeWatch:
    """Linux inotify on the transcript directories, so that a refresh can tell nothing was
    written, created, moved or deleted there since the last full check, and skip even the
    stat of each file. Whatever it cannot vouch for (no inotify, a watch that failed, a
    missing projects folder, a queue overflow, any event at all) answers "maybe changed",
    and the refresh does its full check."""

    # IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE,
    # IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF (linux/inotify.h)
    MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
    IN_NONBLOCK_CLOEXEC = 0o4000 | 0o2000000
    # IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED
    GONE = 0x400 | 0x800 | 0x4000 | 0x8000

    def __init__(self, enabled: bool = True) -> None:
        self._fd: int | None = None
        self._add: Callable[[int, bytes, int], int] | None = None
        self._wds: set[int] = set()
        self._watched: set[str] = set()
        self._armed = False
        if not enabled:  # always "maybe changed": every refresh does its full check
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            add = libc.inotify_add_watch
            add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
            fd = libc.inotify_init1(self.IN_NONBLOCK_CLOEXEC)
        except (OSError, AttributeError):
            return
        self._add = add
        if fd >= 0:
            self._fd = fd

    def quiet(self) -> bool:
        """True when nothing happened in the watched folders since watch() armed it; drains
        what did happen (the caller then does a full check and calls watch again)."""
        if self._fd is None:
            return False
        events = gone = False
        try:
            while True:
                data = os.read(self._fd, 65536)
                if not data:
                    gone = True
                    break
                events = True
                gone = gone or self._a_folder_went(data)
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            return False
        if gone:  # a watched folder went (or events were lost): watch all of them again
            self._watched.clear()
        if events:
            self._armed = False
        return self._armed

    def _a_folder_went(self, data: bytes) -> bool:
        offset = 0
        while offset + 16 <= len(data):  # struct inotify_event: wd, mask, cookie, len, name
            _, mask, _, length = struct.unpack_from("iIII", data, offset)
            if mask & self.GONE:
                return True
            offset += 16 + length
        return False

    def watch(self, directories: Sequence[str], complete: bool) -> None:
        """After a full check: watch *directories* (all that were listed). *complete* is
        False when a root was missing: nothing would tell of its creation, so stay unarmed."""
        if self._fd is None or self._add is None:
            return
        new_watch = False
        for folder in directories:
            if folder in self._watched:
                continue
            wd = self._add(self._fd, os.fsencode(folder), self.MASK)
            if wd < 0:
                if ctypes.get_errno() in (errno.ENOSPC, errno.ENOMEM):
                    # Out of watches (fs.inotify.max_user_watches): give ours back, as
                    # editors and other tools need them too; the stats decide from now on.
                    self.close()
                    return
                # The folder just went or changed kind: the next full check sees to it.
                self._watched.clear()
                self._armed = False
                return
            self._watched.add(folder)
            if wd not in self._wds:
                self._wds.add(wd)
                new_watch = True
        # A new watch starts after that folder's check: what was written in between is seen
        # by one more full check, which the next refresh makes.
        self._armed = complete and not new_watch

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._armed = None, False

    def __del__(self) -> None:  # a probe replaced on a config reload must not keep its watches
        try:
            self.close()
        except OSError:
            pass


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
    # Rows whose key the index had not seen before this refresh, in reading order; None
    # when a file was forgotten, so figures must be recomputed from the index.
    new_rows: list[Row] | None = field(default_factory=list)
    index_was_empty: bool = False


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


# A token count is a whole number below 2**53 (JSON's exact integers, RFC 8259 section 6):
# beyond that a line is corrupt, and its count would not survive the index (or ccusage).
MAX_COUNT = 2**53


def _count(value: object) -> int | None:
    if type(value) is int:  # (not bool, which is an int too)
        return value if 0 <= value < MAX_COUNT else None
    if isinstance(value, float) and value.is_integer() and 0 <= value < MAX_COUNT:
        return int(value)
    return None


DUPLICATE: Row = ()  # row_from_line's answer for a response already taken from this file


def row_from_line(entry: dict[str, Any], prices: PriceBook, fallback_key: tuple[int, int],
                  seen: set[str] | None = None) -> Row | None:
    """The usage of one assistant line as an index row (see CostStore.add_rows), priced;
    None for lines that carry none. With *seen* (the keys already taken from this file),
    a repeat of a response returns DUPLICATE before it is priced. *fallback_key* (file id,
    offset of the line) names a line that has no id pair."""
    if entry.get("type") != "assistant":
        return None
    body = entry.get("message")
    if not isinstance(body, dict):
        return None
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    input_tokens = _count(usage.get("input_tokens"))
    output = _count(usage.get("output_tokens"))
    if input_tokens is None or output is None:
        return None
    cache_write = _count(usage.get("cache_creation_input_tokens", 0)) or 0
    cache_read = _count(usage.get("cache_read_input_tokens", 0)) or 0
    split = usage.get("cache_creation")
    write_1h = (_count(split.get("ephemeral_1h_input_tokens", 0)) or 0) if isinstance(split, dict) else 0
    message_id = body.get("id")
    request_id = entry.get("requestId") or entry.get("requestRef")
    # The same response is written once per content block: count each id pair once.
    if message_id and request_id:
        key = f"{message_id}:{request_id}"
        if seen is not None and key in seen:
            return DUPLICATE  # the first occurrence wins, as in ccusage
    else:
        key = "@%d:%d" % fallback_key
    ts = parse_timestamp(entry.get("timestamp"))
    if ts is None:
        return None
    # Without the split, all cache writes are 5-minute writes.
    write_1h = min(write_1h, cache_write)
    write_5m = cache_write - write_1h
    if not (input_tokens or output or cache_write or cache_read):
        return None
    if seen is not None:
        seen.add(key)
    # Interned: a file's rows then share one session and one model string in memory.
    model = sys.intern(str(body.get("model") or "unknown"))
    session = sys.intern(str(entry.get("sessionId") or ""))
    cost = prices.cost(model, ts, input=input_tokens, output=output, cache_write_5m=write_5m,
                       cache_write_1h=write_1h, cache_read=cache_read)
    return (key, ts, session, model, 1 if entry.get("isSidechain") else 0, input_tokens, output, write_5m, write_1h,
            cache_read, cost)


def session_costs_from_line(entry: dict[str, Any]) -> tuple[str, dict[str, float]] | None:
    """Claude Code's own running price of a session, per model (`cost-state` lines)."""
    if entry.get("type") != "cost-state" or not isinstance(entry.get("modelUsage"), dict):
        return None
    costs = {}
    for model, usage in entry["modelUsage"].items():
        if isinstance(usage, dict) and isinstance(usage.get("costUSD"), (int, float)):
            costs[str(model)] = float(usage["costUSD"])
    return str(entry.get("sessionId") or ""), costs


def _candidate_lines(buffer: bytes | bytearray, end: int, mark: bytes) -> Iterator[tuple[int, int]]:
    """(start, stop) of each complete line in buffer[:end] holding *mark*, in order: a
    few C-level searches per such line and none per other line."""
    hit = buffer.find(mark, 0, end)
    while hit >= 0:
        start = buffer.rfind(b"\n", 0, hit) + 1
        stop = buffer.find(b"\n", hit, end)
        if stop < 0:
            return
        yield start, stop
        hit = buffer.find(mark, stop + 1, end)


@dataclass
class FileRead:
    """What reading one file after its offset found; no database access, so files can be
    read in worker processes."""

    path: str
    file_id: int
    inode: int
    offset: int  # after the last complete line read
    size: int
    start: int = 0  # the offset the read began at
    session_costs: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    bytes_read: int = 0
    usage_lines: int = 0  # before deduplication
    bad_lines: int = 0
    oversized_lines: int = 0
    vanished: bool = False
    error: str | None = None  # the file could not be read (the index keeps what it had)
    rows: list[Row] = field(default_factory=list, repr=False)
    rows_json: bytes | None = field(default=None, repr=False)  # the rows as stored, when a worker sent them


Task = tuple[str, int, int, int, int]  # path, file id, offset, inode, size


def read_file(path: str, file_id: int, offset: int, inode: int, prices: PriceBook) -> FileRead:
    """Read the complete lines of *path* after *offset*; a line still being written, or
    longer than MAX_LINE_BYTES and unfinished, is left for the next refresh. An OS error
    (permission, EISDIR, EIO) sets `error` and drops what was read of this file."""
    result = FileRead(path=path, file_id=file_id, inode=inode, offset=offset, size=0, start=offset)
    try:
        with open(path, "rb", buffering=0) as file:
            result.size = os.fstat(file.fileno()).st_size
            file.seek(offset)
            _read_lines(file, offset, result, prices)
    except FileNotFoundError:
        result.vanished = True
    except OSError as exc:
        result.error = f"{path}: {exc.strerror or exc}"
        result.rows, result.session_costs, result.offset = [], [], offset
    return result


def _read_task(task: Task, prices: PriceBook) -> FileRead:
    path, file_id, offset, inode, _ = task
    return read_file(path, file_id, offset, inode, prices)


def _read_lines(file: io.FileIO, offset: int, result: FileRead, prices: PriceBook) -> None:
    """Fill a buffer from *file*, parse its complete lines, move the unfinished rest to the
    front, repeat. A line longer than the buffer grows it, up to MAX_LINE_BYTES; a longer
    line is skipped to its end (and left for the next refresh if it has none yet)."""
    # No larger than what there is to read: a new buffer is zero-filled, and most reads are
    # of a small transcript or of what a refresh found appended.
    buf = bytearray(max(1, min(CHUNK_BYTES, result.size - offset)))
    view = memoryview(buf)
    have = 0  # bytes in buf: the start of an unfinished line, then what was just read
    consumed = offset  # the file offset of buf[0]
    skip_from: int | None = None  # start of an oversized line being skipped
    seen: set[str] = set()  # keys taken from this file
    proved: set[bytes] = set()  # raw keys known to be real keys (see _parse_lines)
    try:
        while True:
            if have == len(buf):  # one line fills the buffer
                if have > MAX_LINE_BYTES:
                    result.oversized_lines += 1
                    skip_from = consumed
                    consumed += have
                    have = 0
                else:
                    view.release()
                    buf += bytes(min(len(buf), MAX_LINE_BYTES + CHUNK_BYTES - len(buf)) or CHUNK_BYTES)
                    view = memoryview(buf)
            count = file.readinto(view[have:])
            if not count:
                break
            result.bytes_read += count
            if skip_from is not None:  # have == 0 here
                newline = buf.find(b"\n", 0, count)
                if newline < 0:
                    consumed += count
                    continue
                consumed += newline + 1
                count -= newline + 1
                buf[:count] = buf[newline + 1:newline + 1 + count]
                skip_from = None
            have += count
            last_newline = buf.rfind(b"\n", 0, have)
            if last_newline < 0:  # complete lines only
                continue
            end = last_newline + 1
            _parse_lines(buf, end, consumed, result, prices, seen, proved)
            if buf.find(COST_STATE_MARK, 0, end) >= 0:  # rare: one search, then these few lines
                _parse_session_costs(_candidate_lines(buf, end, COST_STATE_MARK), buf, result)
            consumed += end
            have -= end
            if have:
                buf[:have] = buf[end:end + have]
    finally:
        view.release()
    result.offset = skip_from if skip_from is not None else consumed


def _loads(raw: bytes | bytearray) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Invalid UTF-8 (a cut multi-byte character, a binary paste): decode with
        # replacement, as ccusage does, so the line's tokens still count.
        return orjson.loads(bytes(raw).decode("utf-8", "replace"))


def _parse_lines(buffer: bytearray, end: int, base_offset: int, result: FileRead, prices: PriceBook,
                 seen: set[str], proved: set[bytes]) -> None:
    """Parse the usage lines of buffer[:end] into result.rows. Claude Code writes a
    response once per content block, so about half the usage lines repeat a response
    already counted from this file. A line's raw key is its `message.id:requestId` read
    as bytes: the first `"message":{"id":"` (the message object comes before anything
    nested in it) and the last `"requestId":"` (it follows the message and its content).
    A line whose raw key was proved to be the real key of a line parsed before is a
    repeat and is skipped unparsed, as the parse would have found it a duplicate; any
    other line is parsed."""
    for start, stop in _candidate_lines(buffer, end, USAGE_MARK):
        raw_key = None
        at = buffer.find(MESSAGE_ID_MARK, start, stop)
        if at >= 0:
            request = buffer.rfind(REQUEST_ID_MARK, at, stop)
            if request >= 0:
                at += MESSAGE_ID_LEN
                request += REQUEST_ID_LEN
                id_end, request_end = buffer.find(b'"', at, stop), buffer.find(b'"', request, stop)
                if id_end >= 0 and request_end >= 0:
                    raw_key = bytes(buffer[at:id_end]) + b":" + buffer[request:request_end]
                    if raw_key in proved:
                        result.usage_lines += 1
                        continue
        try:
            entry = _loads(buffer[start:stop])
        except orjson.JSONDecodeError:
            result.bad_lines += 1
            continue
        if not isinstance(entry, dict):
            continue
        row = row_from_line(entry, prices, (result.file_id, base_offset + start), seen)
        if row is None:
            continue
        result.usage_lines += 1
        if row:
            result.rows.append(row)
        if raw_key is not None and raw_key not in proved:
            message_id = entry["message"].get("id")
            request_id = entry.get("requestId") or entry.get("requestRef")
            if message_id and request_id and raw_key == f"{message_id}:{request_id}".encode():
                proved.add(raw_key)


def _parse_session_costs(lines: Iterable[tuple[int, int]], buffer: bytearray, result: FileRead) -> None:
    """Claude Code's `cost-state` lines at (start, stop) in *buffer*."""
    for start, stop in lines:
        try:
            entry = _loads(buffer[start:stop])
        except orjson.JSONDecodeError:
            result.bad_lines += 1
            continue
        found = session_costs_from_line(entry) if isinstance(entry, dict) else None
        if found and found[0]:
            result.session_costs.append(found)


# Below this much to read, worker processes cost more than they save.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024


def _worker_start() -> None:
    """A short-lived worker keeps the memory it frees for its next file: glibc otherwise
    maps and unmaps every block of 128 KiB or more (a read buffer, a large set, a list of
    rows), and each new map is faulted in page by page again."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 8 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 8 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_FIELDS = ("path", "file_id", "inode", "offset", "size", "start", "session_costs", "bytes_read", "usage_lines",
           "bad_lines", "oversized_lines", "vanished", "error")


def _frame(index: int, found: FileRead) -> list[bytes]:
    """A worker's FileRead as the pieces of one frame (for os.writev, not joined): index (4
    bytes), length of the rest (4), length of the rows (8), the rest (marshal), the rows
    as the JSON the index stores (made in the worker, not the parent)."""
    rest = marshal.dumps(tuple(getattr(found, name) for name in _FIELDS))
    rows = dumps_rows(found.rows)
    return [index.to_bytes(4, "little") + len(rest).to_bytes(4, "little") + len(rows).to_bytes(8, "little"),
            rest, rows]


def _from_frame(rest: bytes | memoryview, rows_json: bytes) -> FileRead:
    found = FileRead(**dict(zip(_FIELDS, marshal.loads(rest), strict=True)))
    found.rows_json = rows_json
    found.rows.extend(loads_rows(rows_json))  # lists, not tuples: read alike by index
    return found


def read_files(tasks: list[Task], prices: PriceBook, pending_bytes: int, workers: int = 1) -> Iterator[FileRead]:
    """Read the *tasks* and yield what each found, in order. With workers > 1, a large
    backlog (a first scan) is spread over forked processes (callers must be
    single-threaded)."""
    workers = min(workers, len(os.sched_getaffinity(0)), 4)
    if workers < 2 or pending_bytes < PARALLEL_MIN_BYTES or len(tasks) < 2:
        for task in tasks:
            yield _read_task(task, prices)
        return
    yield from _ForkedReaders(tasks, prices, workers).results()


def _widen(fd: int) -> None:
    """Give a worker's result pipe 1 MiB (Linux's F_SETPIPE_SZ; 64 KiB by default), so
    that a worker does not wait on a parent busy with the frames before."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:  # another system, or a lower pipe-max-size: the default
        pass


class _ForkedReaders:
    """Worker processes made with os.fork: each inherits the parent's imports and price
    book, and nothing has to be pickled. The workers take file indexes from one queue
    pipe, 4 bytes at a time (a read of a pipe is atomic, so each index goes to one worker:
    whoever is free, as the cost of a file is not its size), and send each result down a
    pipe of their own as one frame (see _frame). The parent fills the queue as it drains
    and yields results in task order as they arrive. A worker that dies leaves its files
    unread: the parent reads them itself (and meets the same error, if any, with a
    traceback)."""

    HEADER = 16
    QUEUE_WRITE = 4096  # PIPE_BUF: a write of this size is whole or refused, never cut

    def __init__(self, tasks: list[Task], prices: PriceBook, workers: int) -> None:
        self.tasks, self.prices, self.workers = tasks, prices, workers

    def results(self) -> Iterator[FileRead]:
        queue = b"".join(index.to_bytes(4, "little") for index in range(len(self.tasks)))
        queued = 0
        take: int | None
        give: int | None
        take, give = os.pipe()
        os.set_blocking(give, False)
        readers: dict[int, tuple[int, bytearray]] = {}  # fd -> (pid, unread bytes)
        try:
            for _ in range(self.workers):
                read_end, write_end = os.pipe()
                _widen(write_end)
                pid = os.fork()
                if pid == 0:  # the worker: never returns
                    os.close(read_end)
                    os.close(give)
                    for fd in readers:
                        os.close(fd)
                    self._work(take, write_end)
                os.close(write_end)
                readers[read_end] = (pid, bytearray())
            os.close(take)
            take = None
            done: dict[int, FileRead] = {}
            next_index = 0
            while readers:
                ready, writable, _ = select.select(list(readers), [give] if give is not None else [], [])
                if writable and give is not None:
                    try:
                        while queued < len(queue):
                            queued += os.write(give, queue[queued:queued + self.QUEUE_WRITE])
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:  # every worker is gone: the files left are read below
                        queued = len(queue)
                    if queued >= len(queue):
                        os.close(give)  # the workers stop when the queue is empty
                        give = None
                for fd in ready:
                    data = os.read(fd, 1 << 20)
                    pid, pending = readers[fd]
                    if not data:  # the worker finished (or died)
                        os.close(fd)
                        del readers[fd]
                        os.waitpid(pid, 0)
                        continue
                    pending += data
                    at = 0  # frames are taken from the front; the rest is moved once, after
                    while len(pending) - at >= self.HEADER:
                        rest_length = int.from_bytes(pending[at + 4:at + 8], "little")
                        rows_length = int.from_bytes(pending[at + 8:at + 16], "little")
                        start = at + self.HEADER
                        rows_start = start + rest_length
                        if len(pending) < rows_start + rows_length:
                            break
                        index = int.from_bytes(pending[at:at + 4], "little")
                        with memoryview(pending) as view:
                            done[index] = _from_frame(view[start:rows_start],
                                                      bytes(view[rows_start:rows_start + rows_length]))
                        at = rows_start + rows_length
                    del pending[:at]
                while next_index in done:
                    yield done.pop(next_index)
                    next_index += 1
            for index in range(next_index, len(self.tasks)):  # files no worker sent back
                yield done.pop(index) if index in done else _read_task(self.tasks[index], self.prices)
        finally:
            for end in (take, give):
                if end is not None:
                    os.close(end)
            for fd, (pid, _) in readers.items():  # the caller stopped early, or an error
                os.close(fd)
                try:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                except OSError:
                    pass

    def _work(self, take: int, fd: int) -> None:
        status = 1
        try:
            _worker_start()
            while True:
                index_bytes = os.read(take, 4)
                if len(index_bytes) < 4:  # the queue is closed and empty
                    break
                index = int.from_bytes(index_bytes, "little")
                pieces: list[bytes | memoryview] = list(_frame(index, _read_task(self.tasks[index], self.prices)))
                while pieces:  # os.writev may write part: go on from where it stopped
                    written = os.writev(fd, pieces)
                    while pieces and written >= len(pieces[0]):
                        written -= len(pieces.pop(0))
                    if pieces and written:
                        pieces[0] = memoryview(pieces[0])[written:]
            status = 0
        except BaseException:  # noqa: BLE001 - nothing of the parent's may run here
            pass
        finally:
            os._exit(status)


class Scanner:
    def __init__(self, store: CostStore, prices: PriceBook, *, workers: int = 1) -> None:
        self.store = store
        self.prices = prices
        self.workers = workers
        self._known: dict[str, FileState] | None = None  # as of `_known_version`
        self._known_version: int | None = None

    def index_unchanged(self) -> bool:
        """No other connection committed to the index since this scanner's last refresh."""
        return self._known is not None and self._known_version == self.store.data_version()

    def forget_known(self) -> None:
        """After this connection changed the files table itself (SQLite's data_version
        only tells of other connections' commits)."""
        self._known = None

    def _nothing_new(self, files: Sequence[str]) -> bool:
        """True when every file is as last indexed: no lock, no write, one stat per file."""
        if self._known is None or self._known_version != self.store.data_version():
            return False
        # (The price fingerprint is checked by the full refresh: only another connection
        # could change it here, and that would have changed data_version.)
        if len(files) != len(self._known):
            return False
        known: dict[str, FileState] = self._known
        # Relative to an open directory: the kernel resolves one name, not the whole path
        # (a fifth less time per stat here).
        by_folder: dict[str, list[tuple[str, FileState]]] = {}
        for path in files:
            if path not in known:
                return False
            parent, _, name = path.rpartition("/")
            by_folder.setdefault(parent, []).append((name, known[path]))
        for folder, entries in by_folder.items():
            try:
                fd = os.open(folder or "/", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                return False
            try:
                for name, state in entries:
                    info = os.stat(name, dir_fd=fd)
                    if state.inode != info.st_ino or state.size != info.st_size:
                        return False
            except OSError:
                return False
            finally:
                os.close(fd)
        return True

    def refresh(self, files: Sequence[str], on_first_rows: Callable[[list[Row]], None] | None = None) -> ScanStats:
        """Bring the index up to date with *files*, in one transaction. *on_first_rows*:
        given each file's new rows as they are read, when the index was empty (a first
        fill: the caller sums them while the workers still read, not after)."""
        stats = ScanStats(files=len(files))
        if self._known is None and self.store.get_meta("prices") == self.prices.fingerprint:
            # A new scanner (a one-shot command) takes what the index holds, unlocked: with
            # nothing new, it costs a stat per file and no write, as for a long-lived one.
            self._known_version = self.store.data_version()  # (before: a commit in between shows)
            self._known = self.store.files()
        if self._nothing_new(files):
            return stats
        first_fill = not self._known and self.store.is_empty()
        if first_fill:
            self.store.durable(False)
        try:
            return self._refresh(files, stats, on_first_rows)
        finally:
            if first_fill:
                self.store.durable(True)

    def _refresh(self, files: Sequence[str], stats: ScanStats,
                 on_first_rows: Callable[[list[Row]], None] | None) -> ScanStats:
        self.store.begin()  # IMMEDIATE: another process scanning the same index waits here
        try:
            known = self.store.files()
            stats.index_was_empty = not known
            if self.store.get_meta("prices") != self.prices.fingerprint:
                self.store.reprice(self.prices)
                self.store.set_meta("prices", self.prices.fingerprint)
            tasks, pending = self._plan(files, known, stats)
            seen: set[str] = set()
            states: list[FileState] = []  # files table rows, written at the end
            for found in read_files(tasks, self.prices, pending, self.workers):
                self._apply(found, stats, seen, states, on_first_rows if stats.index_was_empty else None)
            self.store.put_files(states)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            self._known = None
            raise
        self._known, self._known_version = self.store.files(), self.store.data_version()
        return stats

    def _plan(self, files: Sequence[str], known: dict[str, FileState], stats: ScanStats) -> tuple[list[Task], int]:
        """Forget what vanished or was rewritten; list the files to read, and how many bytes."""
        present = set(files)
        for path, old in known.items():
            if path not in present:
                self.store.forget_file(old.id)
                stats.files_forgotten += 1
                stats.new_rows = None
        tasks: list[Task] = []
        pending = 0
        next_id = self.store.next_file_id()
        for path in dict.fromkeys(files):  # (a config dir listed twice: each file once)
            try:
                info = os.stat(path)
            except FileNotFoundError:
                stats.vanished += 1
                continue
            except OSError as exc:
                stats.unreadable += 1
                stats.errors.append(f"{path}: {exc.strerror}")
                continue
            state = known.get(path)
            if state is not None and state.inode == info.st_ino and state.size == info.st_size:
                continue  # nothing new: the common case, one stat per file
            if state is None:
                # Its files row is written with what was read (put_files), not before.
                file_id, offset = next_id, 0
                next_id += 1
            elif state.inode != info.st_ino or info.st_size < state.offset:
                # Replaced or truncated: this file's contribution is recomputed from scratch.
                self.store.forget_file_contents(state.id)
                stats.files_forgotten += 1
                stats.new_rows = None
                file_id, offset = state.id, 0
            else:
                file_id, offset = state.id, state.offset
            tasks.append((path, file_id, offset, info.st_ino, info.st_size))
            pending += info.st_size - offset
        return tasks, pending

    def _apply(self, found: FileRead, stats: ScanStats, seen: set[str], states: list[FileState],
               on_new_rows: Callable[[list[Row]], None] | None = None) -> None:
        if found.vanished:
            stats.vanished += 1
            self.store.forget_file(found.file_id)
            stats.new_rows = None
            return
        if found.error is not None:
            # Skip this file and go on: the others still count. size -1 makes the next
            # refresh try it again from where it was.
            stats.unreadable += 1
            stats.errors.append(found.error)
            states.append(FileState(found.file_id, found.path, found.inode, -1, found.offset))
            return
        stats.files_read += 1
        stats.bytes_read += found.bytes_read
        stats.bad_lines += found.bad_lines
        stats.oversized_lines += found.oversized_lines
        stats.usage_lines += found.usage_lines
        if stats.new_rows is not None:
            fresh = self._unseen(found.rows, seen, check_index=not stats.index_was_empty)
            stats.new_rows.extend(fresh)
            if on_new_rows is not None and fresh:
                on_new_rows(fresh)
        # Read from its start: nothing of this file is stored (new, or forgotten by _plan).
        self.store.add_rows(found.file_id, found.rows, new_file=found.start == 0, rows_json=found.rows_json)
        for session, costs in found.session_costs:
            self.store.set_session_costs(found.file_id, session, costs)
        states.append(FileState(found.file_id, found.path, found.inode, found.size, found.offset))

    def _unseen(self, rows: list[Row], seen: set[str], *, check_index: bool) -> list[Row]:
        """The rows whose key neither this refresh nor (if asked) the index has seen."""
        keys = [row[0] for row in rows]
        if seen.isdisjoint(keys):  # the common case, at C speed: a file's keys are distinct
            seen.update(keys)
            fresh = rows
        else:  # a resumed session's copies of messages from another file
            fresh = []
            for row in rows:
                if row[0] not in seen:
                    seen.add(row[0])
                    fresh.append(row)
        if check_index and fresh:
            known = self.store.known_keys([row[0] for row in fresh])
            fresh = [row for row in fresh if row[0] not in known]
        return fresh
