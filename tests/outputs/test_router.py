"""Outputs: validation, pure filters, the jsonl and webhook sinks (against real loopback
servers), and the router keeping outputs independent."""

from __future__ import annotations

import collections
import http.server
import json
import os
import re
import stat
import threading
import time

import pytest

from aiki_hooks.config.load import _Reader
from aiki_hooks.outputs import config as outputs_config
from aiki_hooks.outputs import formats
from aiki_hooks.outputs import router as o
from aiki_hooks.outputs.config import OutputConfig, validate_outputs
from aiki_hooks.outputs.router import Router, filter_records, filter_snapshot
from tests.servers import RawServer, never_answer

# --------------------------------------------------------------------------- helpers


class PostServer:
    """A loopback HTTP server answering POSTs with the next status of *statuses*
    (the last one repeats); `seen` holds (path, headers lower-cased, parsed body)."""

    def __init__(self, statuses=(200,), delay=0.0):
        self.statuses = list(statuses)
        self.seen: list[tuple[str, dict, object]] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                time.sleep(delay)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"ok")
                outer.arrived.set()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02})

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook?x=1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def probe(name, status, kind="systemd"):
    return {"name": name, "kind": kind, "status": status, "summary": f"{name} {status}"}


def issue(id_, severity, probe_name):
    return {"id": id_, "severity": severity, "summary": id_, "since": "2025-01-01T00:00:00.000Z",
            "probe": probe_name, "occurrence_id": None}


SNAPSHOT = {
    "schema_version": 1, "generated_at": "2025-01-01T00:00:00.000Z", "interval_seconds": 60, "host": "box",
    "status": "CRITICAL",
    "probes": [probe("qdrant.service", "CRITICAL"), probe("memory", "WARNING", "resources"),
               probe("cpu", "OK", "resources"), probe("api", "UNKNOWN", "http")],
    "issues": [issue("systemd:qdrant.service", "CRITICAL", "qdrant.service"),
               issue("memory:ram", "WARNING", "memory"), issue("http:api", "UNKNOWN", "api")],
    "hooks": {}, "patterns": [],
}


def record(occurrence, transition, severity, issue_id="systemd:qdrant.service", probe_name="qdrant.service"):
    return {"record_id": f"{occurrence}:{transition}", "kind": "transition", "occurrence_id": occurrence,
            "transition": transition, "severity": severity, "issue_id": issue_id, "probe": probe_name,
            "sentence": f"{issue_id} {transition}", "at": 1.0}


# --------------------------------------------------------------------------- validation


def test_valid_outputs_get_defaults_and_expanded_paths(isolated_home):
    outs, problems = validate_outputs([
        {"type": "cache"},
        {"type": "jsonl", "path": "~/health.jsonl", "probes": ["qdrant*"]},
        {"type": "webhook", "name": "alerts", "url": "https://example.net/x", "min_severity": "CRITICAL",
         "headers_env": "ALERT_HEADERS"},
        {"type": "prometheus_http"},
        {"type": "prometheus_textfile", "directory": "/var/lib/node_exporter"},
    ])
    assert problems == []
    cache, jsonl, hook, prom, text = outs
    assert (cache.name, cache.min_severity, cache.probes) == ("cache", "OK", ())
    assert jsonl.path == str(isolated_home / "health.jsonl") and jsonl.what == "snapshot"
    assert jsonl.max_bytes == 10 * 1024 * 1024 and jsonl.probes == ("qdrant*",)
    assert (hook.name, hook.what, hook.timeout_seconds, hook.retries) == ("alerts", "transitions", 5.0, 3)
    assert (prom.host, prom.port) == ("127.0.0.1", 9464)
    assert text.directory == "/var/lib/node_exporter"


@pytest.mark.parametrize("raw, expected", [
    ([{"type": "smoke-signal"}], ['outputs[0].type = "smoke-signal": expected one of "cache"']),
    ([{"name": "x"}], ["outputs[0].type: missing (required)"]),
    ([{"type": "webhook"}], ["outputs[0].url: missing (required)"]),
    ([{"type": "webhook", "url": "ftp://x"}], ['outputs[0].url = "ftp://x": expected an http:// or https:// URL']),
    ([{"type": "jsonl", "path": "rel/x.jsonl"}], ['outputs[0].path = "rel/x.jsonl": expected an absolute path']),
    ([{"type": "cache", "min_severity": "BAD"}], ['outputs[0].min_severity = "BAD": expected one of "OK"']),
    ([{"type": "cache", "url": "http://x"}], ["outputs[0].url: unknown key"]),
    ([{"type": "jsonl", "path": "/a", "retries": 2}], ["outputs[0].retries: unknown key"]),
    ([{"type": "jsonl", "path": "/a"}, {"type": "jsonl", "path": "/b"}],
     ['outputs[1].name = "jsonl": expected a name not already used by outputs[0]']),
    ([{"type": "cache"}, {"type": "cache", "name": "c2"}], ['outputs[1].type = "cache": expected at most one']),
    ([{"type": "webhook", "url": "http://x", "headers_env": "Authorization: Bearer s3cret"}],
     ["outputs[0].headers_env: looks like a key, not a variable name (value not shown); expected the name of an "
      "environment variable"]),
    ([], ["outputs: expected at least one [[outputs]] table"]),
    ({"type": "cache"}, ["outputs: expected an array of tables"]),
])
def test_each_problem_is_reported(raw, expected):
    _outs, problems = validate_outputs(raw)
    assert len(problems) == len(expected), problems
    for want, got in zip(expected, problems, strict=True):
        assert got.startswith(want), (got, want)


