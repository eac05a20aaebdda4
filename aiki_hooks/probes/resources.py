"""CPU, load, memory, swap and disk usage from psutil.

One result per aspect (`cpu`, `load`, `memory`, `swap`, `disk:<path>`), so each has its
own status, numbers and issue id. CPU % is the busy share of CPU time between two
cycles: it is omitted on the first cycle rather than shown as a misleading 0. Each disk
is measured in its own thread with a deadline, so one hung mount does not sink the rest.

Foresight: free bytes of memory, swap and each disk are kept for the last hour
(`model.trend`, bounded) and saved in the state dir (`resources_history.json`), so a
restarted refresher or a one-shot `aiki-hooks refresh` continues the same history. The
trend is part of the measurement (like CPU %, it needs earlier samples); the judge turns
it into "full in ~5 h at 2.1 GiB/h" and a status against `*_full_hours`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from aiki_hooks import paths
from aiki_hooks.config.load import ResourcesConfig
from aiki_hooks.model.result import Finding, ProbeResult
from aiki_hooks.model.status import Status, worst
from aiki_hooks.model.thresholds import (
    GIB,
    Threshold,
    fmt_bytes,
    fmt_gib,
    fmt_percent,
    judge,
    judge_time_left,
)
from aiki_hooks.model.trend import MAX_SAMPLES, Point, Trend, add_sample, forecast
from aiki_hooks.model.units import finite_number, fmt_time_left

KIND = "resources"
TOP_PROCESSES = 3
PROCESS_CPU_SAMPLE_SECONDS = 0.25
HISTORY_NAME = "resources_history.json"
HISTORY_VERSION = 1
# A few series of at most MAX_SAMPLES pairs are ~5 KiB each; more is not ours.
HISTORY_MAX_BYTES = 256 * 1024


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
    # Trend of free bytes per series ("memory", "swap", "disk:<path>") over the last hour;
    # absent while the history is too short.
    trends: Mapping[str, Trend] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TopProcess:
    name: str
    pid: int
    value: float  # bytes for memory, percent for CPU


# --------------------------------------------------------------------------- measure


class ResourcesProbe:
    kind = KIND

    def __init__(self, config: ResourcesConfig, *, ps: Any = None, clock=time.monotonic, wall=time.time,
                 state_dir: str | os.PathLike | None = None) -> None:
        """*state_dir*: where the history is kept across runs (None: in memory only)."""
        if ps is None:
            import psutil as ps  # imported here: only the refresher pays for psutil
        self.config = config
        self.ps = ps
        self.clock = clock
        self.wall = wall
        self.timeout_seconds = config.timeout_seconds
        self.names = ("cpu", "load", "memory", "swap", *(f"disk:{p}" for p in config.disk_paths))
        self._last_cpu_times: Any = None
        self.history = ResourceHistory(state_dir, ("memory", "swap", *(f"disk:{p}" for p in config.disk_paths)))

    def check(self) -> list[ProbeResult]:
        deadline = self.clock() + self.timeout_seconds * 0.9
        sample = self.measure(deadline)
        top_memory: tuple[TopProcess, ...] = ()
        top_cpu: tuple[TopProcess, ...] = ()
        cpu_status = judge_cpu(sample, self.config)[0]
        memory_status = worst((judge_memory(sample, self.config)[0], memory_forecast(sample, self.config).status))
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
        disks = self._measure_disks(deadline)
        free: dict[str, float] = {"memory": memory.available}
        if swap.total:
            free["swap"] = swap.total - swap.used
        free.update((f"disk:{d.path}", d.free_bytes) for d in disks if d.error is None and d.free_bytes is not None)
        return ResourceSample(
            cpu_percent=cpu_percent,
            cpu_count=ps.cpu_count() or 1,
            load1=load1,
            load5=load5,
            memory_total_bytes=memory.total,
            memory_available_bytes=memory.available,
            swap_total_bytes=swap.total,
            swap_used_bytes=swap.used,
            disks=disks,
            trends=self.history.observe(free, self.wall()),
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


class ResourceHistory:
    """The free bytes of each series over the last hour, in memory and in
    `resources_history.json` in the state dir: `{"version": 1, "series": {"disk:/":
    [[epoch seconds, free bytes], ...], ...}}`.

    Read once, at the first cycle; absent, corrupt, oversized or in a directory that is
    not trusted, it starts over. Written atomically (0600) at the first cycle and
    whenever a series keeps a new sample (every 30 s at most), into the state dir once
    it exists and is trusted, unless another process's refresher holds its lock: a one-shot `refresh` or `status` then reads
    the history but leaves writing it to the refresher. Two one-shots at once may each
    lose the other's sample; nothing worse.
    """

    def __init__(self, state_dir: str | os.PathLike | None, names: Sequence[str]) -> None:
        self.state_dir = None if state_dir is None else os.fspath(state_dir)
        self.names = tuple(names)
        self.series: dict[str, list[Point]] = {}
        self._loaded = False
        self._told: str | None = None  # the last save failure written to stderr

    @property
    def path(self) -> str | None:
        return None if self.state_dir is None else os.path.join(self.state_dir, HISTORY_NAME)

    def observe(self, free: Mapping[str, float], now: float) -> dict[str, Trend]:
        """Add this cycle's free bytes per series; the trends over the last hour."""
        first = not self._loaded
        if first:
            self._loaded = True
            self.series = self._read()
        kept = False
        for name, value in free.items():
            kept |= add_sample(self.series.setdefault(name, []), (now, float(value)))
        if first or kept:
            self._save()
        trends = {}
        for name in free:
            trend = forecast(self.series[name], now)
            if trend is not None:
                trends[name] = trend
        return trends

    def _read(self) -> dict[str, list[Point]]:
        path = self.path
        if path is None or paths.check_private_dir(os.path.dirname(path)) is not None:
            return {}
        try:
            raw = paths.read_state_file(path, HISTORY_MAX_BYTES)  # no link, no FIFO, bounded
        except OSError:
            return {}  # absent, too large or not a regular file: start over
        return parse_history(raw, self.names)

    def _save(self) -> None:
        path = self.path
        # A state dir that is missing or not trusted is the cache's to create or report.
        if (path is None or self.state_dir is None or paths.check_private_dir(self.state_dir) is not None
                or _refresher_elsewhere(self.state_dir)):
            return
        payload = {"version": HISTORY_VERSION,
                   "series": {name: [[round(t, 1), round(free)] for t, free in points]
                              for name, points in sorted(self.series.items()) if points}}
        try:
            # Replaced whole, without fsync: written every cycle inside the probe's deadline,
            # and cheap to start over after a crash.
            paths.replace_state_file(path, json.dumps(payload, separators=(",", ":")).encode())
            self._told = None
        except OSError as exc:
            # Kept in memory all the same; said once per reason (a full disk is the very
            # case this history is for, and must not flood the log).
            reason = exc.strerror or str(exc)
            if reason != self._told:
                self._told = reason
                sys.stderr.write(f"aiki-hooks: cannot save the resources history {path}: {reason}\n")


