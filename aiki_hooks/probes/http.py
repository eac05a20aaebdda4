"""HTTP probe: does a service answer as expected; for Qdrant, is it ready and serving?

Requests go through `aiki_hooks.http_client` (http.client, for the refresher's RSS
budget), imported only where a request is sent: the config loader imports this module
for its config record and key spec, and one-shot commands (`status`, `config`, `issues`)
must not pay for http.client and ssl (~40 ms, ~5.6 MiB) to read a config.

All of one probe run's requests share one deadline, `timeout_seconds` in total: every
connect, TLS handshake, send and receive gets the time left as its timeout, so a server
that dribbles a byte at a time cannot stretch the probe. Redirects are not followed: a
3xx is the service answering. Bodies are read up to BODY_LIMIT_BYTES.

Measuring (`fetch`, `measure_qdrant`: I/O, frozen records) is kept apart from judging
(`judge_generic`, `judge_qdrant`: pure, build the ProbeResult). A service that refuses,
times out or answers wrongly is CRITICAL: that failure is what we watch. Our own
instrument failing (an exception) is left to the runner, which reports UNKNOWN.

values (base units):
  result           ok, timeout, dns_error, connection_failed, bad_status, body_mismatch
  latency_seconds  from the start of the main request (connect included) to its response
                   headers; the main request is the GET of the URL, for Qdrant its
                   readiness check
  http_status      status of the main request, or of the request that failed
  version          qdrant only, from GET /, omitted when Qdrant does not tell
  collections      qdrant only, number of collections from GET /collections

When `api_key_env` is set, its variable's value is sent as the `api-key` header (Qdrant's
name for it) on every request. The key itself never appears in a result.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from aiki_hooks.config.validators import boolean, choice, env_var_name, redact_url, text, url
from aiki_hooks.connect import (
    CONNECTING,
    DEFAULT_BODY_LIMIT_BYTES,
    READING_BODY,
    WAITING,
    Deadline,
    Response,
    Target,
    parse_target,
)
from aiki_hooks.model.result import ProbeResult, Value
from aiki_hooks.model.status import Status
from aiki_hooks.model.units import fmt_bytes, fmt_latency, fmt_timeout, round_seconds
from aiki_hooks.probes.net import BAD_STATUS, BODY_MISMATCH, OK, TIMEOUT
from aiki_hooks.probes.registry import BuildContext, KindMetric, Probe, ProbeKind, name_and_timeout

if TYPE_CHECKING:
    import ssl

KIND = "http"
BODY_LIMIT_BYTES = DEFAULT_BODY_LIMIT_BYTES
API_KEY_HEADER = "api-key"

# One GET as measured (http_client's Response): the answer, or the failure (TIMEOUT,
# DNS_ERROR or CONNECTION_FAILED) that cut it short, and where (CONNECTING, WAITING,
# READING_BODY). A failure while reading the body keeps the status already received.
Exchange = Response

__all__ = ["CONNECTING", "READING_BODY", "WAITING", "Exchange", "Target", "parse_target"]  # for the judges' tests

_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")


# --------------------------------------------------------------------------- measure


@dataclass(frozen=True, kw_only=True)
class QdrantMeasurement:
    readiness: Exchange  # GET /readyz, or /healthz when this Qdrant has no /readyz
    collections: Exchange
    root: Exchange


def fetch(
    target: Target,
    path: str,
    *,
    headers: Mapping[str, str],
    deadline: Deadline,
    clock: Callable[[], float],
    tls_context: ssl.SSLContext | None,
) -> Exchange:
    """GET *path* from *target* within *deadline*; never raises for network failures."""
    from aiki_hooks import http_client  # imported here: the config loader imports this module for its spec

    return http_client.request(target, "GET", path, deadline=deadline, headers=headers, tls=tls_context,
                               body_limit=BODY_LIMIT_BYTES, clock=clock)


def measure_qdrant(
    target: Target,
    *,
    headers: Mapping[str, str],
    deadline: Deadline,
    clock: Callable[[], float],
    tls_context: ssl.SSLContext | None,
) -> QdrantMeasurement:
    """Readiness, then collections, then version (the optional one last, so it cannot
    starve the others of time). All three are asked even when one fails: once the
    deadline is spent the rest fail at once, without I/O."""
    base = target.path.rstrip("/")

    def get(path: str) -> Exchange:
        return fetch(target, base + path, headers=headers, deadline=deadline, clock=clock, tls_context=tls_context)

    readiness = get("/readyz")
    if readiness.status == 404:  # older Qdrant: no /readyz yet
        readiness = get("/healthz")
    return QdrantMeasurement(readiness=readiness, collections=get("/collections"), root=get("/"))


# --------------------------------------------------------------------------- judge


def judge_generic(config: HttpProbeConfig, exchange: Exchange, *, api_key_sent: bool) -> ProbeResult:
    """Any 2xx/3xx (or one of `expect_status`), complete, with `expect_body` in the body."""
    values: dict[str, Value] = {
        "result": OK,
        "latency_seconds": round_seconds(exchange.latency_seconds),
        "http_status": exchange.status,
    }
    if config.expect_status:
        accepted, expected = (lambda status: status in config.expect_status), _or_list(config.expect_status)
    else:
        accepted, expected = _is_2xx_or_3xx, "2xx/3xx"
    problem = _answer_problem(
        exchange,
        accepted=accepted,
        expected=expected,
        timeout_seconds=config.timeout_seconds,
        where="",
        hints=_auth_hints(exchange.status, config, api_key_sent),
    )
    if problem is not None:
        return _failed(config, values, *problem)
    if config.expect_body is not None and config.expect_body.encode() not in exchange.body:
        searched = f"only the first {fmt_bytes(BODY_LIMIT_BYTES)} of the body were searched"
        details = (searched,) if exchange.body_truncated else ()
        return _failed(config, values, BODY_MISMATCH, f"body lacks {_quote(config.expect_body)}", details)
    summary = f"{exchange.status_line} {fmt_latency(exchange.latency_seconds or 0.0)}"
    return _result(config, Status.OK, summary, values)


def judge_qdrant(config: HttpProbeConfig, measurement: QdrantMeasurement, *, api_key_sent: bool) -> ProbeResult:
    """Ready (2xx), then a collections list; the version is a bonus."""
    readiness, collections, root = measurement.readiness, measurement.collections, measurement.root
    values: dict[str, Value] = {
        "result": OK,
        "latency_seconds": round_seconds(readiness.latency_seconds),
        "http_status": readiness.status,
    }
    via_healthz = readiness.path.endswith("/healthz")
    details: tuple[str, ...] = ("no /readyz on this Qdrant: readiness taken from /healthz",) if via_healthz else ()

    for exchange in (readiness, collections):
        problem = _answer_problem(
            exchange,
            accepted=_is_2xx,
            expected="2xx",
            timeout_seconds=config.timeout_seconds,
            where=f" on {exchange.path}",
            hints=_auth_hints(exchange.status, config, api_key_sent),
        )
        if problem is not None:
            return _failed(config, {**values, "http_status": exchange.status}, *problem, details)

    count = parse_collection_count(collections.body)
    if count is None:
        summary = f"{collections.path} answered without a collections list"
        return _failed(config, {**values, "http_status": collections.status}, BODY_MISMATCH, summary, details)
    values["collections"] = count

    version = parse_version(root.body) if root.failure is None and _is_2xx(root.status) else None
    if version is None:
        details += (f"version unknown: GET {root.path} {_what_went_wrong(root)}",)
    else:
        values["version"] = version

    parts = [f"{'healthy' if via_healthz else 'ready'} {fmt_latency(readiness.latency_seconds or 0.0)}"]
    if version is not None:
        parts.append(f"v{version}")
    parts.append(f"{count} collection{'' if count == 1 else 's'}")
    return _result(config, Status.OK, ", ".join(parts), values, details)


def parse_collection_count(body: bytes) -> int | None:
    """len(result.collections) of Qdrant's GET /collections; None when not that shape."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    result = data.get("result") if isinstance(data, dict) else None
    collections = result.get("collections") if isinstance(result, dict) else None
    return len(collections) if isinstance(collections, list) else None


