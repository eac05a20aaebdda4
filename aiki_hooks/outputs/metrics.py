"""Prometheus metrics from a snapshot: exposition, node_exporter textfile, /metrics server.

Everything is built from the snapshot DICT (the cache JSON, `Snapshot.to_dict()`), so the
CLI can render the cache without probing again. Nothing is registered at import time and
the global REGISTRY is never touched: each caller gets its own `CollectorRegistry`.

Metrics (base units; missing, null, boolean or non-numeric values are skipped):

  aiki_probe_status{probe,kind}          0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (Nagios codes)
  aiki_probe_duration_seconds{probe,kind}
  aiki_snapshot_timestamp_seconds        when the snapshot was generated (epoch)
  aiki_open_issues{severity}             all four severities, 0 when none
  aiki_disk_free_bytes{path}             probes named disk:<path>
  aiki_disk_used_ratio{path}
  aiki_memory_used_ratio, aiki_memory_used_bytes, aiki_swap_used_ratio
  aiki_cpu_used_ratio                    cpu_percent / 100 (absent on the first cycle)
  aiki_load5_per_core
  aiki_disk_full_in_seconds{path}, aiki_memory_full_in_seconds, aiki_swap_full_in_seconds
                                         the resources forecast: time until full at the fitted
                                         growth (absent when not growing)
  aiki_disk_growth_bytes_per_hour{path}, aiki_memory_growth_bytes_per_hour,
  aiki_swap_growth_bytes_per_hour        that growth (absent until 10 minutes of history)
  aiki_http_latency_seconds{probe}       http probes' latency_seconds
  aiki_tcp_connect_seconds{probe}
  aiki_systemd_restarts_total{unit}      counter (NRestarts; resets when the unit is restarted by hand)
  aiki_systemd_memory_bytes{unit}
      (these four are declared by their probe kinds, ProbeKind.metrics; a plugin's kind
      adds its own the same way)
  aiki_claude_cost_usd{period}           priced by aiki-hooks; period today, block, week
  aiki_claude_tokens{period}             tokens used (today, week)
  aiki_claude_unpriced_tokens{period}    tokens of models without a price, so not in the cost
  aiki_claude_unpriced_cost_usd{period}  Claude Code's own figure for those tokens, when it has one
  aiki_claude_model_cost_usd{period,model}
  aiki_claude_block_end_timestamp_seconds
  aiki_claude_external_cost_usd{period,label}  an external tracker's figure (costs.external)
  aiki_mem0_records_waiting
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from aiki_hooks.model.dates import parse_utc
from aiki_hooks.model.status import Status
from aiki_hooks.model.units import finite_number
from aiki_hooks.probes.registry import KindMetric, loaded_kind

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464
TEXTFILE_NAME = "aiki_hooks.prom"

_SEVERITIES = (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN)
# The claude-costs probe names its numeric values `<period>_<what>` (today_usd, week_tokens,
# today_unpriced_tokens...): each known <what> is one family labelled by period, so a period
# the probe adds later is exported without a change here.
_COST_VALUE = re.compile(r"^([a-z0-9]+)_(usd|tokens|unpriced_tokens|unpriced_usd_claude_code|by_model_usd)$")
_EXTERNAL_VALUE = re.compile(r"^external_([a-z0-9]+)_usd$")


def _status_code(value: Any) -> int | None:
    if isinstance(value, str):
        try:
            return int(Status.parse(value))
        except ValueError:
            return None
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2, 3):
        return value
    return None


class _Family:
    """A metric family that ignores unusable values and duplicate label sets (first wins:
    Prometheus rejects a scrape with duplicate series)."""

    def __init__(self, family: GaugeMetricFamily | CounterMetricFamily) -> None:
        self.family = family
        self._seen: set[tuple[str, ...]] = set()

    def add(self, labels: Iterable[str], value: Any) -> None:
        number = finite_number(value)
        labels = tuple(labels)
        if number is None or labels in self._seen:
            return
        self._seen.add(labels)
        self.family.add_metric(list(labels), number)


def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> _Family:
    return _Family(GaugeMetricFamily(name, documentation, labels=list(labels)))


def _probes(data: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(name, kind, values, probe) for every well-formed probe of the snapshot."""
    probes = data.get("probes")
    if not isinstance(probes, list):
        return
    for probe in probes:
        if not isinstance(probe, Mapping):
            continue
        name = probe.get("name")
        if not isinstance(name, str) or not name:
            continue
        kind = probe.get("kind")
        kind = kind if isinstance(kind, str) else ""
        values = probe.get("values")
        yield name, kind, values if isinstance(values, Mapping) else {}, probe


