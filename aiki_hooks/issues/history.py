"""Journal records folded into occurrences, and their table / JSON forms (for
`aiki-hooks issues [--days N] [--json]`). Pure: records in, rows and text out."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from aiki_hooks.hooklib.text import clip
from aiki_hooks.model.dates import local_minute, utc_iso
from aiki_hooks.model.severity import RANK
from aiki_hooks.model.units import fmt_duration_words

SUMMARY_COLUMN_CHARS = 60


def occurrences(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dict per occurrence, oldest first:

    id, issue_id, probe, started_at, ended_at (None while open), duration_seconds (None
    while open), severity (the latest), max_severity, transitions (count of transition
    records seen), sessions (Claude Code sessions that began during it), last_summary.
    An occurrence whose `opened` record was rotated away is still folded from the rest:
    every record carries `started_at`.
    """
    folded: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("seq", 0)):
        occurrence_id = record.get("occurrence_id")
        if not occurrence_id:
            continue
        occ = folded.get(occurrence_id)
        if occ is None:
            occ = folded[occurrence_id] = {
                "id": occurrence_id, "issue_id": record.get("issue_id"), "probe": record.get("probe"),
                "started_at": record.get("started_at") or record.get("at"), "ended_at": None,
                "duration_seconds": None, "severity": None, "max_severity": None,
                "transitions": 0, "sessions": 0, "last_summary": None,
            }
        severity = record.get("severity")
        if severity in RANK:
            occ["severity"] = severity
            if occ["max_severity"] is None or RANK[severity] > RANK[occ["max_severity"]]:
                occ["max_severity"] = severity
        if record.get("summary"):
            occ["last_summary"] = record["summary"]
        if record.get("kind") == "session":
            occ["sessions"] += 1
            continue
        occ["transitions"] += 1
        if record.get("transition") == "resolved":
            occ["ended_at"] = record.get("at")
            occ["duration_seconds"] = record.get("duration_seconds")
    return sorted(folded.values(), key=lambda o: (o["started_at"] or 0, o["id"]))


def within_days(occs: Iterable[Mapping[str, Any]], *, now: float, days: float) -> list[dict[str, Any]]:
    """Occurrences that were open at some point in the last *days* (still open included)."""
    horizon = now - days * 86400
    return [dict(o) for o in occs if o["ended_at"] is None or o["ended_at"] >= horizon]


def render_table(occs: Iterable[Mapping[str, Any]], now: float, *, tz: _dt.tzinfo | None = None) -> str:
    """Newest first, one line each:

        STARTED           LASTED          WORST     ISSUE         SUMMARY
        2026-11-24 14:05  open, 20 min    WARNING   disk:/        91% used, 18.2 GiB free; warn at 90%
        2026-11-24 03:10  11 min          CRITICAL  http:qdrant   connection refused
    """
    rows = sorted(occs, key=lambda o: o["started_at"] or 0, reverse=True)
    if not rows:
        return "No issues recorded in the journal.\n"
    table = [("STARTED", "LASTED", "WORST", "ISSUE", "SUMMARY")]
    for occ in rows:
        started = occ["started_at"]
        if occ["ended_at"] is None:
            lasted = f"open, {fmt_duration_words(now - started)}" if started is not None else "open"
        else:
            lasted = fmt_duration_words(occ["duration_seconds"] or 0)
        table.append((
            local_minute(started, tz) if started is not None else "?",
            lasted,
            occ["max_severity"] or "?",
            occ["issue_id"] or "?",
            clip(occ["last_summary"] or "", SUMMARY_COLUMN_CHARS),
        ))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    # The first four columns padded (zip stops there on purpose), the summary as it is.
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4]
             for row in table]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def as_json(occs: Iterable[Mapping[str, Any]], now: float) -> dict[str, Any]:
    """The `--json` form: times as ISO 8601 UTC next to the epoch seconds, newest first."""
    rows = []
    for occ in sorted(occs, key=lambda o: o["started_at"] or 0, reverse=True):
        row = dict(occ)
        row["started"] = utc_iso(occ["started_at"]) if occ["started_at"] is not None else None
        row["ended"] = utc_iso(occ["ended_at"]) if occ["ended_at"] is not None else None
        row["open"] = occ["ended_at"] is None
        rows.append(row)
    return {"generated_at": utc_iso(now), "occurrences": rows}
