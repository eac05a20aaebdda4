"""Pure threshold logic: the single source of truth for levels. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from aiki_hooks.model.status import Status

# The formats are defined in model.units; probes import them from here with the judge.
from aiki_hooks.model.units import GIB, MIB, fmt_bytes, fmt_duration, fmt_gib, fmt_percent, fmt_seconds, round_seconds

__all__ = ["GIB", "MIB", "Threshold", "fmt_bytes", "fmt_duration", "fmt_gib", "fmt_percent", "fmt_seconds",
           "judge", "judge_time_left", "round_seconds"]


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

    def explain(self, status: Status, fmt: Callable[[float], str], *, word: str = "at") -> str:
        """The level that was crossed, as text ("warn at 90%"), or "" when OK."""
        if status is Status.CRITICAL and self.crit is not None:
            return f"crit {word} {fmt(self.crit)}"
        if status is Status.WARNING and self.warn is not None:
            return f"warn {word} {fmt(self.warn)}"
        return ""


def judge(value: float, threshold: Threshold, fmt: Callable[[float], str]) -> tuple[Status, str]:
    """Status of *value* and the explanation of the crossed level."""
    status = threshold.evaluate(value)
    return status, threshold.explain(status, fmt)


def judge_time_left(seconds: float | None, hours: Threshold) -> tuple[Status, str]:
    """Status of the time left before something runs out, against a lower-is-worse
    threshold in hours, and the crossed level as "warn within 24 h". Nothing running out
    (None) is OK."""
    if seconds is None:
        return Status.OK, ""
    status = hours.evaluate(seconds / 3600.0)
    return status, hours.explain(status, lambda level: f"{level:g} h", word="within")
