"""Runs a cycle's probes, at most MAX_CONCURRENT_PROBES at a time, against one deadline.

Probe failures are absorbed here, with a broad `except`: whatever a probe does (raise, hang,
return garbage) becomes an UNKNOWN result for that probe and never stops the cycle. The cycle
as a whole ends within the largest probe timeout plus 10%: a probe still running then
is reported as timed out, one not started yet as not run.

It is also where probe results enter the engine, so what came from outside (plugin
output, HTTP bodies, journal lines, exception texts) is made safe here, once: escape
sequences and control characters stripped, secrets redacted (config.redact_text).
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from aiki_hooks.config.load import redact_text
from aiki_hooks.model.result import ProbeResult, replace
from aiki_hooks.model.status import Status
from aiki_hooks.probes.registry import Probe
from aiki_hooks.sanitize import strip_controls

GRACE_FACTOR = 1.10
MIN_GRACE_SECONDS = 0.05
# Probes mostly wait (on sockets, on their child process), so more run at once than
# there are cores; 32 runs a large real config in one round, each probe with its whole
# timeout, while bounding the threads, processes and descriptors a cycle holds. Without
# a bound, 10,000 command probes started 10,000 processes and the cycle took 13.9 s
# against its 5.5 s deadline.
MAX_CONCURRENT_PROBES = 32
NOT_RUN = "not run: the cycle ran out of time"
# Gathering the results takes time too (10-15 µs a probe: 0.1-0.15 s for 10,000); the
# waiting stops that much before the deadline, so the whole cycle ends within it.
COLLECT_SECONDS_PER_PROBE = 15e-6
MAX_EXCEPTION_CHARS = 300


@dataclass
class _Slot:
    probe: Probe
    started: float | None = None  # None: never taken by a worker
    finished: float | None = None
    results: Sequence[ProbeResult] | None = None
    error: BaseException | None = None


def cycle_deadline(probes: Sequence[Probe]) -> float:
    largest = max((p.timeout_seconds for p in probes), default=1.0)
    return largest * GRACE_FACTOR + MIN_GRACE_SECONDS


def run_probes(
    probes: Sequence[Probe],
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    max_concurrent: int = MAX_CONCURRENT_PROBES,
) -> list[ProbeResult] | None:
    """Run *probes*, at most *max_concurrent* at once, in order; return their results
    in probe order.

    Returns None if *stop* was set before the cycle finished (the caller abandons it).
    Workers are daemon threads so a probe stuck in an uninterruptible call (DNS lookup)
    cannot keep the process alive; its late result is discarded. Once the cycle is over
    no worker takes another probe.
    """
    slots = [_Slot(probe) for probe in probes]
    waiting = collections.deque(slots)
    lock = threading.Lock()  # guards `waiting` and `closed`: a slot is taken or left, never both
    closed = False
    done = threading.Semaphore(0)
    started_wall = wall()

    def take() -> _Slot | None:
        with lock:
            if closed or not waiting:
                return None
            slot = waiting.popleft()
            slot.started = clock()
            return slot

    def work() -> None:
        while (slot := take()) is not None:
            try:
                slot.results = list(slot.probe.check())
            except BaseException as exc:  # noqa: BLE001 - the runner absorbs every probe failure
                slot.error = exc
            finally:
                slot.finished = clock()
                done.release()

    start = clock()
    for index in range(min(max(1, max_concurrent), len(slots))):
        threading.Thread(target=work, name=f"probe-worker-{index}", daemon=True).start()

    deadline = start + cycle_deadline(probes) - len(slots) * COLLECT_SECONDS_PER_PROBE
    pending = len(slots)
    try:
        while pending:
            remaining = deadline - clock()
            if remaining <= 0:
                break
            if done.acquire(timeout=min(remaining, 0.1)):
                pending -= 1
            if stop is not None and stop.is_set():
                return None
    finally:
        with lock:
            closed = True

    results: list[ProbeResult] = []
    now = clock()
    for slot in slots:
        results.extend(_collect(slot, now, start, started_wall))
    return results


def _collect(slot: _Slot, now: float, cycle_start: float, started_wall: float) -> list[ProbeResult]:
    probe = slot.probe
    if slot.started is None:
        return _unknown(probe, "not_run", NOT_RUN, started_wall + (now - cycle_start), 0.0)
    finished = slot.finished
    elapsed = ((finished if finished is not None else now) - slot.started) * 1000
    checked_at = started_wall + (slot.started - cycle_start)
    if finished is None:
        return _unknown(probe, "timeout", f"probe did not finish within {probe.timeout_seconds:g} s", checked_at, elapsed)
    if slot.error is not None:
        exc = slot.error
        text = safe_text(f"probe failed: {type(exc).__name__}: {exc}")[:MAX_EXCEPTION_CHARS]
        return _unknown(probe, "exception", text, checked_at, elapsed)
    by_name = {r.name: r for r in slot.results or () if isinstance(r, ProbeResult)}
    results = []
    for name in probe.names:
        result = by_name.get(name)
        if result is None:
            results.extend(_unknown_one(probe, name, "no_result", "probe returned no result", checked_at, elapsed))
        else:
            results.append(_made_safe(result, checked_at=checked_at, duration_ms=elapsed))
    return results


def safe_text(text: str, *, multiline: bool = False) -> str:
    """Text from outside, fit to print, journal and tell the agent: without escape
    sequences and control characters (one line unless *multiline*), secrets redacted."""
    return redact_text(strip_controls(str(text), multiline=multiline))


def _made_safe(result: ProbeResult, **changes: Any) -> ProbeResult:
    """*result* with its texts made safe (safe_text): summary, details, string values and
    findings' summaries, and *changes*. Names and ids are not touched: they come from the
    validated config."""
    values = {key: safe_text(value) if isinstance(value, str) else value for key, value in result.values.items()}
    findings = result.findings
    if findings is not None:
        findings = tuple(replace(f, summary=safe_text(f.summary)) for f in findings)
    return replace(result, summary=safe_text(result.summary), details=tuple(safe_text(d) for d in result.details),
                   values=values, findings=findings, **changes)


def _unknown(probe: Probe, kind: str, summary: str, checked_at: float, elapsed: float) -> list[ProbeResult]:
    out = []
    for name in probe.names:
        out.extend(_unknown_one(probe, name, kind, summary, checked_at, elapsed))
    return out


def _unknown_one(probe: Probe, name: str, kind: str, summary: str, checked_at: float, elapsed: float):
    return [
        ProbeResult(
            name=name,
            kind=probe.kind,
            status=Status.UNKNOWN,
            summary=summary,
            checked_at=checked_at,
            duration_ms=elapsed,
            error_kind=kind,
        )
    ]
