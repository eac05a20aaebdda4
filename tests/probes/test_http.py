"""HTTP probe against real servers on 127.0.0.1, plus table tests of the pure judges."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from typing import Callable, Iterator

import pytest

from aiki_hooks.model.result import ProbeResult
from aiki_hooks.model.status import Status
from aiki_hooks.probes.http import (
    BODY_LIMIT_BYTES,
    CONNECTING,
    READING_BODY,
    WAITING,
    Exchange,
    HttpProbe,
    HttpProbeConfig,
    QdrantMeasurement,
    judge_generic,
    judge_qdrant,
    parse_collection_count,
    parse_target,
)
from tests.conftest import cli_env
from tests.servers import (
    HttpServer,
    RawServer,
    Reply,
    TlsHttpServer,
    answer_garbage,
    closed_port,
    delayed,
    hang_up,
    never_answer,
    qdrant_routes,
)

API_KEY = "k3y-Th4t-mUst-n3ver-leak"
LATENCY_SUMMARY = r"\d+(\.\d)? ms"


def http_config(url: str, **settings) -> HttpProbeConfig:
    settings.setdefault("timeout_seconds", 1.0)
    return HttpProbeConfig(name="svc", url=url, **settings)


def check(config: HttpProbeConfig, env: dict[str, str] | None = None) -> tuple[ProbeResult, float]:
    """The probe's single result and how long the check took."""
    started = time.monotonic()
    results = HttpProbe(config, env=env or {}).check()
    elapsed = time.monotonic() - started
    assert len(results) == 1 and results[0].name == "svc" and results[0].kind == "http"
    return results[0], elapsed


@pytest.fixture
def serve() -> Iterator[Callable[[dict], HttpServer]]:
    """Start HTTP servers; all are shut down when the test ends, passed or failed."""
    with contextlib.ExitStack() as stack:
        yield lambda routes: stack.enter_context(HttpServer(routes))


@pytest.fixture
def serve_raw() -> Iterator[Callable[..., RawServer]]:
    with contextlib.ExitStack() as stack:
        yield lambda on_connection: stack.enter_context(RawServer(on_connection))


# --------------------------------------------------------------------------- generic, live


def test_probe_follows_the_probe_contract():
    config = http_config("http://127.0.0.1:1/", timeout_seconds=2.5)
    probe = HttpProbe(config, env={})
    assert (probe.kind, probe.names, probe.timeout_seconds) == ("http", ("svc",), 2.5)


LOAD_THEN_CHECK = """
import sys
from aiki_hooks.config.load import load_config
config = load_config(sys.argv[1])
print('aiki_hooks.probes.http' in sys.modules, 'http.client' in sys.modules, 'ssl' in sys.modules)
from aiki_hooks.probes.http import HttpProbe
[probe_config] = config.entries("http")
[result] = HttpProbe(probe_config, env={}).check()
print(result.status.name, result.values["http_status"], 'http.client' in sys.modules)
"""


def test_loading_a_config_with_an_http_probe_imports_neither_http_client_nor_ssl(serve, tmp_path):
    # The loader imports probes/http.py for its spec: `status`, `config` and `issues` read
    # the config without sending a request, and http.client + ssl cost ~40 ms and ~5.6 MiB.
    server = serve({"/health": Reply(body=b"ok")})
    path = tmp_path / "config.toml"
    path.write_text(f'[[probes.http]]\nname = "svc"\nurl = "{server.url}/health"\ntimeout_seconds = 2\n')
    out = subprocess.run([sys.executable, "-c", LOAD_THEN_CHECK, str(path)], env=cli_env(), capture_output=True,
                         text=True, check=True, timeout=30).stdout
    loaded, checked = out.splitlines()
    assert loaded.split() == ["True", "False", "False"]  # the kind's module, without http.client and ssl
    assert checked.split() == ["OK", "200", "True"]  # a check then imports the client and works
    assert server.seen_paths == ["/health"]


