"""Issue 5 end to end: the real refresher process turns a flapping and then a lasting
problem into damped journal transitions and publishes occurrence ids, and its mem0-flush
helper delivers every transition exactly once to a mem0 REST server on 127.0.0.1 that is
down for a while; the refresher itself never imports mem0, and its RSS grows no more
with mem0 on than off. (Recurrence in the cache: test_journal_spool.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from aiki_hooks.cycle.cache import read_cache
from aiki_hooks.issues import journal
from tests.conftest import cli_env, quiet_config
from tests.conftest import wait_for as _wait_for

from tests.outputs.mem0.test_delivery import KEY, KEY_ENV, rest_server, url_of

PLUGIN = """#!/bin/sh
if [ -e "{flag}" ]; then echo "queue stuck: 9000 jobs"; exit 2; fi
echo "queue flowing"; exit 0
"""


def wait_for(predicate, timeout=30.0, step=0.05):
    return _wait_for(predicate, timeout=timeout, step=step)


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_refresher_journals_damped_transitions_and_delivers_them_once(tmp_path, isolated_home):
    state = tmp_path / "state"
    flag = tmp_path / "stuck"
    plugin = tmp_path / "check_queue"
    plugin.write_text(PLUGIN.format(flag=flag))
    plugin.chmod(0o755)
    with rest_server(faults=["500", "500"]) as server:
        config = tmp_path / "aiki.toml"
        quiet_config(config, state, interval=0.2, extra=f"""
[journal]
open_after_cycles = 2
resolve_after_cycles = 2
[mem0]
backend = "rest"
host = "{url_of(server)}"
api_key_env = "{KEY_ENV}"
user_id = "dev"
backoff_initial_seconds = 0.5
backoff_max_seconds = 1
timeout_seconds = 10
[[probes.command]]
name = "queue"
command = ["{plugin}"]
""")
        env = cli_env(AIKI_HOOKS_CONFIG=str(config), **{KEY_ENV: KEY})
        refresher = subprocess.Popen([sys.executable, "-m", "aiki_hooks.cli", "refresher"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cache = state / "system_health.json"
        try:
            wait_for(lambda: read_cache(cache).data)
            # A one-cycle flap: never reaches the journal.
            flag.touch()
            wait_for(lambda: (d := read_cache(cache).data) and d["status"] == "CRITICAL")
            flag.unlink()
            wait_for(lambda: (d := read_cache(cache).data) and d["status"] == "OK")
            time.sleep(1.0)
            assert [r for r in journal.read(str(state)) if r["kind"] == "transition"] == []
            # A lasting problem: opened after two cycles, with its occurrence id in the cache.
            flag.touch()
            issue = wait_for(lambda: next((i for i in (read_cache(cache).data or {}).get("issues", [])
                                           if i.get("occurrence_id")), None))
            assert issue["id"] == "command:queue"
            time.sleep(1.0)
            flag.unlink()
            wait_for(lambda: any(r["transition"] == "resolved" for r in journal.read(str(state))))
            # The helper delivers both transitions despite two 500s, each exactly once.
            wait_for(lambda: len(server.memories) >= 2, timeout=30)
            time.sleep(1.5)  # give a duplicate every chance to appear
            peak = rss_mib(refresher.pid)
        finally:
            refresher.send_signal(signal.SIGTERM)
            _, err = refresher.communicate(timeout=20)
        records = [r for r in journal.read(str(state)) if r["kind"] == "transition"]
        queue = [r for r in records if r["issue_id"] == "command:queue"]
        assert [r["transition"] for r in queue] == ["opened", "resolved"]
        assert queue[0]["occurrence_id"] == queue[1]["occurrence_id"] == issue["occurrence_id"]
        assert "queue" in queue[0]["sentence"] and "recovered" in queue[1]["sentence"]
        # The outage of mem0 itself is an issue of its own, journaled and delivered too.
        assert {r["issue_id"] for r in records} <= {"command:queue", "mem0:delivery"}
        stored = [m["metadata"]["record_id"] for m in server.memories]
        assert stored == [r["record_id"] for r in records if r["record_id"] in stored]
        assert len(stored) == len(set(stored))
        assert set(r["record_id"] for r in queue) <= set(stored)
        assert peak < 60, f"refresher RSS {peak:.0f} MiB: it must never import mem0"  # growth: below
        assert "Traceback" not in err

    history = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "issues", "--json"], env=env,
                             capture_output=True, text=True, timeout=30)
    assert history.returncode == 0, history.stderr
    (occurrence,) = [o for o in json.loads(history.stdout)["occurrences"] if o["issue_id"] == "command:queue"]
    assert occurrence["open"] is False and occurrence["duration_seconds"] > 0.5
    table = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "issues"], env=env, capture_output=True,
                           text=True, timeout=30)
    assert "command:queue" in table.stdout


FLAPPER = """#!/bin/sh
# Down for 3 checks, up for 3: an occurrence opens and resolves every few cycles.
n=$(cat "{counter}" 2>/dev/null || echo 0); echo $((n + 1)) > "{counter}"
if [ $((n / 3 % 2)) -eq 1 ]; then echo "queue stuck"; exit 2; fi
echo "queue flowing"; exit 0
"""


def rss_growth(tmp_path, mem0: str, seconds: float) -> tuple[float, int, list[float]]:
    """Run a refresher whose probe flaps for *seconds*; (RSS growth in MiB from the end
    of the first quarter to the end, journal records, samples)."""
    tmp_path.mkdir()
    state = tmp_path / "state"
    plugin = tmp_path / "flap"
    plugin.write_text(FLAPPER.format(counter=tmp_path / "n"))
    plugin.chmod(0o755)
    config = tmp_path / "aiki.toml"
    quiet_config(config, state, interval=0.05, extra=f"""
