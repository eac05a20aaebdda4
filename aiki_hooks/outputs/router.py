"""Where each cycle's results go: one `[[outputs]]` list, each output with its own filter.

    [[outputs]]                       # everything to a file
    type = "jsonl"
    path = "~/.local/state/aiki-hooks/health.jsonl"

    [[outputs]]                       # only CRITICAL to mem0
    type = "mem0"
    min_severity = "CRITICAL"

    [[outputs]]
    type = "webhook"
    name = "alerts"
    url = "https://hooks.example.net/aiki"
    headers_env = "AIKI_ALERT_HEADERS"  # "Authorization: Bearer ..." lines; never in the config
    format = "slack"                    # json (ours, the default) | slack | discord | ntfy

The refresher builds one `Router` from the configured outputs. `Router.route(data, records,
now)` hands every output the snapshot dict (`Snapshot.to_dict()`) and the cycle's journal
records, each filtered for that output (`filter_snapshot`, `filter_records`). jsonl and
webhook are written here; the other types (cache, journal, mem0, prometheus_*) call the
handlers the caller registered per type. Outputs are independent: one that raises or
fails is remembered in `failures` and reported by `findings()` as a WARNING issue
`output:<name>` until it succeeds again; the others and the cycle carry on.

A webhook's body is rendered in the cycle by `formats.render` (pure: our JSON, or what
Slack, Discord or an ntfy topic accepts) and posted by a background thread per webhook
output with a bounded queue, so the cycle never waits on the network; `timeout_seconds`
bounds each whole request (a receiver trickling its answer is abandoned at it). A full queue drops its oldest
payload: logged, and a WARNING `output:<name>` until the receiver catches up. `close()`
lets the queues drain within a deadline (a one-shot command exits right after), then
says what it gave up. Header values come from an environment variable at send time;
credentials in the URL go as Basic auth; neither, nor the URL's path and query, appears
in an error.

What a filtered output was told (occurrence ids, so it also hears how they end) is kept
in the state dir (`TOLD_FILE`, 0600), so it carries over between one-shot runs.

stdlib only (the refresher has an RSS budget).
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from aiki_hooks.config.validators import url_for_errors
from aiki_hooks.cycle.sdnotify import NOTICE, WARNING
from aiki_hooks.model import severity
from aiki_hooks.model.units import fmt_duration_words
from aiki_hooks.outputs import formats
from aiki_hooks.outputs.config import OUTPUT_TYPES, OutputConfig
from aiki_hooks.paths import make_private_dir, read_state_file

if TYPE_CHECKING:
    from aiki_hooks.http_client import PostError

BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
# Longest a closing router waits for webhooks to send their queues (a one-shot command
# exits after that; the refresher stops within systemd's stop timeout).
CLOSE_DEADLINE_CAP_SECONDS = 15.0
ISSUE_PREFIX = "output:"
ERROR_CHARS = 160
# Occurrences a filtered output has been told about, so it also hears how they end.
MAX_REMEMBERED_OCCURRENCES = 10_000
# Of a receiver's answer only the status counts; this much of the rest is read and dropped.
WEBHOOK_ANSWER_BYTES = 64 * 1024
TOLD_FILE = "outputs-told.json"  # in the state dir: see Router


# --------------------------------------------------------------------------- filters (pure)


def _matches(names: Iterable[Any], patterns: tuple[str, ...]) -> bool:
    if not patterns:
        return True
    return any(isinstance(n, str) and fnmatchcase(n, p) for n in names for p in patterns)


def filter_snapshot(data: Mapping[str, Any], out: OutputConfig) -> dict[str, Any]:
    """The snapshot dict with only the probes and issues *out* wants; `status` recomputed
    (OK when no probe is left). A probe matches by its name or `<kind>:<name>`; an issue
    by its id or its probe's name."""
    floor = severity.rank(out.min_severity)
    probes = [p for p in data.get("probes") or ()
              if severity.rank(p.get("status")) >= floor
              and _matches((p.get("name"), f"{p.get('kind')}:{p.get('name')}"), out.probes)]
    issues = [i for i in data.get("issues") or ()
              if severity.rank(i.get("severity")) >= floor and _matches((i.get("id"), i.get("probe")), out.probes)]
    result = dict(data)
    result["probes"] = probes
    result["issues"] = issues
    result["status"] = severity.worst(p.get("status") for p in probes)
    return result