def test_up_answers_200(serve):
    server = serve({"/health": Reply(body=b"ok")})
    result, _ = check(http_config(server.url + "/health"))
    assert result.status is Status.OK
    assert result.error_kind is None
    assert result.values["result"] == "ok"
    assert result.values["http_status"] == 200
    assert 0 < result.values["latency_seconds"] < 1
    assert re.fullmatch(rf"200 OK {LATENCY_SUMMARY}", result.summary), result.summary
    assert server.seen_paths == ["/health"]


def test_query_string_is_sent(serve):
    server = serve({"/health": Reply()})
    check(http_config(server.url + "/health?deep=1"))
    assert server.seen_paths == ["/health?deep=1"]


def test_503_is_bad_status(serve):
    server = serve({"/": Reply(status=503, body=b"down")})
    result, _ = check(http_config(server.url + "/"))
    assert result.status is Status.CRITICAL
    assert result.error_kind == "bad_status"
    assert result.values["result"] == "bad_status"
    assert result.values["http_status"] == 503
    assert result.summary == "503 Service Unavailable (expected 2xx/3xx)"


def test_refused_connection():
    result, elapsed = check(http_config(f"http://127.0.0.1:{closed_port()}/"))
    assert result.status is Status.CRITICAL
    assert result.values == {"result": "connection_failed", "latency_seconds": None, "http_status": None}
    assert result.summary == "connection refused"
    assert elapsed < 0.5


def test_accepted_but_never_answered_times_out_on_time(serve_raw):
    server = serve_raw(never_answer)
    result, elapsed = check(http_config(server.url + "/", timeout_seconds=0.5))
    assert server.accepted == 1
    assert result.status is Status.CRITICAL
    assert result.error_kind == "timeout"
    assert result.values["http_status"] is None
    assert result.summary == "no answer within 0.5 s"
    assert 0.45 <= elapsed < 0.5 + 0.5


def test_slow_answer_times_out(serve):
    server = serve({"/": Reply(delay_seconds=2.0)})
    result, elapsed = check(http_config(server.url + "/", timeout_seconds=0.4))
    assert result.error_kind == "timeout"
    assert result.summary == "no answer within 0.4 s"
    assert elapsed < 0.4 + 0.5


def test_dribbling_body_times_out_on_the_total_deadline(serve):
    # 40 bytes at one per 0.1 s would take 4 s; every single receive is quick.
    server = serve({"/": Reply(body=b"x" * 40, dribble="body")})
    result, elapsed = check(http_config(server.url + "/", timeout_seconds=0.6))
    assert result.status is Status.CRITICAL
    assert result.error_kind == "timeout"
    assert result.values["http_status"] == 200
    assert result.summary == "200 OK but body not complete within 0.6 s"
    assert elapsed < 0.6 + 0.5


def test_dribbling_headers_time_out_on_the_total_deadline(serve):
    server = serve({"/": Reply(body=b"ok", dribble="everything")})
    result, elapsed = check(http_config(server.url + "/", timeout_seconds=0.6))
    assert result.error_kind == "timeout"
    assert result.values["http_status"] is None
    assert result.summary == "no answer within 0.6 s"
    assert elapsed < 0.6 + 0.5


def test_hang_up_without_answer_is_connection_failed(serve_raw):
    server = serve_raw(hang_up)
    result, _ = check(http_config(server.url + "/"))
    assert result.error_kind == "connection_failed"
    assert result.summary == "connection closed without an answer"


def test_not_http_is_connection_failed(serve_raw):
    server = serve_raw(answer_garbage)
    result, elapsed = check(http_config(server.url + "/"))
    assert result.error_kind == "connection_failed"
    assert result.summary == "not a valid HTTP answer (BadStatusLine)"
    assert elapsed < 0.5


def test_dns_failure():
    result, _ = check(http_config("http://nonexistent.invalid:8080/health"))
    assert result.status is Status.CRITICAL
    assert result.error_kind == "dns_error"
    assert result.summary == "DNS lookup failed for nonexistent.invalid"