def test_all_problems_reported_at_once():
    _, problems = validate_outputs([
        {"type": "nope"},
        {"type": "webhook", "min_severity": "LOUD"},
        {"type": "jsonl", "path": "/tmp/a", "colour": "red"},
        {"type": "jsonl", "path": "/tmp/b"},
    ])
    joined = "\n".join(problems)
    assert 'outputs[0].type = "nope"' in joined
    assert "outputs[1].url: missing (required)" in joined
    assert 'outputs[1].min_severity = "LOUD"' in joined
    assert "outputs[2].colour: unknown key" in joined
    assert 'outputs[3].name = "jsonl": expected a name not already used by outputs[2]' in joined
    assert len(problems) == 5


def test_missing_key_means_defaults_and_parse_outputs_works_with_the_config_reader():
    reader = _Reader()
    assert [x.type for x in outputs_config.parse_outputs(None, reader)] == ["cache", "journal"]
    assert [x.type for x in outputs_config.parse_outputs(None, reader, mem0_enabled=True)] == ["cache", "journal", "mem0"]
    outputs_config.parse_outputs([{"type": "webhook"}], reader)
    assert reader.problems == ["outputs[0].url: missing (required)"]


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize("min_severity, globs, probes, issues, status", [
    ("OK", (), ["qdrant.service", "memory", "cpu", "api"],
     ["systemd:qdrant.service", "memory:ram", "http:api"], "CRITICAL"),
    ("CRITICAL", (), ["qdrant.service"], ["systemd:qdrant.service"], "CRITICAL"),
    ("WARNING", (), ["qdrant.service", "memory"], ["systemd:qdrant.service", "memory:ram"], "CRITICAL"),
    ("UNKNOWN", ("memory", "http:*"), ["memory", "api"], ["memory:ram", "http:api"], "WARNING"),
    ("OK", ("resources:*",), ["memory", "cpu"], [], "WARNING"),  # probe matched by kind:name; issue by id
    ("OK", ("cpu",), ["cpu"], [], "OK"),
    ("CRITICAL", ("memory",), [], [], "OK"),
])
def test_filter_snapshot(min_severity, globs, probes, issues, status):
    out = OutputConfig(type="jsonl", path="/x", min_severity=min_severity, probes=globs)
    result = filter_snapshot(SNAPSHOT, out)
    assert [p["name"] for p in result["probes"]] == probes
    assert [i["id"] for i in result["issues"]] == issues
    assert result["status"] == status
    assert result["host"] == "box" and len(SNAPSHOT["probes"]) == 4  # input untouched


RECORDS = [
    record("o1", "opened", "CRITICAL"),
    record("o2", "opened", "WARNING", "memory:ram", "memory"),
    record("o3", "resolved", "CRITICAL", "http:api", "api"),
    record("o4", "resolved", "WARNING", "http:api", "api"),
]


@pytest.mark.parametrize("min_severity, globs, expected", [
    ("OK", (), ["o1:opened", "o2:opened", "o3:resolved", "o4:resolved"]),
    ("CRITICAL", (), ["o1:opened", "o3:resolved"]),  # resolved keeps its severity
    ("WARNING", ("memory",), ["o2:opened"]),  # by probe
    ("OK", ("http:*",), ["o3:resolved", "o4:resolved"]),  # by issue id
    ("CRITICAL", ("memory*",), []),
])
def test_filter_records(min_severity, globs, expected):
    out = OutputConfig(type="mem0", min_severity=min_severity, probes=globs)
    assert [r["record_id"] for r in filter_records(RECORDS, out)] == expected


def test_an_occurrence_told_once_is_followed_to_its_end():
    out = OutputConfig(type="mem0", min_severity="CRITICAL")
    told = collections.OrderedDict()
    assert [r["transition"] for r in filter_records([record("o1", "opened", "CRITICAL")], out, told)] == ["opened"]
    later = [record("o1", "de-escalated", "WARNING"), record("o9", "opened", "WARNING"),
             record("o1", "resolved", "WARNING")]
    assert [r["record_id"] for r in filter_records(later, out, told)] == ["o1:de-escalated", "o1:resolved"]
    assert "o1" not in told


# --------------------------------------------------------------------------- jsonl


