"""Successive snapshots -> issue transitions for the journal, with flap damping.

An issue id must be present for `open_after_cycles` consecutive cycles before its
occurrence opens, and an open occurrence must be absent for `resolve_after_cycles`
consecutive cycles before it resolves: a probe that fails once in a while writes
nothing. Severity changes of an open occurrence are recorded at once. The times in the
records are the real ones (when the issue was first seen, when it was last seen), not
the moments the damping elapsed.

State (`occurrences.json` in the state dir, 0600, replaced atomically) is small JSON, so
a restarted refresher continues the same occurrences instead of opening them again.
Sentence building is pure (`*_sentence`, `issue_label`) and tested with tables.

Several engines may share a state dir (the refresher, a one-shot `aiki-hooks refresh`,
`status` on a stale cache). So `record` works under the journal's lock and re-reads the
state every time: whoever comes second sees the occurrence the first one opened. An
observation older than the state's last update is ignored (a slow one-shot must not
undo what the refresher already saw).

Durability (`record`): the new state is saved together with the cycle's records as an
"outbox", then the records are appended to the journal, then the state is saved without
the outbox. After a crash (or a failed append) anywhere in between, the next `record`
finds the outbox and appends the records whose record_id is not in the journal after
the outbox's `base_seq`: nothing is lost, nothing is journaled twice, and the state
always matches the journal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiki_hooks.config.load import JournalConfig
from aiki_hooks.cycle.cache import atomic_write_bytes
from aiki_hooks.hooklib.text import clip
from aiki_hooks.issues import journal
from aiki_hooks.issues.journal import TRANSITION, make_record
from aiki_hooks.model.dates import clock
from aiki_hooks.model.result import Issue, ProbeResult, Snapshot
from aiki_hooks.model.status import Status
from aiki_hooks.model.units import fmt_duration_words
from aiki_hooks.paths import read_state_file
from aiki_hooks.probes.net import CONNECTION_FAILED, DNS_ERROR, TIMEOUT
from aiki_hooks.probes.registry import is_service_kind

STATE_NAME = "occurrences.json"
STATE_VERSION = 1

OPENED = "opened"
ESCALATED = "escalated"
DE_ESCALATED = "de-escalated"
RESOLVED = "resolved"

RESOURCES = "resources"
# error_kind values that mean the target did not answer at all.
NO_ANSWER = frozenset({CONNECTION_FAILED, TIMEOUT, DNS_ERROR})
MAX_CONTEXT_SERVICES = 3
SENTENCE_LIMIT = 240
SUMMARY_CHARS = 110
CONTEXT_NAME_CHARS = 40


@dataclass(kw_only=True)
class Pending:
    """An issue seen in consecutive cycles, not yet long enough to open."""

    first_seen: float
    cycles: int


@dataclass(kw_only=True)
class Occurrence:
    """An open occurrence. `absent_since` is the first cycle without the issue, while
    it waits out `resolve_after_cycles`."""

    occurrence_id: str
    issue_id: str
    severity: str
    started_at: float
    probe: str
    kind: str
    summary: str
    absent_cycles: int = 0
    absent_since: float | None = None
    severity_changes: int = 0
    hint: str | None = None  # the check's, as the latest cycle had it


class IssueTracker:
    """Turns each cycle's snapshot into journal records (without `seq`).

    `config` may be replaced between cycles (the refresher reloads an edited config).
    """

    def __init__(self, state_dir: str | os.PathLike, config: JournalConfig, *, host: str) -> None:
        self.path = os.path.join(os.fspath(state_dir), STATE_NAME)
        self.config = config
        self.host = host
        self.state_dir = os.fspath(state_dir)
        self.pending: dict[str, Pending] = {}
        self.open: dict[str, Occurrence] = {}
        self.updated_at: float | None = None
        self.outbox: list[dict[str, Any]] = []
        self.base_seq = 0
        self._saved = b""
        self._load()

    def record(self, snapshot: Snapshot, now: float, *, max_bytes: int = journal.DEFAULT_MAX_BYTES,
               keep_files: int = journal.DEFAULT_KEEP_FILES) -> list[dict[str, Any]]:
        """This cycle's transitions, journaled; returns the records written (with seq),
        including any an earlier interrupted call left in the outbox. Raises OSError when
        the journal or the state cannot be written; the next call finishes the job."""
        options = {"max_bytes": max_bytes, "keep_files": keep_files}
        with journal.locked(self.state_dir):
            try:
                self._load()
                written = self._flush_outbox(options)
                if self.updated_at is not None and now < self.updated_at:
                    return written
                records = self._transitions(snapshot, now)
                if records:
                    self.outbox, self.base_seq = records, journal.last_seq(self.state_dir)
                    self._save()
                    written += journal.append_locked(self.state_dir, records, **options)
                    self.outbox, self.base_seq = [], 0
                self._save()
            except BaseException:
                self._saved = b""  # memory may be ahead of the file: re-read it next time
                raise
        return written

    def update(self, snapshot: Snapshot, now: float) -> list[dict[str, Any]]:
        """`record` without the journal: the transitions (without seq), state saved.
        Also under the lock, with the state re-read."""
        with journal.locked(self.state_dir):
            try:
                self._load()
                records = self._transitions(snapshot, now)
                self._save()
            except BaseException:
                self._saved = b""
                raise
        return records

    def _flush_outbox(self, options: dict[str, int]) -> list[dict[str, Any]]:
        if not self.outbox:
            return []
        landed, _ = journal.records_after(self.state_dir, self.base_seq, lock=False)
        known = {r.get("record_id") for r in landed}
        written = journal.append_locked(self.state_dir, [r for r in self.outbox if r.get("record_id") not in known],
                                        **options)
        self.outbox, self.base_seq = [], 0
        self._save()
        return written

    def _transitions(self, snapshot: Snapshot, now: float) -> list[dict[str, Any]]:
        present = {issue.id: issue for issue in snapshot.issues if issue.severity is not Status.OK}
        records = []
        for issue_id in sorted(self.open):
            occurrence = self.open[issue_id]
            issue = present.get(issue_id)
            if issue is None:
                records.extend(self._absent(occurrence, snapshot, now))
            else:
                records.extend(self._still_present(occurrence, issue, now))
        self.pending = {issue_id: pending for issue_id, pending in self.pending.items() if issue_id in present}
        for issue_id in sorted(present.keys() - self.open.keys()):
            records.extend(self._candidate(present[issue_id], snapshot, now))
        self.updated_at = now
        return records

    def open_occurrences(self) -> dict[str, dict[str, Any]]:
        """{issue_id: {occurrence_id, severity, started_at}} for the cache's issues."""
        return {
            issue_id: {"occurrence_id": o.occurrence_id, "severity": o.severity, "started_at": o.started_at}
            for issue_id, o in self.open.items()
        }

    # ------------------------------------------------------------------ transitions

    def _candidate(self, issue: Issue, snapshot: Snapshot, now: float) -> list[dict[str, Any]]:
        pending = self.pending.setdefault(issue.id, Pending(first_seen=now, cycles=0))
        pending.cycles += 1
        if pending.cycles < self.config.open_after_cycles:
            return []
        del self.pending[issue.id]
        probe = find_probe(snapshot.probes, issue)
        occurrence = Occurrence(
            occurrence_id=uuid.uuid4().hex, issue_id=issue.id, severity=issue.severity.name,
            started_at=pending.first_seen, probe=issue.probe, kind=issue_kind(issue.id, probe),
            summary=issue.summary, hint=issue.hint,
        )
        self.open[issue.id] = occurrence
        sentence = opened_sentence(
            label=issue_label(issue.id, occurrence.probe, occurrence.kind), kind=occurrence.kind,
            severity=occurrence.severity, summary=issue.summary, started_at=occurrence.started_at,
            error_kind=probe.error_kind if probe else None,
            context=ok_services(snapshot.probes) if is_service_kind(occurrence.kind) else (),
        )
        return [self._record(occurrence, OPENED, sentence, at=now)]

    def _still_present(self, occurrence: Occurrence, issue: Issue, now: float) -> list[dict[str, Any]]:
        occurrence.absent_cycles = 0
        occurrence.absent_since = None
        occurrence.summary = issue.summary
        occurrence.hint = issue.hint
        previous = occurrence.severity
        if issue.severity.name == previous:
            return []
        transition = ESCALATED if issue.severity.severity > Status[previous].severity else DE_ESCALATED
        occurrence.severity = issue.severity.name
        occurrence.severity_changes += 1
        sentence = changed_sentence(
            label=issue_label(occurrence.issue_id, occurrence.probe, occurrence.kind), previous=previous,
            severity=occurrence.severity, summary=issue.summary, at=now, started_at=occurrence.started_at,
        )
        return [self._record(occurrence, transition, sentence, at=now, previous_severity=previous)]

    def _absent(self, occurrence: Occurrence, snapshot: Snapshot, now: float) -> list[dict[str, Any]]:
        occurrence.absent_cycles += 1
        if occurrence.absent_since is None:
            occurrence.absent_since = now
        if occurrence.absent_cycles < self.config.resolve_after_cycles:
            return []
        del self.open[occurrence.issue_id]
        recovered_at = occurrence.absent_since
        lasted = max(0.0, recovered_at - occurrence.started_at)
        probe = next((p for p in snapshot.probes if p.name == occurrence.probe and p.status is Status.OK), None)
        sentence = resolved_sentence(
            label=issue_label(occurrence.issue_id, occurrence.probe, occurrence.kind), kind=occurrence.kind,
            recovered_at=recovered_at, duration_seconds=lasted, now_summary=probe.summary if probe else None,
        )
        return [self._record(occurrence, RESOLVED, sentence, at=now, duration_seconds=lasted)]

    def _record(self, occurrence: Occurrence, transition: str, sentence: str, *, at: float,
                previous_severity: str | None = None, duration_seconds: float | None = None) -> dict[str, Any]:
        record_id = f"{occurrence.occurrence_id}:{transition}"
        if transition in (ESCALATED, DE_ESCALATED) and occurrence.severity_changes > 1:
            # An occurrence can escalate more than once; record_id must stay unique.
            record_id += f":{occurrence.severity_changes}"
        return make_record(
            at=at, kind=TRANSITION, record_id=record_id, occurrence_id=occurrence.occurrence_id,
            issue_id=occurrence.issue_id, transition=transition, severity=occurrence.severity,
            previous_severity=previous_severity, probe=occurrence.probe, summary=occurrence.summary,
            sentence=sentence, started_at=occurrence.started_at, duration_seconds=duration_seconds, host=self.host,
            # A resolved check needs no runbook.
            hint=None if transition == RESOLVED else occurrence.hint,
        )

    # ------------------------------------------------------------------ state file

    def _load(self) -> None:
        """Continue from the state file; a missing, corrupt or foreign one starts fresh."""
        try:
            raw = read_state_file(self.path)  # no link, no FIFO, bounded size
        except FileNotFoundError:
            raw = b""
        except OSError:
            return  # unreadable now (or not a regular file): keep what this process knows
        if raw == self._saved and raw:
            return  # nobody else wrote it since we did
        self.pending, self.open, self.updated_at, self.outbox, self.base_seq = {}, {}, None, [], 0
        self._saved = b""
        try:
            data = json.loads(raw)
            if data.get("version") != STATE_VERSION:
                return
            pending = {k: Pending(**v) for k, v in data["pending"].items()}
            opened = {k: Occurrence(**v) for k, v in data["open"].items()}
            updated_at = data.get("updated_at")
            outbox = [r for r in data.get("outbox") or () if isinstance(r, dict)]
            base_seq = int(data.get("base_seq") or 0)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return
        self.pending, self.open, self._saved = pending, opened, raw
        self.updated_at = float(updated_at) if isinstance(updated_at, (int, float)) else None
        self.outbox, self.base_seq = outbox, base_seq

    def _save(self) -> None:
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "pending": {k: dataclasses.asdict(v) for k, v in self.pending.items()},
            "open": {k: dataclasses.asdict(v) for k, v in self.open.items()},
        }
        if self.outbox:
            data["outbox"], data["base_seq"] = self.outbox, self.base_seq
        if _without_updated_at(self._saved) == data:
            return  # most cycles change nothing: spare the disk an fsync (updated_at alone is not worth one)
        data["updated_at"] = self.updated_at
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
        atomic_write_bytes(self.path, payload)
        self._saved = payload