@pytest.mark.parametrize(
    ("answer", "expect_status", "status", "summary"),
    [
        (204, (200, 204), Status.OK, rf"204 No Content {LATENCY_SUMMARY}"),
        (200, (201,), Status.CRITICAL, r"200 OK \(expected 201\)"),
        (500, (200, 204), Status.CRITICAL, r"500 Internal Server Error \(expected 200 or 204\)"),
        (404, (200, 301, 404), Status.OK, rf"404 Not Found {LATENCY_SUMMARY}"),
    ],
    ids=["204-listed", "200-not-listed", "500-two-listed", "404-wanted"],
)
def test_expect_status(serve, answer, expect_status, status, summary):
    server = serve({"/": Reply(status=answer)})
    result, _ = check(http_config(server.url + "/", expect_status=expect_status))
    assert result.status is status
    assert result.values["http_status"] == answer
    assert re.fullmatch(summary, result.summary), result.summary


def test_expect_body_found(serve):
    server = serve({"/": Reply(body=b'{"status": "ok"}')})
    result, _ = check(http_config(server.url + "/", expect_body='"ok"'))
    assert result.status is Status.OK


def test_expect_body_missing_is_body_mismatch(serve):
    server = serve({"/": Reply(body=b'{"status": "degraded"}')})
    result, _ = check(http_config(server.url + "/", expect_body="ok"))
    assert result.status is Status.CRITICAL
    assert result.error_kind == "body_mismatch"
    assert result.values["http_status"] == 200
    assert result.summary == "body lacks 'ok'"
    assert result.details == ()


def test_body_is_searched_only_up_to_the_limit(serve):
    server = serve({"/": Reply(body=b"x" * BODY_LIMIT_BYTES + b"needle")})
    result, _ = check(http_config(server.url + "/", expect_body="needle", timeout_seconds=3.0))
    assert result.error_kind == "body_mismatch"
    assert result.details == ("only the first 1.0 MiB of the body were searched",)


def test_redirect_counts_as_up_and_is_not_followed(serve):
    server = serve({"/": Reply(status=302, headers={"Location": "/elsewhere"}), "/elsewhere": Reply(status=500)})
    result, _ = check(http_config(server.url + "/"))
    assert result.status is Status.OK
    assert result.values["http_status"] == 302
    assert re.fullmatch(rf"302 Found {LATENCY_SUMMARY}", result.summary), result.summary
    assert server.seen_paths == ["/"]


def test_redirect_is_bad_status_when_200_is_expected(serve):
    server = serve({"/": Reply(status=302, headers={"Location": "/elsewhere"}), "/elsewhere": Reply()})
    result, _ = check(http_config(server.url + "/", expect_status=(200,)))
    assert result.error_kind == "bad_status"
    assert result.summary == "302 Found (expected 200)"


def test_url_credentials_become_basic_auth_and_are_never_shown(serve):
    server = serve({"/": Reply(status=401, body=b"who are you?")})
    url = server.url.replace("http://", "http://monitor:pa%24%24word@") + "/"
    result, _ = check(http_config(url))
    assert server.seen[0].headers["authorization"] == "Basic bW9uaXRvcjpwYSQkd29yZA=="  # monitor:pa$$word
    assert result.summary == "401 Unauthorized (expected 2xx/3xx)"
    assert "pa$$word" not in json.dumps(result.to_dict()) and "pa%24%24word" not in json.dumps(result.to_dict())


def test_generic_probe_sends_the_api_key_too(serve):
    server = serve({"/": Reply()})
    check(http_config(server.url + "/", api_key_env="SVC_KEY"), env={"SVC_KEY": API_KEY})
    assert server.seen[0].headers["api-key"] == API_KEY


def test_api_key_unfit_for_a_header_is_refused_without_showing_it():
    config = http_config("http://127.0.0.1:1/", api_key_env="SVC_KEY")
    with pytest.raises(ValueError) as raised:
        HttpProbe(config, env={"SVC_KEY": "abc\ndef"}).check()
    assert str(raised.value) == "api key from $SVC_KEY has characters not allowed in an HTTP header"


# --------------------------------------------------------------------------- TLS, live


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture
def tls_server(self_signed) -> Iterator[TlsHttpServer]:
    cert, key = self_signed
    with TlsHttpServer({"/": Reply(body=b"ok")}, cert_file=cert, key_file=key) as server:
        yield server


