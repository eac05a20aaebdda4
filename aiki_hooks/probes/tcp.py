"""TCP probe: does host:port accept a connection within `timeout_seconds`?

Refused, timed out or unresolvable is CRITICAL: that failure is what we watch. The
connection is closed as soon as it is made; nothing is sent.

values (base units):
  result           ok, timeout, dns_error, connection_failed
  connect_seconds  name resolution plus TCP handshake; None when no connection was made
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from aiki_hooks.config.validators import host, integer
from aiki_hooks.model.result import ProbeResult
from aiki_hooks.model.status import Status
from aiki_hooks.model.thresholds import round_seconds
from aiki_hooks.probes.net import (
    OK,
    TIMEOUT,
    Deadline,
    classify_connect_error,
    fmt_latency,
    fmt_timeout,
    open_connection,
)
from aiki_hooks.probes.registry import BuildContext, KindMetric, Probe, ProbeKind, name_and_timeout

KIND = "tcp"


@dataclass(frozen=True, kw_only=True)
class TcpMeasurement:
    connect_seconds: float | None = None
    failure: str | None = None  # TIMEOUT, DNS_ERROR or CONNECTION_FAILED
    failure_reason: str = ""


def measure_tcp(host: str, port: int, *, timeout_seconds: float, clock: Callable[[], float]) -> TcpMeasurement:
    started = clock()
    try:
        connection = open_connection(host, port, Deadline(timeout_seconds, clock))
    except OSError as exc:
        failure = classify_connect_error(exc, host)
        return TcpMeasurement(failure=failure.result, failure_reason=failure.reason)
    connect_seconds = clock() - started
    connection.close()
    return TcpMeasurement(connect_seconds=connect_seconds)


def judge_tcp(config: TcpProbeConfig, measurement: TcpMeasurement) -> ProbeResult:
    if measurement.failure is None:
        status, result = Status.OK, OK
        summary = f"connected in {fmt_latency(measurement.connect_seconds or 0.0)}"
    else:
        status, result = Status.CRITICAL, measurement.failure
        if measurement.failure == TIMEOUT:
            summary = f"no connection within {fmt_timeout(config.timeout_seconds)}"
        else:
            summary = measurement.failure_reason
    return ProbeResult(
        name=config.name,
        kind=KIND,
        status=status,
        summary=summary,
        values={"result": result, "connect_seconds": round_seconds(measurement.connect_seconds)},
        error_kind=measurement.failure,
    )


class TcpProbe:
    kind = KIND

    def __init__(self, config: TcpProbeConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.names = (config.name,)
        self.timeout_seconds = config.timeout_seconds
        self._clock = clock

    def check(self) -> list[ProbeResult]:
        measurement = measure_tcp(
            self.config.host, self.config.port, timeout_seconds=self.timeout_seconds, clock=self._clock
        )
        return [judge_tcp(self.config, measurement)]


# --------------------------------------------------------------------------- kind


@dataclass(frozen=True, kw_only=True)
class TcpProbeConfig:
    """One [[probes.tcp]] entry: a port that must accept connections."""

    name: str
    host: str
    port: int
    timeout_seconds: float = 3.0


def _build(configs: Sequence[TcpProbeConfig], context: BuildContext) -> list[Probe]:
    return [TcpProbe(config) for config in configs]


PROBE_KIND = ProbeKind(
    name="tcp",
    config_type=TcpProbeConfig,
    spec={**name_and_timeout(3.0), "host": (host, None), "port": (integer(1, 65535), None)},
    required=("name", "host", "port"),
    build=_build,
    is_service=True,
    metrics=(KindMetric(name="aiki_tcp_connect_seconds", documentation="Time to connect.",
                        value_key="connect_seconds"),),
    hints={None: "nothing accepts connections on {host}:{port}: is the service running?"},
)
