"""Real loopback servers for the network probe tests: no mocks of http.client.

Every server is a context manager that listens on 127.0.0.1 on a free port, runs in its
own threads and, on exit, stops, closes every connection and joins its threads, so no
test leaks a thread or a socket into the next one.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import sys
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Mapping

# A dribbling server sends one byte per interval.
DRIBBLE_INTERVAL_SECONDS = 0.1


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0  # wait this long before answering at all
    dribble: Literal["nothing", "body", "everything"] = "nothing"


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: Mapping[str, str]  # names lower-cased


Route = Reply | Callable[[SeenRequest], Reply]


class _Server(http.server.ThreadingHTTPServer):
    # Joined on close (block_on_close), so each handler has ended when the test ends.
    daemon_threads = False

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = routes
        self.seen: list[SeenRequest] = []
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request, client_address) -> None:
        # The probe hanging up on a slow or dribbling answer, or refusing our test
        # certificate, is expected here.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = 5  # a client that never sends its request cannot block the shutdown

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        seen = SeenRequest(path=self.path, headers={k.lower(): v for k, v in self.headers.items()})
        self.server.seen.append(seen)
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            reply = Reply(status=404, body=b"not found")
        else:
            reply = route(seen) if callable(route) else route
        if reply.delay_seconds and self.server.stopping.wait(reply.delay_seconds):
            return
        head = self._head(reply)
        if reply.dribble == "everything":
            self._dribble(head + reply.body)
        elif reply.dribble == "body":
            self.wfile.write(head)
            self._dribble(reply.body)
        else:
            self.wfile.write(head + reply.body)

    def _head(self, reply: Reply) -> bytes:
        reason = http.server.BaseHTTPRequestHandler.responses.get(reply.status, ("",))[0]
        lines = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Length: {len(reply.body)}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _dribble(self, data: bytes) -> None:
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            if self.server.stopping.wait(DRIBBLE_INTERVAL_SECONDS):
                return

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base
        pass  # keep test output clean


class HttpServer:
    """An HTTP/1.1 server answering GET *routes* (path -> Reply, or a function of the
    request returning one); other paths get 404. `seen` lists every request received."""

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._server = _Server(routes)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02})

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[SeenRequest]:
        return self._server.seen

    @property
    def seen_paths(self) -> list[str]:
        return [request.path for request in self._server.seen]

    def __enter__(self) -> "HttpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class TlsHttpServer(HttpServer):
    """HttpServer speaking HTTPS with the given certificate and key files."""

    def __init__(self, routes: Mapping[str, Route], *, cert_file: str, key_file: str) -> None:
        super().__init__(routes)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        # Handshake per connection in the handler thread, not in the accept loop.
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class RawServer:
    """A TCP server handing each accepted connection to *on_connection(conn, stopping)*:
    to accept and never answer, to hang up at once, or to send something not HTTP."""

    def __init__(self, on_connection: Callable[[socket.socket, threading.Event], None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.02)
        self._on_connection = on_connection
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept_loop)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> int:
        return len(self._connections)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._connections.append(conn)
            worker = threading.Thread(target=self._on_connection, args=(conn, self._stopping))
            self._workers.append(worker)
            worker.start()

    def __enter__(self) -> "RawServer":
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopping.set()
        self._acceptor.join()
        for worker in self._workers:
            worker.join()
        for conn in self._connections:
            conn.close()
        self._listener.close()


def never_answer(conn: socket.socket, stopping: threading.Event) -> None:
    stopping.wait()


def hang_up(conn: socket.socket, stopping: threading.Event) -> None:
    """Read the request, then close without a word. (Closing before reading it would
    send a reset instead, racing the client's send.)"""
    conn.settimeout(2)
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            break
        request += chunk
    conn.close()


def answer_garbage(conn: socket.socket, stopping: threading.Event) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
    stopping.wait()


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- fake Qdrant


def qdrant_routes(
    *,
    api_key: str | None = None,
    version: str | None = "1.12.4",
    collections: tuple[str, ...] = ("docs", "memories"),
    has_readyz: bool = True,
    collections_body: bytes | None = None,
    prefix: str = "",
) -> dict[str, Route]:
    """Routes answering like Qdrant's REST API. As in Qdrant, /, /healthz and /readyz
    are open even when an api key is configured; /collections wants the `api-key` header
    and is refused with 401 without it."""

    def root(_: SeenRequest) -> Reply:
        info = {"title": "qdrant - vector search engine", "commit": "0f2e3c4"}
        if version is not None:
            info["version"] = version
        return Reply(body=json.dumps(info).encode(), headers={"Content-Type": "application/json"})

    def list_collections(request: SeenRequest) -> Reply:
        if api_key is not None and request.headers.get("api-key") != api_key:
            return Reply(status=401, body=b"Invalid api-key")
        body = collections_body
        if body is None:
            listed = [{"name": name} for name in collections]
            body = json.dumps({"result": {"collections": listed}, "status": "ok", "time": 1.5e-05}).encode()
        return Reply(body=body, headers={"Content-Type": "application/json"})

    routes: dict[str, Route] = {
        f"{prefix}/": root,
        f"{prefix}/healthz": Reply(body=b"healthz check passed"),
        f"{prefix}/collections": list_collections,
    }
    if has_readyz:
        routes[f"{prefix}/readyz"] = Reply(body=b"all shards are ready")
    return routes


def delayed(route: Route, seconds: float) -> Route:
    """*route*, answering only after *seconds*."""

    def answer(request: SeenRequest) -> Reply:
        reply = route(request) if callable(route) else route
        return replace(reply, delay_seconds=seconds)

    return answer

