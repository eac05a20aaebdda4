"""Resources probe: the judge is tested with samples, the probe with an injected
psutil stand-in (the same attribute and tuple shapes as psutil 7 on Linux), plus one
run against the real psutil."""

import time
from collections import namedtuple
from types import SimpleNamespace

import pytest

from aiki_hooks.config.load import parse_config
from aiki_hooks.model.status import Status
from aiki_hooks.probes.resources import (
    DiskSample,
    ResourceSample,
    ResourcesProbe,
    TopProcess,
    busy_percent,
    judge_disk,
    judge_resources,
)

GIB = 1024**3
CpuTimes = namedtuple("scputimes", "user nice system idle iowait irq softirq steal guest guest_nice")
VMem = namedtuple("svmem", "total available percent used free")
Swap = namedtuple("sswap", "total used free percent sin sout")
Usage = namedtuple("sdiskusage", "total used free percent")
MemInfo = namedtuple("pmem", "rss vms")

CONFIG = parse_config({"resources": {"disk_paths": ["/", "/data"]}}).resources


def sample(**overrides):
    values = dict(
        cpu_percent=12.0, cpu_count=4, load1=0.5, load5=0.4,
        memory_total_bytes=16 * GIB, memory_available_bytes=10 * GIB,
        swap_total_bytes=0, swap_used_bytes=0,
        disks=(DiskSample(path="/", total_bytes=100 * GIB, used_bytes=50 * GIB, free_bytes=50 * GIB),),
    )
    values.update(overrides)
    return ResourceSample(**values)


def by_name(results):
    return {r.name: r for r in results}


def test_healthy_machine_summaries_carry_numbers():
    results = by_name(judge_resources(sample(), CONFIG))
    assert {r.status for r in results.values()} == {Status.OK}
    assert results["cpu"].summary == "12% busy (4 cores)"
    assert results["memory"].summary == "38% used (6.0 GiB of 16.0 GiB)"
    assert results["memory"].values["memory_used_ratio"] == 0.375
    assert results["disk:/"].summary == "50% used, 50.0 GiB free"
    assert results["swap"].summary == "none configured"
    assert results["load"].values["load5_per_core"] == 0.1
    assert all(r.issue_findings() == () for r in results.values())


def test_first_cycle_omits_cpu_rather_than_zero():
    cpu = by_name(judge_resources(sample(cpu_percent=None), CONFIG))["cpu"]
    assert cpu.status is Status.OK
    assert cpu.values["cpu_percent"] is None
    assert "0%" not in cpu.summary


@pytest.mark.parametrize(
    "disk, status, text",
    [
        pytest.param(DiskSample(path="/", total_bytes=200 * GIB, used_bytes=182 * GIB, free_bytes=18.2 * GIB),
                     Status.WARNING, "91% used, 18.2 GiB free; warn at 90%", id="percent-warn"),
        pytest.param(DiskSample(path="/", total_bytes=200 * GIB, used_bytes=192 * GIB, free_bytes=8 * GIB),
                     Status.CRITICAL, "96% used, 8.0 GiB free; crit at 95%", id="percent-crit"),
        pytest.param(DiskSample(path="/boot", total_bytes=1.2 * GIB, used_bytes=0.7 * GIB, free_bytes=0.5 * GIB),
                     Status.CRITICAL, "58% used, 512.0 MiB free; crit at 1 GiB free", id="small-disk-free-crit"),
        pytest.param(DiskSample(path="/", total_bytes=40 * GIB, used_bytes=39 * GIB, free_bytes=0.5 * GIB),
                     Status.CRITICAL, "99% used, 512.0 MiB free; crit at 95%; crit at 1 GiB free", id="both-crit"),
        pytest.param(DiskSample(path="/", total_bytes=10 * GIB, used_bytes=5.5 * GIB, free_bytes=4.5 * GIB),
                     Status.WARNING, "55% used, 4.5 GiB free; warn at 5 GiB free", id="free-space-warn"),
    ],
)
def test_disk_levels(disk, status, text):
    result = judge_disk(disk, CONFIG)
    assert result.status is status
    (finding,) = result.issue_findings()
    assert finding.id == f"disk:{disk.path}"
    assert text in finding.summary


def test_unreadable_disk_is_unknown_not_critical():
    result = judge_disk(DiskSample(path="/mnt/nfs", error="Stale file handle"), CONFIG)
    assert result.status is Status.UNKNOWN and result.error_kind == "disk_unreadable"
    assert "Stale file handle" in result.summary


def test_memory_warning_names_top_processes():
    top = (TopProcess(name="java", pid=10, value=6 * GIB), TopProcess(name="qdrant", pid=11, value=2 * GIB))
    memory = by_name(judge_resources(sample(memory_available_bytes=1.5 * GIB), CONFIG, top_memory=top))["memory"]
    assert memory.status is Status.WARNING
    assert "91% used" in memory.summary and "warn at 85%" in memory.summary
    assert "top: java (10) 6.0 GiB, qdrant (11) 2.0 GiB" in memory.summary


