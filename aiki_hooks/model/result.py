"""What a cycle produces: probe results, the issues derived from them, and the snapshot.

All records are keyword-only frozen dataclasses with `to_dict` / `from_dict` so the cache
(JSON) is the single serialised form. Values are in base units (bytes, seconds, ratios
0..1, percent where the name says so).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from aiki_hooks.model.dates import parse_utc, utc_iso
from aiki_hooks.model.status import Status, worst

SCHEMA_VERSION = 1

Value = float | int | str | bool | None


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One judged aspect of a probe that is not OK; becomes an issue in the snapshot."""

    id: str
    status: Status
    summary: str


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What one probe measured and how it judged it."""

    name: str
    kind: str
    status: Status
    summary: str
    values: Mapping[str, Value] = field(default_factory=dict)
    checked_at: float = 0.0
    duration_ms: float = 0.0
    error_kind: str | None = None
    details: tuple[str, ...] = ()
    findings: tuple[Finding, ...] | None = None

    def issue_findings(self) -> tuple[Finding, ...]:
        """Findings that are not OK. A probe without explicit findings yields one issue
        named `<kind>:<name>` whenever its own status is not OK."""
        if self.findings is not None:
            return tuple(f for f in self.findings if f.status is not Status.OK)
        if self.status is Status.OK:
            return ()
        return (Finding(id=f"{self.kind}:{self.name}", status=self.status, summary=self.summary),)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status.name,
            "summary": self.summary,
            "values": dict(self.values),
            "checked_at": utc_iso(self.checked_at),
            "duration_ms": round(self.duration_ms, 2),
            "error_kind": self.error_kind,
            "details": list(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProbeResult":
        return cls(
            name=data["name"],
            kind=data["kind"],
            status=Status.parse(data["status"]),
            summary=data["summary"],
            values=dict(data.get("values") or {}),
            checked_at=parse_utc(data["checked_at"]),
            duration_ms=float(data.get("duration_ms") or 0.0),
            error_kind=data.get("error_kind"),
            details=tuple(data.get("details") or ()),
        )


@dataclass(frozen=True, kw_only=True)
class Issue:
    """One problem the agent is told of, with its stable id."""

    id: str
    severity: Status
    summary: str
    since: float
    probe: str
    # The journal's occurrence once the issue has held long enough to open there.
    occurrence_id: str | None = None
    # The user's runbook line for the check that raised it (`hint` in the config), made
    # safe like outside text; told to the agent beside the issue.
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.name,
            "summary": self.summary,
            "since": utc_iso(self.since),
            "probe": self.probe,
            "occurrence_id": self.occurrence_id,
            "hint": self.hint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Issue":
        return cls(
            id=data["id"],
            severity=Status.parse(data["severity"]),
            summary=data["summary"],
            since=parse_utc(data["since"]),
            probe=data.get("probe", ""),
            occurrence_id=data.get("occurrence_id"),
            hint=data.get("hint"),
        )


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """One cycle's results: what the cache holds."""

    generated_at: float
    interval_seconds: float
    host: str
    probes: tuple[ProbeResult, ...]
    issues: tuple[Issue, ...]
    schema_version: int = SCHEMA_VERSION
    # What the hooks need from the config, so they never parse TOML: {"guard": [rule, ...]}.
    hook_settings: Mapping[str, Any] = field(default_factory=dict)
    # Recurring trouble from the journal: [{"issue_id", "count", "text", ...}].
    patterns: tuple[Mapping[str, Any], ...] = ()

    @property
    def status(self) -> Status:
        return worst(p.status for p in self.probes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "generated_at": utc_iso(self.generated_at),
            "interval_seconds": self.interval_seconds,
            "host": self.host,
            "status": self.status.name,
            "probes": [p.to_dict() for p in self.probes],
            "issues": [i.to_dict() for i in self.issues],
            "hooks": dict(self.hook_settings),
            "patterns": [dict(p) for p in self.patterns],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Snapshot":
        return cls(
            schema_version=int(data["schema_version"]),
            generated_at=parse_utc(data["generated_at"]),
            interval_seconds=float(data["interval_seconds"]),
            host=data["host"],
            probes=tuple(ProbeResult.from_dict(p) for p in data["probes"]),
            issues=tuple(Issue.from_dict(i) for i in data["issues"]),
            hook_settings=dict(data.get("hooks") or {}),
            patterns=tuple(data.get("patterns") or ()),
        )


def derive_issues(
    probes: tuple[ProbeResult, ...] | list[ProbeResult],
    previous: tuple[Issue, ...] | list[Issue],
    now: float,
    hints: Mapping[str, str] | None = None,
) -> tuple[Issue, ...]:
    """Issues for this cycle, most severe first. An issue that was already open keeps its
    `since` (the start of this occurrence), even if its severity changed meanwhile.
    *hints* maps a result name to the user's hint, which each issue of that result carries."""
    opened_at = {issue.id: issue.since for issue in previous}
    hints = hints or {}
    issues = [
        Issue(
            id=finding.id,
            severity=finding.status,
            summary=finding.summary,
            since=opened_at.get(finding.id, now),
            probe=probe.name,
            hint=hints.get(probe.name),
        )
        for probe in probes
        for finding in probe.issue_findings()
    ]
    issues.sort(key=lambda i: (-i.severity.severity, i.since, i.id))
    return tuple(issues)


def replace(record, **changes):
    """dataclasses.replace, re-exported so callers need not import dataclasses."""
    return dataclasses.replace(record, **changes)
