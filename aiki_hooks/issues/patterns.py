"""Recurring trouble, from the journal: "qdrant down 4x in 7 d, median 11 min, usually
03:00-04:00". Pure: journal records in, pattern dicts out (the snapshot's `patterns`)."""

from __future__ import annotations

import datetime as _dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiki_hooks.issues.history import occurrences
from aiki_hooks.model.severity import worst as severity_worst
from aiki_hooks.model.units import fmt_duration_words
from aiki_hooks.probes.registry import is_service_kind

MIN_OCCURRENCES = 2
# A usual time of day needs this many occurrences, this share of them inside one window.
USUAL_TIME_MIN_OCCURRENCES = 3
USUAL_TIME_SHARE = 2 / 3
USUAL_TIME_WINDOW_MINUTES = 120
MINUTES_PER_DAY = 24 * 60
_SERVICE_WORDS = {"CRITICAL": "down", "WARNING": "degraded", "UNKNOWN": "unchecked"}


def recurrence(records: Iterable[Mapping[str, Any]], *, now: float, days: int = 7,
               tz: _dt.tzinfo | None = None) -> list[dict[str, Any]]:
    """Issues that began at least twice in the last *days*, most frequent first.

    Each: issue_id, label, count, median_duration_seconds (of the resolved ones, or
    None), usual_hours ("03:00-04:00" or None), last_started_at, text.
    """
    horizon = now - days * 86400
    transitions = [r for r in records if r.get("kind") == "transition"]
    by_issue: dict[str, list[dict[str, Any]]] = {}
    for occ in occurrences(transitions):
        if occ["issue_id"] and occ["started_at"] is not None and horizon <= occ["started_at"] <= now:
            by_issue.setdefault(occ["issue_id"], []).append(occ)
    patterns = []
    for issue_id, occs in by_issue.items():
        if len(occs) < MIN_OCCURRENCES:
            continue
        durations = [o["duration_seconds"] for o in occs if o["ended_at"] is not None and o["duration_seconds"] is not None]
        median = statistics.median(durations) if durations else None
        window = usual_hours([o["started_at"] for o in occs], tz=tz)
        label = pattern_label(issue_id, occs[-1]["probe"])
        worst = severity_worst((o["max_severity"] for o in occs if o["max_severity"]), default="WARNING")
        parts = [f"{label} {pattern_word(issue_id, worst)} {len(occs)}x in {days} d"]
        if median is not None:
            parts.append(f"median {fmt_duration_words(median)}")
        if window is not None:
            parts.append(f"usually {window}")
        patterns.append({
            "issue_id": issue_id, "label": label, "count": len(occs), "median_duration_seconds": median,
            "usual_hours": window, "last_started_at": max(o["started_at"] for o in occs),
            "text": ", ".join(parts),
        })
    patterns.sort(key=lambda p: (-p["count"], p["issue_id"]))
    return patterns


def usual_hours(starts: Sequence[float], *, tz: _dt.tzinfo | None = None) -> str | None:
    """The local hours most starts fall in ("03:00-04:00"), when at least
    USUAL_TIME_MIN_OCCURRENCES started and USUAL_TIME_SHARE of them within one
    two-hour window (which may span midnight); else None."""
    if len(starts) < USUAL_TIME_MIN_OCCURRENCES:
        return None
    minutes = sorted(_minute_of_day(epoch, tz) for epoch in starts)
    best_start = 0
    best_members: list[int] = []
    for start in minutes:
        members = [m for m in minutes if (m - start) % MINUTES_PER_DAY < USUAL_TIME_WINDOW_MINUTES]
        if len(members) > len(best_members):
            best_start, best_members = start, members
    if len(best_members) < USUAL_TIME_SHARE * len(minutes):
        return None
    latest = best_start + max((m - best_start) % MINUTES_PER_DAY for m in best_members)
    first_hour = best_start // 60
    end_hour = (latest // 60 + 1) % 24
    return f"{first_hour:02d}:00-{end_hour:02d}:00"


def pattern_label(issue_id: str, probe: str | None) -> str:
    """"qdrant" for http:qdrant raised by probe qdrant, "disk /" for disk:/, else the id."""
    kind, _, name = issue_id.partition(":")
    if is_service_kind(kind) and name and name == probe:
        return name
    if kind == "disk":
        return f"disk {name}"
    return issue_id


def pattern_word(issue_id: str, severity: str) -> str:
    """What happened, by the kind of issue and its worst severity: down, degraded, high..."""
    kind = issue_id.partition(":")[0]
    if is_service_kind(kind):
        return _SERVICE_WORDS.get(severity, "flagged")
    if severity == "UNKNOWN":
        return "unreadable"
    return "over budget" if kind == "costs" else "high"


def _minute_of_day(epoch: float, tz: _dt.tzinfo | None) -> int:
    moment = _dt.datetime.fromtimestamp(epoch, tz)
    return moment.hour * 60 + moment.minute