def test_swap_and_load_levels():
    results = by_name(judge_resources(sample(swap_total_bytes=4 * GIB, swap_used_bytes=3.5 * GIB, load5=20.0), CONFIG))
    assert results["swap"].status is Status.CRITICAL and "88% used" in results["swap"].summary
    assert results["load"].status is Status.CRITICAL and "crit at 4/core" in results["load"].summary


def test_busy_percent_ignores_guest_time_already_in_user():
    before = CpuTimes(100, 0, 50, 800, 50, 0, 0, 0, 10, 0)
    after = CpuTimes(160, 0, 70, 860, 60, 0, 0, 0, 40, 0)  # 80 busy, 70 idle (+30 guest inside user)
    assert busy_percent(before, after) == pytest.approx(80 / 150 * 100)
    assert busy_percent(after, after) is None


class FakePsutil:
    """Stand-in with psutil's shapes; disk_usage of "/hung" blocks like a dead NFS mount."""

    def __init__(self, *, available=10 * GIB, busy_step=10.0):
        self.available = available
        self.busy_step = busy_step
        self.calls = 0
        self.cpu_percent_samples = {}

    def cpu_times(self):
        self.calls += 1
        return CpuTimes(self.calls * self.busy_step, 0, 0, self.calls * (100 - self.busy_step), 0, 0, 0, 0, 0, 0)

    def getloadavg(self):
        return (0.2, 0.3, 0.4)

    def cpu_count(self):
        return 2

    def virtual_memory(self):
        return VMem(16 * GIB, self.available, 0, 0, 0)

    def swap_memory(self):
        return Swap(0, 0, 0, 0, 0, 0)

    def disk_usage(self, path):
        if path == "/hung":
            time.sleep(5)
        if path == "/gone":
            raise FileNotFoundError(2, "No such file or directory")
        return Usage(100 * GIB, 10 * GIB, 90 * GIB, 10.0)

    def process_iter(self, attrs):
        for pid, name, rss in ((1, "small", 1 * GIB), (2, "huge", 9 * GIB), (3, "mid", 3 * GIB), (4, "tiny", 1)):
            yield SimpleNamespace(pid=pid, info={"name": name, "memory_info": MemInfo(rss, 0)})


def test_probe_measures_cpu_between_cycles_and_survives_a_hung_mount():
    config = parse_config({"resources": {"disk_paths": ["/", "/hung", "/gone"], "timeout_seconds": 1}}).resources
    probe = ResourcesProbe(config, ps=FakePsutil(busy_step=25.0))
    assert probe.names == ("cpu", "load", "memory", "swap", "disk:/", "disk:/hung", "disk:/gone")
    started = time.monotonic()
    first = by_name(probe.check())
    assert time.monotonic() - started < 1.0
    assert first["cpu"].values["cpu_percent"] is None
    assert first["disk:/"].status is Status.OK
    assert first["disk:/hung"].status is Status.UNKNOWN and "hung mount" in first["disk:/hung"].summary
    assert first["disk:/gone"].status is Status.UNKNOWN and "No such file" in first["disk:/gone"].summary
    second = by_name(probe.check())
    assert second["cpu"].values["cpu_percent"] == 25.0


def test_probe_lists_top_memory_processes_only_when_memory_is_high():
    config = parse_config({}).resources
    calm = by_name(ResourcesProbe(config, ps=FakePsutil()).check())["memory"]
    assert "top:" not in calm.summary
    busy = by_name(ResourcesProbe(config, ps=FakePsutil(available=1 * GIB)).check())["memory"]
    assert busy.status is Status.WARNING
    assert "top: huge (2) 9.0 GiB, mid (3) 3.0 GiB, small (1) 1.0 GiB" in busy.summary


def test_real_psutil_reports_every_aspect():
    probe = ResourcesProbe(parse_config({}).resources)
    probe.check()
    time.sleep(0.05)
    results = by_name(probe.check())
    assert set(results) == {"cpu", "load", "memory", "swap", "disk:/"}
    assert 0 <= results["cpu"].values["cpu_percent"] <= 100
    assert results["memory"].values["memory_total_bytes"] > 0
    assert results["disk:/"].values["disk_total_bytes"] > 0


def test_cpu_warning_names_the_busiest_processes_with_real_psutil():
    """A real busy child: with the CPU levels at 0/50%, the cpu line names it among the top 3."""
    import subprocess
    import sys

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        config = parse_config({"resources": {"cpu_warn_percent": 0, "cpu_crit_percent": 100}}).resources
        probe = ResourcesProbe(config)
        probe.check()  # the first cycle has no CPU figure yet
        time.sleep(0.3)
        cpu = by_name(probe.check())["cpu"]
        assert cpu.status in (Status.WARNING, Status.CRITICAL), cpu.summary
        assert "top: " in cpu.summary
        assert f"({busy.pid})" in cpu.summary, cpu.summary
    finally:
        busy.kill()
        busy.wait()