def test_jsonl_snapshot_issues_transitions_and_permissions(tmp_path):
    base = tmp_path / "new" / "dir"
    outs = [OutputConfig(type="jsonl", name=w, path=str(base / f"{w}.jsonl"), what=w)
            for w in ("snapshot", "issues", "transitions")]
    router = Router(outs)
    router.route(SNAPSHOT, RECORDS, now=100.0)
    router.route(SNAPSHOT, [], now=160.0)
    assert router.failures == {}
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o700
    lines = {}
    for w in ("snapshot", "issues", "transitions"):
        path = base / f"{w}.jsonl"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        text = path.read_text()
        assert "\n\n" not in text and text.endswith("\n")
        lines[w] = [json.loads(line) for line in text.splitlines()]
    assert len(lines["snapshot"]) == 2 and lines["snapshot"][0]["status"] == "CRITICAL"
    assert ": " not in (base / "snapshot.jsonl").read_text().splitlines()[0]  # compact
    assert [i["id"] for i in lines["issues"]] == [i["id"] for i in SNAPSHOT["issues"]] * 2
    assert lines["issues"][0]["host"] == "box"
    assert [r["record_id"] for r in lines["transitions"]] == [r["record_id"] for r in RECORDS]


def test_jsonl_rotates_by_size(tmp_path):
    path = tmp_path / "h.jsonl"
    line = json.dumps(SNAPSHOT, separators=(",", ":")) + "\n"
    out = OutputConfig(type="jsonl", path=str(path), max_bytes=len(line) * 3 + 10)
    router = Router([out])
    for n in range(5):
        router.route(SNAPSHOT, [], now=float(n))
    assert path.read_text().count("\n") == 2
    assert (tmp_path / "h.jsonl.1").read_text().count("\n") == 3
    assert not (tmp_path / "h.jsonl.2").exists()


# --------------------------------------------------------------------------- router