def filter_records(records: Iterable[Mapping[str, Any]], out: OutputConfig,
                   told: collections.OrderedDict[str, None] | None = None) -> list[dict[str, Any]]:
    """Journal records with severity >= min_severity whose issue_id or probe matches.

    A resolved record keeps the severity the issue had, so it is judged by that. With
    *told* (a dict the caller keeps per output), every later record of an occurrence that
    passed once passes too, so a CRITICAL-only consumer also hears it de-escalate and end.
    """
    floor = severity.rank(out.min_severity)
    result = []
    for item in records:
        occurrence = item.get("occurrence_id")
        known = told is not None and isinstance(occurrence, str) and occurrence in told
        wanted = severity.rank(item.get("severity")) >= floor and _matches((item.get("issue_id"), item.get("probe")),
                                                                    out.probes)
        if not (wanted or known):
            continue
        result.append(dict(item))
        if told is not None and isinstance(occurrence, str):
            if item.get("transition") == "resolved":
                told.pop(occurrence, None)
            elif item.get("kind", "transition") == "transition":
                told[occurrence] = None
                while len(told) > MAX_REMEMBERED_OCCURRENCES:
                    told.popitem(last=False)
    return result


# --------------------------------------------------------------------------- jsonl


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode("utf-8")


def jsonl_lines(data: Mapping[str, Any], records: list[dict[str, Any]], out: OutputConfig) -> list[bytes]:
    """What a jsonl output appends for one cycle (already filtered input)."""
    if out.what == "snapshot":
        return [_dumps(data)]
    if out.what == "issues":
        return [_dumps({"at": data.get("generated_at"), "host": data.get("host"), **issue})
                for issue in data.get("issues") or ()]
    return [_dumps(record) for record in records]


def append_jsonl(path: str, lines: list[bytes], max_bytes: int) -> None:
    """Append *lines* to *path* (file 0600, new directories 0700), first rotating the file
    to `path.1` when they would take it past *max_bytes* (never rotating it empty)."""
    if not lines:
        return
    payload = b"".join(lines)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        size = 0
    if size and size + len(payload) > max_bytes:
        os.replace(path, path + ".1")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- webhook