def test_tls_certificate_not_trusted(tls_server):
    result, _ = check(http_config(tls_server.url + "/"))
    assert result.error_kind == "connection_failed"
    assert result.summary == "TLS certificate rejected: self-signed certificate"


def test_tls_to_a_plain_http_port(serve):
    server = serve({"/": Reply(body=b"ok")})
    result, elapsed = check(http_config(server.url.replace("http://", "https://") + "/"))
    assert result.error_kind == "connection_failed"
    assert result.summary == "TLS handshake failed: WRONG_VERSION_NUMBER"
    assert elapsed < 0.5


def test_tls_unverified_when_asked(tls_server):
    result, _ = check(http_config(tls_server.url + "/", verify_tls=False))
    assert result.status is Status.OK
    assert re.fullmatch(rf"200 OK {LATENCY_SUMMARY}", result.summary), result.summary


# --------------------------------------------------------------------------- qdrant, live


def qdrant_config(url: str, **settings) -> HttpProbeConfig:
    return http_config(url, kind="qdrant", **settings)


def test_qdrant_ready(serve):
    server = serve(qdrant_routes(collections=("docs", "memories", "notes")))
    result, _ = check(qdrant_config(server.url))
    assert result.status is Status.OK
    assert result.values["result"] == "ok"
    assert result.values["http_status"] == 200
    assert result.values["version"] == "1.12.4"
    assert result.values["collections"] == 3
    assert re.fullmatch(rf"ready {LATENCY_SUMMARY}, v1\.12\.4, 3 collections", result.summary), result.summary
    assert server.seen_paths == ["/readyz", "/collections", "/"]


def test_qdrant_behind_a_path_prefix(serve):
    server = serve(qdrant_routes(collections=("docs",), prefix="/qdrant"))
    result, _ = check(qdrant_config(server.url + "/qdrant/"))
    assert result.status is Status.OK
    assert result.summary.endswith(", v1.12.4, 1 collection")
    assert server.seen_paths == ["/qdrant/readyz", "/qdrant/collections", "/qdrant/"]


def test_qdrant_with_api_key(serve):
    server = serve(qdrant_routes(api_key=API_KEY))
    result, _ = check(qdrant_config(server.url, api_key_env="QDRANT_API_KEY"), env={"QDRANT_API_KEY": API_KEY})
    assert result.status is Status.OK
    assert result.values["collections"] == 2
    assert [request.headers.get("api-key") for request in server.seen] == [API_KEY] * 3
    assert API_KEY not in json.dumps(result.to_dict())


def test_qdrant_api_key_variable_not_set(serve):
    server = serve(qdrant_routes(api_key=API_KEY))
    result, _ = check(qdrant_config(server.url, api_key_env="QDRANT_API_KEY"), env={})
    assert result.status is Status.CRITICAL
    assert result.error_kind == "bad_status"
    assert result.values["http_status"] == 401
    assert result.summary == "401 Unauthorized on /collections (expected 2xx; api key from $QDRANT_API_KEY not set)"
    assert "api-key" not in server.seen[0].headers


def test_qdrant_wrong_api_key_never_shown(serve):
    server = serve(qdrant_routes(api_key=API_KEY))
    wrong = "wr0ng-" + API_KEY
    result, _ = check(qdrant_config(server.url, api_key_env="QDRANT_API_KEY"), env={"QDRANT_API_KEY": wrong})
    assert result.summary == "401 Unauthorized on /collections (expected 2xx; api key from $QDRANT_API_KEY rejected)"
    shown = json.dumps(result.to_dict())
    assert wrong not in shown and API_KEY not in shown


def test_older_qdrant_without_readyz_falls_back_to_healthz(serve):
    server = serve(qdrant_routes(has_readyz=False, version="1.4.0"))
    result, _ = check(qdrant_config(server.url))
    assert result.status is Status.OK
    assert result.values["http_status"] == 200
    assert re.fullmatch(rf"healthy {LATENCY_SUMMARY}, v1\.4\.0, 2 collections", result.summary), result.summary
    assert result.details == ("no /readyz on this Qdrant: readiness taken from /healthz",)
    assert server.seen_paths == ["/readyz", "/healthz", "/collections", "/"]


