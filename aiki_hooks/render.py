"""Pure rendering: snapshot dict -> text for a person. No I/O, no clock reads.

Works on the cache's JSON form (dicts) so the same code serves the CLI and, later,
the stdlib-only hooks. Every text taken from the snapshot goes through `_safe`: the
runner already strips control characters, but a cache written by an older version (or
by someone else) must not retitle the terminal or clear the screen either.
"""

from __future__ import annotations

from typing import Any, Mapping

from aiki_hooks.model.dates import clock, parse_utc
from aiki_hooks.model.severity import ANSI_COLORS, rank
from aiki_hooks.model.units import fmt_duration
from aiki_hooks.sanitize import strip_controls


def _safe(value: Any) -> str:
    return strip_controls(str(value))


def _paint(text: str, status: str, color: bool) -> str:
    if not color or status not in ANSI_COLORS:
        return text
    return f"\033[{ANSI_COLORS[status]}m{text}\033[0m"


def render_status(
    snapshot: Mapping[str, Any],
    *,
    now: float,
    color: bool = False,
    freshness: str = "fresh",
    note: str = "",
) -> str:
    """The `aiki-hooks status` report: header, issues (worst first), then every check."""
    status = _safe(snapshot.get("status", "UNKNOWN"))
    generated = parse_utc(snapshot["generated_at"])
    age = fmt_duration(now - generated)
    header = (
        f"aiki-hooks on {_safe(snapshot.get('host', '?'))}: {_paint(status, status, color)}"
        f"  (checked {clock(generated, seconds=True)}, {age} ago)"
    )
    lines = [header]
    note = _safe(note)
    if freshness != "fresh":
        lines.append(f"  note: health data is {freshness}" + (f": {note}" if note else ""))
    elif note:
        lines.append(f"  note: {note}")

    issues = list(snapshot.get("issues") or [])
    if issues:
        lines.append("")
        lines.append(f"Issues ({len(issues)}):")
        width = max(len(_safe(i["id"])) for i in issues)
        for issue in issues:
            sev = _safe(issue["severity"])
            lasted = fmt_duration(now - parse_utc(issue["since"]))
            lines.append(
                f"  {_paint(f'{sev:<8}', sev, color)} {_safe(issue['id']):<{width}}  {_safe(issue['summary'])}"
                f"  (for {lasted})"
            )
            if issue.get("hint"):  # the user's own runbook line for that check
                lines.append(f"  {'':<8} {'':<{width}}  hint: {_safe(issue['hint'])}")

    probes = list(snapshot.get("probes") or [])
    if probes:
        lines.append("")
        lines.append("Checks:")
        width = max(len(_safe(p["name"])) for p in probes)
        for probe in sorted(probes, key=lambda p: -rank(p["status"], default=rank("UNKNOWN"))):
            st = _safe(probe["status"])
            lines.append(f"  {_paint(f'{st:<8}', st, color)} {_safe(probe['name']):<{width}}  {_safe(probe['summary'])}")
            for detail in probe.get("details") or ():
                lines.append(f"  {'':<8} {'':<{width}}    | {_safe(detail)}")
    else:
        lines.append("")
        lines.append("No checks configured.")
    return "\n".join(lines)
