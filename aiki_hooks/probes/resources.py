"""CPU, load, memory, swap and disk usage from psutil.

One result per aspect (`cpu`, `load`, `memory`, `swap`, `disk:<path>`), so each has its
own status, numbers and issue id. CPU % is the busy share of CPU time between two
cycles: it is omitted on the first cycle rather than shown as a misleading 0. Each disk
is measured in its own thread with a deadline, so one hung mount does not sink the rest.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

from aiki_hooks.config.load import ResourcesConfig
from aiki_hooks.model.result import Finding, ProbeResult
from aiki_hooks.model.status import Status, worst
from aiki_hooks.model.thresholds import GIB, fmt_bytes, fmt_gib, fmt_percent, judge

KIND = "resources"
TOP_PROCESSES = 3
PROCESS_CPU_SAMPLE_SECONDS = 0.25


@dataclass(frozen=True, kw_only=True)
class DiskSample:
    path: str
    total_bytes: int | None = None
    used_bytes: int | None = None
    free_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResourceSample:
    cpu_percent: float | None  # None on the first cycle
    cpu_count: int
    load1: float | None
    load5: float | None
    memory_total_bytes: int
    memory_available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int
    disks: tuple[DiskSample, ...]


@dataclass(frozen=True, kw_only=True)
class TopProcess:
    name: str
    pid: int
    value: float  # bytes for memory, percent for CPU


# --------------------------------------------------------------------------- measure


class ResourcesProbe:
    kind = KIND

    def __init__(self, config: ResourcesConfig, *, ps: Any = None, clock=time.monotonic) -> None:
        if ps is None:
            import psutil as ps  # imported here: only the refresher pays for psutil
        self.config = config
        self.ps = ps
        self.clock = clock
        self.timeout_seconds = config.timeout_seconds
        self.names = ("cpu", "load", "memory", "swap", *(f"disk:{p}" for p in config.disk_paths))
        self._last_cpu_times: Any = None

    def check(self) -> list[ProbeResult]:
        deadline = self.clock() + self.timeout_seconds * 0.9
        sample = self.measure(deadline)
        top_memory: tuple[TopProcess, ...] = ()
        top_cpu: tuple[TopProcess, ...] = ()
        cpu_status = judge_cpu(sample, self.config)[0]
        memory_status = judge_memory(sample, self.config)[0]
        if memory_status in (Status.WARNING, Status.CRITICAL):
            top_memory = self.top_by_memory()
        if cpu_status in (Status.WARNING, Status.CRITICAL):
            top_cpu = self.top_by_cpu(deadline)
        return judge_resources(sample, self.config, top_memory=top_memory, top_cpu=top_cpu)

    def measure(self, deadline: float) -> ResourceSample:
        ps = self.ps
        times = ps.cpu_times()
        cpu_percent = busy_percent(self._last_cpu_times, times) if self._last_cpu_times is not None else None
        self._last_cpu_times = times
        try:
            load1, load5, _ = ps.getloadavg()
        except (AttributeError, OSError):
            load1 = load5 = None
        memory = ps.virtual_memory()
        swap = ps.swap_memory()
        return ResourceSample(
            cpu_percent=cpu_percent,
            cpu_count=ps.cpu_count() or 1,
            load1=load1,
            load5=load5,
            memory_total_bytes=memory.total,
            memory_available_bytes=memory.available,
            swap_total_bytes=swap.total,
            swap_used_bytes=swap.used,
            disks=self._measure_disks(deadline),
        )

    def _measure_disks(self, deadline: float) -> tuple[DiskSample, ...]:
        samples: dict[str, DiskSample] = {}

        def one(path: str) -> None:
            try:
                usage = self.ps.disk_usage(path)
                samples[path] = DiskSample(
                    path=path, total_bytes=usage.total, used_bytes=usage.used, free_bytes=usage.free
                )
            except OSError as exc:
                samples[path] = DiskSample(path=path, error=exc.strerror or str(exc))

        threads = []
        for path in self.config.disk_paths:
            thread = threading.Thread(target=one, args=(path,), name=f"disk-{path}", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, deadline - self.clock()))
        return tuple(
            samples.get(path) or DiskSample(path=path, error="no answer from the filesystem (hung mount?)")
            for path in self.config.disk_paths
        )

    def top_by_memory(self) -> tuple[TopProcess, ...]:
        found = []
        for proc in self.ps.process_iter(["name", "memory_info"]):
            info = proc.info
            if info.get("memory_info") is not None:
                found.append(TopProcess(name=info.get("name") or "?", pid=proc.pid, value=info["memory_info"].rss))
        return tuple(sorted(found, key=lambda p: -p.value)[:TOP_PROCESSES])

    def top_by_cpu(self, deadline: float) -> tuple[TopProcess, ...]:
        # Per-process CPU % needs two readings; take them a short moment apart.
        procs = []
        for proc in self.ps.process_iter(["name"]):
            try:
                proc.cpu_percent(None)
                procs.append(proc)
            except Exception:  # noqa: BLE001 - processes come and go (NoSuchProcess, AccessDenied)
                continue
        time.sleep(max(0.0, min(PROCESS_CPU_SAMPLE_SECONDS, deadline - self.clock())))
        found = []
        for proc in procs:
            try:
                found.append(TopProcess(name=proc.info.get("name") or "?", pid=proc.pid, value=proc.cpu_percent(None)))
            except Exception:  # noqa: BLE001 - see above
                continue
        return tuple(sorted(found, key=lambda p: -p.value)[:TOP_PROCESSES])


def busy_percent(before: Any, after: Any) -> float | None:
    """Share of CPU time spent busy between two `cpu_times()` readings (all cores)."""
    idle_fields = ("idle", "iowait")
    # On Linux guest time is already counted in user/nice (psutil does the same).
    guest_fields = ("guest", "guest_nice")
    total = sum(after) - sum(before)
    total -= sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in guest_fields)
    idle = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in idle_fields)
    if total <= 0:
        return None
    return max(0.0, min(100.0, (total - idle) / total * 100.0))


# --------------------------------------------------------------------------- judge (pure)


def judge_cpu(sample: ResourceSample, config: ResourcesConfig) -> tuple[Status, str]:
    if sample.cpu_percent is None:
        return Status.OK, ""
    return judge(sample.cpu_percent, config.cpu, fmt_percent)


def judge_memory(sample: ResourceSample, config: ResourcesConfig) -> tuple[Status, str]:
    return judge(_memory_percent(sample), config.memory, fmt_percent)


def _memory_percent(sample: ResourceSample) -> float:
    used = sample.memory_total_bytes - sample.memory_available_bytes
    return used / sample.memory_total_bytes * 100 if sample.memory_total_bytes else 0.0


def _with(text: str, *extras: str) -> str:
    extra = "; ".join(e for e in extras if e)
    return f"{text}; {extra}" if extra else text


def _top_text(prefix: str, top: Sequence[TopProcess], fmt) -> str:
    if not top:
        return ""
    return prefix + ", ".join(f"{p.name} ({p.pid}) {fmt(p.value)}" for p in top)


def _result(name: str, status: Status, summary: str, values: dict, issue_id: str | None = None) -> ProbeResult:
    return ProbeResult(
        name=name,
        kind=KIND,
        status=status,
        summary=summary,
        values=values,
        findings=(Finding(id=issue_id or name, status=status, summary=summary),),
    )


def judge_resources(
    sample: ResourceSample,
    config: ResourcesConfig,
    *,
    top_memory: Sequence[TopProcess] = (),
    top_cpu: Sequence[TopProcess] = (),
) -> list[ProbeResult]:
    results = []

    status, why = judge_cpu(sample, config)
    if sample.cpu_percent is None:
        cpu_text = f"{sample.cpu_count} cores, usage measured from the next cycle"
    else:
        cpu_text = _with(f"{sample.cpu_percent:.0f}% busy ({sample.cpu_count} cores)", why,
                         _top_text("top: ", top_cpu, lambda v: f"{v:.0f}%"))
    results.append(_result("cpu", status, cpu_text, {"cpu_percent": _round(sample.cpu_percent), "cpu_count": sample.cpu_count}))

    if sample.load1 is None or sample.load5 is None:
        results.append(_result("load", Status.OK, "not available on this system", {}))
    else:
        per_core = sample.load5 / sample.cpu_count
        status, why = judge(per_core, config.load_per_core, lambda v: f"{v:g}/core")
        text = _with(f"{per_core:.2f}/core over 5 min (load {sample.load1:.2f} {sample.load5:.2f})", why)
        results.append(_result("load", status, text, {
            "load1": round(sample.load1, 2), "load5": round(sample.load5, 2), "load5_per_core": round(per_core, 3),
        }))

    status, why = judge_memory(sample, config)
    used = sample.memory_total_bytes - sample.memory_available_bytes
    text = _with(
        f"{_memory_percent(sample):.0f}% used ({fmt_bytes(used)} of {fmt_bytes(sample.memory_total_bytes)})",
        why, _top_text("top: ", top_memory, fmt_bytes),
    )
    results.append(_result("memory", status, text, {
        "memory_used_bytes": used,
        "memory_total_bytes": sample.memory_total_bytes,
        "memory_used_ratio": _ratio(used, sample.memory_total_bytes),
    }))

    if sample.swap_total_bytes:
        swap_percent = sample.swap_used_bytes / sample.swap_total_bytes * 100
        status, why = judge(swap_percent, config.swap, fmt_percent)
        text = _with(f"{swap_percent:.0f}% used ({fmt_bytes(sample.swap_used_bytes)} of "
                     f"{fmt_bytes(sample.swap_total_bytes)})", why)
    else:
        status, text = Status.OK, "none configured"
    results.append(_result("swap", status, text, {
        "swap_used_bytes": sample.swap_used_bytes,
        "swap_total_bytes": sample.swap_total_bytes,
        "swap_used_ratio": _ratio(sample.swap_used_bytes, sample.swap_total_bytes),
    }))

    for disk in sample.disks:
        results.append(judge_disk(disk, config))
    return results


def judge_disk(disk: DiskSample, config: ResourcesConfig) -> ProbeResult:
    name = f"disk:{disk.path}"
    used_bytes, free_bytes = disk.used_bytes, disk.free_bytes
    if disk.error is not None or not disk.total_bytes or used_bytes is None or free_bytes is None:
        # Our instrument could not tell: UNKNOWN, not CRITICAL.
        return ProbeResult(name=name, kind=KIND, status=Status.UNKNOWN,
                           summary=f"cannot read {disk.path}: {disk.error or 'zero-size filesystem'}",
                           error_kind="disk_unreadable",
                           findings=(Finding(id=name, status=Status.UNKNOWN,
                                             summary=f"cannot read usage ({disk.error})"),))
    # Like df: used / (used + free) so the root reserve counts as unavailable.
    used_percent = used_bytes / (used_bytes + free_bytes) * 100 if used_bytes + free_bytes else 0.0
    used_status, used_why = judge(used_percent, config.disk_used, fmt_percent)
    free_status, free_why = judge(free_bytes / GIB, config.disk_free_gib, lambda v: f"{fmt_gib(v)} free")
    status = worst((used_status, free_status))
    summary = _with(f"{used_percent:.0f}% used, {fmt_bytes(free_bytes)} free", used_why, free_why)
    return ProbeResult(
        name=name, kind=KIND, status=status, summary=summary,
        values={"disk_total_bytes": disk.total_bytes, "disk_used_bytes": disk.used_bytes,
                "disk_free_bytes": disk.free_bytes, "disk_used_ratio": round(used_percent / 100, 4)},
        findings=(Finding(id=name, status=status, summary=summary),),
    )


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

