"""Prometheus metrics: exposition from the snapshot dict, textfile, /metrics server, and a
real Prometheus scraping it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiki_hooks.model.result import Issue, ProbeResult, Snapshot
from aiki_hooks.model.status import Status
from aiki_hooks.outputs.metrics import (
    MetricsServer,
    exposition,
    snapshot_registry,
    write_textfile,
)
from tests.conftest import missing_real_tool

GENERATED_AT = 1_700_000_000.0
GIB = 1024**3
PROMETHEUS = "/usr/bin/prometheus"


def _probe(name, kind, status=Status.OK, values=None, duration_ms=12.0):
    return ProbeResult(name=name, kind=kind, status=status, summary=f"{name} summary", values=values or {},
                       checked_at=GENERATED_AT, duration_ms=duration_ms)


def snapshot_dict(*, qdrant_latency=0.25, cost_today=3.5, extra_probes=(), issues=None) -> dict:
    probes = (
        _probe("cpu", "resources", values={"cpu_percent": 37.0, "cpu_count": 8}),
        _probe("load", "resources", values={"load1": 1.0, "load5": 4.0, "load5_per_core": 0.5, "cpu_count": 8}),
        _probe("memory", "resources", Status.WARNING, values={
            "memory_used_bytes": 6 * GIB, "memory_total_bytes": 8 * GIB, "memory_used_ratio": 0.75,
            "memory_growth_bytes_per_hour": 512 * 1024**2, "memory_full_in_seconds": 14400}),
        _probe("swap", "resources", values={"swap_used_bytes": 0, "swap_total_bytes": GIB, "swap_used_ratio": 0.0,
                                            "swap_growth_bytes_per_hour": -1000}),  # shrinking: no time to full
        _probe("disk:/", "resources", values={"disk_total_bytes": 100 * GIB, "disk_used_bytes": 60 * GIB,
                                              "disk_free_bytes": 40 * GIB, "disk_used_ratio": 0.6}),
        _probe("disk:/home", "resources", values={"disk_total_bytes": 10 * GIB, "disk_used_bytes": 9 * GIB,
                                                  "disk_free_bytes": 1 * GIB, "disk_used_ratio": 0.9,
                                                  "disk_growth_bytes_per_hour": 100 * 1024**2,
                                                  "disk_full_in_seconds": 36000}),
        _probe("qdrant", "http", Status.CRITICAL, duration_ms=1500.0,
               values={"result": "bad_status", "latency_seconds": qdrant_latency, "http_status": 503}),
        _probe("web", "http", values={"result": "ok", "latency_seconds": 0.01, "http_status": 200}),
        _probe("postgres", "tcp", values={"result": "ok", "connect_seconds": 0.002}),
        _probe("mem0-server", "systemd", values={"active_state": "active", "restarts": 4,
                                                 "memory_bytes": 200 * 1024**2, "main_pid": 42}),
        _probe("claude-costs", "costs", values={"today_usd": cost_today, "block_usd": 1.25, "week_usd": None,
                                                "today_tokens": 1000}),
        _probe("mem0", "mem0", values={"records_waiting": 7, "backend": "http"}),
        *extra_probes,
    )
    if issues is None:
        issues = (
            Issue(id="http:qdrant", severity=Status.CRITICAL, summary="qdrant 503", since=GENERATED_AT, probe="qdrant"),
            Issue(id="resources:memory", severity=Status.WARNING, summary="memory 75%", since=GENERATED_AT,
                  probe="memory"),
        )
    return Snapshot(generated_at=GENERATED_AT, interval_seconds=60, host="box", probes=probes,
                    issues=tuple(issues)).to_dict()


def samples(text: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    if isinstance(text, bytes):
        text = text.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


def value(found, name, **labels):
    return found[(name, tuple(sorted(labels.items())))]


def names(found):
    return {name for name, _ in found}


# --------------------------------------------------------------------------- exposition


def test_exposition_has_every_metric_with_labels_and_base_units():
    found = samples(exposition(snapshot_dict()))

    assert value(found, "aiki_probe_status", probe="qdrant", kind="http") == 2
    assert value(found, "aiki_probe_status", probe="memory", kind="resources") == 1
    assert value(found, "aiki_probe_status", probe="web", kind="http") == 0
    assert value(found, "aiki_probe_duration_seconds", probe="qdrant", kind="http") == pytest.approx(1.5)
    assert value(found, "aiki_snapshot_timestamp_seconds") == pytest.approx(GENERATED_AT)
    assert value(found, "aiki_open_issues", severity="CRITICAL") == 1
    assert value(found, "aiki_open_issues", severity="WARNING") == 1
    assert value(found, "aiki_open_issues", severity="OK") == 0
    assert value(found, "aiki_open_issues", severity="UNKNOWN") == 0
    assert value(found, "aiki_disk_free_bytes", path="/") == 40 * GIB
    assert value(found, "aiki_disk_free_bytes", path="/home") == 1 * GIB
    assert value(found, "aiki_disk_used_ratio", path="/home") == pytest.approx(0.9)
    assert value(found, "aiki_memory_used_ratio") == pytest.approx(0.75)
    assert value(found, "aiki_memory_used_bytes") == 6 * GIB
    assert value(found, "aiki_swap_used_ratio") == 0.0
    assert value(found, "aiki_cpu_used_ratio") == pytest.approx(0.37)
    assert value(found, "aiki_load5_per_core") == pytest.approx(0.5)
    assert value(found, "aiki_memory_full_in_seconds") == 14400
    assert value(found, "aiki_memory_growth_bytes_per_hour") == 512 * 1024**2
    assert value(found, "aiki_swap_growth_bytes_per_hour") == -1000
    assert value(found, "aiki_disk_full_in_seconds", path="/home") == 36000
    assert value(found, "aiki_disk_growth_bytes_per_hour", path="/home") == 100 * 1024**2
    # No forecast, no series: not a 0 that reads as "full now".
    assert "aiki_swap_full_in_seconds" not in names(found)
    assert ("aiki_disk_full_in_seconds", (("path", "/"),)) not in found
    assert value(found, "aiki_http_latency_seconds", probe="qdrant") == pytest.approx(0.25)
    assert value(found, "aiki_http_latency_seconds", probe="web") == pytest.approx(0.01)
    assert value(found, "aiki_tcp_connect_seconds", probe="postgres") == pytest.approx(0.002)
    assert value(found, "aiki_systemd_restarts_total", unit="mem0-server") == 4
    assert value(found, "aiki_systemd_memory_bytes", unit="mem0-server") == 200 * 1024**2
    assert value(found, "aiki_claude_cost_usd", period="today") == pytest.approx(3.5)
    assert value(found, "aiki_claude_cost_usd", period="block") == pytest.approx(1.25)
    assert ("aiki_claude_cost_usd", (("period", "week"),)) not in found  # null week_usd is omitted
    assert value(found, "aiki_mem0_records_waiting") == 7
    # Only the metrics asked for: no per-probe values leak in under other names.
    assert {n for n in names(found) if not n.startswith("aiki_")} == set()


def test_claude_usage_values_are_exported_priced_unpriced_and_per_model():
    costs = _probe("claude-costs", "costs", values={
        "today_usd": 3.5, "today_tokens": 120_000, "today_unpriced_tokens": 4_000,
        "today_unpriced_usd_claude_code": 0.42, "week_usd": 20.0, "week_tokens": 900_000, "block_usd": None,
        "block_ends_at": GENERATED_AT + 3600, "today_by_model_usd": {"claude-opus-4": 3.0, "claude-haiku-4": 0.5},
        "session_usd": {"s1": 1.0}, "files": 12, "month_usd": 70.0})
    tracker = _probe("cost-tracker", "costs", values={"external_today_usd": 4.1, "label": "ccusage"})
    data = snapshot_dict(extra_probes=(tracker,))
    data["probes"] = [p for p in data["probes"] if p["name"] != "claude-costs"] + [costs.to_dict()]
    found = samples(exposition(data))
    assert value(found, "aiki_claude_cost_usd", period="today") == pytest.approx(3.5)
    assert value(found, "aiki_claude_cost_usd", period="week") == pytest.approx(20.0)
    assert value(found, "aiki_claude_cost_usd", period="month") == pytest.approx(70.0)  # a new period, unchanged code
    assert ("aiki_claude_cost_usd", (("period", "block"),)) not in found  # null: no block running
    assert value(found, "aiki_claude_tokens", period="today") == 120_000
    assert value(found, "aiki_claude_tokens", period="week") == 900_000
    assert value(found, "aiki_claude_unpriced_tokens", period="today") == 4_000
    assert value(found, "aiki_claude_unpriced_cost_usd", period="today") == pytest.approx(0.42)
    assert value(found, "aiki_claude_model_cost_usd", period="today", model="claude-opus-4") == pytest.approx(3.0)
    assert value(found, "aiki_claude_model_cost_usd", period="today", model="claude-haiku-4") == pytest.approx(0.5)
    assert value(found, "aiki_claude_block_end_timestamp_seconds") == pytest.approx(GENERATED_AT + 3600)
    assert value(found, "aiki_claude_external_cost_usd", period="today", label="ccusage") == pytest.approx(4.1)
    # Per-session figures and counts of files are not metrics (unbounded labels, no meaning).
    assert not {n for n in names(found) if "session" in n or "files" in n}


def test_types_are_declared_gauge_and_counter():
    text = exposition(snapshot_dict()).decode()
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["aiki_probe_status"] == "gauge"
    assert types["aiki_systemd_restarts"] == "counter"
    assert "# TYPE aiki_systemd_restarts_total counter" in text


def test_null_cpu_and_missing_values_are_omitted_and_no_probes_still_counts_issues():
    data = snapshot_dict(issues=())
    for probe in data["probes"]:
        if probe["name"] == "cpu":
            probe["values"]["cpu_percent"] = None
    found = samples(exposition(data))
    assert "aiki_cpu_used_ratio" not in names(found)
    assert {value(found, "aiki_open_issues", severity=s) for s in ("OK", "WARNING", "CRITICAL", "UNKNOWN")} == {0}

    empty = samples(exposition({}))
    assert names(empty) == {"aiki_open_issues"}


@pytest.mark.parametrize("odd", [
    None, [], "text", {"probes": "nope", "issues": 5, "generated_at": "not a date"},
    {"probes": [None, 3, {"kind": "http"}, {"name": "x", "kind": None, "status": "SIDEWAYS", "values": "v",
                                          "duration_ms": "slow"}],
     "issues": [None, {"severity": "BAD"}, {"severity": "CRITICAL"}]},
])
def test_odd_data_never_crashes(odd):
    found = samples(exposition(odd))
    assert value(found, "aiki_open_issues", severity="UNKNOWN") == 0
    if isinstance(odd, dict) and isinstance(odd.get("issues"), list):
        assert value(found, "aiki_open_issues", severity="CRITICAL") == 1
    assert "aiki_probe_status" not in names(found)


def test_non_numeric_boolean_and_duplicate_values_are_skipped():
    extra = (
        _probe("api", "http", values={"latency_seconds": "fast", "result": "ok"}),
        _probe("db", "tcp", values={"connect_seconds": True}),
        _probe("qdrant", "http", values={"latency_seconds": 9.0}),  # duplicate name: first wins
        _probe("dup-costs", "costs", values={"today_usd": 99.0, "week_usd": 20.0}),
    )
    found = samples(exposition(snapshot_dict(extra_probes=extra)))
    assert ("aiki_http_latency_seconds", (("probe", "api"),)) not in found
    assert ("aiki_tcp_connect_seconds", (("probe", "db"),)) not in found
    assert value(found, "aiki_http_latency_seconds", probe="qdrant") == pytest.approx(0.25)
    assert value(found, "aiki_probe_status", probe="qdrant", kind="http") == 2
    assert value(found, "aiki_claude_cost_usd", period="today") == pytest.approx(3.5)
    assert value(found, "aiki_claude_cost_usd", period="week") == pytest.approx(20.0)


def test_registry_is_fresh_and_global_registry_untouched():
    from prometheus_client import REGISTRY

    first = snapshot_registry(snapshot_dict(cost_today=1.0))
    second = snapshot_registry(snapshot_dict(cost_today=2.0))
    assert first.get_sample_value("aiki_claude_cost_usd", {"period": "today"}) == 1.0
    assert second.get_sample_value("aiki_claude_cost_usd", {"period": "today"}) == 2.0
    assert REGISTRY.get_sample_value("aiki_open_issues", {"severity": "OK"}) is None


# --------------------------------------------------------------------------- textfile


def test_write_textfile_parses_leaves_no_temp_and_replaces(tmp_path):
    tmp_path = tmp_path / "textfile"
    tmp_path.mkdir()
    path = Path(write_textfile(tmp_path, snapshot_dict(cost_today=1.0)))
    assert path == tmp_path / "aiki_hooks.prom"
    assert value(samples(path.read_text()), "aiki_claude_cost_usd", period="today") == 1.0
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    inode = path.stat().st_ino

    write_textfile(tmp_path, snapshot_dict(cost_today=2.0))
    assert value(samples(path.read_text()), "aiki_claude_cost_usd", period="today") == 2.0
    assert path.stat().st_ino != inode  # renamed over, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aiki_hooks.prom"]

    write_textfile(tmp_path, snapshot_dict(), name="other.prom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aiki_hooks.prom", "other.prom"]


def test_write_textfile_failure_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    tmp_path = tmp_path / "textfile"
    tmp_path.mkdir()
    path = Path(write_textfile(tmp_path, snapshot_dict(cost_today=1.0)))

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_textfile(tmp_path, snapshot_dict(cost_today=2.0))
    monkeypatch.undo()
    assert value(samples(path.read_text()), "aiki_claude_cost_usd", period="today") == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aiki_hooks.prom"]


# --------------------------------------------------------------------------- server


def _get(url: str, timeout: float = 5.0) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def test_metrics_server_serves_updates_and_frees_port():
    server = MetricsServer(port=0, data=snapshot_dict(cost_today=1.0))
    try:
        assert server.port > 0
        status, content_type, body = _get(f"http://127.0.0.1:{server.port}/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
        assert value(samples(body), "aiki_claude_cost_usd", period="today") == 1.0
        assert value(samples(body), "aiki_probe_status", probe="qdrant", kind="http") == 2

        server.update(snapshot_dict(cost_today=5.0))
        _, _, body = _get(f"http://127.0.0.1:{server.port}/metrics")
        assert value(samples(body), "aiki_claude_cost_usd", period="today") == 5.0
    finally:
        server.close()
    port = server.port
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    server.close()  # idempotent
    with MetricsServer(port=port) as again:  # the port is free again (a restarted refresher rebinds)
        assert again.port == port


def test_metrics_server_without_data_serves_open_issues_only():
    with MetricsServer(port=0) as server:
        _, _, body = _get(f"http://127.0.0.1:{server.port}/metrics")
    assert names(samples(body)) == {"aiki_open_issues"}


def test_metrics_server_bind_failure_is_a_clear_oserror():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}"):
            MetricsServer(port=port)


# --------------------------------------------------------------------------- real Prometheus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prometheus_binary() -> str:
    binary = PROMETHEUS if os.access(PROMETHEUS, os.X_OK) else shutil.which("prometheus")
    if not binary:
        missing_real_tool("prometheus is not installed (CI installs it: apt-get install prometheus)")
    return binary


def test_real_prometheus_scrapes_the_metrics_server(tmp_path):
    binary = _prometheus_binary()
    with MetricsServer(port=0, data=snapshot_dict()) as server:
        web_port = _free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: aiki\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n"
        )
        log = tmp_path / "prometheus.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{web_port}"],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            query = urllib.parse.urlencode({"query": 'aiki_probe_status{probe="qdrant"}'})
            url = f"http://127.0.0.1:{web_port}/api/v1/query?{query}"
            deadline = time.monotonic() + 25
            result = []
            while time.monotonic() < deadline:
                assert proc.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
                try:
                    _, _, body = _get(url, timeout=2)
                    result = json.loads(body)["data"]["result"]
                except (OSError, ValueError, KeyError):
                    result = []
                if result:
                    break
                time.sleep(0.25)
            assert result, f"prometheus never scraped aiki_probe_status: {log.read_text()[-2000:]}"
            (series,) = result
            assert series["metric"]["probe"] == "qdrant"
            assert series["metric"]["kind"] == "http"
            assert series["metric"]["job"] == "aiki"
            assert float(series["value"][1]) == 2

            # The whole scrape was accepted (a bad exposition would fail the target).
            _, _, body = _get(f"http://127.0.0.1:{web_port}/api/v1/targets", timeout=2)
            (target,) = json.loads(body)["data"]["activeTargets"]
            assert target["health"] == "up", target
            assert target["lastError"] == ""
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_missing_prometheus_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setitem(globals(), "PROMETHEUS", str(tmp_path / "no-prometheus"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        _prometheus_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        _prometheus_binary()


# --------------------------------------------------------------------------- through the engine


def test_a_full_cycle_writes_a_textfile_that_prometheus_parses(tmp_path):
    """The node_exporter textfile as the refresher writes it: config -> probes -> publish."""
    import tomllib

    from aiki_hooks.config.load import parse_config
    from aiki_hooks.cycle.engine import Engine

    plugin = tmp_path / "check_backup"
    plugin.write_text("#!/bin/sh\necho 'backup is old | age=90000s;86400;172800'\nexit 1\n")
    plugin.chmod(0o755)
    textfile = tmp_path / "textfile_collector"
    textfile.mkdir()
    config = parse_config(tomllib.loads(f"""