def _kind_metrics(kind: str) -> tuple[KindMetric, ...]:
    """The families a probe kind feeds; none for a kind this process does not know."""
    known = loaded_kind(kind)
    return known.metrics if known is not None else ()


def snapshot_families(data: Any) -> list[Metric]:
    """The metric families of one snapshot dict. Never raises on odd data."""
    data = data if isinstance(data, Mapping) else {}

    status = _gauge("aiki_probe_status", "Probe status as a Nagios code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
                    ["probe", "kind"])
    duration = _gauge("aiki_probe_duration_seconds", "How long the probe took.", ["probe", "kind"])
    timestamp = _gauge("aiki_snapshot_timestamp_seconds", "When the snapshot was generated, seconds since the epoch.")
    issues = _gauge("aiki_open_issues", "Open issues by severity.", ["severity"])
    disk_free = _gauge("aiki_disk_free_bytes", "Free bytes on the filesystem.", ["path"])
    disk_ratio = _gauge("aiki_disk_used_ratio", "Used share of the filesystem, used / (used + free).", ["path"])
    memory_ratio = _gauge("aiki_memory_used_ratio", "Used share of memory.")
    memory_bytes = _gauge("aiki_memory_used_bytes", "Used memory in bytes.")
    swap_ratio = _gauge("aiki_swap_used_ratio", "Used share of swap.")
    cpu_ratio = _gauge("aiki_cpu_used_ratio", "Busy share of CPU time since the previous cycle.")
    load = _gauge("aiki_load5_per_core", "Five-minute load average per core.")
    # The resources forecast (probes/resources.py judge_forecast): per disk path, memory, swap.
    forecasts = {
        (resource, what): _gauge(f"aiki_{resource}_{what}", text, ["path"] if resource == "disk" else [])
        for resource in ("disk", "memory", "swap")
        for what, text in (("full_in_seconds", "Forecast: seconds until full at the fitted growth of use."),
                           ("growth_bytes_per_hour", "Fitted growth of used bytes per hour over recent history."))
    }
    # Each probe kind declares its own families (ProbeKind.metrics), made on first use.
    kind_families: dict[str, _Family] = {}
    cost_families = {
        "usd": _gauge("aiki_claude_cost_usd", "Claude usage cost in US dollars, priced by aiki-hooks.", ["period"]),
        "tokens": _gauge("aiki_claude_tokens", "Claude tokens used (input, output and cache).", ["period"]),
        "unpriced_tokens": _gauge("aiki_claude_unpriced_tokens",
                                  "Claude tokens of models without a known price (not in aiki_claude_cost_usd).",
                                  ["period"]),
        "unpriced_usd_claude_code": _gauge("aiki_claude_unpriced_cost_usd",
                                           "Claude Code's own cost figure for the unpriced tokens, US dollars.",
                                           ["period"]),
    }
    model_costs = _gauge("aiki_claude_model_cost_usd", "Claude usage cost per model, US dollars.",
                         ["period", "model"])
    block_end = _gauge("aiki_claude_block_end_timestamp_seconds",
                       "When the current 5-hour usage block ends, seconds since the epoch.")
    external = _gauge("aiki_claude_external_cost_usd", "Claude usage cost from an external tracker, US dollars.",
                      ["period", "label"])
    mem0 = _gauge("aiki_mem0_records_waiting", "mem0 records waiting in the spool.")

    generated = data.get("generated_at")
    if isinstance(generated, str):
        try:
            timestamp.add((), parse_utc(generated))
        except (ValueError, TypeError, OverflowError):
            pass

    counts = {severity.name: 0 for severity in _SEVERITIES}
    raw_issues = data.get("issues")
    for issue in raw_issues if isinstance(raw_issues, list) else ():
        code = _status_code(issue.get("severity")) if isinstance(issue, Mapping) else None
        if code is not None:
            counts[Status(code).name] += 1
    for severity, count in counts.items():
        issues.add((severity,), count)

    for name, kind, values, probe in _probes(data):
        code = _status_code(probe.get("status"))
        if code is not None:
            status.add((name, kind), code)
        ms = finite_number(probe.get("duration_ms"))
        if ms is not None:
            duration.add((name, kind), ms / 1000.0)

        if name.startswith("disk:") and len(name) > 5:
            path = name[5:]
            disk_free.add((path,), values.get("disk_free_bytes"))
            disk_ratio.add((path,), values.get("disk_used_ratio"))
            for what in ("full_in_seconds", "growth_bytes_per_hour"):
                forecasts[("disk", what)].add((path,), values.get(f"disk_{what}"))
        if kind in ("resources", ""):
            memory_ratio.add((), values.get("memory_used_ratio"))
            memory_bytes.add((), values.get("memory_used_bytes"))
            swap_ratio.add((), values.get("swap_used_ratio"))
            cpu = finite_number(values.get("cpu_percent"))
            if cpu is not None:
                cpu_ratio.add((), cpu / 100.0)
            load.add((), values.get("load5_per_core"))
            for resource in ("memory", "swap"):
                for what in ("full_in_seconds", "growth_bytes_per_hour"):
                    forecasts[(resource, what)].add((), values.get(f"{resource}_{what}"))
        for metric in _kind_metrics(kind):
            if metric.name not in kind_families:
                family_type = CounterMetricFamily if metric.counter else GaugeMetricFamily
                kind_families[metric.name] = _Family(family_type(metric.name, metric.documentation,
                                                                 labels=[metric.label]))
            kind_families[metric.name].add((name,), values.get(metric.value_key))
        if kind == "costs":
            _cost_values(values, cost_families, model_costs, block_end, external)
        elif kind == "mem0":
            mem0.add((), values.get("records_waiting"))

    families = (status, duration, timestamp, issues, disk_free, disk_ratio, memory_ratio, memory_bytes, swap_ratio,
                cpu_ratio, load, *forecasts.values(), *kind_families.values(), *cost_families.values(), model_costs, block_end,
                external, mem0)
    return [f.family for f in families if f.family.samples]


