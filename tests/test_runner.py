"""The runner absorbs every probe failure and bounds the cycle's duration."""

import threading
import time

from aiki_hooks.result import ProbeResult
from aiki_hooks.runner import cycle_deadline, run_probes
from aiki_hooks.status import Status


class FakeProbe:
    def __init__(self, kind, names, timeout_seconds, action):
        self.kind, self.names, self.timeout_seconds, self.action = kind, tuple(names), timeout_seconds, action

    def check(self):
        return self.action(self)


def ok(probe):
    return [ProbeResult(name=n, kind=probe.kind, status=Status.OK, summary="fine") for n in probe.names]


def hang(probe):
    time.sleep(30)


def boom(probe):
    raise RuntimeError("parser exploded")


def test_results_in_probe_order_with_timestamps():
    results = run_probes([FakeProbe("a", ["a1", "a2"], 1, ok), FakeProbe("b", ["b1"], 1, ok)])
    assert [r.name for r in results] == ["a1", "a2", "b1"]
    assert all(r.status is Status.OK and r.checked_at > 1e9 and r.duration_ms >= 0 for r in results)


def test_raising_probe_is_unknown_and_others_still_report():
    results = run_probes([FakeProbe("x", ["x"], 1, boom), FakeProbe("a", ["a"], 1, ok)])
    by_name = {r.name: r for r in results}
    assert by_name["x"].status is Status.UNKNOWN
    assert by_name["x"].error_kind == "exception"
    assert "RuntimeError: parser exploded" in by_name["x"].summary
    assert by_name["a"].status is Status.OK


def test_hanging_probe_times_out_within_largest_timeout_plus_ten_percent():
    probes = [FakeProbe("slow", ["s1", "s2"], 0.5, hang), FakeProbe("a", ["a"], 0.2, ok)]
    started = time.monotonic()
    results = run_probes(probes)
    elapsed = time.monotonic() - started
    assert elapsed <= cycle_deadline(probes) + 0.1
    assert elapsed >= 0.5
    assert [(r.name, r.status, r.error_kind) for r in results[:2]] == [
        ("s1", Status.UNKNOWN, "timeout"),
        ("s2", Status.UNKNOWN, "timeout"),
    ]
    assert "did not finish within 0.5 s" in results[0].summary


def test_missing_result_names_are_reported():
    def partial(probe):
        return ok(probe)[:1]

    results = run_probes([FakeProbe("p", ["one", "two"], 1, partial)])
    assert [(r.name, r.status, r.error_kind) for r in results] == [
        ("one", Status.OK, None),
        ("two", Status.UNKNOWN, "no_result"),
    ]


def test_stop_event_abandons_the_cycle_quickly():
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert run_probes([FakeProbe("slow", ["s"], 10, hang)], stop=stop) is None
    assert time.monotonic() - started < 1.0