def parse_version(body: bytes) -> str | None:
    """The version in Qdrant's GET / answer; None when absent or not JSON."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) and version else None


def _is_2xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _is_2xx_or_3xx(status: int | None) -> bool:
    return status is not None and 200 <= status < 400


def _answer_problem(
    exchange: Exchange,
    *,
    accepted: Callable[[int], bool],
    expected: str,
    timeout_seconds: float,
    where: str,
    hints: list[str],
) -> tuple[str, str] | None:
    """(result, summary) when *exchange* is not an accepted, complete answer.

    *where* names the request in summaries (" on /collections"); failures to connect
    leave it out: they concern the host, not a path.
    """
    if exchange.status is not None and not accepted(exchange.status):
        notes = "; ".join([f"expected {expected}", *hints])
        return BAD_STATUS, f"{exchange.status_line}{where} ({notes})"
    if exchange.failure is None:
        return None
    timed_out = exchange.failure == TIMEOUT
    timeout = fmt_timeout(timeout_seconds)
    if exchange.failed_while == CONNECTING:
        summary = f"no connection within {timeout}" if timed_out else exchange.failure_reason
    elif exchange.failed_while == WAITING:
        summary = (f"no answer within {timeout}" if timed_out else exchange.failure_reason) + where
    else:
        cause = f"body not complete within {timeout}" if timed_out else exchange.failure_reason
        summary = f"{exchange.status_line} but {cause}{where}"
    return exchange.failure, summary


def _auth_hints(status: int | None, config: HttpProbeConfig, api_key_sent: bool) -> list[str]:
    """Why a 401/403 may have happened, naming the variable, never its value."""
    if status not in (401, 403):
        return []
    if config.api_key_env is None:
        return ["no api_key_env configured"] if config.kind == "qdrant" else []
    if not api_key_sent:
        return [f"api key from ${config.api_key_env} not set"]
    return [f"api key from ${config.api_key_env} rejected"]


def _what_went_wrong(exchange: Exchange) -> str:
    if exchange.failure is not None:
        return exchange.failure_reason
    if not _is_2xx(exchange.status):
        return f"answered {exchange.status_line}"
    return "answered without a version"


def _or_list(items: tuple[int, ...]) -> str:
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _quote(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _failed(
    config: HttpProbeConfig, values: dict[str, Value], result: str, summary: str, details: tuple[str, ...] = ()
) -> ProbeResult:
    return _result(config, Status.CRITICAL, summary, {**values, "result": result}, details, error_kind=result)


def _result(
    config: HttpProbeConfig,
    status: Status,
    summary: str,
    values: dict[str, Value],
    details: tuple[str, ...] = (),
    error_kind: str | None = None,
) -> ProbeResult:
    return ProbeResult(
        name=config.name,
        kind=KIND,
        status=status,
        summary=summary,
        values=values,
        error_kind=error_kind,
        details=details,
    )


# --------------------------------------------------------------------------- probe


class HttpProbe:
    kind = KIND

    def __init__(
        self,
        config: HttpProbeConfig,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if env is None else env
        self.config = config
        self.names = (config.name,)
        self.timeout_seconds = config.timeout_seconds
        self._clock = clock
        self._api_key = (env.get(config.api_key_env) or "").strip() if config.api_key_env else ""

    def check(self) -> list[ProbeResult]:
        target = parse_target(self.config.url)
        headers = self._headers()
        from aiki_hooks import http_client  # imported here: the config loader imports this module for its spec

        tls_context = http_client.tls_context(verify=self.config.verify_tls) if target.https else None
        deadline = Deadline(self.timeout_seconds, self._clock)
        api_key_sent = bool(self._api_key)
        if self.config.kind == "qdrant":
            measurement = measure_qdrant(
                target, headers=headers, deadline=deadline, clock=self._clock, tls_context=tls_context
            )
            return [judge_qdrant(self.config, measurement, api_key_sent=api_key_sent)]
        exchange = fetch(
            target, target.request_path, headers=headers, deadline=deadline, clock=self._clock, tls_context=tls_context
        )
        return [judge_generic(self.config, exchange, api_key_sent=api_key_sent)]

    def _headers(self) -> dict[str, str]:
        """Accept and the api key; http_client adds User-Agent, Connection: close and the
        URL's credentials as Basic authorization."""
        headers = {"Accept": "*/*"}
        if self._api_key:
            # http.client would reject such a value with an error quoting it; say why, not what.
            if not _HEADER_SAFE.fullmatch(self._api_key):
                raise ValueError(
                    f"api key from ${self.config.api_key_env} has characters not allowed in an HTTP header"
                )
            headers[API_KEY_HEADER] = self._api_key
        return headers