def test_qdrant_not_ready(serve):
    routes = qdrant_routes()
    routes["/readyz"] = Reply(status=503, body=b"some shards are not ready")
    server = serve(routes)
    result, _ = check(qdrant_config(server.url))
    assert result.status is Status.CRITICAL
    assert result.error_kind == "bad_status"
    assert result.values["http_status"] == 503
    assert result.summary == "503 Service Unavailable on /readyz (expected 2xx)"


def test_qdrant_unparsable_collections(serve):
    server = serve(qdrant_routes(collections_body=b"<html>proxy error</html>"))
    result, _ = check(qdrant_config(server.url))
    assert result.status is Status.CRITICAL
    assert result.error_kind == "body_mismatch"
    assert result.summary == "/collections answered without a collections list"
    assert "collections" not in result.values


def test_qdrant_without_version_still_ok(serve):
    server = serve(qdrant_routes(version=None))
    result, _ = check(qdrant_config(server.url))
    assert result.status is Status.OK
    assert "version" not in result.values
    assert re.fullmatch(rf"ready {LATENCY_SUMMARY}, 2 collections", result.summary), result.summary
    assert result.details == ("version unknown: GET / answered without a version",)


def test_qdrant_requests_share_one_deadline(serve):
    # Each answer alone fits in the timeout; together they do not.
    routes = qdrant_routes()
    routes["/readyz"] = delayed(routes["/readyz"], 0.35)
    routes["/collections"] = delayed(routes["/collections"], 0.35)
    server = serve(routes)
    result, elapsed = check(qdrant_config(server.url, timeout_seconds=0.5))
    assert result.error_kind == "timeout"
    assert result.summary == "no answer within 0.5 s on /collections"
    assert elapsed < 0.5 + 0.5


def test_qdrant_refused():
    result, _ = check(qdrant_config(f"http://127.0.0.1:{closed_port()}"))
    assert result.error_kind == "connection_failed"
    assert result.summary == "connection refused"
    assert result.values == {"result": "connection_failed", "latency_seconds": None, "http_status": None}


# --------------------------------------------------------------------------- judges, pure

GENERIC = http_config("http://svc.lan/health", timeout_seconds=3.0)


def answered(status: int, reason: str, body: bytes = b"", path: str = "/health", latency_seconds=0.035) -> Exchange:
    return Exchange(path=path, status=status, reason=reason, latency_seconds=latency_seconds, body=body)


def failed(failure: str, why: str, stage: str, path: str = "/health", **fields) -> Exchange:
    return Exchange(path=path, failure=failure, failure_reason=why, failed_while=stage, **fields)


