"""The mem0 spool: durable one-file-per-record queue, bounded, with backoff state."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from aiki_hooks.config.load import Mem0Config
from aiki_hooks.outputs.mem0.spool import (
    DELIVERY_ISSUE,
    SPOOL_ISSUE,
    Spool,
    apply_failure,
    backoff_delay,
    health_issues,
    note_dropped,
)
from tests.conftest import REPO

T0 = 1_700_000_000.0


def record(seq: int, **extra) -> dict:
    base = {
        "seq": seq, "at": T0 + seq, "kind": "transition", "record_id": f"occ{seq}:opened",
        "occurrence_id": f"occ{seq}", "issue_id": f"http:api{seq}", "transition": "opened",
        "severity": "CRITICAL", "previous_severity": None, "probe": "api", "summary": "down",
        "sentence": f"api{seq} went down: connection refused", "started_at": T0, "duration_seconds": None,
        "session_id": None, "cwd": None, "host": "box",
    }
    base.update(extra)
    return base


def test_enqueue_pending_oldest_first_private_files(tmp_path):
    spool = Spool(tmp_path, max_records=100)
    spool.enqueue([record(3), record(1)])
    spool.enqueue([record(2)])
    pending = spool.pending()
    # enqueue order, not seq order: the spool keeps its own counter
    assert [r["seq"] for _, r in pending] == [3, 1, 2]
    assert spool.count() == 3
    assert stat.S_IMODE(os.stat(spool.dir).st_mode) == 0o700
    for path, rec in pending:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with open(path) as file:
            assert json.loads(file.read()) == rec
    names = [os.path.basename(p) for p, _ in pending]
    assert names == sorted(names)
    assert not [n for n in os.listdir(spool.dir) if n.endswith(".tmp")]


def test_remove_and_counter_continues_after_remove(tmp_path):
    spool = Spool(tmp_path, 100)
    spool.enqueue([record(1), record(2)])
    first, _ = spool.pending()
    spool.remove(first[0])
    spool.remove(first[0])  # already gone is fine
    spool.enqueue([record(3)])
    assert [r["seq"] for _, r in spool.pending()] == [2, 3]


def test_unreadable_files_are_quarantined(tmp_path):
    spool = Spool(tmp_path, 100)
    spool.enqueue([record(1), record(2)])
    path = spool.pending()[0][0]
    with open(path, "w") as file:
        file.write("{half a rec")
    with open(os.path.join(spool.dir, "000000000000-sx.json"), "w") as file:
        file.write("[1, 2]")  # valid JSON, not a record
    assert [r["seq"] for _, r in spool.pending()] == [2]
    assert sorted(os.listdir(os.path.join(spool.dir, "bad"))) == sorted(
        [os.path.basename(path), "000000000000-sx.json"])


def test_orphan_temp_files_are_removed_when_old(tmp_path):
    spool = Spool(tmp_path, 100)
    old = os.path.join(spool.dir, ".000000000001-s1.json.1.abc.tmp")
    young = os.path.join(spool.dir, ".000000000002-s2.json.1.abc.tmp")
    for path in (old, young):
        with open(path, "w"):
            pass
    os.utime(old, (T0, T0))
    assert spool.pending() == []
    assert not os.path.exists(old) and os.path.exists(young)


def test_bounded_spool_drops_oldest_and_says_so(tmp_path):
    config = Mem0Config(backend="rest", host="http://127.0.0.1:1", max_spool_records=5)
    spool = Spool(tmp_path, config.max_spool_records)
    now = T0 + 100
    assert spool.enqueue([record(i) for i in range(1, 9)], now=now) == 3
    assert [r["seq"] for _, r in spool.pending()] == [4, 5, 6, 7, 8]
    state = spool.load_state()
    assert state["dropped"] == 3 and state["dropped_at"] == now
    assert state["dropped_record_ids"] == ["occ1:opened", "occ2:opened", "occ3:opened"]
    issues = spool.health(now + 60, config)
    assert [(i, s) for i, s, _ in issues] == [(SPOOL_ISSUE, "WARNING")]
    summary = issues[0][2]
    assert summary.startswith("mem0 spool full: 3 records dropped since ")
    assert summary.endswith(time.strftime("%H:%M", time.localtime(now)))
    # More drops add up in the same episode; the first time stays.
    spool.enqueue([record(9), record(10)], now=now + 10)
    state = spool.load_state()
    assert state["dropped"] == 5 and state["dropped_at"] == now and state["last_dropped_at"] == now + 10
    # A day without drops: the warning goes away.
    assert spool.health(now + 10 + 86401, config) == []


def test_backoff_doubles_caps_and_jitters_within_20_percent():
    config = Mem0Config(backend="rest", host="http://x", backoff_initial_seconds=30, backoff_max_seconds=1800)
    rng = random.Random(7)
    for failures, base in [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1800), (40, 1800), (500, 1800)]:
        for _ in range(50):
            delay = backoff_delay(failures, config, rng)
            assert base * 0.8 <= delay <= base * 1.2
    delays = {round(backoff_delay(1, config, rng), 6) for _ in range(20)}
    assert len(delays) > 1  # jitter really varies


def test_failure_success_and_due(tmp_path):
    config = Mem0Config(backend="rest", host="http://x", backoff_initial_seconds=30, backoff_max_seconds=1800)
    spool = Spool(tmp_path, 10)
    assert spool.due(T0)
    delay = spool.record_failure("HTTP 500", T0, config)
    state = spool.load_state()
    assert state["failures"] == 1 and state["first_failure_at"] == T0 and state["last_error"] == "HTTP 500"
    assert state["next_attempt_at"] == pytest.approx(T0 + delay)
    assert not spool.due(T0 + delay - 0.01) and spool.due(T0 + delay)
    spool.record_failure("HTTP 500", T0 + 40, config)
    assert spool.load_state()["first_failure_at"] == T0
    spool.record_success(T0 + 200)
    state = spool.load_state()
    assert state["failures"] == 0 and state["next_attempt_at"] is None and state["last_success_at"] == T0 + 200
    assert spool.due(T0 + 200)


def test_health_delivery_warning_after_one_initial_backoff(tmp_path):
    config = Mem0Config(backend="rest", host="http://x", backoff_initial_seconds=30)
    spool = Spool(tmp_path, 10)
    spool.enqueue([record(i) for i in range(5)])
    spool.record_failure("POST /search: connection refused", T0, config)
    assert spool.health(T0 + 29, config) == []  # one blip is not an outage yet
    issues = spool.health(T0 + 12 * 60 + 5, config)
    assert issues == [(DELIVERY_ISSUE, "WARNING",
                       "mem0 unreachable for 12 min, 5 records waiting (last error: POST /search: connection refused)")]


def test_health_is_pure_over_state():
    config = Mem0Config(backend="rest", host="http://x")
    state = {"failures": 0, "dropped": 0}
    assert health_issues(state, 3, T0, config) == []
    state = {}
    apply_failure(state, "x", T0, config, rng=random.Random(1))
    assert health_issues(state, 1, T0 + 3 * 3600 + 120, config)[0][2].startswith(
        "mem0 unreachable for 3 h 02 min, 1 record waiting")


def test_corrupt_state_starts_over(tmp_path):
    spool = Spool(tmp_path, 10)
    with open(os.path.join(spool.dir, "state.json"), "w") as file:
        file.write("{nope")
    assert spool.load_state()["failures"] == 0
    spool.save_state({**spool.load_state(), "failures": 2})
    assert spool.load_state()["failures"] == 2


def test_spool_imports_only_the_standard_library():
    code = textwrap.dedent("""
        import sys
        before = set(sys.modules)
        import aiki_hooks.outputs.mem0.spool
        new = sorted(set(sys.modules) - before)
        foreign = [m for m in new if m.split(".")[0] not in sys.stdlib_module_names]
        print(repr((foreign, new)))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30,
                         check=True)
    foreign, new = eval(out.stdout)
    # Only our own (stdlib-only) modules beside the standard library.
    assert set(foreign) == {"aiki_hooks", "aiki_hooks.outputs", "aiki_hooks.outputs.mem0", "aiki_hooks.outputs.mem0.spool",
                            "aiki_hooks.model", "aiki_hooks.model.dates", "aiki_hooks.model.units", "aiki_hooks.paths",
                            "aiki_hooks.cycle", "aiki_hooks.cycle.cache"}, new