# --------------------------------------------------------------------------- kind


@dataclass(frozen=True, kw_only=True)
class HttpProbeConfig:
    """One [[probes.http]] entry: an HTTP (or Qdrant) endpoint to check."""

    name: str
    url: str
    kind: str = "generic"
    timeout_seconds: float = 3.0
    expect_status: tuple[int, ...] = ()
    expect_body: str | None = None
    api_key_env: str | None = None
    verify_tls: bool = True


_STATUS_CODES = "an HTTP status (100-599) or a list of them"


def _status_codes(value: object) -> str | None:
    if isinstance(value, bool):
        return _STATUS_CODES
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in items):
        return None
    return _STATUS_CODES


def _record(values: Mapping[str, Any]) -> HttpProbeConfig:
    expect = values["expect_status"]
    return HttpProbeConfig(
        name=str(values["name"]), url=str(values["url"]), kind=str(values["kind"]),
        timeout_seconds=float(values["timeout_seconds"]),
        expect_status=tuple(expect if isinstance(expect, list) else [expect]),
        expect_body=values["expect_body"],
        api_key_env=values["api_key_env"],
        verify_tls=bool(values["verify_tls"]),
    )


def _qdrant_conflicts(config: HttpProbeConfig) -> list[tuple[str, str]]:
    if config.kind != "qdrant":
        return []
    return [(key, 'not used with kind = "qdrant" (readiness is checked on /readyz); expected it only with '
                  'kind = "generic"') for key in ("expect_status", "expect_body") if getattr(config, key)]