@pytest.mark.parametrize(
    ("config", "exchange", "api_key_sent", "expected"),
    [
        (GENERIC, answered(200, "OK"), False, (Status.OK, "ok", "200 OK 35 ms")),
        (GENERIC, answered(301, "Moved Permanently"), False, (Status.OK, "ok", "301 Moved Permanently 35 ms")),
        (GENERIC, answered(503, "Service Unavailable"), False,
         (Status.CRITICAL, "bad_status", "503 Service Unavailable (expected 2xx/3xx)")),
        (GENERIC, failed("connection_failed", "connection refused", CONNECTING), False,
         (Status.CRITICAL, "connection_failed", "connection refused")),
        (GENERIC, failed("dns_error", "DNS lookup failed for svc.lan", CONNECTING), False,
         (Status.CRITICAL, "dns_error", "DNS lookup failed for svc.lan")),
        (GENERIC, failed("timeout", "timed out connecting", CONNECTING), False,
         (Status.CRITICAL, "timeout", "no connection within 3 s")),
        (GENERIC, failed("timeout", "timed out waiting for the response", WAITING), False,
         (Status.CRITICAL, "timeout", "no answer within 3 s")),
        (GENERIC, failed("timeout", "timed out reading the body", READING_BODY, status=200, reason="OK"), False,
         (Status.CRITICAL, "timeout", "200 OK but body not complete within 3 s")),
        (GENERIC, failed("timeout", "timed out reading the body", READING_BODY, status=500, reason="Oops"), False,
         (Status.CRITICAL, "bad_status", "500 Oops (expected 2xx/3xx)")),
        (http_config("http://svc.lan/", expect_status=(200, 201, 204)), answered(202, "Accepted"), False,
         (Status.CRITICAL, "bad_status", "202 Accepted (expected 200, 201 or 204)")),
        (http_config("http://svc.lan/", expect_body="healthy"), answered(200, "OK", b"unhealthy"), False,
         (Status.OK, "ok", "200 OK 35 ms")),
        (http_config("http://svc.lan/", expect_body="healthy"), answered(200, "OK", b"sick"), False,
         (Status.CRITICAL, "body_mismatch", "body lacks 'healthy'")),
        (http_config("http://svc.lan/", expect_body="x" * 60), answered(200, "OK"), False,
         (Status.CRITICAL, "body_mismatch", f"body lacks '{'x' * 37}...'")),
        (http_config("http://svc.lan/", api_key_env="SVC_KEY"), answered(403, "Forbidden"), False,
         (Status.CRITICAL, "bad_status", "403 Forbidden (expected 2xx/3xx; api key from $SVC_KEY not set)")),
        (GENERIC, answered(401, "Unauthorized"), False,
         (Status.CRITICAL, "bad_status", "401 Unauthorized (expected 2xx/3xx)")),
        (GENERIC, answered(200, "OK", latency_seconds=0.0004), False, (Status.OK, "ok", "200 OK 0.4 ms")),
    ],
    ids=[
        "200-ok", "301-ok-not-followed", "503-bad-status", "refused", "dns-error", "timeout-connecting",
        "timeout-waiting", "timeout-in-body", "bad-status-beats-body-timeout", "expect-status-list-missed",
        "expect-body-found", "expect-body-missing", "expect-body-long-quoted-short", "403-key-not-set",
        "401-generic-no-hint", "sub-millisecond",
    ],
)  # fmt: skip
def test_judge_generic(config, exchange, api_key_sent, expected):
    result = judge_generic(config, exchange, api_key_sent=api_key_sent)
    assert (result.status, result.values["result"], result.summary) == expected
    assert result.error_kind == (None if expected[1] == "ok" else expected[1])
    assert result.values["http_status"] == exchange.status


QDRANT = http_config("http://qdrant.lan:6333", kind="qdrant", api_key_env="QDRANT_API_KEY", timeout_seconds=3.0)
READY = answered(200, "OK", b"all shards are ready", path="/readyz", latency_seconds=0.012)
HEALTHY = answered(200, "OK", b"healthz check passed", path="/healthz", latency_seconds=0.012)
COLLECTIONS = answered(200, "OK", b'{"result":{"collections":[{"name":"a"},{"name":"b"}]},"status":"ok"}',
                       path="/collections")  # fmt: skip
ROOT = answered(200, "OK", b'{"title":"qdrant - vector search engine","version":"1.12.4"}', path="/")


def qdrant(readiness=READY, collections=COLLECTIONS, root=ROOT) -> QdrantMeasurement:
    return QdrantMeasurement(readiness=readiness, collections=collections, root=root)


