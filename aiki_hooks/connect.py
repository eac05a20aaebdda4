"""Connecting within a deadline, and naming what went wrong: what the TCP probe and
`aiki_hooks.http_client` (the HTTP probe, webhooks, mem0 REST) share. Also the words of
a request that need no http.client: where it goes (`Target`, `parse_target`), how it
went (`Response`, the stages it can fail in) and the default body limit, so that the
HTTP probe's module, which the config loader imports for its spec, loads without them.

Only socket: no http.client, no ssl (~40 ms and ~5.6 MiB to import), so the TCP probe, the
config loader and the modules that only need the words of the vocabulary stay light.
Name resolution (getaddrinfo) cannot be given a timeout from the standard library; a
resolver that hangs is cut off by the runner's deadline (or the caller's process) instead.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable

# Why connecting (or a request) failed: the HTTP and TCP probes' `result` words for it.
TIMEOUT = "timeout"
DNS_ERROR = "dns_error"
CONNECTION_FAILED = "connection_failed"


class DeadlineExceeded(TimeoutError):
    """The total time budget is spent."""


class Deadline:
    """A point in time shared by every I/O call of one request or probe run."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, to use as the next socket timeout; raises once none are left."""
        left = self._end - self._clock()
        if left <= 0:
            raise DeadlineExceeded("time budget spent")
        return left


def open_connection(host: str, port: int, deadline: Deadline) -> socket.socket:
    """A connected TCP socket, trying each address of *host* in turn like
    socket.create_connection, except that all attempts together get the time left rather
    than each a full timeout. Raises the last attempt's OSError."""
    last_error: OSError = socket.gaierror(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
            if isinstance(exc, DeadlineExceeded):
                break
    raise last_error


@dataclass(frozen=True, kw_only=True)
class ConnectFailure:
    result: str  # TIMEOUT, DNS_ERROR or CONNECTION_FAILED
    reason: str  # short and factual: "connection refused", "DNS lookup failed for db.lan"


def classify_connect_error(exc: OSError, host: str) -> ConnectFailure:
    """Name what went wrong while resolving or connecting. (TLS errors are http_client's
    to name: importing ssl here would cost the TCP probe ~4.5 MiB.)"""
    # Order matters: gaierror and TimeoutError are OSErrors too.
    if isinstance(exc, socket.gaierror):
        return ConnectFailure(result=DNS_ERROR, reason=f"DNS lookup failed for {host}")
    if isinstance(exc, TimeoutError):
        return ConnectFailure(result=TIMEOUT, reason="timed out connecting")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailure(result=CONNECTION_FAILED, reason="connection refused")
    return ConnectFailure(result=CONNECTION_FAILED, reason=f"connection failed: {exc.strerror or exc}")


# --------------------------------------------------------------------------- requests
# `aiki_hooks.http_client.request` sends them; these are its words, kept here so that
# naming a target or reading a Response does not import http.client and ssl.

DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024

# Where a request was when it failed.
CONNECTING = "connecting"
WAITING = "waiting for the response"
READING_BODY = "reading the body"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where requests go, from a URL. Credentials in the URL become a Basic
    authorization header and are never shown."""

    https: bool
    host: str
    port: int
    path: str  # URL path without the query, "/" when empty
    query: str
    basic_auth: str | None = None

    @property
    def request_path(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def parse_target(url: str) -> Target:
    """*url* split for `request`. Raises ValueError for a port that is not a number."""
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    basic_auth = None
    if parts.username is not None:
        import base64  # only a URL with credentials needs it (~2 ms for the TCP probe otherwise)

        credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        basic_auth = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return Target(
        https=https,
        host=parts.hostname or "",
        port=parts.port or (443 if https else 80),
        path=parts.path or "/",
        query=parts.query,
        basic_auth=basic_auth,
    )


@dataclass(frozen=True, kw_only=True)
class Response:
    """One request as it went: the answer, or the failure that cut it short. A failure
    while reading the body keeps the status already received."""

    path: str  # what was asked for, path and query, for messages
    status: int | None = None
    reason: str = ""
    latency_seconds: float | None = None  # from the start (connect included) to the response headers
    body: bytes = b""
    body_truncated: bool = False  # body_limit bytes read, the rest ignored
    failure: str | None = None  # TIMEOUT, DNS_ERROR or CONNECTION_FAILED
    failure_reason: str = ""
    failed_while: str = ""  # CONNECTING, WAITING or READING_BODY

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}".strip()
