"""Our one HTTP client: the HTTP probe's GETs, the webhook outputs' POSTs and the mem0
REST backend's POSTs all go through `request`; the two POSTs through `post`, which
also parses the URL and turns whatever is not a 2xx answer into a `PostError`.

Standard library only (http.client): the refresher's RSS budget is 30 MiB, and importing
`requests` costs ~14 MiB against ~6 MiB for http.client (mostly ssl, which http.client
imports in any case). One deadline bounds the whole request: each
connect attempt, the TLS handshake, sending, the response headers and every read of the
body get the time left as their timeout, so a server that dribbles a byte at a time
cannot stretch it (only the name lookup, getaddrinfo, cannot be cut short; the runner's
deadline or the caller's process bounds that). Several requests may share one deadline
(the Qdrant probe's three). Deadline and connecting come from `aiki_hooks.connect`, and so
do the words that need no http.client (Target, parse_target, Response, the stages,
DEFAULT_BODY_LIMIT_BYTES: defined there so that the HTTP probe's module loads without
http.client and ssl), re-exported here for the callers. Redirects are not followed. At
most `body_limit` bytes of the body are read.

A network failure is never raised: it comes back as a `Response` with `failure` set to
one word of a closed vocabulary (TIMEOUT, DNS_ERROR, CONNECTION_FAILED, after Telegraf's
http_response), a short factual `failure_reason` that never holds a header value or the
body, and `failed_while` (CONNECTING, WAITING, READING_BODY). What is our own mistake
is raised: http.client.InvalidURL for a path it will not send, ValueError for a header
it will not send (its message quotes the value: callers must not show it).
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, cast

from aiki_hooks.connect import (
    CONNECTING,
    CONNECTION_FAILED,
    DEFAULT_BODY_LIMIT_BYTES,
    DNS_ERROR,
    READING_BODY,
    TIMEOUT,
    WAITING,
    Deadline,
    DeadlineExceeded,
    Response,
    Target,
    classify_connect_error,
    open_connection,
    parse_target,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["BAD_URL", "CONNECTING", "CONNECTION_FAILED", "DEFAULT_BODY_LIMIT_BYTES", "DNS_ERROR", "HEADER_REFUSED",
           "HTTP_STATUS", "READING_BODY", "TIMEOUT", "URL_REFUSED", "WAITING", "Deadline", "DeadlineExceeded",
           "PostError", "Response", "Target", "open_connection", "parse_target", "post", "request", "tls_context"]

USER_AGENT = "aiki-hooks"
READ_CHUNK_BYTES = 64 * 1024


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

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        self._sock.settimeout(self._deadline.remaining())
        return self._stream.readinto(buffer)

    def close(self) -> None:
        self._stream.close()
        super().close()


class DeadlineSocket:
    """All that http.client.HTTPResponse asks of a socket: `makefile`, here a reader
    bound by the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(DeadlineReader(self._sock, self._deadline))


def _response_class(deadline: Deadline) -> type[http.client.HTTPResponse]:
    class DeadlineResponse(http.client.HTTPResponse):
        def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
            super().__init__(cast(socket.socket, DeadlineSocket(sock, deadline)), *args, **kwargs)

    return DeadlineResponse


_contexts: dict[bool, ssl.SSLContext] = {}  # tls_context's, by verify


def tls_context(*, verify: bool = True) -> ssl.SSLContext:
    """A context that verifies against the system's CA store, or one that verifies
    nothing; each built on first use and shared (loading the store is not free)."""
    context = _contexts.get(verify)
    if context is None:
        context = _contexts[verify] = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    return context