[journal]
open_after_cycles = 1
resolve_after_cycles = 1
{mem0}
[[probes.command]]
name = "queue"
command = ["{plugin}"]
""")
    env = cli_env(AIKI_HOOKS_CONFIG=str(config), **{KEY_ENV: KEY})
    refresher = subprocess.Popen([sys.executable, "-m", "aiki_hooks.cli", "refresher"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []
    try:
        wait_for(lambda: (state / "system_health.json").exists())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples.append(rss_mib(refresher.pid))
            time.sleep(0.1)
    finally:
        refresher.send_signal(signal.SIGTERM)
        _, err = refresher.communicate(timeout=20)
    assert "Traceback" not in err
    quarter = len(samples) // 4
    return max(samples[quarter:]) - max(samples[:quarter]), len(journal.read(str(state))), samples


@pytest.mark.slow
def test_refresher_rss_does_not_grow_more_with_mem0_than_without(tmp_path):
    """Many cycles of a flapping probe (journal, spool feed, helpers started and reaped),
    compared with the same run with mem0 off: growth, not one absolute sample."""
    off, off_records, _ = rss_growth(tmp_path / "off", "[mem0]\nbackend = \"off\"", 8.0)
    with rest_server() as server:
        on, on_records, samples = rss_growth(tmp_path / "on", f"""[mem0]
