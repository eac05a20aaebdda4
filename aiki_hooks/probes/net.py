"""What the network probes (http, tcp) share: the closed vocabulary of results, one total
time budget for all of a probe's I/O, and how a failed connect is classified.

Name resolution (getaddrinfo) cannot be given a timeout from the standard library; a
resolver that hangs is cut off by the runner's deadline instead.
"""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass
from typing import Callable

from aiki_hooks.model.thresholds import fmt_seconds

# The closed vocabulary of `values["result"]` (after Telegraf's http_response).
OK = "ok"
TIMEOUT = "timeout"
DNS_ERROR = "dns_error"
CONNECTION_FAILED = "connection_failed"
BAD_STATUS = "bad_status"
BODY_MISMATCH = "body_mismatch"


class DeadlineExceeded(TimeoutError):
    """The probe's total time budget is spent."""


class Deadline:
    """A point in time shared by every I/O call of one probe run."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
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
    """Name what went wrong while resolving or connecting. (TLS errors are the HTTP
    probe's to name: importing ssl here would cost the TCP probe ~4.5 MiB.)"""
    # Order matters: gaierror and TimeoutError are OSErrors too.
    if isinstance(exc, socket.gaierror):
        return ConnectFailure(result=DNS_ERROR, reason=f"DNS lookup failed for {host}")
    if isinstance(exc, TimeoutError):
        return ConnectFailure(result=TIMEOUT, reason="timed out connecting")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailure(result=CONNECTION_FAILED, reason="connection refused")
    return ConnectFailure(result=CONNECTION_FAILED, reason=f"connection failed: {exc.strerror or exc}")


def fmt_latency(seconds: float) -> str:
    """Latency as "12 ms" or "1.2 s"; below 10 ms, where loopback answers live, with a
    decimal ("0.4 ms") rather than a misleading "0 ms"."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return fmt_seconds(seconds)


def fmt_timeout(seconds: float) -> str:
    return f"{seconds:g} s"


class DeadlineReader(io.RawIOBase):
    """The receive side of a socket that re-arms the socket timeout to the time left
    before every receive, so the total deadline also bounds a dribbling server."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        # Through socket.makefile, as http.client itself reads: the descriptor then stays
        # open when http.client closes the connection early on "Connection: close".
        self._stream = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int | None:
        self._sock.settimeout(self._deadline.remaining())
        return self._stream.readinto(buffer)

    def close(self) -> None:
        self._stream.close()
        super().close()


class DeadlineSocket:
    """All that http.client.HTTPResponse asks of a socket: the HTTP probe and webhook
    outputs read their answers through it."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(DeadlineReader(self._sock, self._deadline))