def _without_updated_at(raw: bytes) -> dict[str, Any] | None:
    if not raw:
        return None
    data = json.loads(raw)
    data.pop("updated_at", None)
    return data


# --------------------------------------------------------------------------- words (pure)


def find_probe(probes: Sequence[ProbeResult], issue: Issue) -> ProbeResult | None:
    """The probe that raised *issue*: by name, preferring the kind the id names."""
    named = [p for p in probes if p.name == issue.probe]
    for probe in named:
        if issue.id.startswith(f"{probe.kind}:"):
            return probe
    return named[0] if named else None


def issue_kind(issue_id: str, probe: ProbeResult | None) -> str:
    if probe is not None:
        return probe.kind
    return issue_id.split(":", 1)[0] if ":" in issue_id else ""


def issue_label(issue_id: str, probe: str, kind: str) -> str:
    """How a sentence names an issue: "qdrant (http)", "disk /", "memory", "costs:today"."""
    if kind == RESOURCES:
        return issue_id.replace(":", " ", 1)
    if probe and issue_id == f"{kind}:{probe}":
        return f"{probe} ({kind})"
    return issue_id


def ok_services(probes: Iterable[ProbeResult]) -> list[tuple[str, str]]:
    """(name, kind) of services that are fine, as context for an outage (at most 3)."""
    return [(p.name, p.kind) for p in probes
            if is_service_kind(p.kind) and p.status is Status.OK][:MAX_CONTEXT_SERVICES]