backend = "rest"
host = "{url_of(server)}"
api_key_env = "{KEY_ENV}"
user_id = "dev"
backoff_initial_seconds = 0.2
backoff_max_seconds = 1
timeout_seconds = 10""", 8.0)
        delivered = len(server.memories)
    assert off_records > 20 and on_records > 20  # it did flap, many times
    assert delivered > 5  # and mem0 took part, helpers and all
    assert on - off < 2.0, f"RSS grew {on:.1f} MiB with mem0, {off:.1f} MiB without ({samples[0]:.0f} MiB at start)"
    assert max(samples) < 60, "the refresher must never import mem0"


def test_session_start_journals_that_a_session_began_during_an_issue(tmp_path):
    from aiki_hooks.config.load import load_config
    from aiki_hooks.cycle.cache import write_cache
    from aiki_hooks.cycle.engine import Engine
    from aiki_hooks.model.result import replace

    from tests.hooklib.test_hooks import issue, run_hook, snapshot

    state = tmp_path / "state"
    config_file = tmp_path / "aiki.toml"
    config_file.write_text(f'[state]\ndir = "{state}"\n[resources]\nenabled = false\n[costs]\nenabled = false\n'
                           '[mem0]\nbackend = "rest"\nhost = "http://127.0.0.1:9"\n')
    engine = Engine(load_config(config_file), log=lambda line, priority: None)
    engine.publish(engine.cycle())  # the refresher ran before (it made the cache the hook reads)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
    env.update(HOME=str(tmp_path), AIKI_HOOKS_STATE_DIR=str(state), PYTHONPATH=str(cli_env()["PYTHONPATH"]))
    open_issue = replace(issue("http:qdrant"), occurrence_id="occ123")
    data = snapshot(issues=[open_issue])
    data["hooks"] = engine.hook_settings()
    write_cache(state / "system_health.json", data)
    payload = {"session_id": "sess-1", "source": "startup", "cwd": "/home/me/proj"}
    for _ in range(2):  # a second start of the same session adds nothing
        assert run_hook("session_start", payload, env).returncode == 0
    (record,) = journal.read(str(state))
    assert record["transition"] == "session_began" and record["occurrence_id"] == "occ123"
    assert "/home/me/proj" in record["sentence"] and "http:qdrant" in record["sentence"]
    # The hook only journals; the engine's next cycle feeds the spool from the journal.
    assert list((state / "spool").glob("0*.json")) == []
    engine.publish(engine.cycle())
    engine.publish(engine.cycle())  # and only once
    spooled = sorted((state / "spool").glob("0*.json"))
    assert len(spooled) == 1 and json.loads(spooled[0].read_text())["record_id"] == record["record_id"]


@pytest.mark.slow
def test_kill_9_of_the_refresher_with_mem0_on_loses_and_duplicates_nothing(tmp_path):
    """A flapping probe, the refresher killed -9 at random moments and restarted; at the
    end every journaled transition is in mem0 exactly once and the journal has no repeat."""
    import random

    state = tmp_path / "state"
    plugin = tmp_path / "flap"
    plugin.write_text(FLAPPER.format(counter=tmp_path / "n"))
    plugin.chmod(0o755)
    with rest_server() as server:
        config = tmp_path / "aiki.toml"
        quiet_config(config, state, interval=0.05, extra=f"""
[journal]
open_after_cycles = 1
resolve_after_cycles = 1
[mem0]
backend = "rest"
host = "{url_of(server)}"
api_key_env = "{KEY_ENV}"
user_id = "dev"
backoff_initial_seconds = 0.2
backoff_max_seconds = 0.5
timeout_seconds = 10
[[probes.command]]
name = "queue"
command = ["{plugin}"]
""")
        env = cli_env(AIKI_HOOKS_CONFIG=str(config), **{KEY_ENV: KEY})
        command = [sys.executable, "-m", "aiki_hooks.cli", "refresher"]
        transitions = lambda: [r for r in journal.read(str(state)) if r["kind"] == "transition"]  # noqa: E731
        rng = random.Random(5)
        # At least 8 kills; more while fewer than 11 transitions are journaled, as on a busy
        # machine, where a refresher spends most of its 0.4-1.2 s starting up.
        for kills in range(40):
            if kills >= 8 and len(transitions()) > 10:
                break
            refresher = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.4, 1.2))
            refresher.kill()
            refresher.wait(timeout=10)
        plugin.write_text("#!/bin/sh\necho fine; exit 0\n")  # the trouble ends; a last refresher drains
        refresher = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: transitions() and transitions()[-1]["transition"] == "resolved"
                     and not list((state / "spool").glob("0*.json"))
                     and len(server.memories) >= len(transitions()), timeout=60)
            time.sleep(0.5)  # a duplicate would have its chance
        finally:
            refresher.send_signal(signal.SIGTERM)
            _, err = refresher.communicate(timeout=20)
        assert "Traceback" not in err
    records = transitions()
    ids = [r["record_id"] for r in records]
    assert len(records) > 10 and len(ids) == len(set(ids))  # flapped a lot; the journal repeats nothing
    by_occurrence: dict[str, list[str]] = {}
    for r in records:
        by_occurrence.setdefault(r["occurrence_id"], []).append(r["transition"])
    assert all(seq == ["opened", "resolved"] for seq in by_occurrence.values()), by_occurrence
    stored = [m["metadata"]["record_id"] for m in server.memories]
    assert sorted(stored) == sorted(ids)  # every transition in mem0, exactly once
