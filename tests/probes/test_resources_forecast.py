"""Foresight in the resources probe: "full in ~5 h at 2.1 GiB/h".

The judge is tested with constructed samples and trends; the history with the probe over
a real state dir (psutil's disk_usage scripted, the wall clock injected so an hour passes
in a moment), across probe instances (a restart), a real refresher process restarted,
and one real `aiki-hooks refresh` whose cache and SessionStart text carry the forecast.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from aiki_hooks.config.load import ConfigError, effective_config_toml, load_config, parse_config
from aiki_hooks.model.status import Status
from aiki_hooks.model.trend import MAX_SAMPLES, Trend
from aiki_hooks.probes.resources import HISTORY_NAME, DiskSample, ResourceSample, ResourcesProbe, judge_resources
from tests.conftest import CALM_RESOURCES, REPO, cli_env, run_cli, wait_for

GIB = 1024**3
Usage = namedtuple("sdiskusage", "total used free percent")
VMem = namedtuple("svmem", "total available percent used free")
Swap = namedtuple("sswap", "total used free percent sin sout")
CpuTimes = namedtuple("scputimes", "user nice system idle")
MemInfo = namedtuple("pmem", "rss vms")
CONFIG = parse_config({}).resources


def trend(gib_per_hour: float, *, shrinking: bool = True) -> Trend:
    return Trend(growth_bytes_per_second=gib_per_hour * GIB / 3600, span_seconds=3600, samples=61,
                 shrinking=shrinking)


def sample(*, free_gib: float = 50, trends=None, available_gib: float = 10, swap_used_gib: float = 0) -> ResourceSample:
    return ResourceSample(
        cpu_percent=5.0, cpu_count=4, load1=0.1, load5=0.1,
        memory_total_bytes=16 * GIB, memory_available_bytes=int(available_gib * GIB),
        swap_total_bytes=4 * GIB, swap_used_bytes=int(swap_used_gib * GIB),
        disks=(DiskSample(path="/", total_bytes=200 * GIB, used_bytes=int((200 - free_gib) * GIB),
                          free_bytes=int(free_gib * GIB)),),
        trends=trends or {},
    )


def by_name(results):
    return {r.name: r for r in results}


# --------------------------------------------------------------------------- judge (pure)


@pytest.mark.parametrize("rate, status, words", [
    pytest.param(10, Status.WARNING, "75% used, 50.0 GiB free; full in ~5 h at 10.0 GiB/h; warn within 24 h",
                 id="warn-5h"),
    pytest.param(30, Status.CRITICAL, "75% used, 50.0 GiB free; full in ~100 min at 30.0 GiB/h; crit within 2 h",
                 id="crit-100min"),
])
def test_a_disk_that_fills_within_the_levels_is_an_issue_that_says_when(rate, status, words):
    disk = by_name(judge_resources(sample(trends={"disk:/": trend(rate)}), CONFIG))["disk:/"]
    assert disk.status is status
    assert disk.summary == words
    assert [(f.id, f.status, f.summary) for f in disk.issue_findings()] == [("disk:/", status, words)]
    assert disk.values["disk_growth_bytes_per_hour"] == rate * GIB
    assert disk.values["disk_full_in_seconds"] == round(50 * 3600 / rate)


def test_a_slow_fill_is_in_the_summary_but_no_issue():
    disk = by_name(judge_resources(sample(trends={"disk:/": trend(1)}), CONFIG))["disk:/"]
    assert disk.status is Status.OK
    assert disk.summary == "75% used, 50.0 GiB free; full in ~2 days at 1.0 GiB/h"
    assert disk.issue_findings() == ()
    assert disk.values["disk_full_in_seconds"] == 50 * 3600


def test_an_issue_for_another_reason_leaves_a_distant_forecast_out():
    disk = by_name(judge_resources(sample(free_gib=15, trends={"disk:/": trend(0.5)}), CONFIG))["disk:/"]
    assert disk.status is Status.WARNING
    assert disk.summary == "92% used, 15.0 GiB free; warn at 90%; full in ~30 h at 512.0 MiB/h"
    assert disk.issue_findings()[0].summary == "92% used, 15.0 GiB free; warn at 90%"


@pytest.mark.parametrize("given", [
    pytest.param(None, id="no-trend-yet"),
    pytest.param(trend(0, shrinking=False), id="flat"),
    pytest.param(trend(-4, shrinking=False), id="freeing"),
    pytest.param(trend(3, shrinking=False), id="noise"),
])
def test_a_series_that_is_not_filling_says_nothing(given):
    disk = by_name(judge_resources(sample(trends={"disk:/": given} if given else {}), CONFIG))["disk:/"]
    assert disk.status is Status.OK
    assert disk.summary == "75% used, 50.0 GiB free"
    assert "disk_full_in_seconds" not in disk.values
    if given is None:  # a rate is omitted rather than shown as a misleading 0
        assert "disk_growth_bytes_per_hour" not in disk.values
    else:
        assert disk.values["disk_growth_bytes_per_hour"] == round(given.growth_bytes_per_hour)


def test_memory_and_swap_have_their_own_shorter_horizon():
    results = by_name(judge_resources(sample(available_gib=6, swap_used_gib=1,
                                             trends={"memory": trend(2), "swap": trend(4)}), CONFIG))
    memory, swap = results["memory"], results["swap"]
    assert memory.status is Status.WARNING
    assert memory.summary == "62% used (10.0 GiB of 16.0 GiB); full in ~3 h at 2.0 GiB/h; warn within 4 h"
    assert memory.values["memory_full_in_seconds"] == 3 * 3600
    assert swap.status is Status.CRITICAL
    assert swap.summary == "25% used (1.0 GiB of 4.0 GiB); full in ~45 min at 4.0 GiB/h; crit within 1 h"
    assert swap.values["swap_growth_bytes_per_hour"] == 4 * GIB
    # The same trends at 24 h for disks would be calm: 50 GiB free at 2 GiB/h is 25 h.
    assert by_name(judge_resources(sample(trends={"disk:/": trend(2)}), CONFIG))["disk:/"].status is Status.OK


def test_levels_turned_off_never_warn():
    config = parse_config({"resources": {"disk_warn_full_hours": 0, "disk_crit_full_hours": False}}).resources
    disk = by_name(judge_resources(sample(trends={"disk:/": trend(500)}), config))["disk:/"]
    assert disk.status is Status.OK
    assert "full in ~6 min at 500.0 GiB/h" in disk.summary  # still told in the summary


# --------------------------------------------------------------------------- config


def test_forecast_levels_from_the_config_file(write_config):
    write_config("[resources]\ndisk_warn_full_hours = 48\ndisk_crit_full_hours = 0\n"
                 "memory_warn_full_hours = false\nswap_crit_full_hours = 0.5\n")
    config = load_config().resources
    assert (config.disk_full_hours.warn, config.disk_full_hours.crit) == (48.0, None)
    assert (config.memory_full_hours.warn, config.memory_full_hours.crit) == (None, 1.0)
    assert (config.swap_full_hours.warn, config.swap_full_hours.crit) == (4.0, 0.5)
    assert not config.disk_full_hours.higher_is_worse
    defaults = parse_config({}).resources
    assert (defaults.disk_full_hours.warn, defaults.disk_full_hours.crit) == (24.0, 2.0)
    # `aiki-hooks config` prints them, and what it prints loads back the same.
    import tomllib

    printed = tomllib.loads(effective_config_toml(load_config()))["resources"]
    assert printed["disk_crit_full_hours"] is False and printed["memory_warn_full_hours"] is False
    assert parse_config({"resources": printed}).resources == config


@pytest.mark.parametrize("body, message", [
    ('disk_warn_full_hours = "a day"', 'resources.disk_warn_full_hours = "a day": expected a number of hours '
                                       "from 0 to 8760, or 0 or false to turn this level off"),
    ("memory_crit_full_hours = -1", "resources.memory_crit_full_hours = -1: expected a number of hours"),
    ("swap_warn_full_hours = true", "resources.swap_warn_full_hours = True: expected a number of hours"),
    ("disk_warn_full_hours = 1\ndisk_crit_full_hours = 3",
     "resources.disk_warn_full_hours = 1: expected >= resources.disk_crit_full_hours (3)"),
])
def test_a_bad_forecast_level_is_one_line_naming_file_and_key(write_config, body, message):
    path = write_config(f"[resources]\n{body}\n")
    with pytest.raises(ConfigError) as err:
        load_config()
    assert str(err.value).startswith(f"invalid config {path}: {message}")
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- the history


class FillingPsutil:
    """psutil's shapes; every disk_usage() call finds *rate* bytes less free space."""

    def __init__(self, *, free=50 * GIB, rate=0):
        self.free, self.rate = free, rate
        self.available = 10 * GIB
        self.calls = 0

    def cpu_times(self):
        self.calls += 1
        return CpuTimes(self.calls, 0, 0, self.calls * 9)

    def getloadavg(self):
        return (0.1, 0.1, 0.1)

    def cpu_count(self):
        return 4

    def virtual_memory(self):
        return VMem(16 * GIB, self.available, 0, 0, 0)

    def swap_memory(self):
        return Swap(0, 0, 0, 0, 0, 0)

    def disk_usage(self, path):
        self.free -= self.rate
        return Usage(200 * GIB, 200 * GIB - self.free, self.free, 0)

    def process_iter(self, attrs):
        return iter(())


