"""Figures from the index: pure functions over messages (no I/O but the time zone).

- days: calendar days in the configured time zone (default: the machine's);
- the 5-hour billing block, as ccusage defines it: a block starts at the hour (UTC) of the
  first message after the previous block ended or after a gap of 5 hours, and lasts 5 hours;
- sessions by `sessionId`;
- tokens of models missing from the price book are reported as unpriced, with Claude
  Code's own price for them (its `cost-state` lines) shared out by tokens when known.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .store import Message

BLOCK_SECONDS = 5 * 3600


@dataclass
class Totals:
    input: int = 0
    output: int = 0
    cache_write: int = 0
    cache_read: int = 0
    cost: float = 0.0
    unpriced_tokens: int = 0
    messages: int = 0

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_write + self.cache_read

    def add(self, m: Message) -> None:
        self.input += m.input
        self.output += m.output
        self.cache_write += m.cache_write_5m + m.cache_write_1h
        self.cache_read += m.cache_read
        self.messages += 1
        if m.cost is None:
            self.unpriced_tokens += m.tokens
        else:
            self.cost += m.cost

    def as_dict(self) -> dict:
        return {"input_tokens": self.input, "output_tokens": self.output, "cache_write_tokens": self.cache_write,
                "cache_read_tokens": self.cache_read, "total_tokens": self.tokens, "cost_usd": round(self.cost, 6),
                "unpriced_tokens": self.unpriced_tokens}


@dataclass
class Breakdown:
    total: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)

    def add(self, m: Message) -> None:
        self.total.add(m)
        self.by_model.setdefault(m.model, Totals()).add(m)


@dataclass(frozen=True)
class Block:
    start: float
    end: float
    last_activity: float
    breakdown: Breakdown

    def active(self, now: float) -> bool:
        return now < self.end and now - self.last_activity < BLOCK_SECONDS


def zone(name: str | None) -> _dt.tzinfo | None:
    """The configured zone, or None for the machine's local time."""
    if not name:
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def local_date(ts: float, tz: _dt.tzinfo | None) -> _dt.date:
    moment = _dt.datetime.fromtimestamp(ts, tz) if tz else _dt.datetime.fromtimestamp(ts)
    return moment.date()


def day_start(day: _dt.date, tz: _dt.tzinfo | None) -> float:
    midnight = _dt.datetime.combine(day, _dt.time())
    return (midnight.replace(tzinfo=tz) if tz else midnight).timestamp()


def daily(messages: Iterable[Message], tz: _dt.tzinfo | None) -> dict[str, Breakdown]:
    days: dict[str, Breakdown] = {}
    for m in messages:
        days.setdefault(local_date(m.ts, tz).isoformat(), Breakdown()).add(m)
    return dict(sorted(days.items()))


def blocks(messages: Sequence[Message]) -> list[Block]:
    """ccusage's 5-hour blocks over messages sorted by time."""
    found: list[Block] = []
    start = last = None
    current = Breakdown()
    for m in messages:
        if start is None or m.ts >= start + BLOCK_SECONDS or m.ts - last >= BLOCK_SECONDS:
            if start is not None:
                found.append(Block(start, start + BLOCK_SECONDS, last, current))
            start, current = m.ts - (m.ts % 3600), Breakdown()
        current.add(m)
        last = m.ts
    if start is not None:
        found.append(Block(start, start + BLOCK_SECONDS, last, current))
    return found


def breakdown(messages: Iterable[Message]) -> Breakdown:
    result = Breakdown()
    for m in messages:
        result.add(m)
    return result


def estimate_unpriced(messages: Iterable[Message], session_costs: Mapping[tuple[str, str], float],
                      session_tokens: Mapping[tuple[str, str], int]) -> float | None:
    """Claude Code's own price for the unpriced tokens among *messages*: each session's
    `cost-state` figure for the model, shared out by the share of its tokens in *messages*.
    None when Claude Code gave no price for any of them."""
    in_period: dict[tuple[str, str], int] = {}
    for m in messages:
        if m.cost is None:
            in_period[(m.session, m.model)] = in_period.get((m.session, m.model), 0) + m.tokens
    estimate, known = 0.0, False
    for pair, tokens in in_period.items():
        total = session_tokens.get(pair) or 0
        if pair in session_costs and total:
            estimate += session_costs[pair] * tokens / total
            known = True
    return estimate if known else None
