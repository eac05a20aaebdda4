"""The one HTTP client (probe GETs, webhook and mem0 POSTs) against real loopback servers:
what it sends, the whole-request deadline, the body limit, and how failures are named."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from aiki_hooks import http_client
from aiki_hooks.http_client import (
    CONNECTING,
    CONNECTION_FAILED,
    READING_BODY,
    TIMEOUT,
    WAITING,
    Deadline,
    parse_target,
    request,
)
from tests.conftest import REPO
from tests.servers import HttpServer, RawServer, Reply, closed_port, never_answer


class Recorder:
    """A RawServer handler keeping each request's raw bytes and answering *answer*."""

    def __init__(self, answer: bytes = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok") -> None:
        self.answer = answer
        self.raw: list[bytes] = []

    def __call__(self, conn: socket.socket, stopping: threading.Event) -> None:
        conn.settimeout(2)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return  # the client hung up without a request
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            self.raw.append(head + b"\r\n\r\n" + body)
            conn.sendall(self.answer)
        except OSError:
            pass


def header_lines(raw: bytes) -> list[str]:
    return raw.split(b"\r\n\r\n")[0].decode().split("\r\n")


def test_post_sends_body_and_every_header_given_and_reads_the_answer():
    recorder = Recorder()
    with RawServer(recorder) as server:
        target = parse_target(server.url.replace("http://", "http://user:pw@") + "/hook?x=1")
        response = request(target, "POST", target.request_path, deadline=Deadline(2.0), body=b'{"a": 1}',
                           headers=[("Content-Type", "application/json"), ("X-Tag", "a"), ("X-Tag", "b")])
    assert (response.status, response.reason, response.body, response.failure) == (201, "Created", b"ok", None)
    assert response.path == "/hook?x=1" and response.latency_seconds is not None
    lines = header_lines(recorder.raw[0])
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    assert {"X-Tag: a", "X-Tag: b", "Content-Length: 8", "User-Agent: aiki-hooks", "Connection: close",
            "Authorization: Basic dXNlcjpwdw=="} <= set(lines)
    assert recorder.raw[0].endswith(b'\r\n\r\n{"a": 1}')


def test_headers_given_win_over_the_defaults_and_the_url_credentials():
    recorder = Recorder()
    with RawServer(recorder) as server:
        target = parse_target(server.url.replace("http://", "http://user:pw@") + "/")
        request(target, "GET", "/", deadline=Deadline(2.0),
                headers={"Authorization": "Bearer t", "User-Agent": "other"})
    lines = header_lines(recorder.raw[0])
    assert "Authorization: Bearer t" in lines and "User-Agent: other" in lines
    assert not any(line.startswith("Authorization: Basic") or line == "User-Agent: aiki-hooks" for line in lines)


def test_a_server_that_never_answers_is_cut_off_at_the_deadline():
    with RawServer(never_answer) as server:
        started = time.monotonic()
        response = request(parse_target(server.url), "GET", "/", deadline=Deadline(0.4))
    assert time.monotonic() - started < 0.9
    assert (response.failure, response.failed_while, response.status) == (TIMEOUT, WAITING, None)
    assert response.failure_reason == "timed out waiting for the response"


def test_a_dribbling_body_is_cut_off_at_the_deadline_keeping_the_status():
    with HttpServer({"/": Reply(body=b"x" * 100, dribble="body")}) as server:
        started = time.monotonic()
        response = request(parse_target(server.url), "GET", "/", deadline=Deadline(0.5))
    assert time.monotonic() - started < 1.0
    assert (response.failure, response.failed_while, response.status) == (TIMEOUT, READING_BODY, 200)


def test_the_body_is_read_up_to_the_limit():
    with HttpServer({"/": Reply(body=b"y" * 10_000)}) as server:
        response = request(parse_target(server.url), "GET", "/", deadline=Deadline(2.0), body_limit=1000)
        whole = request(parse_target(server.url), "GET", "/", deadline=Deadline(2.0))
    assert (len(response.body), response.body_truncated) == (1000, True)
    assert (len(whole.body), whole.body_truncated) == (10_000, False)


def test_refused_is_a_connect_failure_not_an_exception():
    response = request(parse_target(f"http://127.0.0.1:{closed_port()}"), "POST", "/", deadline=Deadline(2.0),
                       body=b"{}")
    assert (response.failure, response.failed_while, response.failure_reason) == (
        CONNECTION_FAILED, CONNECTING, "connection refused")


def test_one_deadline_shared_by_several_requests_stops_the_later_ones_without_io():
    with RawServer(never_answer) as server:
        deadline = Deadline(0.3)
        first = request(parse_target(server.url), "GET", "/", deadline=deadline)
        second = request(parse_target(server.url), "GET", "/", deadline=deadline)
        accepted = server.accepted
    assert first.failure == TIMEOUT and (second.failure, second.failed_while) == (TIMEOUT, CONNECTING)
    assert accepted == 1


def test_our_own_mistakes_are_raised_not_reported_as_the_servers():
    recorder = Recorder()
    with RawServer(recorder) as server:
        target = parse_target(server.url)
        with pytest.raises(http.client.InvalidURL):
            request(target, "GET", "/a path", deadline=Deadline(2.0))
        with pytest.raises(ValueError):
            request(target, "GET", "/", deadline=Deadline(2.0), headers={"X-Key": "secret\r\nInjected: 1"})
    assert recorder.raw == []  # nothing was sent


def test_post_returns_a_2xx_answer_and_raises_a_post_error_without_text_for_the_rest():
    secret = "s3cret-value"
    recorder = Recorder()
    with RawServer(recorder) as server:
        response = http_client.post(server.url + "/hook", b"{}", headers={"X-Key": secret}, timeout=2.0,
                                    body_limit=1)
        assert (response.status, response.body, response.body_truncated) == (201, b"o", True)
        for url, headers, kind in ((server.url + "/a path", {}, http_client.URL_REFUSED),
                                   (server.url, {"X-Key": secret + "\r\nInjected: 1"}, http_client.HEADER_REFUSED),
                                   ("http://h:notaport/", {}, http_client.BAD_URL)):
            with pytest.raises(http_client.PostError) as caught:
                http_client.post(url, b"{}", headers=headers, timeout=2.0, body_limit=100)
            assert caught.value.kind == kind and str(caught.value) == kind and caught.value.response is None
            assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(recorder.raw) == 1 and b"X-Key: s3cret-value" in recorder.raw[0]
    with RawServer(Recorder(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno")) as server:
        with pytest.raises(http_client.PostError) as caught:
            http_client.post(server.url, b"{}", headers=(), timeout=2.0, body_limit=100)
    assert caught.value.kind == http_client.HTTP_STATUS and caught.value.target is not None
    assert caught.value.response is not None and (caught.value.response.status, caught.value.response.body) == (
        401, b"no")
    with RawServer(never_answer) as server:
        started = time.monotonic()
        with pytest.raises(http_client.PostError) as caught:
            http_client.post(server.url, b"{}", headers=(), timeout=0.3, body_limit=100)
    assert time.monotonic() - started < 0.8
    assert caught.value.kind == TIMEOUT and caught.value.response is not None
    with pytest.raises(http_client.PostError) as caught:
        http_client.post(f"http://127.0.0.1:{closed_port()}", b"{}", headers=(), timeout=2.0, body_limit=100)
    assert caught.value.kind == CONNECTION_FAILED
    assert caught.value.response is not None and caught.value.response.failure_reason == "connection refused"


def test_parse_target():
    target = parse_target("https://u%40x:p@h.example:8443/a/b?q=1")
    assert (target.https, target.host, target.port, target.path, target.query) == (True, "h.example", 8443, "/a/b", "q=1")
    assert target.basic_auth == "Basic dUB4OnA=" and target.request_path == "/a/b?q=1"
    assert parse_target("http://h").port == 80 and parse_target("http://h").path == "/"
    with pytest.raises(ValueError):
        parse_target("http://h:notaport/")


def test_the_verifying_tls_context_is_built_once():
    assert http_client.tls_context() is http_client.tls_context()
    assert http_client.tls_context(verify=False).check_hostname is False


@pytest.mark.parametrize("module", ["aiki_hooks.connect", "aiki_hooks.probes.net", "aiki_hooks.probes.tcp",
                                    "aiki_hooks.issues.occurrences"])
def test_what_only_connects_or_names_failures_loads_neither_http_client_nor_ssl(module):
    # ssl costs ~4.5 MiB of the refresher's 30 MiB; a TCP probe or the journal need neither.
    code = f"import sys, {module}; print('http.client' in sys.modules, 'ssl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.split() == ["False", "False"]
