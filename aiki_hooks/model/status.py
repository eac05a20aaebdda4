"""The four states of a check, ordered by how much they matter.

Numeric values are the Nagios plugin exit codes (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN); *severity* orders them for "worst of": OK < UNKNOWN < WARNING < CRITICAL,
the order `model.severity` defines (by name, for the hooks). UNKNOWN means "could not
tell" (our instrument failed), never "bad".
"""

from __future__ import annotations

import enum
from typing import Iterable

from aiki_hooks.model.severity import RANK


class Status(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def label(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> "Status":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown status {text!r}") from None


_SEVERITY = {status: RANK[status.name] for status in Status}


def worst(statuses: Iterable[Status], default: Status = Status.OK) -> Status:
    """The most severe of *statuses* (OK < UNKNOWN < WARNING < CRITICAL)."""
    result = default
    for status in statuses:
        if status.severity > result.severity:
            result = status
    return result