[state]
dir = "{tmp_path / 'state'}"
[resources]
disk_paths = ["/"]
[costs]
enabled = false
[[probes.command]]
name = "backup"
command = ["{plugin}"]
[[outputs]]
type = "cache"
[[outputs]]
type = "prometheus_textfile"
directory = "{textfile}"
"""), source="test.toml")
    engine = Engine(config, log=lambda line, priority: None)
    try:
        engine.publish(engine.cycle())
        assert engine.router.failures == {}
    finally:
        engine.close()
    assert sorted(p.name for p in textfile.iterdir()) == ["aiki_hooks.prom"]  # no temp file left
    prom = textfile / "aiki_hooks.prom"
    assert stat.S_IMODE(prom.stat().st_mode) == 0o644  # node_exporter runs as another user
    found = samples(prom.read_text())
    assert value(found, "aiki_probe_status", probe="backup", kind="command") == 1
    assert value(found, "aiki_probe_status", probe="memory", kind="resources") in (0, 1, 2)
    assert value(found, "aiki_disk_free_bytes", path="/") > 0
    assert 0 < value(found, "aiki_memory_used_ratio") < 1
    assert value(found, "aiki_open_issues", severity="WARNING") >= 1
    assert abs(value(found, "aiki_snapshot_timestamp_seconds") - time.time()) < 60
