"""Pure threshold logic: the single source of truth for levels. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from aiki_hooks.model.status import Status


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """Warn / crit levels for one value.

    `higher_is_worse=False` is for values such as free disk space, where falling *below*
    the level is the problem. A level of None disables it.
    """

    warn: float | None
    crit: float | None
    higher_is_worse: bool = True

    def evaluate(self, value: float) -> Status:
        if self.crit is not None and self._crossed(value, self.crit):
            return Status.CRITICAL
        if self.warn is not None and self._crossed(value, self.warn):
            return Status.WARNING
        return Status.OK

    def _crossed(self, value: float, level: float) -> bool:
        return value >= level if self.higher_is_worse else value <= level

    def explain(self, status: Status, fmt: Callable[[float], str]) -> str:
        """The level that was crossed, as text ("warn at 90%"), or "" when OK."""
        if status is Status.CRITICAL and self.crit is not None:
            return f"crit at {fmt(self.crit)}"
        if status is Status.WARNING and self.warn is not None:
            return f"warn at {fmt(self.warn)}"
        return ""


def judge(value: float, threshold: Threshold, fmt: Callable[[float], str]) -> tuple[Status, str]:
    """Status of *value* and the explanation of the crossed level."""
    status = threshold.evaluate(value)
    return status, threshold.explain(status, fmt)


def fmt_percent(value: float) -> str:
    return f"{value:.0f}%"


GIB = 1024**3
MIB = 1024**2


def fmt_bytes(value: float) -> str:
    """Human size in binary units: 18.2 GiB, 512 MiB, 900 KiB."""
    for unit, size in (("TiB", 1024**4), ("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_gib(value: float) -> str:
    return f"{value:g} GiB"


def fmt_seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"


def round_seconds(value: float | None) -> float | None:
    """Seconds to microsecond precision: finer digits are noise in a JSON cache."""
    return None if value is None else round(value, 6)


def fmt_duration(seconds: float) -> str:
    """Compact duration: 45s, 14m, 3h05m, 3d."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m"
    return f"{seconds // 86400}d"
