"""What a `doctor` check finds: a level and, for a problem, what to do about it.

Its own module because the checks live beside what they check (the Claude Code settings
checks in install/settings.py) and doctor imports those."""

from __future__ import annotations

from dataclasses import dataclass

PASS, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Finding:
    level: str
    what: str
    fix: str = ""