def test_one_failing_output_does_not_stop_another_and_its_warning_clears(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.mkdir()  # a directory where the file should be
    good = tmp_path / "good.jsonl"
    calls = []
    router = Router(
        [OutputConfig(type="jsonl", name="broken", path=str(bad)),
         OutputConfig(type="cache"),
         OutputConfig(type="jsonl", name="fine", path=str(good))],
        handlers={"cache": lambda out, data, records, now: calls.append(now)},
    )
    router.route(SNAPSHOT, RECORDS, now=1000.0)
    router.route(SNAPSHOT, RECORDS, now=1200.0)
    assert calls == [1000.0, 1200.0]
    assert good.read_text().count("\n") == 2
    assert set(router.failures) == {"broken"}
    since, error, count = router.failures["broken"]
    assert (since, count) == (1000.0, 2) and "directory" in error.lower()
    [(issue_id, severity, summary)] = router.findings(1200.0)
    assert (issue_id, severity) == ("output:broken", "WARNING")
    assert summary.startswith("jsonl broken failing for 3 min: ")

    bad.rmdir()
    router.route(SNAPSHOT, RECORDS, now=1260.0)
    assert router.failures == {} and router.findings(1260.0) == []
    assert bad.is_file()


def test_a_raising_handler_and_an_unhandled_type_are_findings():
    def boom(out, data, records, now):
        raise RuntimeError("mem0 said no")

    router = Router([OutputConfig(type="mem0"), OutputConfig(type="prometheus_http")], handlers={"mem0": boom})
    router.route(SNAPSHOT, RECORDS, now=10.0)
    found = {i: s for i, _, s in router.findings(40.0)}
    assert found["output:mem0"] == "mem0 output failing for 30 s: RuntimeError: mem0 said no"
    assert "nothing handles outputs of type prometheus_http" in found["output:prometheus_http"]
    result = router.probe_result(40.0)
    assert result.status.name == "WARNING"
    assert sorted(f.id for f in result.issue_findings()) == ["output:mem0", "output:prometheus_http"]


def test_handlers_get_data_filtered_for_their_output():
    seen = {}
    router = Router([OutputConfig(type="mem0", min_severity="CRITICAL"), OutputConfig(type="cache")],
                    handlers={t: (lambda out, data, records, now: seen.__setitem__(out.name, (data, records)))
                              for t in ("mem0", "cache")})
    router.route(SNAPSHOT, RECORDS, now=1.0)
    assert [r["record_id"] for r in seen["mem0"][1]] == ["o1:opened", "o3:resolved"]
    assert [p["name"] for p in seen["mem0"][0]["probes"]] == ["qdrant.service"]
    assert len(seen["cache"][1]) == 4 and len(seen["cache"][0]["probes"]) == 4


# --------------------------------------------------------------------------- webhook


def hook(url, **kw):
    return OutputConfig(type="webhook", name="alerts", url=url, **kw)


def test_webhook_posts_transitions_with_headers_from_the_environment():
    env = {"ALERT_HEADERS": "Authorization: Bearer s3cret-token\nX-Team: ops\n"}
    with PostServer([200]) as server:
        router = Router([hook(server.url, headers_env="ALERT_HEADERS")], env=env, backoff_seconds=0.01)
        try:
            router.route(SNAPSHOT, [], now=1.0)  # no transitions: nothing posted
            router.route(SNAPSHOT, RECORDS, now=2.0)
            assert wait_for(lambda: len(server.seen) == 1)
            time.sleep(0.1)
        finally:
            router.close()
    path, headers, body = server.seen[0]
    assert len(server.seen) == 1
    assert path == "/hook?x=1"
    assert headers["authorization"] == "Bearer s3cret-token" and headers["x-team"] == "ops"
    assert headers["content-type"] == "application/json"
    assert [r["record_id"] for r in body["transitions"]] == [r["record_id"] for r in RECORDS]
    assert router.failures == {} and router.findings(3.0) == []


def test_webhook_500_then_success_within_retries_is_no_finding():
    with PostServer([500, 500, 200]) as server:
        router = Router([hook(server.url, retries=3)], backoff_seconds=0.01)
        try:
            router.route(SNAPSHOT, RECORDS, now=1.0)
            assert wait_for(lambda: len(server.seen) == 3)
            time.sleep(0.1)
        finally:
            router.close()
    assert router.failures == {} and router.findings() == []
    assert server.seen[0][2] == server.seen[2][2]  # the same payload again


def test_webhook_failing_for_good_is_a_finding_without_the_header_value_and_clears():
    env = {"ALERT_HEADERS": "Authorization: Bearer s3cret-token"}
    with PostServer([500, 500, 500, 200]) as server:
        router = Router([hook(server.url, retries=2, headers_env="ALERT_HEADERS")], env=env, backoff_seconds=0.01)
        try:
            router.route(SNAPSHOT, RECORDS, now=1.0)
            assert wait_for(lambda: router.findings())
            [(issue_id, severity, summary)] = router.findings()
            assert len(server.seen) == 3
            assert (issue_id, severity) == ("output:alerts", "WARNING")
            assert "webhook alerts failing for" in summary
            assert "HTTP 500" in summary and "(1 payload dropped)" in summary
            assert "s3cret" not in summary and "s3cret" not in repr(router.failures)
            router.route(SNAPSHOT, RECORDS, now=2.0)
            assert wait_for(lambda: not router.failures)
        finally:
            router.close()
    assert router.findings() == []


def test_webhook_missing_header_variable_is_a_finding():
    with PostServer([200]) as server:
        router = Router([hook(server.url, retries=0, headers_env="NOT_SET_ANYWHERE")], env={}, backoff_seconds=0.01)
        try:
            router.route(SNAPSHOT, RECORDS, now=1.0)
            assert wait_for(lambda: router.findings())
        finally:
            router.close()
    assert server.seen == []
    assert "NOT_SET_ANYWHERE (headers_env) is not set" in router.findings()[0][2]


def test_a_webhook_that_never_answers_never_holds_up_the_cycle(tmp_path):
    good = tmp_path / "good.jsonl"
    with RawServer(never_answer) as server:
        router = Router([hook(server.url + "/x", retries=1, timeout_seconds=0.3, queue_size=2),
                         OutputConfig(type="jsonl", path=str(good))], backoff_seconds=0.05)
        try:
            started = time.monotonic()
            for n in range(5):
                router.route(SNAPSHOT, RECORDS, now=float(n))
            took = time.monotonic() - started
            assert took < 0.05, took
            assert good.read_text().count("\n") == 5
            assert router.findings() == [] or "dropped" in router.findings()[0][2]
            assert wait_for(lambda: router.failures.get("alerts"), timeout=3.0)
            summary = router.findings()[0][2]
            assert "no answer within 0.3 s" in summary
            # 5 payloads, queue of 2: 2 or 3 dropped by the full queue (depending on when the
            # worker took the first), plus the one given up.
            dropped = int(re.search(r"\((\d+) payloads dropped\)", summary).group(1))
            assert dropped in (3, 4), summary
            assert server.accepted >= 2  # two attempts for the first payload
        finally:
            router.close()


def test_direct_construction_gets_the_same_defaults_as_the_config():
    assert OutputConfig(type="webhook", url="http://x").what == "transitions"
    assert OutputConfig(type="jsonl", path="/x").what == "snapshot"
    assert OutputConfig(type="jsonl", name="j", path="/x", what="issues").what == "issues"


# --------------------------------------------------------------------------- closing, one-shot runs


def test_close_sends_every_queued_payload_first():
    """A one-shot command closes right after queueing: nothing may be lost."""
    with PostServer([200], delay=0.05) as server:
        router = Router([hook(server.url, what="snapshot")], backoff_seconds=0.01)
        for n in range(5):
            router.route({**SNAPSHOT, "generated_at": f"n{n}"}, [], now=float(n))
        assert router.close() == 0
        assert sorted(body["generated_at"] for _, _, body in server.seen) == [f"n{n}" for n in range(5)]
    assert router.failures == {}


def test_close_gives_up_at_its_deadline_and_says_so():
    lines = []
    with PostServer([200], delay=0.3) as server:
        router = Router([hook(server.url, what="snapshot")], backoff_seconds=0.01, log=lambda line, priority: lines.append(line))
        for n in range(10):
            router.route(SNAPSHOT, [], now=float(n))
        started = time.monotonic()
        lost = router.close(timeout=0.5)
        took = time.monotonic() - started
    assert 0.45 <= took < 1.5, took
    assert 7 <= lost <= 10, lost  # none to two sent in 0.5 s (a loaded machine), maybe one in flight
    assert re.fullmatch(rf"webhook alerts: gave up on {lost} unsent payloads after 0\.\d s", lines[-1]), lines


def test_close_stops_draining_once_a_payload_fails_for_good():
    """The receiver is down: the rest would only wait out the deadline one by one."""
    lines = []
    with RawServer(never_answer) as server:
        router = Router([hook(server.url + "/x", what="snapshot", retries=1, timeout_seconds=0.2)],
                        backoff_seconds=0.01, log=lambda line, priority: lines.append(line))
        for n in range(4):
            router.route(SNAPSHOT, [], now=float(n))
        sink = router._webhooks["alerts"]
        assert sink.drain_deadline() == pytest.approx(2 * 0.2 + 0.01)
        started = time.monotonic()
        assert router.close(timeout=10) == 4
        assert time.monotonic() - started < 1.5  # the first payload's two attempts, not 10 s
    assert "gave up on 4 unsent payloads" in lines[-1] and "(no answer within 0.2 s)" in lines[-1]


def test_the_drain_deadline_is_one_payloads_retry_budget_capped():
    sink = o.WebhookSink(hook("http://x", retries=3, timeout_seconds=2.0), on_result=print, on_dropped=print)
    assert sink.drain_deadline() == 4 * 2.0 + 1 + 2 + 4
    slow = o.WebhookSink(hook("http://x", retries=20, timeout_seconds=60), on_result=print, on_dropped=print)
    assert slow.drain_deadline() == o.CLOSE_DEADLINE_CAP_SECONDS


def _engine_config(tmp_path, outputs_toml, plugin=None):
    import tomllib

    from aiki_hooks.config.load import parse_config

    probe_toml = f'[[probes.command]]\nname = "queue"\ncommand = ["{plugin}"]\n' if plugin else ""
    text = (f'[state]\ndir = "{tmp_path / "state"}"\n[resources]\nenabled = false\n[costs]\nenabled = false\n'
            f"[journal]\nopen_after_cycles = 1\nresolve_after_cycles = 1\n{probe_toml}{outputs_toml}")
    return parse_config(tomllib.loads(text), source="test.toml")


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port):
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("oneshot", [True, False])
def test_only_the_long_lived_engine_serves_metrics(tmp_path, oneshot):
    from aiki_hooks.cycle.engine import Engine

    port = _free_port()
    config = _engine_config(tmp_path, f'[[outputs]]\ntype = "cache"\n[[outputs]]\ntype = "prometheus_http"\n'
                                      f"port = {port}\n")
    engine = Engine(config, oneshot=oneshot, log=lambda line, priority: None)
    try:
        engine.publish(engine.cycle())
        assert _listening(port) is (not oneshot)
        assert engine.router.failures == {}
    finally:
        engine.close()
    assert not _listening(port)