def test_feed_adds_what_fetch_returns_moves_the_cursor_and_never_repeats_a_seq(tmp_path):
    spool = Spool(tmp_path, max_records=100)
    seen = []

    def fetch_from(records):
        def fetch(state):
            seen.append(state.get("journal_seq"))
            state["journal_seq"] = max(r["seq"] for r in records)
            return records
        return fetch

    assert spool.feed(fetch_from([record(1), record(2)])) == (2, 0)
    # A crash after the records but before the cursor: the same records come again.
    assert spool.feed(fetch_from([record(2), record(3)])) == (1, 0)
    assert seen == [None, 2]
    assert [r["seq"] for _, r in spool.pending()] == [1, 2, 3]
    assert spool.load_state()["journal_seq"] == 3


def test_feed_that_fails_leaves_the_cursor_and_the_spool_alone(tmp_path):
    spool = Spool(tmp_path, max_records=100)
    spool.feed(lambda state: state.update(journal_seq=5) or [record(5)])

    def broken(state):
        state["journal_seq"] = 9
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        spool.feed(broken)
    assert spool.load_state()["journal_seq"] == 5 and spool.count() == 1


def test_feed_past_max_records_drops_the_oldest_and_counts_them(tmp_path):
    spool = Spool(tmp_path, max_records=2)

    def fetch(state):
        note_dropped(state, ["journal seq 1..4"], T0, count=4)  # older than the limit: never read
        state["journal_seq"] = 7
        return [record(5), record(6), record(7)]

    assert spool.feed(fetch, now=T0) == (3, 1)
    assert [r["seq"] for _, r in spool.pending()] == [6, 7]
    state = spool.load_state()
    assert state["dropped"] == 5 and "journal seq 1..4" in state["dropped_record_ids"]