class Wall:
    """A wall clock that moves only when told."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


def run_cycles(probe, wall, count, step):
    results = None
    for _ in range(count):
        wall.now += step
        results = by_name(probe.check())
    return results


def private_state(tmp_path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


def test_history_survives_a_restart_and_the_forecast_goes_on(tmp_path):
    state = private_state(tmp_path)
    wall = Wall(time.time() - 3600)
    ps = FillingPsutil(rate=GIB // 6)  # 1/6 GiB a minute: 10 GiB/h
    probe = ResourcesProbe(CONFIG, ps=ps, wall=wall, state_dir=state)
    early = run_cycles(probe, wall, 10, 60)["disk:/"]  # 9 minutes of history: not yet
    assert "disk_growth_bytes_per_hour" not in early.values and "full in" not in early.summary
    later = run_cycles(probe, wall, 2, 60)["disk:/"]  # 11 minutes
    assert later.values["disk_growth_bytes_per_hour"] == pytest.approx(10 * GIB, rel=1e-4)
    assert later.status is Status.WARNING and "at 10.0 GiB/h; warn within 24 h" in later.summary

    history = state / HISTORY_NAME
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    saved = json.loads(history.read_text())
    assert saved["version"] == 1 and set(saved["series"]) == {"memory", "disk:/"}
    assert len(saved["series"]["disk:/"]) == 12

    # A new probe (a restarted refresher) reads it: its first cycle already knows the rate.
    restarted = ResourcesProbe(CONFIG, ps=ps, wall=wall, state_dir=state)
    first = run_cycles(restarted, wall, 1, 60)["disk:/"]
    assert first.values["disk_growth_bytes_per_hour"] == pytest.approx(10 * GIB, rel=1e-4)
    assert first.status is Status.WARNING
    # Without the state dir it would have started over.
    assert "disk_growth_bytes_per_hour" not in run_cycles(ResourcesProbe(CONFIG, ps=ps, wall=wall), wall, 1, 60)[
        "disk:/"].values


def test_history_file_stays_bounded_over_hours_of_fast_cycles(tmp_path):
    state = private_state(tmp_path)
    wall = Wall(time.time() - 3 * 3600)
    probe = ResourcesProbe(parse_config({"resources": {"disk_paths": ["/", "/data"]}}).resources,
                           ps=FillingPsutil(rate=1000), wall=wall, state_dir=state)
    run_cycles(probe, wall, 2 * 3600 // 5, 5)  # two hours, a cycle every 5 s
    saved = json.loads((state / HISTORY_NAME).read_text())
    for name, points in saved["series"].items():
        assert len(points) <= MAX_SAMPLES, name
        assert points[-1][0] - points[0][0] <= 3600
    assert (state / HISTORY_NAME).stat().st_size < 3 * MAX_SAMPLES * 40


@pytest.mark.parametrize("content", [
    pytest.param(b"{not json", id="not-json"),
    pytest.param(b'{"version": 1, "series": {"disk:/": [[1, "x"]]}}', id="bad-sample"),
    pytest.param(b'{"version": 1, "series": {"disk:/": [[1e999, 5]]}}', id="infinite"),
    pytest.param(b'{"version": 1, "series": {"disk:/": [[NaN, 5]]}}', id="nan"),
    pytest.param(b'{"version": 1, "series": {"disk:/": [[true, 5]]}}', id="boolean"),
    pytest.param(b'{"version": 1, "series": {"disk:/": [[1, -5]]}}', id="negative"),
    pytest.param(b'{"version": 99, "series": {}}', id="other-version"),
    pytest.param(b" " * (300 * 1024), id="oversized"),
])
def test_a_corrupt_history_starts_over_and_is_replaced(tmp_path, content):
    state = private_state(tmp_path)
    (state / HISTORY_NAME).write_bytes(content)
    wall = Wall(time.time())
    probe = ResourcesProbe(CONFIG, ps=FillingPsutil(rate=GIB), wall=wall, state_dir=state)
    disk = run_cycles(probe, wall, 1, 60)["disk:/"]
    assert disk.status is Status.OK and "disk_growth_bytes_per_hour" not in disk.values
    assert len(json.loads((state / HISTORY_NAME).read_text())["series"]["disk:/"]) == 1


def test_a_one_shot_reads_but_does_not_write_while_a_refresher_runs(tmp_path):
    state = private_state(tmp_path)
    wall = Wall(time.time() - 3600)
    ps = FillingPsutil(rate=GIB // 6)
    run_cycles(ResourcesProbe(CONFIG, ps=ps, wall=wall, state_dir=state), wall, 12, 60)
    before = (state / HISTORY_NAME).read_bytes()
    # A real other process holds the refresher's lock, as a running refresher does.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(state / 'refresher.lock')!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'%d\\n' % os.getpid())\n"
        "print('locked', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        oneshot = run_cycles(ResourcesProbe(CONFIG, ps=ps, wall=wall, state_dir=state), wall, 1, 60)["disk:/"]
        assert oneshot.values["disk_growth_bytes_per_hour"] == pytest.approx(10 * GIB, rel=1e-4)  # read it
        assert (state / HISTORY_NAME).read_bytes() == before  # left it alone
    finally:
        holder.kill()
        holder.wait()
    run_cycles(ResourcesProbe(CONFIG, ps=ps, wall=wall, state_dir=state), wall, 1, 60)
    assert (state / HISTORY_NAME).read_bytes() != before  # with the lock free, it writes


def test_an_untrusted_state_dir_is_neither_read_nor_written(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    planted = {"version": 1, "series": {"disk:/": [[time.time() - 600 - i * 60, (50 + i) * GIB] for i in range(20)]}}
    (state / HISTORY_NAME).write_text(json.dumps(planted))
    os.chmod(state, 0o777)
    wall = Wall(time.time())
    disk = run_cycles(ResourcesProbe(CONFIG, ps=FillingPsutil(), wall=wall, state_dir=state), wall, 1, 60)["disk:/"]
    assert "disk_growth_bytes_per_hour" not in disk.values
    assert json.loads((state / HISTORY_NAME).read_text()) == planted


# --------------------------------------------------------------------------- real runs


class ScriptedDisk:
    """The real psutil, except that disk_usage of one real directory reports the free
    space the test scripts (the total comes from the real filesystem)."""

    def __init__(self, directory: Path, free: list[float]):
        self.directory, self.free = str(directory), free

    def __getattr__(self, name):
        return getattr(psutil, name)

    def disk_usage(self, path):
        real = psutil.disk_usage(path)
        if path != self.directory:
            return real
        free = int(self.free.pop(0))
        return Usage(real.total, real.total - free, free, 0)


def session_start_text(state: Path, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
    env.update(HOME=str(home), AIKI_HOOKS_STATE_DIR=str(state), PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(REPO / "hooks" / "session_start.py")],
                            input=json.dumps({"session_id": "s1", "source": "startup"}).encode(),
                            capture_output=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["hookSpecificOutput"]["additionalContext"]


def calm(state: Path, extra: str = "") -> dict:
    import tomllib

    table = tomllib.loads(CALM_RESOURCES + extra)
    table["resources"].update(memory_warn_full_hours=0, memory_crit_full_hours=0,
                              swap_warn_full_hours=0, swap_crit_full_hours=0)
    return {**table, "state": {"dir": str(state)}, "costs": {"enabled": False}}


def test_a_filling_directory_reaches_the_agent_through_the_engine_and_the_hook(tmp_path, isolated_home):
    """A real directory whose free space the test scripts (2 GiB/h, 10 GiB left), the real
    engine publishing each cycle, and the real SessionStart hook reading the cache."""
    from aiki_hooks.cycle.engine import Engine

    data = tmp_path / "data"
    data.mkdir()
    state = tmp_path / "state"
    config = parse_config({**calm(state), "resources": {**calm(state)["resources"], "disk_paths": [str(data)]}})
    steps = 12  # one every 5 minutes, the last one now
    free = [(10 + 2 * (steps - 1 - i) / 12) * GIB for i in range(steps)]
    wall = Wall(time.time() - steps * 300)
    probe = ResourcesProbe(config.resources, ps=ScriptedDisk(data, free), wall=wall, state_dir=state)
    engine = Engine(config, probes=[probe], oneshot=True)
    try:
        for _ in range(steps):
            wall.now += 300
            snapshot = engine.publish(engine.cycle())
    finally:
        engine.close()
    disk = next(p for p in snapshot.probes if p.name == f"disk:{data}")
    assert disk.status is Status.WARNING, disk.summary
    assert disk.values["disk_full_in_seconds"] == pytest.approx(5 * 3600, rel=0.01)
    text = session_start_text(state, isolated_home)
    assert f"disk:{data} WARNING for " in text
    assert "full in ~5 h at 2.0 GiB/h; warn within 24 h" in text
    print(text)  # the block as the agent sees it (pytest -s)


def test_a_real_refresh_continues_the_saved_history_into_the_cache(tmp_path, isolated_home):
    """A history of "/" that fell by its whole free space an hour is saved; one real
    `aiki-hooks refresh` measures "/" for real, appends to it, and the cache carries the
    forecast (validated against docs/cache.schema.json) and the issue."""
    import jsonschema

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[state]\ndir = "{state}"\n[costs]\nenabled = false\n' + CALM_RESOURCES
                           + "memory_warn_full_hours = 0\nmemory_crit_full_hours = 0\n"
                           + "swap_warn_full_hours = 0\nswap_crit_full_hours = 0\n")
    now = time.time()
    free_now = psutil.disk_usage("/").free
    rate = free_now / 3600  # bytes a second: full in about an hour
    seeded = [[round(now - age, 1), round(free_now + rate * age)] for age in range(3000, 0, -300)]
    (state / HISTORY_NAME).write_text(json.dumps({"version": 1, "series": {"disk:/": seeded}}))
    result = run_cli("refresh", env=cli_env(AIKI_HOOKS_CONFIG=str(config_path)))
    assert result.returncode == 0, result.stderr
    cache = json.loads((state / "system_health.json").read_text())
    schema = json.loads((REPO / "docs" / "cache.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(cache)
    broken = json.loads(json.dumps(cache))
    next(p for p in broken["probes"] if p["name"] == "disk:/")["values"]["disk_full_in_seconds"] = -5
    assert not validator.is_valid(broken)  # the schema does say what these values are
    disk = next(p for p in cache["probes"] if p["name"] == "disk:/")
    assert disk["values"]["disk_full_in_seconds"] == pytest.approx(3600, rel=0.1)
    assert disk["values"]["disk_growth_bytes_per_hour"] == pytest.approx(free_now, rel=0.1)
    assert disk["status"] == "CRITICAL" and "crit within 2 h" in disk["summary"]
    assert any(i["id"] == "disk:/" and "full in ~" in i["summary"] for i in cache["issues"])
    saved = json.loads((state / HISTORY_NAME).read_text())["series"]["disk:/"]
    assert saved[:-1] == seeded and saved[-1][0] > now  # the real sample appended
    assert stat.S_IMODE((state / HISTORY_NAME).stat().st_mode) == 0o600


def test_a_restarted_refresher_process_keeps_the_history(tmp_path, isolated_home):
    state = tmp_path / "state"
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'interval_seconds = 0.2\n[state]\ndir = "{state}"\n[costs]\nenabled = false\n'
                           + CALM_RESOURCES)
    env = cli_env(AIKI_HOOKS_CONFIG=str(config_path))
    history = state / HISTORY_NAME

    def run_until(predicate):
        proc = subprocess.Popen([sys.executable, "-m", "aiki_hooks.cli", "refresher"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def saved():
                data = json.loads(history.read_text()) if history.exists() else None
                return data if data and predicate(data) else None

            return wait_for(saved, timeout=20)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
            assert proc.returncode == 0 and "Traceback" not in err, err

    first = run_until(lambda saved: len(saved["series"]["memory"]) >= 2)
    started = first["series"]["memory"][0][0]
    last = first["series"]["memory"][-1][0]
    second = run_until(lambda saved: saved["series"]["memory"][-1][0] > last)
    assert second["series"]["memory"][0][0] == started  # the restart continued, not started over
    assert set(second["series"]) >= {"memory", "disk:/"}
