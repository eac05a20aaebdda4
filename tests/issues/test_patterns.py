"""Recurring trouble from journal records (patterns) and the occurrence history that
`aiki-hooks issues` shows (issue_history, which patterns builds on)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from aiki_hooks.issues.history import as_json, occurrences, render_table, within_days
from aiki_hooks.issues.journal import make_record
from aiki_hooks.issues.patterns import pattern_label, pattern_word, recurrence, usual_hours

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
DAY = 86400


def utc(day: int, hh_mm: str) -> float:
    hours, minutes = map(int, hh_mm.split(":"))
    return dt.datetime(2026, 11, day, hours, minutes, tzinfo=UTC).timestamp()


class Journal:
    """Builds records as the tracker writes them, with increasing seq."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def _add(self, **fields) -> None:
        self.records.append({"seq": len(self.records) + 1, **make_record(host="box", **fields)})

    def occurrence(self, occ_id: str, issue_id: str, probe: str, start: float, minutes: float | None,
                   severity: str = "CRITICAL", summary: str = "connection refused") -> Journal:
        common = dict(kind="transition", occurrence_id=occ_id, issue_id=issue_id, probe=probe, started_at=start,
                      severity=severity, summary=summary)
        self._add(at=start + 120, record_id=f"{occ_id}:opened", transition="opened", **common)
        if minutes is not None:
            self._add(at=start + minutes * 60 + 120, record_id=f"{occ_id}:resolved", transition="resolved",
                      duration_seconds=minutes * 60, **common)
        return self

    def escalation(self, occ_id: str, issue_id: str, start: float, at: float, severity: str) -> Journal:
        self._add(at=at, kind="transition", record_id=f"{occ_id}:escalated", occurrence_id=occ_id,
                  issue_id=issue_id, transition="escalated", severity=severity, previous_severity="WARNING",
                  started_at=start, summary="now worse")
        return self

    def session(self, occ_id: str, issue_id: str, start: float, at: float) -> Journal:
        self._add(at=at, kind="session", record_id=f"session:s1:{occ_id}", occurrence_id=occ_id, issue_id=issue_id,
                  transition="session_began", severity="CRITICAL", started_at=start, session_id="s1", cwd="/p")
        return self


def nightly_qdrant() -> Journal:
    journal = Journal()
    for n, (day, start, minutes) in enumerate([(18, "03:10", 9), (20, "03:20", 11), (22, "03:05", 14),
                                               (23, "03:40", 12)]):
        journal.occurrence(f"q{n}", "http:qdrant", "qdrant", utc(day, start), minutes)
    return journal


def test_recurrence_counts_median_and_usual_hours():
    [pattern] = recurrence(nightly_qdrant().records, now=NOW, tz=UTC)
    assert pattern["text"] == "qdrant down 4x in 7 d, median 11 min, usually 03:00-04:00"
    assert (pattern["issue_id"], pattern["count"], pattern["usual_hours"]) == ("http:qdrant", 4, "03:00-04:00")
    assert pattern["median_duration_seconds"] == 11.5 * 60
    assert pattern["last_started_at"] == utc(23, "03:40")


def test_recurrence_ignores_single_occurrences_and_old_ones_and_sorts_by_count():
    journal = nightly_qdrant()
    journal.occurrence("d1", "disk:/", "disk:/", utc(21, "10:00"), 60, severity="WARNING", summary="91% used")
    journal.occurrence("d2", "disk:/", "disk:/", utc(23, "18:00"), None, severity="WARNING", summary="92% used")
    journal.occurrence("p1", "tcp:postgres", "postgres", utc(22, "08:00"), 5)
    journal.occurrence("p0", "tcp:postgres", "postgres", NOW - 8 * DAY, 5)  # outside the 7 days
    patterns = recurrence(journal.records, now=NOW, tz=UTC)
    assert [(p["issue_id"], p["count"]) for p in patterns] == [("http:qdrant", 4), ("disk:/", 2)]
    # Two occurrences are too few for a usual time; one still open counts but has no duration.
    assert patterns[1]["text"] == "disk / high 2x in 7 d, median 1 h"


def test_recurrence_without_resolved_occurrences_has_no_median():
    journal = Journal()
    journal.occurrence("a", "memory", "memory", utc(22, "09:00"), None, severity="WARNING")
    journal.occurrence("b", "memory", "memory", utc(23, "15:00"), None, severity="WARNING")
    [pattern] = recurrence(journal.records, now=NOW, days=3, tz=UTC)
    assert pattern["text"] == "memory high 2x in 3 d"
    assert pattern["median_duration_seconds"] is None


def test_recurrence_uses_the_worst_severity_including_escalations():
    journal = Journal()
    journal.occurrence("a", "http:qdrant", "qdrant", utc(22, "09:00"), 5, severity="WARNING")
    journal.occurrence("b", "http:qdrant", "qdrant", utc(23, "09:00"), 5, severity="WARNING")
    assert recurrence(journal.records, now=NOW, tz=UTC)[0]["text"].startswith("qdrant degraded 2x")
    journal.escalation("b", "http:qdrant", utc(23, "09:00"), utc(23, "09:02"), "CRITICAL")
    assert recurrence(journal.records, now=NOW, tz=UTC)[0]["text"].startswith("qdrant down 2x")


