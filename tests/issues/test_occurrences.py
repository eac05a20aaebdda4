"""IssueTracker: flap damping, escalation, resolution, restart continuity; sentences."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from aiki_hooks.config.load import JournalConfig
from aiki_hooks.issues.journal import FIELDS
from aiki_hooks.issues.occurrences import (
    STATE_NAME,
    IssueTracker,
    changed_sentence,
    issue_label,
    opened_sentence,
    resolved_sentence,
)
from aiki_hooks.model.result import Finding, Issue, ProbeResult, Snapshot
from aiki_hooks.model.status import Status

INTERVAL = 60.0
T0 = time.mktime((2026, 11, 24, 14, 5, 0, 0, 0, -1))  # 14:05 local, whatever the TZ


def at(hh_mm: str) -> float:
    hours, minutes = map(int, hh_mm.split(":"))
    return time.mktime((2026, 11, 24, hours, minutes, 0, 0, 0, -1))


QDRANT_DOWN = ProbeResult(name="qdrant", kind="http", status=Status.CRITICAL, summary="connection refused",
                          error_kind="connection_failed")
QDRANT_SLOW = ProbeResult(name="qdrant", kind="http", status=Status.WARNING, summary="ready 2.1 s, slow")
QDRANT_OK = ProbeResult(name="qdrant", kind="http", status=Status.OK, summary="ready 2.0 ms, v1.12.4")
MEMORY_SERVICE = ProbeResult(name="aiki-memory.service", kind="systemd", status=Status.OK,
                             summary="active (running) 3d")


def disk(status: Status, summary: str) -> ProbeResult:
    """As the resources probe reports a disk: one finding whose id is the probe name."""
    return ProbeResult(name="disk:/", kind="resources", status=status, summary=summary,
                       findings=(Finding(id="disk:/", status=status, summary=summary),))


DISK_OK = disk(Status.OK, "80% used, 40.0 GiB free")
DISK_FULL = disk(Status.WARNING, "91% used, 18.2 GiB free; warn at 90%")


def snapshot(*probes: ProbeResult, now: float) -> Snapshot:
    issues = tuple(
        Issue(id=finding.id, severity=finding.status, summary=finding.summary, since=now, probe=probe.name)
        for probe in probes for finding in probe.issue_findings()
    )
    return Snapshot(generated_at=now, interval_seconds=INTERVAL, host="box", probes=tuple(probes), issues=issues)


def tracker(state_dir, open_after: int = 2, resolve_after: int = 2) -> IssueTracker:
    config = JournalConfig(open_after_cycles=open_after, resolve_after_cycles=resolve_after)
    return IssueTracker(state_dir, config, host="box")


def run(track: IssueTracker, cycles: list[tuple[ProbeResult, ...]], start: float = T0) -> list[list[dict]]:
    """One update per cycle, INTERVAL apart; the records of each cycle."""
    return [track.update(snapshot(*probes, now=start + i * INTERVAL), start + i * INTERVAL)
            for i, probes in enumerate(cycles)]


def transitions(per_cycle: list[list[dict]]) -> list[tuple[int, str, str]]:
    """(cycle, issue_id, transition) for every record, to compare with a table."""
    return [(i, r["issue_id"], r["transition"]) for i, records in enumerate(per_cycle) for r in records]


DOWN, UP, SLOW = (QDRANT_DOWN, MEMORY_SERVICE), (QDRANT_OK, MEMORY_SERVICE), (QDRANT_SLOW, MEMORY_SERVICE)


@pytest.mark.parametrize("open_after, resolve_after, cycles, expected", [
    pytest.param(2, 2, [UP, DOWN, UP, UP, DOWN, UP], [], id="flapping-1-cycle-never-opens"),
    pytest.param(2, 2, [UP, DOWN, DOWN, UP], [(2, "http:qdrant", "opened")], id="2-cycles-open"),
    pytest.param(1, 1, [DOWN, UP], [(0, "http:qdrant", "opened"), (1, "http:qdrant", "resolved")],
                 id="no-damping"),
    pytest.param(2, 2, [DOWN, DOWN, UP, DOWN, UP], [(1, "http:qdrant", "opened")],
                 id="absent-1-cycle-stays-open"),
    pytest.param(2, 2, [DOWN, DOWN, UP, UP], [(1, "http:qdrant", "opened"), (3, "http:qdrant", "resolved")],
                 id="absent-2-cycles-resolves"),
    pytest.param(2, 2, [SLOW, SLOW, DOWN, SLOW], [(1, "http:qdrant", "opened"), (2, "http:qdrant", "escalated"),
                                                  (3, "http:qdrant", "de-escalated")], id="severity-changes"),
    pytest.param(3, 1, [DOWN, SLOW, DOWN, UP], [(2, "http:qdrant", "opened"), (3, "http:qdrant", "resolved")],
                 id="any-non-ok-severity-counts-toward-opening"),
])
def test_damping(tmp_path, open_after, resolve_after, cycles, expected):
    assert transitions(run(tracker(tmp_path, open_after, resolve_after), cycles)) == expected


def test_opened_record_carries_the_first_sighting_not_the_damping_moment(tmp_path):
    per_cycle = run(tracker(tmp_path), [DOWN, DOWN])
    [opened] = per_cycle[1]
    assert opened["started_at"] == T0
    assert opened["at"] == T0 + INTERVAL
    assert opened["sentence"] == ("qdrant (http) stopped answering at 14:05 (connection refused); "
                                  "aiki-memory.service still active.")
    assert opened["record_id"] == f"{opened['occurrence_id']}:opened"
    assert len(opened["occurrence_id"]) == 32
    assert (opened["kind"], opened["severity"], opened["previous_severity"], opened["probe"], opened["host"]) == (
        "transition", "CRITICAL", None, "qdrant", "box")
    assert set(opened) == set(FIELDS) - {"seq"}


def test_resolution_reports_how_long_it_lasted(tmp_path):
    cycles = [DOWN] * 14 + [UP, UP]  # down from 14:05, first seen up at 14:19
    per_cycle = run(tracker(tmp_path), cycles)
    [opened] = per_cycle[1]
    [resolved] = per_cycle[15]
    assert resolved["occurrence_id"] == opened["occurrence_id"]
    assert resolved["duration_seconds"] == 14 * 60
    assert resolved["sentence"] == "qdrant (http) recovered at 14:19 after 14 min."
    assert resolved["record_id"] == f"{opened['occurrence_id']}:resolved"


def test_escalation_records_previous_severity_and_unique_record_ids(tmp_path):
    per_cycle = run(tracker(tmp_path), [SLOW, SLOW, DOWN, SLOW, DOWN])
    changes = [r for records in per_cycle for r in records if r["transition"] != "opened"]
    assert [(r["transition"], r["previous_severity"], r["severity"]) for r in changes] == [
        ("escalated", "WARNING", "CRITICAL"), ("de-escalated", "CRITICAL", "WARNING"),
        ("escalated", "WARNING", "CRITICAL")]
    assert len({r["record_id"] for r in changes}) == 3
    assert changes[0]["sentence"] == ("qdrant (http) went from WARNING to CRITICAL at 14:07 (connection refused); "
                                      "open since 14:05.")


def test_open_occurrences_lists_what_the_cache_needs(tmp_path):
    track = tracker(tmp_path)
    assert track.open_occurrences() == {}
    [[], [opened]] = run(track, [DOWN, DOWN])
    assert track.open_occurrences() == {
        "http:qdrant": {"occurrence_id": opened["occurrence_id"], "severity": "CRITICAL", "started_at": T0}}


def test_a_restarted_tracker_continues_the_same_occurrence(tmp_path):
    first = tracker(tmp_path)
    [[], [opened]] = run(first, [DOWN, DOWN])
    second = tracker(tmp_path)  # the refresher restarted
    after_restart = run(second, [DOWN, UP, UP], start=T0 + 2 * INTERVAL)
    assert transitions(after_restart) == [(2, "http:qdrant", "resolved")]
    assert after_restart[2][0]["occurrence_id"] == opened["occurrence_id"]
    assert after_restart[2][0]["started_at"] == T0


def test_pending_sightings_survive_a_restart(tmp_path):
    run(tracker(tmp_path), [DOWN])
    [[opened]] = run(tracker(tmp_path), [DOWN], start=T0 + INTERVAL)
    assert opened["transition"] == "opened" and opened["started_at"] == T0


def test_state_file_is_private_json(tmp_path):
    run(tracker(tmp_path), [DOWN, DOWN])
    path = tmp_path / STATE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert list(data["open"]) == ["http:qdrant"]


@pytest.mark.parametrize("content", ["{not json", "[]", '{"version": 1, "open": {"x": {"bogus": 1}}, "pending": {}}',
                                     '{"version": 99, "open": {}, "pending": {}}'])
def test_a_corrupt_state_file_starts_fresh(tmp_path, content):
    (tmp_path / STATE_NAME).write_text(content)
    track = tracker(tmp_path, open_after=1)
    assert track.open_occurrences() == {}
    assert transitions(run(track, [DOWN])) == [(0, "http:qdrant", "opened")]


def test_resources_sentences_use_the_summary_figures(tmp_path):
    per_cycle = run(tracker(tmp_path, 1, 1), [(DISK_FULL, MEMORY_SERVICE), (DISK_OK, MEMORY_SERVICE)])
    assert per_cycle[0][0]["sentence"] == "disk / crossed 91% used at 14:05 (18.2 GiB free; warn at 90%)."
    assert per_cycle[1][0]["sentence"] == ("disk / back within its levels at 14:06 after 1 min "
                                           "(now 80% used, 40.0 GiB free).")


# --------------------------------------------------------------------------- sentences (pure)


@pytest.mark.parametrize("issue_id, probe, kind, expected", [
    ("http:qdrant", "qdrant", "http", "qdrant (http)"),
    ("systemd:aiki-memory.service", "aiki-memory.service", "systemd", "aiki-memory.service (systemd)"),
    ("disk:/", "disk:/", "resources", "disk /"),
    ("memory", "memory", "resources", "memory"),
    ("costs:today", "claude", "costs", "costs:today"),
])
def test_issue_label(issue_id, probe, kind, expected):
    assert issue_label(issue_id, probe, kind) == expected


LONG = "x" * 400


@pytest.mark.parametrize("kwargs, expected", [
    (dict(label="qdrant (http)", kind="http", severity="CRITICAL", summary="connection refused",
          error_kind="connection_failed", context=[("aiki-memory.service", "systemd"), ("postgres", "tcp")]),
     "qdrant (http) stopped answering at 14:05 (connection refused); aiki-memory.service still active, "
     "postgres still answering."),
    (dict(label="qdrant (http)", kind="http", severity="CRITICAL", summary="answered 500 Internal Server Error",
          error_kind="bad_status"),
     "qdrant (http) failed its check at 14:05 (answered 500 Internal Server Error)."),
    (dict(label="qdrant.service (systemd)", kind="systemd", severity="CRITICAL",
          summary="failed (exit-code) since 14:05"),
     "qdrant.service (systemd) went down at 14:05 (failed (exit-code) since 14:05)."),
    (dict(label="backup (command)", kind="command", severity="WARNING", summary="2 days since last run"),
     "backup (command) turned WARNING at 14:05 (2 days since last run)."),
    (dict(label="disk /", kind="resources", severity="UNKNOWN", summary="cannot read usage (hung mount?)"),
     "disk / could not be checked from 14:05 (cannot read usage (hung mount?))."),
    (dict(label="cpu", kind="resources", severity="CRITICAL", summary="99% busy (8 cores); crit at 98%"),
     "cpu crossed 99% busy (8 cores) at 14:05 (crit at 98%)."),
    (dict(label="costs:today", kind="costs", severity="WARNING", summary="Claude spend today $12.00, over $10"),
     "costs:today turned WARNING at 14:05 (Claude spend today $12.00, over $10)."),
])
def test_opened_sentence(kwargs, expected):
    assert opened_sentence(started_at=T0, **kwargs) == expected


def test_sentences_stay_short_and_drop_context_first():
    context = [(f"service-{'y' * 30}-{n}", "systemd") for n in range(3)]
    sentence = opened_sentence(label="qdrant (http)", kind="http", severity="CRITICAL", summary=LONG,
                               started_at=T0, error_kind="timeout", context=context)
    assert len(sentence) <= 240
    assert "still active" not in sentence and sentence.startswith("qdrant (http) stopped answering at 14:05 (xxx")
    assert len(changed_sentence(label="q", previous="WARNING", severity="CRITICAL", summary=LONG,
                                at=T0, started_at=T0)) <= 240
    assert len(resolved_sentence(label="disk /", kind="resources", recovered_at=T0, duration_seconds=60,
                                 now_summary=LONG)) <= 240


@pytest.mark.parametrize("kind, seconds, now_summary, expected", [
    ("http", 14 * 60, None, "qdrant recovered at 14:05 after 14 min."),
    ("http", 2 * 3600 + 5 * 60, "ready", "qdrant recovered at 14:05 after 2 h 05 min."),
    ("resources", 45, "80% used", "qdrant back within its levels at 14:05 after 45 s (now 80% used)."),
    ("resources", 45, None, "qdrant back within its levels at 14:05 after 45 s."),
])
def test_resolved_sentence(kind, seconds, now_summary, expected):
    assert resolved_sentence(label="qdrant", kind=kind, recovered_at=T0, duration_seconds=seconds,
                             now_summary=now_summary) == expected


def test_changed_sentence():
    assert changed_sentence(label="memory", previous="CRITICAL", severity="WARNING", summary="88% used",
                            at=at("15:30"), started_at=at("14:05")) == (
        "memory went from CRITICAL to WARNING at 15:30 (88% used); open since 14:05.")


# --------------------------------------------------------------------------- shared state dir, crashes


def journaled(state_dir) -> list[tuple[str, str]]:
    from aiki_hooks.issues import journal

    return [(r["issue_id"], r["transition"]) for r in journal.read(str(state_dir))]


def test_two_trackers_on_one_state_dir_open_one_occurrence(tmp_path):
    # The refresher and a one-shot `refresh` (or `status` on a stale cache), interleaved.
    refresher, oneshot = tracker(tmp_path), tracker(tmp_path)
    for i, (track, probes) in enumerate([(refresher, DOWN), (oneshot, DOWN), (refresher, DOWN),
                                         (oneshot, DOWN), (refresher, UP), (oneshot, UP), (refresher, UP)]):
        track.record(snapshot(*probes, now=T0 + i * INTERVAL), T0 + i * INTERVAL)
    assert journaled(tmp_path) == [("http:qdrant", "opened"), ("http:qdrant", "resolved")]
    from aiki_hooks.issues import journal

    opened, resolved = journal.read(str(tmp_path))
    assert opened["occurrence_id"] == resolved["occurrence_id"]


def test_a_stale_observation_from_a_slower_engine_is_ignored(tmp_path):
    refresher, oneshot = tracker(tmp_path, open_after=1, resolve_after=1), tracker(tmp_path, 1, 1)
    refresher.record(snapshot(*DOWN, now=T0), T0)
    refresher.record(snapshot(*UP, now=T0 + 2 * INTERVAL), T0 + 2 * INTERVAL)
    # Measured before the refresher saw the recovery, published after it: must not reopen.
    oneshot.record(snapshot(*DOWN, now=T0 + INTERVAL), T0 + INTERVAL)
    assert journaled(tmp_path) == [("http:qdrant", "opened"), ("http:qdrant", "resolved")]


def test_a_failed_append_is_journaled_by_the_next_record(tmp_path, monkeypatch):
    from aiki_hooks.issues import journal

    track = tracker(tmp_path, open_after=1)
    real = journal.append_locked

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "append_locked", full_disk)
    with pytest.raises(OSError):
        track.record(snapshot(*DOWN, now=T0), T0)
    assert journaled(tmp_path) == []
    monkeypatch.setattr(journal, "append_locked", real)
    written = track.record(snapshot(*DOWN, now=T0 + INTERVAL), T0 + INTERVAL)
    assert [(r["transition"], r["at"]) for r in written] == [("opened", T0)]
    assert journaled(tmp_path) == [("http:qdrant", "opened")]


KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from aiki_hooks.issues import journal
from aiki_hooks.issues import occurrences
from tests.issues.test_occurrences import DOWN, T0, snapshot, tracker

point = {point!r}
real_append, real_write = journal.append_locked, occurrences.atomic_write_bytes
writes = []

def append(*args, **kwargs):
    if point == "before_append":
        os.kill(os.getpid(), signal.SIGKILL)
    written = real_append(*args, **kwargs)
    if point == "after_append":
        os.kill(os.getpid(), signal.SIGKILL)
    return written

journal.append_locked = append
track = tracker({state!r}, open_after=1)
track.record(snapshot(*DOWN, now=T0), T0)
"""


@pytest.mark.parametrize("point", ["before_append", "after_append"])
def test_kill_9_between_journal_and_state_loses_and_repeats_nothing(tmp_path, point):
    import subprocess
    import sys

    from aiki_hooks.issues import journal
    from tests.conftest import REPO

    script = KILLER.format(repo=str(REPO), point=point, state=str(tmp_path))
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert killed.returncode == -9, killed.stderr
    assert len(journal.read(str(tmp_path))) == (1 if point == "after_append" else 0)
    # The restarted refresher: the issue is still there, then it recovers.
    track = tracker(tmp_path, open_after=1, resolve_after=1)
    track.record(snapshot(*DOWN, now=T0 + INTERVAL), T0 + INTERVAL)
    track.record(snapshot(*UP, now=T0 + 2 * INTERVAL), T0 + 2 * INTERVAL)
    records = journal.read(str(tmp_path))
    assert [(r["transition"], r["at"]) for r in records] == [("opened", T0), ("resolved", T0 + 2 * INTERVAL)]
    assert records[0]["occurrence_id"] == records[1]["occurrence_id"]
    assert len({r["record_id"] for r in records}) == 2
    assert "outbox" not in json.loads((tmp_path / STATE_NAME).read_text())