def request(
    target: Target,
    method: str,
    path: str,
    *,
    deadline: Deadline,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    tls: ssl.SSLContext | None = None,
    body_limit: int = DEFAULT_BODY_LIMIT_BYTES,
    clock: Callable[[], float] = time.monotonic,
) -> Response:
    """*method* *path* on *target* within *deadline*; never raises for network failures.

    *headers* go as given (pairs may repeat a name); User-Agent, Connection: close and,
    for credentials in the URL, Authorization are added unless given. An https target
    without *tls* uses `tls_context()`.
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    given = {name.lower() for name, _ in pairs}
    for name, value in (("User-Agent", USER_AGENT), ("Connection", "close"), ("Authorization", target.basic_auth)):
        if value is not None and name.lower() not in given:
            pairs.append((name, value))
    if target.https and tls is None:
        tls = tls_context()
    started = clock()
    stage = CONNECTING
    status, reason, latency = None, "", None
    # No I/O yet: the socket is ours to open (against the deadline), the connection then
    # owns it, so `close()` below releases it whatever fails.
    connection = (
        http.client.HTTPSConnection(target.host, target.port, context=tls)
        if target.https
        else http.client.HTTPConnection(target.host, target.port)
    )
    connection.response_class = _response_class(deadline)
    response: http.client.HTTPResponse | None = None
    try:
        connection.sock = open_connection(target.host, target.port, deadline)
        if tls is not None:
            connection.sock.settimeout(deadline.remaining())  # bounds the whole handshake
            connection.sock = tls.wrap_socket(connection.sock, server_hostname=target.host)
        stage = WAITING
        connection.sock.settimeout(deadline.remaining())  # sendall treats it as a total
        connection.putrequest(method, path)
        for name, value in pairs:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        latency = clock() - started
        status, reason = response.status, response.reason
        stage = READING_BODY
        content, truncated = _read_body(response, body_limit)
    except http.client.InvalidURL:
        raise  # ours, not the server's: the caller says so without quoting it
    except (OSError, http.client.HTTPException) as exc:
        failure, why = _classify_failure(exc, stage, target.host)
        return Response(path=path, status=status, reason=reason, latency_seconds=latency,
                        failure=failure, failure_reason=why, failed_while=stage)
    finally:
        if response is not None:
            response.close()
        connection.close()
    return Response(path=path, status=status, reason=reason, latency_seconds=latency,
                    body=content, body_truncated=truncated)


# PostError.kind, besides a failed request's Response.failure (TIMEOUT, DNS_ERROR,
# CONNECTION_FAILED).
BAD_URL = "bad_url"  # parse_target refused it
URL_REFUSED = "url_refused"  # http.client.InvalidURL, whose message quotes the path and query
HEADER_REFUSED = "header_refused"  # http.client's ValueError, whose message quotes the header's value
HTTP_STATUS = "http_status"  # an answer, not 2xx


class PostError(Exception):
    """Why `post` got no 2xx answer: *kind* (above), the *target* once the URL parsed,
    and the *response* for a failed request or an answer that is not 2xx. It holds no
    text of the URL, the headers or the answer: the callers say what went wrong, since
    only they know which of their values are secrets."""

    def __init__(self, kind: str, target: Target | None = None, response: Response | None = None) -> None:
        super().__init__(kind)
        self.kind, self.target, self.response = kind, target, response


def post(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    timeout: float,
    body_limit: int,
) -> Response:
    """POST *body* to *url* with *headers* (as in `request`), the whole request within
    *timeout* seconds, at most *body_limit* bytes of the answer read. Returns a 2xx
    Response; anything else raises PostError, chained to nothing (http.client's
    messages quote what it refused)."""
    deadline = Deadline(timeout)
    try:
        target = parse_target(url)
    except ValueError:
        raise PostError(BAD_URL) from None
    try:
        response = request(target, "POST", target.request_path, deadline=deadline, headers=headers, body=body,
                           body_limit=body_limit)
    except http.client.InvalidURL:
        raise PostError(URL_REFUSED, target) from None
    except ValueError:
        raise PostError(HEADER_REFUSED, target) from None
    if response.failure is not None:
        raise PostError(response.failure, target, response)
    if response.status is None or not 200 <= response.status < 300:
        raise PostError(HTTP_STATUS, target, response)
    return response


def _read_body(response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool]:
    """At most *limit* bytes of the body, and whether that limit was reached."""
    body = bytearray()
    while len(body) < limit:
        chunk = response.read(min(READ_CHUNK_BYTES, limit - len(body)))
        if not chunk:
            break
        body += chunk
    return bytes(body), len(body) >= limit


def _classify_failure(exc: OSError | http.client.HTTPException, stage: str, host: str) -> tuple[str, str]:
    # Order matters: SSLError and TimeoutError are OSErrors, RemoteDisconnected a
    # ConnectionError; a handshake that times out raises TimeoutError.
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CONNECTION_FAILED, f"TLS certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        during = "handshake failed" if stage == CONNECTING else f"error {stage}"
        return CONNECTION_FAILED, f"TLS {during}: {exc.reason or exc}"
    if stage == CONNECTING and isinstance(exc, OSError):
        failure = classify_connect_error(exc, host)
        return failure.result, failure.reason
    if isinstance(exc, TimeoutError):
        return TIMEOUT, f"timed out {stage}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return CONNECTION_FAILED, "connection closed without an answer"
    if isinstance(exc, http.client.IncompleteRead):
        return CONNECTION_FAILED, "connection closed before the body was complete"
    if isinstance(exc, http.client.HTTPException):
        return CONNECTION_FAILED, f"not a valid HTTP answer ({type(exc).__name__})"
    return CONNECTION_FAILED, f"connection lost {stage}: {exc.strerror or exc}"