@pytest.mark.parametrize("starts, expected", [
    pytest.param(["03:10", "03:20", "03:50"], "03:00-04:00", id="one-hour"),
    pytest.param(["02:50", "03:30", "04:40"], "02:00-05:00", id="within-two-hours"),
    pytest.param(["03:00", "05:00", "09:00"], None, id="spread-out"),
    pytest.param(["03:00", "03:30"], None, id="too-few"),
    pytest.param(["23:30", "00:15", "00:40", "14:00"], "23:00-01:00", id="across-midnight"),
    pytest.param(["10:00", "10:30", "17:00", "22:00"], None, id="half-is-not-two-thirds"),
    pytest.param(["10:00", "10:30", "11:00", "17:00", "22:00", "22:30"], None, id="three-of-six"),
    pytest.param(["10:00", "10:30", "11:00", "11:20", "22:00", "22:30"], "10:00-12:00", id="four-of-six"),
])
def test_usual_hours(starts, expected):
    assert usual_hours([utc(20 + i % 3, s) for i, s in enumerate(starts)], tz=UTC) == expected


@pytest.mark.parametrize("issue_id, probe, label", [
    ("http:qdrant", "qdrant", "qdrant"),
    ("systemd:aiki-memory.service", "aiki-memory.service", "aiki-memory.service"),
    ("http:qdrant", None, "http:qdrant"),
    ("disk:/home", "disk:/home", "disk /home"),
    ("costs:today", "claude", "costs:today"),
    ("cpu", "cpu", "cpu"),
])
def test_pattern_label(issue_id, probe, label):
    assert pattern_label(issue_id, probe) == label


@pytest.mark.parametrize("issue_id, severity, word", [
    ("http:qdrant", "CRITICAL", "down"),
    ("tcp:postgres", "WARNING", "degraded"),
    ("systemd:x.service", "UNKNOWN", "unchecked"),
    ("memory", "CRITICAL", "high"),
    ("disk:/", "UNKNOWN", "unreadable"),
    ("costs:today", "WARNING", "over budget"),
])
def test_pattern_word(issue_id, severity, word):
    assert pattern_word(issue_id, severity) == word


# --------------------------------------------------------------------------- issue history


def test_occurrences_fold_transitions_and_sessions():
    start = utc(23, "14:05")
    journal = Journal().occurrence("a", "http:qdrant", "qdrant", start, None, severity="WARNING", summary="slow")
    journal.escalation("a", "http:qdrant", start, start + 300, "CRITICAL")
    journal.session("a", "http:qdrant", start, start + 400)
    journal.occurrence("b", "disk:/", "disk:/", utc(22, "10:00"), 30, severity="WARNING", summary="91% used")
    occs = occurrences(journal.records)
    assert [o["id"] for o in occs] == ["b", "a"]
    b, a = occs
    assert (a["ended_at"], a["duration_seconds"], a["max_severity"], a["severity"]) == (None, None, "CRITICAL", "CRITICAL")
    assert (a["transitions"], a["sessions"], a["last_summary"], a["started_at"]) == (2, 1, "now worse", start)
    assert (b["ended_at"], b["duration_seconds"], b["transitions"]) == (utc(22, "10:00") + 30 * 60 + 120, 1800, 2)


def test_an_occurrence_whose_opened_record_rotated_away_is_still_folded():
    records = nightly_qdrant().records
    resolved_only = [r for r in records if r["record_id"] == "q0:resolved"]
    [occ] = occurrences(resolved_only)
    assert (occ["started_at"], occ["duration_seconds"], occ["transitions"]) == (utc(18, "03:10"), 540, 1)


def test_within_days_keeps_open_and_recently_ended_occurrences():
    journal = nightly_qdrant().occurrence("open", "memory", "memory", NOW - 30 * DAY, None)
    # q2 ended on the 22nd at 03:21, before the horizon (22nd 12:00); q3 on the 23rd.
    kept = within_days(occurrences(journal.records), now=NOW, days=2)
    assert sorted(o["id"] for o in kept) == ["open", "q3"]


def test_render_table():
    journal = Journal()
    journal.occurrence("a", "http:qdrant", "qdrant", utc(23, "03:10"), 11)
    journal.occurrence("b", "disk:/", "disk:/", NOW - 20 * 60, None, severity="WARNING",
                       summary="91% used, 18.2 GiB free; warn at 90%")
    table = render_table(occurrences(journal.records), NOW, tz=UTC)
    assert table == (
        "STARTED           LASTED        WORST     ISSUE        SUMMARY\n"
        "2026-11-24 11:40  open, 20 min  WARNING   disk:/       91% used, 18.2 GiB free; warn at 90%\n"
        "2026-11-23 03:10  11 min        CRITICAL  http:qdrant  connection refused\n"
    )
    assert render_table([], NOW) == "No issues recorded in the journal.\n"


def test_as_json_is_serialisable_with_iso_times():
    journal = Journal().occurrence("a", "http:qdrant", "qdrant", utc(23, "03:10"), 11)
    data = json.loads(json.dumps(as_json(occurrences(journal.records), NOW)))
    assert data["generated_at"] == "2026-11-24T12:00:00.000Z"
    [row] = data["occurrences"]
    assert (row["id"], row["started"], row["ended"], row["open"]) == (
        "a", "2026-11-23T03:10:00.000Z", "2026-11-23T03:23:00.000Z", False)
