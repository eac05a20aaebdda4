"""Connecting within a deadline, and naming what went wrong: what the TCP probe and
`aiki_hooks.http_client` (the HTTP probe, webhooks, mem0 REST) share.

Only socket: no http.client, no ssl (~4.5 MiB), so the TCP probe and the modules that
only need the words of the vocabulary stay light. Name resolution (getaddrinfo) cannot
be given a timeout from the standard library; a resolver that hangs is cut off by the
runner's deadline (or the caller's process) instead.
"""

from __future__ import annotations

import socket
import time
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