def _describe(config: HttpProbeConfig) -> dict[str, object]:
    entry = {"name": config.name, "url": redact_url(config.url), "kind": config.kind,
             "timeout_seconds": config.timeout_seconds, "expect_status": list(config.expect_status) or None,
             "expect_body": config.expect_body, "api_key_env": config.api_key_env or None,
             "verify_tls": config.verify_tls}
    return {key: value for key, value in entry.items() if value is not None}


def _build(configs: Sequence[HttpProbeConfig], context: BuildContext) -> list[Probe]:
    return [HttpProbe(config, env=context.env) for config in configs]


PROBE_KIND = ProbeKind(
    name=KIND,
    config_type=HttpProbeConfig,
    spec={
        **name_and_timeout(3.0),
        "url": (url, None),
        "kind": (choice("generic", "qdrant"), "generic"),
        "expect_status": (_status_codes, []),
        "expect_body": (text, None),
        "api_key_env": (env_var_name, None),
        "verify_tls": (boolean, True),
    },
    required=("name", "url"),
    make_config=_record,
    check_config=_qdrant_conflicts,
    build=_build,
    describe=_describe,
    is_service=True,
    metrics=(KindMetric(name="aiki_http_latency_seconds", documentation="Time to the response headers.",
                        value_key="latency_seconds"),),
    hints={
        "connection_failed": "nothing listens at {url}: is the service running? is the port right?",
        "timeout": "{url} accepts but does not answer in time: the service may be hung or overloaded",
        "dns_error": "the host name in {url} does not resolve: check the spelling or /etc/hosts",
        "bad_status": "{url} answered with an unexpected status: check expect_status / the api key",
        "body_mismatch": "{url} answered but not with the expected content",
    },
    hint_fields=lambda config: {"name": config.name, "url": redact_url(config.url)},
)