def parse_history(raw: bytes, names: Sequence[str]) -> dict[str, list[Point]]:
    """The series of a history file that are still configured (*names*); {} for anything
    malformed: a history is cheap to start over, wrong numbers are not."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != HISTORY_VERSION:
            return {}
        series: dict[str, list[Point]] = {}
        for name, points in data["series"].items():
            checked = [(t, free) for t, free in points]
            if not all(finite_number(t) is not None and finite_number(free) is not None and free >= 0
                       for t, free in checked):
                return {}
            if name in names:
                series[name] = sorted((float(t), float(free)) for t, free in checked)[-MAX_SAMPLES:]
        return series
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return {}


def _refresher_elsewhere(state_dir: str) -> bool:
    """Whether a refresher other than this process holds the state dir's lock."""
    try:
        pid = paths.holder_pid(state_dir)
    except OSError:  # a lock file that is not usable is held by no refresher
        return False
    return pid is not None and pid != os.getpid()


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


def memory_forecast(sample: ResourceSample, config: ResourcesConfig) -> Forecast:
    return judge_forecast("memory", sample.memory_available_bytes, sample.trends.get("memory"),
                          config.memory_full_hours)


@dataclass(frozen=True, kw_only=True)
class Forecast:
    """What a trend says about one series: its status, the words, the values."""

    status: Status = Status.OK
    text: str = ""  # "full in ~5 h at 2.1 GiB/h" while free is shrinking
    why: str = ""  # "warn within 24 h" when a level is crossed
    values: Mapping[str, float] = field(default_factory=dict)