def _still(name: str, kind: str) -> str:
    state = {"systemd": "active", "http": "answering", "tcp": "answering"}.get(kind, "OK")
    return f"{clip(name, CONTEXT_NAME_CHARS)} still {state}"


def opened_sentence(*, label: str, kind: str, severity: str, summary: str, started_at: float,
                    error_kind: str | None = None, context: Sequence[tuple[str, str]] = ()) -> str:
    """ "qdrant (http) stopped answering at 14:05 (connection refused); aiki-memory.service
    still active." / "disk / crossed 91% used at 14:05 (18.2 GiB free; warn at 90%)." """
    at = clock(started_at)
    summary = clip(summary, SUMMARY_CHARS)
    if severity == Status.UNKNOWN.name:
        main = f"{label} could not be checked from {at} ({summary})"
    elif kind == RESOURCES:
        # Resource summaries read "91% used, 18.2 GiB free; warn at 90%": the first
        # figure is what crossed a level, the rest explains it.
        head, *levels = summary.split("; ")
        first, _, others = head.partition(", ")
        rest = "; ".join(part for part in (others, *levels) if part)
        main = f"{label} crossed {first} at {at}" + (f" ({rest})" if rest else "")
    elif severity == Status.CRITICAL.name and kind in ("http", "tcp") and error_kind in NO_ANSWER:
        main = f"{label} stopped answering at {at} ({summary})"
    elif severity == Status.CRITICAL.name and kind == "systemd":
        main = f"{label} went down at {at} ({summary})"
    elif severity == Status.CRITICAL.name and is_service_kind(kind):
        main = f"{label} failed its check at {at} ({summary})"
    else:
        main = f"{label} turned {severity} at {at} ({summary})"
    still = ", ".join(_still(name, service_kind) for name, service_kind in context)
    return _fit(main, f"; {still}" if still else "")


