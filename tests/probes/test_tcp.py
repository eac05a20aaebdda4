"""TCP probe against real sockets on 127.0.0.1, plus a table test of the pure judge."""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Iterator

import pytest

from aiki_hooks.model.result import ProbeResult
from aiki_hooks.model.status import Status
from aiki_hooks.probes.tcp import TcpMeasurement, TcpProbe, TcpProbeConfig, judge_tcp
from tests.servers import closed_port


def tcp_config(host: str, port: int, timeout_seconds: float = 1.0) -> TcpProbeConfig:
    return TcpProbeConfig(name="db", host=host, port=port, timeout_seconds=timeout_seconds)


def check(config: TcpProbeConfig) -> tuple[ProbeResult, float]:
    started = time.monotonic()
    results = TcpProbe(config).check()
    elapsed = time.monotonic() - started
    assert len(results) == 1 and results[0].name == "db" and results[0].kind == "tcp"
    return results[0], elapsed


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further handshakes, so a
    connect there hangs, the loopback stand-in for an unreachable host."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers: list[socket.socket] = []
        try:
            for _ in range(8):
                filler = socket.socket()
                fillers.append(filler)
                filler.settimeout(0.2)
                try:
                    filler.connect(("127.0.0.1", port))
                except TimeoutError:
                    break  # the queue is full
            else:
                pytest.skip("this kernel does not drop connections to a full accept queue")
            yield port
        finally:
            for filler in fillers:
                filler.close()


def test_probe_follows_the_probe_contract():
    probe = TcpProbe(tcp_config("127.0.0.1", 5432, timeout_seconds=2.5))
    assert (probe.kind, probe.names, probe.timeout_seconds) == ("tcp", ("db",), 2.5)


def test_connects(listener):
    result, _ = check(tcp_config("127.0.0.1", listener.getsockname()[1]))
    assert result.status is Status.OK
    assert result.error_kind is None
    assert result.values["result"] == "ok"
    assert 0 < result.values["connect_seconds"] < 0.5
    assert re.fullmatch(r"connected in \d+(\.\d)? ms", result.summary), result.summary


def test_refused():
    result, elapsed = check(tcp_config("127.0.0.1", closed_port()))
    assert result.status is Status.CRITICAL
    assert result.values == {"result": "connection_failed", "connect_seconds": None}
    assert result.error_kind == "connection_failed"
    assert result.summary == "connection refused"
    assert elapsed < 0.5


def test_dns_failure():
    result, _ = check(tcp_config("nonexistent.invalid", 5432))
    assert result.status is Status.CRITICAL
    assert result.values == {"result": "dns_error", "connect_seconds": None}
    assert result.summary == "DNS lookup failed for nonexistent.invalid"


def test_timeout_on_time(full_backlog):
    result, elapsed = check(tcp_config("127.0.0.1", full_backlog, timeout_seconds=0.4))
    assert result.status is Status.CRITICAL
    assert result.values == {"result": "timeout", "connect_seconds": None}
    assert result.summary == "no connection within 0.4 s"
    assert 0.35 <= elapsed < 0.4 + 0.5


def test_result_serialises(listener):
    result, _ = check(tcp_config("127.0.0.1", listener.getsockname()[1]))
    assert json.loads(json.dumps(result.to_dict()))["values"]["result"] == "ok"


CONFIG = tcp_config("db.lan", 5432, timeout_seconds=3.0)


@pytest.mark.parametrize(
    ("measurement", "expected"),
    [
        (TcpMeasurement(connect_seconds=0.0004), (Status.OK, "ok", "connected in 0.4 ms")),
        (TcpMeasurement(connect_seconds=0.0123), (Status.OK, "ok", "connected in 12 ms")),
        (TcpMeasurement(connect_seconds=1.25), (Status.OK, "ok", "connected in 1.2 s")),
        (TcpMeasurement(failure="connection_failed", failure_reason="connection refused"),
         (Status.CRITICAL, "connection_failed", "connection refused")),
        (TcpMeasurement(failure="timeout", failure_reason="timed out connecting"),
         (Status.CRITICAL, "timeout", "no connection within 3 s")),
        (TcpMeasurement(failure="dns_error", failure_reason="DNS lookup failed for db.lan"),
         (Status.CRITICAL, "dns_error", "DNS lookup failed for db.lan")),
        (TcpMeasurement(failure="connection_failed", failure_reason="connection failed: No route to host"),
         (Status.CRITICAL, "connection_failed", "connection failed: No route to host")),
    ],
    ids=["sub-millisecond", "milliseconds", "seconds", "refused", "timeout", "dns-error", "no-route"],
)  # fmt: skip
def test_judge_tcp(measurement, expected):
    result = judge_tcp(CONFIG, measurement)
    assert (result.status, result.values["result"], result.summary) == expected
    assert result.error_kind == (None if expected[1] == "ok" else expected[1])
    assert result.values["connect_seconds"] == measurement.connect_seconds