def test_a_failing_cache_still_routes_the_cycle_and_becomes_a_warning(tmp_path):
    from aiki_hooks.cycle.engine import Engine

    archive = tmp_path / "archive.jsonl"
    config = _engine_config(tmp_path, f'[[outputs]]\ntype = "cache"\n[[outputs]]\ntype = "journal"\n'
                                      f'[[outputs]]\ntype = "jsonl"\npath = "{archive}"\n')
    config.cache_path.mkdir(parents=True)  # a directory where the cache file goes: the write fails
    lines = []
    engine = Engine(config, log=lambda line, priority: lines.append(line))
    try:
        with pytest.raises(IsADirectoryError):
            engine.publish(engine.cycle())
        assert archive.read_text().count("\n") == 1  # the other output still got the cycle
        with pytest.raises(IsADirectoryError):
            engine.publish(engine.cycle())
    finally:
        engine.close()
    last = json.loads(archive.read_text().splitlines()[-1])
    (cache_issue,) = [i for i in last["issues"] if i["id"] == "output:cache"]
    assert cache_issue["severity"] == "WARNING"
    assert cache_issue["summary"].startswith("cache output failing for ") and "Is a directory" in cache_issue["summary"]
    assert not any("output cache failing" in line for line in lines)  # publish raises it: said once, by the caller


def test_the_cache_failure_shows_even_without_a_cache_output(tmp_path):
    from aiki_hooks.cycle.engine import Engine

    archive = tmp_path / "archive.jsonl"
    config = _engine_config(tmp_path, f'[[outputs]]\ntype = "jsonl"\npath = "{archive}"\n')
    config.cache_path.mkdir(parents=True)
    engine = Engine(config, log=lambda line, priority: None)
    try:
        for _ in range(2):
            with pytest.raises(IsADirectoryError):
                engine.publish(engine.cycle())
    finally:
        engine.close()
    last = json.loads(archive.read_text().splitlines()[-1])
    assert [i["id"] for i in last["issues"]] == ["output:cache"]


PLUGIN = '#!/bin/sh\nread code < "{flag}"\necho "queue says $code"\nexit $code\n'


def _plugin(tmp_path):
    flag, plugin = tmp_path / "code", tmp_path / "check_queue"
    plugin.write_text(PLUGIN.format(flag=flag))
    plugin.chmod(0o755)
    return flag, plugin