class ReportedElsewhere(Exception):
    """Raised by a handler whose failure the caller also raises itself (the cache write):
    recorded as a failure like any other, but not logged twice."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(_error_text(error))


class DeliveryError(Exception):
    """One webhook attempt failed; the message never holds a header value."""


def parse_headers(text: str, variable: str) -> list[tuple[str, str]]:
    """`Header: value` lines (blank lines and # comments skipped). A bad line is named by
    its number only, never shown."""
    headers = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or not value:
            raise DeliveryError(f"${variable} line {number} is not a `Header: value` line")
        headers.append((name, value))
    return headers


def post(url: str, body: bytes, headers: list[tuple[str, str]], timeout: float, *,
         content_headers: Iterable[tuple[str, str]]) -> None:
    """One POST through http_client.post; returns on 2xx, else raises DeliveryError. *timeout*
    bounds the whole request: connecting, the TLS handshake, sending, and the answer
    however slowly it comes (only a name lookup cannot be cut short). *content_headers*
    describe the body (Content-Type, ntfy's Title...); *headers* are the user's, from the
    environment, and may hold secrets. `user:password@` in *url* is sent as Basic auth
    (unless a header already sets Authorization). No error text holds a value of
    *headers*, the credentials, or the URL's path and query."""
    from aiki_hooks import http_client  # here, not at the top: every command loads this module with the config

    try:
        http_client.post(url, body, headers=[*content_headers, *headers], timeout=timeout,
                         body_limit=WEBHOOK_ANSWER_BYTES)
    except http_client.PostError as error:
        raise DeliveryError(_post_error_text(error, url, headers, timeout)) from None


def _post_error_text(error: PostError, url: str, headers: list[tuple[str, str]], timeout: float) -> str:
    """What DeliveryError says for http_client's PostError *error*."""
    from aiki_hooks import http_client

    if error.kind == http_client.BAD_URL:
        return f"cannot parse the URL {url_for_errors(url)}"
    if error.kind == http_client.URL_REFUSED:
        return f"http.client refused the URL {url_for_errors(url)}"  # its message quotes the path and query
    if error.kind == http_client.HEADER_REFUSED:
        # http.client quotes an invalid header value in its message: do not repeat it.
        return "a header from the environment variable was refused by http.client"
    if error.kind == http_client.TIMEOUT:
        return f"no answer within {timeout:g} s"
    target, response = error.target, error.response
    assert target is not None and response is not None  # set for every other kind
    parts = urllib.parse.urlsplit(url)
    secrets = [value for _, value in headers]
    if target.basic_auth is not None:
        secrets += [target.basic_auth.removeprefix("Basic "), urllib.parse.unquote(parts.password or ""),
                    parts.password or ""]
    secrets += [target.request_path, target.path, target.query]
    if error.kind == http_client.HTTP_STATUS:
        return _scrub(f"HTTP {response.status_line}", secrets)
    return _scrub(response.failure_reason, secrets)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # the longest first: one may hold another
        if len(secret) >= 4:  # shorter ones would mangle the text and are never quoted anyway
            text = text.replace(secret, "***")
    return " ".join(text.split())[:ERROR_CHARS]


# Why a webhook payload was dropped.
QUEUE_FULL = "queue full"
FAILED = "failed"
CLOSED = "closed"


class WebhookSink:
    """A background thread posting queued payloads, with retries and backoff.

    `submit` never blocks: a full queue drops its oldest payload. After all attempts for
    a payload fail it is dropped too and `on_result(error)` is called; a success calls
    `on_result(None)`. `on_dropped(n, why)` counts payloads that will never be sent, why
    being QUEUE_FULL, FAILED or CLOSED. `close` sends what is still queued, within a
    deadline (a one-shot command exits right after)."""

    def __init__(self, out: OutputConfig, *, on_result: Callable[[str | None], None],
                 on_dropped: Callable[[int, str], None], env: Mapping[str, str] | None = None,
                 backoff_seconds: float = BACKOFF_INITIAL_SECONDS,
                 backoff_max_seconds: float = BACKOFF_MAX_SECONDS) -> None:
        self.out = out
        self._on_result = on_result
        self._on_dropped = on_dropped
        self._env = os.environ if env is None else env
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._queue: collections.deque[formats.Message] = collections.deque()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._closing = False
        self._busy = False  # a payload is being sent
        self._abandoned = 0  # payloads the drain gave up after one failed for good
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None

    def submit(self, message: formats.Message) -> None:
        dropped, why = 0, QUEUE_FULL
        with self._wake:
            if self._closing:
                dropped, why = 1, CLOSED  # nothing would send it
            else:
                while len(self._queue) >= self.out.queue_size:
                    self._queue.popleft()
                    dropped += 1
                self._queue.append(message)
                self._wake.notify()
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=f"aiki-webhook-{self.out.name}",
                                                    daemon=True)
                    self._thread.start()
        if dropped:
            self._on_dropped(dropped, why)

    @property
    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def drain_deadline(self) -> float:
        """How long closing waits for the queue to empty: one payload's full retry budget
        (every attempt's timeout plus the backoffs between them), capped."""
        backoffs = sum(min(self._backoff_max, self._backoff * 2 ** i) for i in range(self.out.retries))
        budget = (self.out.retries + 1) * self.out.timeout_seconds + backoffs
        return min(CLOSE_DEADLINE_CAP_SECONDS, budget)

    def close(self, timeout: float | None = None) -> tuple[int, str | None]:
        """Send what is queued, for at most *timeout* seconds (default `drain_deadline()`),
        then stop. Returns (payloads given up, the last error)."""
        self.begin_close()
        return self.finish_close(time.monotonic() + (self.drain_deadline() if timeout is None else timeout))

    def begin_close(self) -> None:
        """Take no more payloads; the thread sends the queue and ends. A payload that fails
        for good ends the drain: the receiver is down, so the rest would only wait."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()

    def finish_close(self, deadline: float) -> tuple[int, str | None]:
        with self._wake:
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()  # past the deadline: an attempt in flight ends at its own timeout
        with self._wake:
            lost = self._abandoned + len(self._queue) + (1 if thread is not None and thread.is_alive()
                                                         and self._busy else 0)
            self._queue.clear()
            self._abandoned = 0
            self._wake.notify_all()
            return lost, self._last_error

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._queue and not self._stop.is_set() and not self._closing:
                    self._wake.wait()
                if self._stop.is_set() or not self._queue:
                    return  # stopped, or closing with nothing left to send
                message = self._queue.popleft()
                self._busy = True
            try:
                error = self._deliver(message)
            finally:
                with self._wake:
                    self._busy = False
            if self._stop.is_set():
                return
            self._last_error = error  # the latest outcome, for what close() reports
            if error is not None:
                self._on_dropped(1, FAILED)
            self._on_result(error)
            if error is not None and self._closing:
                with self._wake:
                    self._abandoned += 1 + len(self._queue)  # this one and the rest
                    self._queue.clear()
                return

    def _deliver(self, message: formats.Message) -> str | None:
        error = None
        for attempt in range(self.out.retries + 1):
            if attempt and self._stop.wait(min(self._backoff_max, self._backoff * 2 ** (attempt - 1))):
                return error
            try:
                headers = self._headers()
                post(self.out.url or "", message.body, headers, self.out.timeout_seconds,
                     content_headers=message.headers)
                return None
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                error = f"unexpected {exc.__class__.__name__}"
        return error

    def _headers(self) -> list[tuple[str, str]]:
        variable = self.out.headers_env
        if not variable:
            return []
        text = self._env.get(variable)
        if text is None:
            raise DeliveryError(f"environment variable {variable} (headers_env) is not set")
        return parse_headers(text, variable)


def webhook_payload(data: Mapping[str, Any], records: list[dict[str, Any]], out: OutputConfig) -> Any | None:
    """What a webhook tells this cycle, or None for nothing (no transitions, no issues):
    posted as is with format "json", else rendered by `formats.render`."""
    if out.what == "snapshot":
        return data
    if out.what == "issues":
        issues = list(data.get("issues") or ())
        return {"host": data.get("host"), "generated_at": data.get("generated_at"), "issues": issues} if issues else None
    return {"transitions": records} if records else None


# --------------------------------------------------------------------------- router

Handler = Callable[[OutputConfig, dict, list, float], Any]


class Router:
    """Runs every output each cycle, independently.

    *handlers* maps an output type to `fn(out, data, records, now)` for the types this
    module does not write (cache, journal, mem0, prometheus_*); `data` and `records` are
    already filtered for `out`. jsonl and webhook are built in (a handler given for them
    replaces the built-in one). A handler succeeds by returning and fails by raising.
    """

    def __init__(self, outputs: Iterable[OutputConfig], handlers: Mapping[str, Handler] | None = None, *,
                 env: Mapping[str, str] | None = None, wall: Callable[[], float] = time.time,
                 backoff_seconds: float = BACKOFF_INITIAL_SECONDS,
                 log: Callable[[str, int], None] | None = None, told_file: str | None = None) -> None:
        self.outputs = tuple(outputs)
        self.handlers = dict(handlers or {})
        self.wall = wall
        self.log = log
        self.failures: dict[str, tuple[float, str, int]] = {}
        self.dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._told: dict[str, collections.OrderedDict[str, None]] = {
            o.name: collections.OrderedDict() for o in self.outputs}
        # Kept on disk so a one-shot command (or a restarted refresher) still tells a
        # filtered output how the occurrences it heard about end, and only once.
        self._told_file = told_file if any(o.filtered for o in self.outputs) else None
        self._told_saved = b""
        if self._told_file:
            self._load_told()
        self._webhooks: dict[str, WebhookSink] = {}
        for out in self.outputs:
            if out.type == "webhook" and "webhook" not in self.handlers:
                self._webhooks[out.name] = WebhookSink(
                    out, env=env, backoff_seconds=backoff_seconds,
                    on_result=functools.partial(self._result_now, out.name),
                    on_dropped=functools.partial(self._count_dropped, out.name))

    def route(self, data: Mapping[str, Any], records: list[dict[str, Any]], now: float | None = None) -> None:
        """Hand this cycle to every output. Never raises; never waits on the network."""
        now = self.wall() if now is None else now
        for out in self.outputs:
            try:
                self._one(out, data, records, now)
            except ReportedElsewhere as exc:
                self._result(out.name, str(exc), now, log=False)
            except Exception as exc:  # noqa: BLE001 - one output must not stop the others
                self._result(out.name, _error_text(exc), now)
            else:
                if out.name not in self._webhooks:
                    self._result(out.name, None, now)
        if self._told_file:
            self._save_told()

    def report(self, name: str, error: str | None, now: float | None = None, *, log: bool = True) -> None:
        """The outcome of an output written outside `route` (None: it worked)."""
        self._result(name, error, self.wall() if now is None else now, log=log)

    def _told_payload(self) -> bytes:
        told = {o.name: list(self._told[o.name]) for o in self.outputs if o.filtered and self._told[o.name]}
        return json.dumps({"version": 1, "told": told}, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def _load_told(self) -> None:
        try:
            # The trusted reader, like every state file: no symlink or FIFO, size-capped.
            told = json.loads(read_state_file(self._told_file or "")).get("told")
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing told yet; an unusable state dir is reported by the cache output
        except (OSError, ValueError, AttributeError) as exc:
            if self.log:
                self.log(f"ignoring {self._told_file}: {_error_text(exc)}", WARNING)
            return
        if not isinstance(told, dict):
            return
        for out in self.outputs:
            ids = told.get(out.name)
            if out.filtered and isinstance(ids, list):
                for occurrence in ids[-MAX_REMEMBERED_OCCURRENCES:]:
                    if isinstance(occurrence, str):
                        self._told[out.name][occurrence] = None
        self._told_saved = self._told_payload()

    def _save_told(self) -> None:
        payload = self._told_payload()
        if payload == self._told_saved:
            return
        from aiki_hooks.cycle.cache import atomic_write_bytes

        try:
            directory = os.path.dirname(self._told_file or "")
            if directory:
                make_private_dir(directory)
            atomic_write_bytes(self._told_file or "", payload, mode=0o600)
        except OSError as exc:
            if self.log:
                self.log(f"cannot save {self._told_file}: {_error_text(exc)}", WARNING)
            return
        self._told_saved = payload

    def _one(self, out: OutputConfig, data: Mapping[str, Any], records: list[dict[str, Any]], now: float) -> None:
        mine = filter_snapshot(data, out) if out.filtered else dict(data)
        told = self._told[out.name] if out.filtered else None
        my_records = filter_records(records, out, told) if out.filtered else [dict(r) for r in records]
        handler = self.handlers.get(out.type)
        if handler is not None:
            handler(out, mine, my_records, now)
        elif out.type == "jsonl":
            append_jsonl(out.path or "", jsonl_lines(mine, my_records, out), out.max_bytes)
        elif out.name in self._webhooks:
            payload = webhook_payload(mine, my_records, out)
            if payload is not None:
                self._webhooks[out.name].submit(formats.render(out.format, out.what, payload))
        else:
            raise RuntimeError(f"nothing handles outputs of type {out.type} here")

    def _result_now(self, name: str, error: str | None) -> None:
        self._result(name, error, self.wall())

    def _result(self, name: str, error: str | None, at: float, *, log: bool = True) -> None:
        if error is None:
            # Drops stay reported until the receiver has caught up with the queue: one
            # payload delivered amid a backlog is not a recovery.
            sink = self._webhooks.get(name)
            caught_up = sink is None or sink.pending == 0
            with self._lock:
                failed = self.failures.pop(name, None) is not None
                dropped = self.dropped.pop(name, 0) if caught_up else 0
            if self.log and (failed or dropped):
                meanwhile = f" ({_payloads(dropped)} dropped meanwhile)" if dropped else ""
                self.log(f"output {name} {'works again' if failed else 'caught up'}{meanwhile}", NOTICE)
            return
        with self._lock:
            since, _, count = self.failures.get(name, (at, "", 0))
            self.failures[name] = (since, error, count + 1)
        if self.log and log and count == 0:
            self.log(f"output {name} failing: {error}", WARNING)

    def _count_dropped(self, name: str, n: int, why: str) -> None:
        with self._lock:
            before = self.dropped.get(name, 0)
            self.dropped[name] = before + n
            failing = name in self.failures
        if why == QUEUE_FULL and not before and not failing and self.log:
            # Once per episode: it lasts until the receiver catches up (see _result).
            self.log(f"output {name}: queue full, dropping the oldest payloads: the receiver is not keeping up",
                     WARNING)

    @property
    def troubled(self) -> bool:
        """Some output is failing or has dropped payloads: `findings()` is not empty."""
        with self._lock:
            return bool(self.failures) or any(self.dropped.values())

    def findings(self, now: float | None = None) -> list[tuple[str, str, str]]:
        """(issue_id, severity, summary): one WARNING per output failing right now, or
        dropping payloads because its receiver does not keep up."""
        now = self.wall() if now is None else now
        kinds = {o.name: o.type for o in self.outputs}
        queues = {o.name: o.queue_size for o in self.outputs}
        with self._lock:
            failing = dict(self.failures)
            dropped = {name: n for name, n in self.dropped.items() if n}
        result = []
        for name in sorted(set(failing) | set(dropped)):
            kind = kinds.get(name, name if name in OUTPUT_TYPES else "output")
            label = f"{kind} {name}" if kind != name else f"{kind} output"
            lost = _payloads(dropped.get(name, 0)) + " dropped"
            if name in failing:
                since, error, _count = failing[name]
                summary = f"{label} failing for {fmt_duration_words(now - since)}: {error}"
                if name in dropped:
                    summary += f" ({lost})"
            else:
                summary = f"{label} not keeping up: {lost}, its queue of {queues.get(name)} was full"
            result.append((ISSUE_PREFIX + name, "WARNING", summary))
        return result

    def probe_result(self, now: float | None = None):
        """The findings as one ProbeResult (name "outputs", kind "outputs"), for the snapshot."""
        from aiki_hooks.model.result import Finding, ProbeResult
        from aiki_hooks.model.status import Status

        now = self.wall() if now is None else now
        found = tuple(Finding(id=i, status=Status.WARNING, summary=s) for i, _, s in self.findings(now))
        return ProbeResult(
            name="outputs", kind="outputs", status=Status.WARNING if found else Status.OK,
            summary=found[0].summary if len(found) == 1 else (
                f"{len(found)} outputs failing or dropping payloads" if found
                else f"{len(self.outputs)} outputs working"),
            checked_at=now, findings=found, values={"failing": len(found)},
        )

    def close(self, timeout: float | None = None, *, wait: bool = True) -> int:
        """Let every webhook send its queue, all at once, for at most *timeout* seconds
        (default: the longest `drain_deadline()`); logs and returns the payloads given up.
        Without *wait* the threads drain in the background (each stops at its queue's end
        or its first payload that fails for good) and nothing is counted."""
        sinks = list(self._webhooks.values())
        if not wait:
            for sink in sinks:
                sink.begin_close()
            return 0
        if not sinks:
            return 0
        window = max(s.drain_deadline() for s in sinks) if timeout is None else timeout
        started = time.monotonic()
        for sink in sinks:
            sink.begin_close()
        lost_total = 0
        for sink in sinks:
            lost, error = sink.finish_close(started + window)
            lost_total += lost
            if lost and self.log:
                self.log(f"webhook {sink.out.name}: gave up on {lost} unsent payload{'' if lost == 1 else 's'} "
                         f"after {time.monotonic() - started:.1f} s" + (f" ({error})" if error else ""), WARNING)
        return lost_total


def _payloads(n: int) -> str:
    return f"{n} payload{'' if n == 1 else 's'}"


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return " ".join(f"{exc.strerror}{where}".split())[:ERROR_CHARS]
    return " ".join(f"{exc.__class__.__name__}: {exc}".split())[:ERROR_CHARS]