def judge_forecast(family: str, free_bytes: float, trend: Trend | None, hours: Threshold) -> Forecast:
    """The time until *free_bytes* runs out at the trend's rate, judged against *hours*.

    No trend yet (under 10 minutes of history) gives nothing; a flat, shrinking or noisy
    series gives its fitted growth as a value and nothing to say."""
    if trend is None:
        return Forecast()
    values: dict[str, float] = {f"{family}_growth_bytes_per_hour": round(trend.growth_bytes_per_hour)}
    seconds = trend.seconds_until_full(free_bytes)
    if seconds is None:
        return Forecast(values=values)
    values[f"{family}_full_in_seconds"] = round(seconds)
    status, why = judge_time_left(seconds, hours)
    text = f"full in {fmt_time_left(seconds)} at {fmt_bytes(trend.growth_bytes_per_hour)}/h"
    return Forecast(status=status, text=text, why=why, values=values)


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


def _result(name: str, status: Status, summary: str, values: dict, issue_id: str | None = None,
            issue_summary: str | None = None) -> ProbeResult:
    return ProbeResult(
        name=name,
        kind=KIND,
        status=status,
        summary=summary,
        values=values,
        findings=(Finding(id=issue_id or name, status=status, summary=summary if issue_summary is None else issue_summary),),
    )


def _forecast_texts(head: str, why: str, forecast: Forecast, *extras: str) -> tuple[str, str]:
    """(summary, issue summary): the summary tells any forecast; the issue only one whose
    level is crossed, so the agent hears "full in ~5 h" when it matters."""
    summary = _with(head, why, forecast.text, forecast.why, *extras)
    if forecast.status is Status.OK:
        return summary, _with(head, why, *extras)
    return summary, summary


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
    forecast = memory_forecast(sample, config)
    used = sample.memory_total_bytes - sample.memory_available_bytes
    text, issue_text = _forecast_texts(
        f"{_memory_percent(sample):.0f}% used ({fmt_bytes(used)} of {fmt_bytes(sample.memory_total_bytes)})",
        why, forecast, _top_text("top: ", top_memory, fmt_bytes),
    )
    results.append(_result("memory", worst((status, forecast.status)), text, {
        "memory_used_bytes": used,
        "memory_total_bytes": sample.memory_total_bytes,
        "memory_used_ratio": _ratio(used, sample.memory_total_bytes),
        **forecast.values,
    }, issue_summary=issue_text))

    forecast = Forecast()
    if sample.swap_total_bytes:
        swap_percent = sample.swap_used_bytes / sample.swap_total_bytes * 100
        status, why = judge(swap_percent, config.swap, fmt_percent)
        forecast = judge_forecast("swap", sample.swap_total_bytes - sample.swap_used_bytes,
                                  sample.trends.get("swap"), config.swap_full_hours)
        text, issue_text = _forecast_texts(f"{swap_percent:.0f}% used ({fmt_bytes(sample.swap_used_bytes)} of "
                                           f"{fmt_bytes(sample.swap_total_bytes)})", why, forecast)
    else:
        status, text = Status.OK, "none configured"
        issue_text = text
    results.append(_result("swap", worst((status, forecast.status)), text, {
        "swap_used_bytes": sample.swap_used_bytes,
        "swap_total_bytes": sample.swap_total_bytes,
        "swap_used_ratio": _ratio(sample.swap_used_bytes, sample.swap_total_bytes),
        **forecast.values,
    }, issue_summary=issue_text))

    for disk in sample.disks:
        results.append(judge_disk(disk, config, sample.trends.get(f"disk:{disk.path}")))
    return results


def judge_disk(disk: DiskSample, config: ResourcesConfig, trend: Trend | None = None) -> ProbeResult:
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
    forecast = judge_forecast("disk", free_bytes, trend, config.disk_full_hours)
    status = worst((used_status, free_status, forecast.status))
    summary, issue_summary = _forecast_texts(f"{used_percent:.0f}% used, {fmt_bytes(free_bytes)} free",
                                             "; ".join(w for w in (used_why, free_why) if w), forecast)
    return ProbeResult(
        name=name, kind=KIND, status=status, summary=summary,
        values={"disk_total_bytes": disk.total_bytes, "disk_used_bytes": disk.used_bytes,
                "disk_free_bytes": disk.free_bytes, "disk_used_ratio": round(used_percent / 100, 4),
                **forecast.values},
        findings=(Finding(id=name, status=status, summary=issue_summary),),
    )


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)