def _cli_config(write_config, tmp_path, plugin, outputs_toml):
    return write_config(
        f'[state]\ndir = "{tmp_path / "state"}"\n[resources]\nenabled = false\n[costs]\nenabled = false\n'
        f"[journal]\nopen_after_cycles = 1\nresolve_after_cycles = 1\n"
        f'[[probes.command]]\nname = "queue"\ncommand = ["{plugin}"]\n{outputs_toml}')


@pytest.mark.parametrize("command", [("refresh",), ("status",), ("probe", "--json"), ("metrics",)])
def test_one_shot_commands_deliver_their_webhook_payload_before_exiting(write_config, tmp_path, command):
    from tests.conftest import run_cli

    flag, plugin = _plugin(tmp_path)
    flag.write_text("0\n")
    port = _free_port()
    # The first attempt gets a 500: only a close that drains waits out the 1 s backoff and retries.
    with PostServer([500, 200]) as server:
        _cli_config(write_config, tmp_path, plugin,
                    f'[[outputs]]\ntype = "cache"\n[[outputs]]\ntype = "webhook"\nurl = "{server.url}"\n'
                    f'what = "snapshot"\n[[outputs]]\ntype = "prometheus_http"\nport = {port}\n')
        result = run_cli(*command)
        seen = list(server.seen)
    assert result.returncode == 0, result.stderr
    assert len(seen) == 2, result.stderr
    assert seen[0][2] == seen[1][2] and [p["name"] for p in seen[1][2]["probes"]] == ["queue"]
    assert "serving metrics" not in result.stderr and result.stderr == ""


def test_a_filtered_webhook_hears_how_an_occurrence_ends_across_one_shot_runs(write_config, tmp_path):
    from tests.conftest import run_cli

    flag, plugin = _plugin(tmp_path)
    with PostServer([200]) as server:
        _cli_config(write_config, tmp_path, plugin,
                    f'[[outputs]]\ntype = "webhook"\nname = "pager"\nurl = "{server.url}"\n'
                    f'min_severity = "CRITICAL"\n')
        for code in ("2", "1", "0", "0"):  # CRITICAL opens, de-escalates to WARNING, resolves, stays OK
            flag.write_text(code + "\n")
            result = run_cli("refresh")
            assert result.returncode == 0, result.stderr
        seen = list(server.seen)
    transitions = [(t["transition"], t["severity"]) for _, _, body in seen for t in body["transitions"]]
    assert transitions == [("opened", "CRITICAL"), ("de-escalated", "WARNING"), ("resolved", "WARNING")]
    told = tmp_path / "state" / o.TOLD_FILE
    assert stat.S_IMODE(told.stat().st_mode) == 0o600
    assert stat.S_IMODE(told.parent.stat().st_mode) == 0o700
    assert json.loads(told.read_text()) == {"version": 1, "told": {}}  # resolved: forgotten


def test_told_state_is_kept_only_for_filtered_outputs_and_a_bad_file_is_ignored(tmp_path):
    told_file = tmp_path / "state" / o.TOLD_FILE
    outs = [OutputConfig(type="jsonl", name="all", path=str(tmp_path / "a.jsonl")),
            OutputConfig(type="jsonl", name="crit", path=str(tmp_path / "c.jsonl"), min_severity="CRITICAL")]
    Router(outs, told_file=str(told_file)).route(SNAPSHOT, [record("o1", "opened", "CRITICAL")], now=1.0)
    assert json.loads(told_file.read_text()) == {"version": 1, "told": {"crit": ["o1"]}}
    again = Router(outs, told_file=str(told_file))
    again.route(SNAPSHOT, [record("o1", "de-escalated", "WARNING")], now=2.0)
    assert (tmp_path / "c.jsonl").read_text().count("\n") == 2
    told_file.write_text("not json")
    lines = []
    Router(outs, told_file=str(told_file), log=lambda line, priority: lines.append(line))
    assert lines and lines[0].startswith("ignoring ")
    unfiltered = tmp_path / "other" / o.TOLD_FILE
    Router(outs[:1], told_file=str(unfiltered)).route(SNAPSHOT, RECORDS, now=1.0)
    assert not unfiltered.exists()


# --------------------------------------------------------------------------- config: refused filters, secrets


@pytest.mark.parametrize("item, key", [({"type": "cache", "min_severity": "CRITICAL"}, "min_severity"),
                                       ({"type": "journal", "probes": ["qdrant*"]}, "probes")])