def changed_sentence(*, label: str, previous: str, severity: str, summary: str, at: float,
                     started_at: float) -> str:
    """ "qdrant (http) went from WARNING to CRITICAL at 14:07 (connection refused); open since 14:05." """
    main = f"{label} went from {previous} to {severity} at {clock(at)} ({clip(summary, SUMMARY_CHARS)})"
    return _fit(main, f"; open since {clock(started_at)}")


def resolved_sentence(*, label: str, kind: str, recovered_at: float, duration_seconds: float,
                      now_summary: str | None = None) -> str:
    """ "qdrant (http) recovered at 14:19 after 14 min." / "disk / back within its levels at
    14:19 after 2 h 05 min (now 80% used, 40.0 GiB free)." """
    lasted = fmt_duration_words(duration_seconds)
    if kind == RESOURCES:
        main = f"{label} back within its levels at {clock(recovered_at)} after {lasted}"
        return _fit(main, f" (now {clip(now_summary, SUMMARY_CHARS)})" if now_summary else "")
    return _fit(f"{label} recovered at {clock(recovered_at)} after {lasted}", "")


def _fit(main: str, context: str) -> str:
    """Main clause plus optional context, under SENTENCE_LIMIT: context goes first."""
    if len(main) + len(context) + 1 <= SENTENCE_LIMIT:
        return f"{main}{context}."
    return clip(main, SENTENCE_LIMIT - 1) + "."
