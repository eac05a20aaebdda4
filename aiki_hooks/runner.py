"""Runs a cycle's probes concurrently, each against its own deadline.

This is the only place with a broad `except`: whatever a probe does (raise, hang, return
garbage) becomes an UNKNOWN result for that probe and never stops the cycle. The cycle
as a whole ends within the largest probe timeout plus 10%.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .probes import Probe
from .result import ProbeResult, replace
from .status import Status

GRACE_FACTOR = 1.10
MIN_GRACE_SECONDS = 0.05


@dataclass
class _Slot:
    probe: Probe
    started: float = 0.0
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
) -> list[ProbeResult] | None:
    """Run *probes* concurrently; return their results in probe order.

    Returns None if *stop* was set before the cycle finished (the caller abandons it).
    Threads are daemons so a probe stuck in an uninterruptible call (DNS lookup) cannot
    keep the process alive; its late result is discarded.
    """
    slots = [_Slot(probe) for probe in probes]
    done = threading.Semaphore(0)
    started_wall = wall()

    def work(slot: _Slot) -> None:
        slot.started = clock()
        try:
            slot.results = list(slot.probe.check())
        except BaseException as exc:  # noqa: BLE001 - the runner absorbs every probe failure
            slot.error = exc
        finally:
            slot.finished = clock()
            done.release()

    start = clock()
    for slot in slots:
        threading.Thread(target=work, args=(slot,), name=f"probe-{slot.probe.kind}", daemon=True).start()

    deadline = start + cycle_deadline(probes)
    pending = len(slots)
    while pending:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        if done.acquire(timeout=min(remaining, 0.1)):
            pending -= 1
        if stop is not None and stop.is_set():
            return None

    results: list[ProbeResult] = []
    now = clock()
    for slot in slots:
        results.extend(_collect(slot, now, start, started_wall))
    return results


def _collect(slot: _Slot, now: float, cycle_start: float, started_wall: float) -> list[ProbeResult]:
    probe = slot.probe
    finished = slot.finished
    elapsed = ((finished if finished is not None else now) - (slot.started or cycle_start)) * 1000
    checked_at = started_wall + ((slot.started or cycle_start) - cycle_start)
    if finished is None:
        return _unknown(probe, "timeout", f"probe did not finish within {probe.timeout_seconds:g} s", checked_at, elapsed)
    if slot.error is not None:
        exc = slot.error
        return _unknown(probe, "exception", f"probe failed: {type(exc).__name__}: {exc}"[:300], checked_at, elapsed)
    by_name = {r.name: r for r in slot.results or () if isinstance(r, ProbeResult)}
    results = []
    for name in probe.names:
        result = by_name.get(name)
        if result is None:
            results.extend(_unknown_one(probe, name, "no_result", "probe returned no result", checked_at, elapsed))
        else:
            results.append(replace(result, checked_at=checked_at, duration_ms=elapsed))
    return results


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