def _cost_values(values: Mapping[str, Any], families: Mapping[str, _Family], model_costs: _Family,
                 block_end: _Family, external: _Family) -> None:
    for key in sorted(values):
        value = values[key]
        match = _COST_VALUE.match(key)
        if match:
            period, what = match.groups()
            if what == "by_model_usd":
                for model, cost in sorted(value.items()) if isinstance(value, Mapping) else ():
                    if isinstance(model, str):
                        model_costs.add((period, model), cost)
            else:
                families[what].add((period,), value)
            continue
        match = _EXTERNAL_VALUE.match(key)
        if match:
            label = values.get("label")
            external.add((match.group(1), label if isinstance(label, str) else ""), value)
        elif key == "block_ends_at":
            block_end.add((), value)


class SnapshotCollector:
    """A custom collector; replace `data` (a snapshot dict) and the next scrape shows it."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self.data: Mapping[str, Any] = data or {}

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_families(self.data)  # one read of self.data: a consistent scrape


def snapshot_registry(data: Mapping[str, Any]) -> CollectorRegistry:
    """A fresh registry holding the metrics of one snapshot dict."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(data))
    return registry


def exposition(data: Mapping[str, Any]) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of one snapshot dict."""
    return generate_latest(snapshot_registry(data))


def write_textfile(directory: str | os.PathLike, data: Mapping[str, Any], name: str = TEXTFILE_NAME) -> str:
    """Write the exposition for node_exporter's textfile collector, atomically: a temp file
    in the same directory (not ending in .prom, so the collector never reads it), mode 0644,
    fsync, rename over `name`. Returns the path written."""
    from aiki_hooks.cycle.cache import atomic_write_bytes

    path = os.path.join(os.fspath(directory), name)
    atomic_write_bytes(path, exposition(data), mode=0o644)
    return path


class MetricsServer:
    """Serves the latest snapshot on /metrics from a daemon thread.

    `update(data)` swaps the snapshot dict the next scrape renders; `close()` stops the
    server and frees the port; `port` is the bound port (0 asks for an ephemeral one).
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 data: Mapping[str, Any] | None = None) -> None:
        from prometheus_client import start_http_server

        self.host = host
        self._collector = SnapshotCollector(data)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._collector)
        try:
            self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc
        self.port: int = self._httpd.server_port
        self._closed = False
        self._lock = threading.Lock()

    def update(self, data: Mapping[str, Any]) -> None:
        self._collector.data = data

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