def test_filters_on_cache_and_journal_are_refused_with_file_key_value_and_expectation(write_config, item, key):
    from aiki_hooks.config.load import ConfigError, load_config

    value = '"CRITICAL"' if key == "min_severity" else '["qdrant*"]'
    path = write_config(f'[[outputs]]\ntype = "{item["type"]}"\n{key} = {value}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = caught.value.message()
    assert message.startswith(f"invalid config {path}: outputs[0].{key} = ")
    assert f"expected no {key} on a {item['type']} output" in message
    # The no-op values (what `aiki-hooks config` prints) stay valid.
    assert validate_outputs([{"type": item["type"], "min_severity": "OK", "probes": []}])[1] == []


def test_an_invalid_webhook_url_is_named_without_its_path_or_query():
    _, problems = validate_outputs([{"type": "webhook", "url": "https://u:pw@hooks.example.net/T0k3nS3cr3tAbCdEf1 x"
                                                             "?key=hunter2"}])
    (problem,) = problems
    assert problem.startswith('outputs[0].url = "https://u:***@hooks.example.net/...": expected an http')
    for secret in ("T0k3n", "hunter2", "pw@"):
        assert secret not in problem


@pytest.mark.parametrize("url", ["http://h:notaport/x", "http://exa mple.net/x", "http:///x", "http://h/x\ty"])
def test_webhook_urls_that_cannot_be_sent_are_refused_at_load(url):
    assert validate_outputs([{"type": "webhook", "url": url}])[1]


def test_the_effective_config_hides_query_and_tokens_of_a_webhook_url():
    import tomllib

    from aiki_hooks.config.load import effective_config_toml, parse_config

    url = "https://u:pw@hooks.example.net/services/T00/B00/aB3dE6gH9jK2mN5pQ8sT1vW4?token=hunter2"
    config = parse_config({"outputs": [{"type": "webhook", "url": url}]})
    text = effective_config_toml(config, env={})
    assert 'url = "https://u:***@hooks.example.net/services/T00/B00/***?***"' in text
    for secret in ("pw@", "aB3dE6gH9", "hunter2"):
        assert secret not in text
    assert tomllib.loads(text)["outputs"][0]["type"] == "webhook"


def test_credentials_in_a_webhook_url_are_sent_as_basic_auth_and_never_shown():
    import base64

    with PostServer([401]) as server:
        url = server.url.replace("http://", "http://ops%40team:s3cr%3At@")
        router = Router([hook(url, retries=0)], backoff_seconds=0.01)
        router.route(SNAPSHOT, RECORDS, now=1.0)
        router.close()
    (_, headers, _), = server.seen
    assert headers["authorization"] == "Basic " + base64.b64encode(b"ops@team:s3cr:t").decode()
    summary = router.findings(2.0)[0][2]
    assert "HTTP 401" in summary and "s3cr" not in summary


def test_an_authorization_header_wins_over_url_credentials():
    with PostServer([200]) as server:
        url = server.url.replace("http://", "http://u:p@")
        router = Router([hook(url, headers_env="H")], env={"H": "Authorization: Bearer abc"}, backoff_seconds=0.01)
        router.route(SNAPSHOT, RECORDS, now=1.0)
        router.close()
    assert [h["authorization"] for _, h, _ in server.seen] == ["Bearer abc"]


def test_a_url_refused_at_send_time_is_a_finding_without_path_or_query():
    # Built directly (the config refuses such a URL): http.client's own message quotes the path.
    with PostServer([200]) as server:
        router = Router([hook(server.url.replace("/hook?x=1", "/hook T0k3nS3cr3t?key=hunter2"), retries=0)],
                        backoff_seconds=0.01)
        router.route(SNAPSHOT, RECORDS, now=1.0)
        router.close()
    summary = router.findings(2.0)[0][2]
    assert re.search(r"http\.client refused the URL http://127\.0\.0\.1:\d+/\.\.\. \(1 payload dropped\)$", summary)
    assert "T0k3n" not in summary and "hunter2" not in summary
    assert server.seen == []


# --------------------------------------------------------------------------- examples/vector.toml


def test_the_vector_example_is_a_graph_where_only_issue_events_reach_mem0():
    """Vector itself is not available here (see the file's header); this checks what can be
    checked: valid TOML, every input exists, and each way from a source to the mem0 sink
    goes through the journald priority filter or the health dedupe."""
    import tomllib

    from tests.conftest import REPO

    config = tomllib.loads((REPO / "examples" / "vector.toml").read_text())
    components = {**config["transforms"], **config["sinks"]}
    known = set(config["sources"]) | set(components)
    for name, component in components.items():
        assert set(component["inputs"]) <= known, name

    def paths_to(target, path=()):
        inputs = components[target]["inputs"] if target in components else []
        if not inputs:
            yield (target, *path)
        for source in inputs:
            yield from paths_to(source, (target, *path))

    ways = list(paths_to("mem0"))
    assert {way[0] for way in ways} == {"unit_logs", "health"}
    for way in ways:
        assert {"unit_errors", "health_changes"} & set(way), way
    assert config["transforms"]["unit_errors"]["condition"] == "(to_int(.PRIORITY) ?? 7) <= 3"
    assert config["transforms"]["health_changes"]["cache"]["num_events"] == 1
    assert config["sources"]["health"]["command"] == ["aiki-hooks", "probe", "--json", "--issues"]


def test_closing_without_waiting_returns_at_once_and_the_queue_still_drains():
    """What a config reload does: the refresher's cycle must not wait on a webhook."""
    with PostServer([200], delay=0.1) as server:
        router = Router([hook(server.url, what="snapshot")], backoff_seconds=0.01)
        for n in range(3):
            router.route(SNAPSHOT, [], now=float(n))
        started = time.monotonic()
        assert router.close(wait=False) == 0
        assert time.monotonic() - started < 0.05
        thread = router._webhooks["alerts"]._thread
        assert wait_for(lambda: not thread.is_alive(), timeout=5.0)  # ended on its own, the queue sent
        assert len(server.seen) == 3
        router.route(SNAPSHOT, [], now=9.0)  # closed: dropped, not sent
        time.sleep(0.2)
    assert len(server.seen) == 3 and router.dropped == {"alerts": 1}


# --------------------------------------------------------------------------- stalls and drops (issue 13, item 8)

TRICKLE_SECONDS = 0.2  # between bytes: well under any timeout below, so a per-read timeout never fires
TRICKLED_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Padding: " + b"." * 60 + b"\r\n\r\nok"


def trickle(conn, stopping):
    """Take the request, then answer one byte every TRICKLE_SECONDS (~20 s in all)."""
    conn.settimeout(5)
    try:
        conn.recv(65536)
        for index in range(len(TRICKLED_ANSWER)):
            if stopping.wait(TRICKLE_SECONDS):
                return
            conn.sendall(TRICKLED_ANSWER[index:index + 1])
    except OSError:
        return  # the client hung up: what it should do


def webhook_toml(url, settings):
    """A cache and a webhook "alerts" posting each snapshot to *url*, with *settings*."""
    return (f'[[outputs]]\ntype = "cache"\n[[outputs]]\ntype = "webhook"\nname = "alerts"\nurl = "{url}/hook"\n'
            f'what = "snapshot"\n{settings}')


def test_a_receiver_trickling_its_answer_is_abandoned_at_the_deadline():
    with RawServer(trickle) as server:
        started = time.monotonic()
        with pytest.raises(o.DeliveryError, match=r"^no answer within 1 s$"):
            o.post(server.url + "/hook", b"{}", [], 1.0, content_headers=formats.JSON_HEADERS)
        took = time.monotonic() - started
    assert 1.0 <= took < 1.0 + 0.3, took


def test_a_trickling_webhook_is_a_warning_in_the_next_snapshot(tmp_path):
    from aiki_hooks.cycle.engine import Engine
    from aiki_hooks.model.status import Status

    lines = []
    with RawServer(trickle) as server:
        config = _engine_config(tmp_path, webhook_toml(server.url, "timeout_seconds = 0.5\nretries = 0\n"))
        engine = Engine(config, log=lambda line, priority: lines.append(line))
        try:
            started = time.monotonic()
            engine.publish(engine.cycle())
            assert wait_for(lambda: engine.router.failures.get("alerts"), timeout=3.0)
            took = time.monotonic() - started
            snapshot = engine.cycle()
        finally:
            engine.close(wait=False)
    assert took < 0.5 + 0.3, took
    (warning,) = [i for i in snapshot.issues if i.id == "output:alerts"]
    assert warning.severity is Status.WARNING
    assert warning.summary.startswith("webhook alerts failing for ") and "no answer within 0.5 s" in warning.summary
    assert "output alerts failing: no answer within 0.5 s" in lines


def test_payloads_dropped_behind_a_blocked_receiver_are_a_warning_with_their_count(tmp_path):
    from aiki_hooks.cycle.engine import Engine

    lines = []
    with RawServer(never_answer) as server:
        settings = "timeout_seconds = 30\nretries = 0\nqueue_size = 2\n"
        config = _engine_config(tmp_path, webhook_toml(server.url, settings))
        engine = Engine(config, log=lambda line, priority: lines.append(line))
        try:
            engine.publish(engine.cycle())
            assert wait_for(lambda: server.accepted == 1)  # the first payload is in flight, and stays there
            for _ in range(5):  # two fit in the queue; three push the oldest out
                engine.publish(engine.cycle())
            snapshot = engine.cycle()
        finally:
            engine.close(wait=False)
    (warning,) = [i for i in snapshot.issues if i.id == "output:alerts"]
    assert warning.summary == "webhook alerts not keeping up: 3 payloads dropped, its queue of 2 was full"
    assert [line for line in lines if "queue full" in line] == [
        "output alerts: queue full, dropping the oldest payloads: the receiver is not keeping up"]


def test_drops_stay_reported_until_the_receiver_has_caught_up():
    gate = threading.Event()

    def gated(conn, stopping):
        conn.settimeout(5)
        try:
            conn.recv(65536)
            while not gate.wait(0.02):
                if stopping.is_set():
                    return
            conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        except OSError:
            return

    lines = []
    with RawServer(gated) as server:
        router = Router([hook(server.url + "/x", what="snapshot", timeout_seconds=10, retries=0, queue_size=2)],
                        log=lambda line, priority: lines.append(line))
        try:
            router.route(SNAPSHOT, [], now=0.0)
            assert wait_for(lambda: server.accepted == 1)
            for n in range(5):
                router.route(SNAPSHOT, [], now=1.0 + n)
            expected = "webhook alerts not keeping up: 3 payloads dropped, its queue of 2 was full"
            assert router.findings(10.0) == [("output:alerts", "WARNING", expected)]
            gate.set()
            assert wait_for(lambda: router.findings(20.0) == [])
        finally:
            router.close()
    assert server.accepted == 3  # the one in flight and the two queued
    assert lines == ["output alerts: queue full, dropping the oldest payloads: the receiver is not keeping up",
                     "output alerts caught up (3 payloads dropped meanwhile)"]
