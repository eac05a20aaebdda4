"""The runner absorbs every probe failure and bounds the cycle's duration."""

import threading
import time

from aiki_hooks.cycle.runner import cycle_deadline, run_probes
from aiki_hooks.model.result import ProbeResult
from aiki_hooks.model.status import Status


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


def test_at_most_max_concurrent_probes_run_at_once_and_the_rest_wait_their_turn():
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def busy(probe):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return ok(probe)

    probes = [FakeProbe("p", [f"p{i}"], 2, busy) for i in range(12)]
    results = run_probes(probes, max_concurrent=4)
    assert peak[0] == 4
    assert [r.status for r in results] == [Status.OK] * 12


def test_probes_not_started_by_the_deadline_are_reported_not_run():
    probes = [FakeProbe("slow", [f"s{i}"], 0.3, hang) for i in range(3)] + [FakeProbe("a", ["a"], 0.3, ok)]
    started = time.monotonic()
    results = run_probes(probes, max_concurrent=2)
    assert time.monotonic() - started <= cycle_deadline(probes) + 0.1
    assert [(r.name, r.error_kind) for r in results] == [("s0", "timeout"), ("s1", "timeout"),
                                                         ("s2", "not_run"), ("a", "not_run")]
    assert results[3].status is Status.UNKNOWN and results[3].summary == "not run: the cycle ran out of time"


def test_no_probe_starts_once_the_cycle_is_abandoned():
    started = []

    def slow(probe):
        started.append(probe.names[0])
        time.sleep(0.3)
        return ok(probe)

    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert run_probes([FakeProbe("p", [f"p{i}"], 5, slow) for i in range(4)], stop=stop, max_concurrent=1) is None
    time.sleep(0.5)
    assert started == ["p0"]


def test_what_a_probe_returns_or_raises_is_made_safe_before_it_enters_the_engine():
    def hostile(probe):
        return [ProbeResult(name="h", kind="x", status=Status.WARNING, values={"line": "\x1b[2Jv", "n": 3},
                            summary="\x1b]0;pwned\x07down: postgres://app:Pw0123456789abc@db/x\r",
                            details=("\x9b2Jd\tetc",))]

    def raising(probe):
        raise RuntimeError("GET https://h/?token=Q5cr3t failed\x1b[2J")

    (result, failed) = run_probes([FakeProbe("x", ["h"], 1, hostile), FakeProbe("y", ["r"], 1, raising)])
    assert result.summary == "down: postgres://app:***@db/x"
    assert result.details == ("2Jd etc",) and result.values == {"line": "v", "n": 3}
    assert failed.summary == "probe failed: RuntimeError: GET https://h/?*** failed"