@pytest.mark.parametrize(
    ("measurement", "api_key_sent", "expected"),
    [
        (qdrant(), True, (Status.OK, "ok", "ready 12 ms, v1.12.4, 2 collections")),
        (qdrant(readiness=HEALTHY), True, (Status.OK, "ok", "healthy 12 ms, v1.12.4, 2 collections")),
        (qdrant(root=answered(200, "OK", b"{}", path="/")), True, (Status.OK, "ok", "ready 12 ms, 2 collections")),
        (qdrant(root=failed("timeout", "timed out connecting", CONNECTING, path="/")), True,
         (Status.OK, "ok", "ready 12 ms, 2 collections")),
        (qdrant(readiness=answered(503, "Service Unavailable", path="/readyz")), True,
         (Status.CRITICAL, "bad_status", "503 Service Unavailable on /readyz (expected 2xx)")),
        (qdrant(readiness=answered(301, "Moved Permanently", path="/readyz")), True,
         (Status.CRITICAL, "bad_status", "301 Moved Permanently on /readyz (expected 2xx)")),
        (qdrant(readiness=failed("connection_failed", "connection refused", CONNECTING, path="/readyz")), True,
         (Status.CRITICAL, "connection_failed", "connection refused")),
        (qdrant(collections=answered(401, "Unauthorized", path="/collections")), False,
         (Status.CRITICAL, "bad_status",
          "401 Unauthorized on /collections (expected 2xx; api key from $QDRANT_API_KEY not set)")),
        (qdrant(collections=answered(403, "Forbidden", path="/collections")), True,
         (Status.CRITICAL, "bad_status",
          "403 Forbidden on /collections (expected 2xx; api key from $QDRANT_API_KEY rejected)")),
        (qdrant(collections=answered(200, "OK", b"not json", path="/collections")), True,
         (Status.CRITICAL, "body_mismatch", "/collections answered without a collections list")),
        (qdrant(collections=answered(200, "OK", b'{"result": []}', path="/collections")), True,
         (Status.CRITICAL, "body_mismatch", "/collections answered without a collections list")),
        (qdrant(collections=failed("timeout", "timed out waiting for the response", WAITING, path="/collections")),
         True, (Status.CRITICAL, "timeout", "no answer within 3 s on /collections")),
    ],
    ids=[
        "ready", "healthz-fallback", "no-version-in-root", "root-failed", "readyz-503", "readyz-redirect",
        "refused", "collections-401-key-not-set", "collections-403-key-rejected", "collections-not-json",
        "collections-wrong-shape", "collections-timeout",
    ],
)  # fmt: skip
def test_judge_qdrant(measurement, api_key_sent, expected):
    result = judge_qdrant(QDRANT, measurement, api_key_sent=api_key_sent)
    assert (result.status, result.values["result"], result.summary) == expected


def test_judge_qdrant_values_when_ready():
    result = judge_qdrant(QDRANT, qdrant(), api_key_sent=True)
    assert result.values == {
        "result": "ok",
        "latency_seconds": 0.012,
        "http_status": 200,
        "collections": 2,
        "version": "1.12.4",
    }


def test_judge_qdrant_reports_the_status_of_the_failed_request():
    result = judge_qdrant(QDRANT, qdrant(collections=answered(401, "Unauthorized", path="/collections")),
                          api_key_sent=False)  # fmt: skip
    assert result.values["http_status"] == 401
    assert result.values["latency_seconds"] == 0.012  # still the readiness latency


def test_judge_qdrant_without_configured_key_hints_at_it():
    config = http_config("http://qdrant.lan:6333", kind="qdrant")
    result = judge_qdrant(config, qdrant(collections=answered(401, "Unauthorized", path="/collections")),
                          api_key_sent=False)  # fmt: skip
    assert result.summary == "401 Unauthorized on /collections (expected 2xx; no api_key_env configured)"


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b'{"result":{"collections":[]},"status":"ok","time":1e-05}', 0),
        (b'{"result":{"collections":[{"name":"a"},{"name":"b"},{"name":"c"}]}}', 3),
        (b'{"result":{"collections":{"a":1}}}', None),
        (b'{"result":null}', None),
        (b"[1, 2]", None),
        (b"\xff\xfe", None),
        (b"", None),
    ],
    ids=["empty-list", "three", "dict-not-list", "null-result", "top-level-list", "not-utf8", "empty-body"],
)
def test_parse_collection_count(body, count):
    assert parse_collection_count(body) == count


@pytest.mark.parametrize(
    ("url", "https", "host", "port", "request_path", "auth"),
    [
        ("http://127.0.0.1:6333", False, "127.0.0.1", 6333, "/", None),
        ("https://qdrant.lan/api/?x=1", True, "qdrant.lan", 443, "/api/?x=1", None),
        ("http://[::1]:8080/health", False, "::1", 8080, "/health", None),
        ("http://u:p@svc.lan/", False, "svc.lan", 80, "/", "Basic dTpw"),
    ],
    ids=["ip-port", "https-default-port-query", "ipv6", "credentials"],
)
def test_parse_target(url, https, host, port, request_path, auth):
    target = parse_target(url)
    assert (target.https, target.host, target.port, target.request_path, target.basic_auth) == (
        https, host, port, request_path, auth,
    )  # fmt: skip
