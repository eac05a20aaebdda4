"""The journal is the source of truth for the mem0 spool: every cycle the engine feeds
the spool from a cursor into the journal, through the mem0 output's filter. So a failed
enqueue, a killed refresher or a session event a hook journaled still reaches the spool,
exactly once; and engines sharing a state dir journal one occurrence once."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from aiki_hooks.config.load import load_config
from aiki_hooks.cycle.engine import Engine
from aiki_hooks.issues import journal
from aiki_hooks.outputs.mem0.spool import Spool
from tests.conftest import REPO, quiet_config

PLUGIN = """#!/bin/sh
if [ -e "{crit}" ]; then echo "queue stuck: 9000 jobs"; exit 2; fi
if [ -e "{warn}" ]; then echo "queue slow: 400 jobs"; exit 1; fi
echo "queue flowing"; exit 0
"""


class Machine:
    """A state dir, a config and a command probe whose state the test sets."""

    def __init__(self, tmp_path, outputs: str = "") -> None:
        self.state = tmp_path / "state"
        self.crit, self.warn = tmp_path / "crit", tmp_path / "warn"
        plugin = tmp_path / "check_queue"
        plugin.write_text(PLUGIN.format(crit=self.crit, warn=self.warn))
        plugin.chmod(0o755)
        self.config_path = tmp_path / "aiki.toml"
        quiet_config(self.config_path, self.state, interval=1, extra=f"""
[journal]
open_after_cycles = 1
resolve_after_cycles = 1
[mem0]
backend = "rest"
host = "http://127.0.0.1:9"
{outputs}
[[probes.command]]
name = "queue"
command = ["{plugin}"]
""")

    def engine(self) -> Engine:
        return Engine(load_config(self.config_path), log=lambda line, priority: None)

    def set(self, status: str) -> None:
        for flag, wanted in ((self.crit, "CRITICAL"), (self.warn, "WARNING")):
            if status == wanted:
                flag.touch()
            elif flag.exists():
                flag.unlink()

    def journal(self) -> list[dict]:
        return journal.read(str(self.state))

    def spooled(self) -> list[dict]:
        return [record for _, record in Spool(str(self.state)).pending()]


def publish(engine: Engine):
    return engine.publish(engine.cycle())


def test_the_hooks_are_told_not_to_spool_themselves(tmp_path):
    assert Machine(tmp_path).engine().hook_settings()["mem0_spool"] is False


def test_a_busy_spool_is_caught_up_by_the_next_cycle_with_a_warning_meanwhile(tmp_path):
    machine = Machine(tmp_path)
    engine = machine.engine()
    publish(engine)  # all fine: the spool's cursor starts here
    machine.set("CRITICAL")
    lock_path = machine.state / "spool" / ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a stuck flush helper, say
    try:
        publish(engine)
    finally:
        os.close(fd)
    assert [r["transition"] for r in machine.journal()] == ["opened"]
    assert machine.spooled() == []
    assert "mem0" in engine.router.failures
    snapshot = engine.cycle()
    assert "output:mem0" in {issue.id for issue in snapshot.issues}
    engine.publish(snapshot)
    assert [r["record_id"] for r in machine.spooled()] == [r["record_id"] for r in machine.journal()]
    assert "mem0" not in engine.router.failures


def test_the_mem0_filter_applies_to_transitions_and_to_session_events(tmp_path):
    machine = Machine(tmp_path, outputs="""
[[outputs]]
type = "cache"
[[outputs]]
type = "journal"
[[outputs]]
type = "mem0"
min_severity = "CRITICAL"
""")
    engine = machine.engine()

    def session_event(session_id: str) -> None:
        # What the SessionStart hook does, with the issues of the cache it just read.
        data = json.loads((machine.state / "system_health.json").read_text())
        journal.session_event(str(machine.state), session_id=session_id, cwd="/work", open_issues=data["issues"],
                              now=time.time(), host="box")

    machine.set("WARNING")
    publish(engine)
    session_event("s-warn")
    publish(engine)
    assert machine.spooled() == []  # a WARNING is not for this mem0 output
    machine.set("CRITICAL")
    publish(engine)
    session_event("s-crit")
    machine.set("OK")
    publish(engine)  # the resolution: the occurrence reached mem0, so its end does too
    assert [(r["kind"], r["transition"]) for r in machine.journal()] == [
        ("transition", "opened"), ("session", "session_began"), ("transition", "escalated"),
        ("session", "session_began"), ("transition", "resolved")]
    assert [(r["transition"], r.get("session_id")) for r in machine.spooled()] == [
        ("escalated", None), ("session_began", "s-crit"), ("resolved", None)]


def test_two_engines_on_one_state_dir_journal_and_spool_one_occurrence(tmp_path):
    machine = Machine(tmp_path)
    refresher, oneshot = machine.engine(), machine.engine()
    publish(refresher)
    machine.set("CRITICAL")
    for engine in (oneshot, refresher, oneshot):
        publish(engine)
    machine.set("OK")
    for engine in (refresher, oneshot, refresher):
        publish(engine)
    assert [r["transition"] for r in machine.journal()] == ["opened", "resolved"]
    assert [r["transition"] for r in machine.spooled()] == ["opened", "resolved"]


KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from aiki_hooks.outputs.mem0 import spool
from aiki_hooks.config.load import load_config
from aiki_hooks.cycle.engine import Engine

point = {point!r}

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before_feed":
    Engine.spool = die  # the journal has the record, the spool has not
else:
    spool.Spool._write_state = die  # record files written, the cursor not moved
engine = Engine(load_config({config!r}), log=lambda line, priority: None)
engine.publish(engine.cycle())
"""


@pytest.mark.parametrize("point", ["before_feed", "before_cursor", "first_run_before_feed"])
def test_kill_9_between_journal_and_spool_loses_and_duplicates_nothing(tmp_path, point):
    machine = Machine(tmp_path)
    if point == "first_run_before_feed":  # mem0 on from the start, killed before any feed
        machine.set("CRITICAL")
        point = "before_feed"
    else:
        publish(machine.engine())  # the cursor exists
        machine.set("CRITICAL")
    script = KILLER.format(repo=str(REPO), point=point, config=str(machine.config_path))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [r["transition"] for r in machine.journal()] == ["opened"]
    assert len(machine.spooled()) == (0 if point == "before_feed" else 1)
    engine = machine.engine()  # the restarted refresher; the issue lasts, then ends
    publish(engine)
    machine.set("OK")
    publish(engine)
    journaled = machine.journal()
    assert [r["transition"] for r in journaled] == ["opened", "resolved"]
    assert [r["record_id"] for r in machine.spooled()] == [r["record_id"] for r in journaled]


def test_recurrence_from_the_journal_reaches_the_published_cache(tmp_path):
    machine = Machine(tmp_path)
    engine = machine.engine()
    cache = machine.state / "system_health.json"
    for round_ in range(3):
        machine.set("CRITICAL")
        publish(engine)
        machine.set("OK")
        publish(engine)
        patterns = json.loads(cache.read_text())["patterns"]
        if round_ == 0:
            assert patterns == []  # once is not a pattern
    # A cycle after a journal write re-reads it: the third occurrence (opened a cycle ago) counts.
    (pattern,) = patterns
    assert pattern["issue_id"] == "command:queue" and pattern["count"] == 3
    assert pattern["text"].startswith("queue down 3x in 7 d, median ")
    assert pattern["median_duration_seconds"] is not None


def test_a_journal_that_cannot_be_written_is_a_warning_and_catches_up_later(tmp_path):
    machine = Machine(tmp_path)
    engine = machine.engine()
    publish(engine)
    blocker = machine.state / journal.JOURNAL_NAME
    blocker.unlink(missing_ok=True)
    blocker.mkdir()  # appending fails (EISDIR), as on a full or read-only disk
    machine.set("CRITICAL")
    failed_at = publish(engine).generated_at
    snapshot = engine.cycle()
    (warning,) = [issue for issue in snapshot.issues if "journal" in issue.id]
    assert warning.severity.name == "WARNING"
    engine.publish(snapshot)
    blocker.rmdir()
    publish(engine)
    # The transition waited in the tracker's outbox: journaled once, with its real time.
    (opened,) = [r for r in machine.journal() if r["issue_id"] == "command:queue"]
    assert opened["transition"] == "opened" and opened["at"] == failed_at
    assert opened["record_id"] in [r["record_id"] for r in machine.spooled()]
    assert not [issue for issue in engine.cycle().issues if "journal" in issue.id]
    assert ("output:journal", "opened") in [(r["issue_id"], r["transition"]) for r in machine.journal()]
