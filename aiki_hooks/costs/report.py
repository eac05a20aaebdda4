"""The figures, from the index's sums.

- days: calendar days in the configured time zone (default: the machine's);
- the 5-hour billing block, as ccusage defines it: a block starts at the hour (UTC) of the
  first message more than 5 hours after the previous block's start or after the previous
  message, and lasts 5 hours;
- sessions by `sessionId`;
- tokens of models missing from the price book are reported as unpriced, with Claude
  Code's own price for them (its `cost-state` lines) shared out by tokens when known.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .store import CostStore, Message

BLOCK_SECONDS = 5 * 3600


@dataclass
class Totals:
    """Token and cost sums of some messages."""

    input: int = 0
    output: int = 0
    cache_write: int = 0
    cache_read: int = 0
    cost: float = 0.0
    unpriced_tokens: int = 0
    messages: int = 0

    @classmethod
    def of(cls, m: Message) -> Totals:
        return cls(input=m.input, output=m.output, cache_write=m.cache_write_5m + m.cache_write_1h,
                   cache_read=m.cache_read, cost=m.cost or 0.0, unpriced_tokens=m.tokens if m.cost is None else 0,
                   messages=1)

    @classmethod
    def from_sums(cls, sums: Sequence) -> Totals:
        """From the index's store.SUMS."""
        count, input_tokens, output, cache_write, cache_read, cost, unpriced = sums
        return cls(input=input_tokens, output=output, cache_write=cache_write, cache_read=cache_read, cost=cost,
                   unpriced_tokens=unpriced, messages=count)

    def __add__(self, other: Totals) -> Totals:
        return Totals(input=self.input + other.input, output=self.output + other.output,
                      cache_write=self.cache_write + other.cache_write, cache_read=self.cache_read + other.cache_read,
                      cost=self.cost + other.cost, unpriced_tokens=self.unpriced_tokens + other.unpriced_tokens,
                      messages=self.messages + other.messages)

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_write + self.cache_read

    def as_dict(self) -> dict:
        return {"input_tokens": self.input, "output_tokens": self.output, "cache_write_tokens": self.cache_write,
                "cache_read_tokens": self.cache_read, "total_tokens": self.tokens, "cost_usd": round(self.cost, 6),
                "unpriced_tokens": self.unpriced_tokens}


@dataclass
class Breakdown:
    """Totals in all and per model."""

    total: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)

    def add(self, model: str, totals: Totals) -> None:
        self.total += totals
        self.by_model[model] = self.by_model.get(model, Totals()) + totals


def breakdown(messages: Iterable[Message]) -> Breakdown:
    result = Breakdown()
    for m in messages:
        result.add(m.model, Totals.of(m))
    return result


def breakdown_from_sums(rows: Iterable[Sequence]) -> Breakdown:
    """From (model, *store.SUMS) rows."""
    result = Breakdown()
    for model, *sums in rows:
        result.add(model, Totals.from_sums(sums))
    return result


@dataclass(frozen=True)
class Block:
    """A 5-hour billing block, as ccusage defines it."""

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
    if name == "UTC":  # the same offsets, without zoneinfo (and its search for tzdata)
        return _dt.timezone.utc
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def local_date(ts: float, tz: _dt.tzinfo | None) -> _dt.date:
    moment = _dt.datetime.fromtimestamp(ts, tz) if tz else _dt.datetime.fromtimestamp(ts)
    return moment.date()


def day_start(day: _dt.date, tz: _dt.tzinfo | None) -> float:
    midnight = _dt.datetime.combine(day, _dt.time())
    return (midnight.replace(tzinfo=tz) if tz else midnight).timestamp()


def block_starts(timestamps: Sequence[float]) -> list[int]:
    """Indexes where a new 5-hour block starts, over sorted timestamps: ccusage's rule,
    a message *more* than 5 hours after its block's start (floored to the hour) or after
    the previous message opens a new block. The one implementation of that rule."""
    starts: list[int] = []
    start = last = None
    for index, ts in enumerate(timestamps):
        if start is None or ts - start > BLOCK_SECONDS or ts - last > BLOCK_SECONDS:
            starts.append(index)
            start = ts - (ts % 3600)
        last = ts
    return starts


def blocks(messages: Sequence[Message]) -> list[Block]:
    """ccusage's 5-hour blocks over messages sorted by time."""
    starts = block_starts([m.ts for m in messages])
    found = []
    for first, stop in zip(starts, starts[1:] + [len(messages)], strict=True):
        start = messages[first].ts - (messages[first].ts % 3600)
        found.append(Block(start, start + BLOCK_SECONDS, messages[stop - 1].ts, breakdown(messages[first:stop])))
    return found


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


def lookback(days: int, tz: _dt.tzinfo | None, now: float) -> float:
    """How far back the figures of *days* days reach (see figures)."""
    since = day_start(local_date(now, tz) - _dt.timedelta(days=days - 1), tz)
    return min(since, now - 86400) - BLOCK_SECONDS


def figures(store: CostStore, *, days: int, tz: _dt.tzinfo | None, now: float) -> dict:
    """The figures of *days* calendar days up to today (and any after it: a clock behind
    the transcripts'): per day and model, the period, today, the current 5-hour block and
    the sessions active in the last 24 hours.

    The block and the sessions reach back before the period, to `lookback` (a day and 5
    hours before it at least): a block starts after the last gap of more than 5 hours,
    and a session's figure is all its messages since then, not only its last 24 hours.
    """
    today = local_date(now, tz)
    first_day = today - _dt.timedelta(days=days - 1)
    since, today_start = day_start(first_day, tz), day_start(today, tz)
    reach = lookback(days, tz, now)
    latest = store.latest()
    last_day = max(today, local_date(latest, tz)) if latest is not None else today
    ranges = []
    for number in range((last_day - first_day).days + 1):
        day = first_day + _dt.timedelta(days=number)
        ranges.append((day.isoformat(), day_start(day, tz), day_start(day + _dt.timedelta(days=1), tz)))
    daily: dict[str, Breakdown] = {}
    period, today_breakdown = Breakdown(), Breakdown()
    for day, model, *sums in sorted(store.sums_by_day(ranges)):
        totals = Totals.from_sums(sums)
        daily.setdefault(day, Breakdown()).add(model, totals)
        period.add(model, totals)
        if day >= today.isoformat():
            today_breakdown.add(model, totals)
    block = None
    if latest is not None and now - latest < BLOCK_SECONDS:  # (else no block is active)
        times = store.timestamps(reach)
        first = times[block_starts(times)[-1]]
        start = first - first % 3600
        block = Block(start, start + BLOCK_SECONDS, times[-1], breakdown_from_sums(store.sums_by_model(first)))
    active = store.sessions_since(now - 86400)
    sessions = {session: Totals.from_sums(sums) for session, *sums in store.sums_by_session(active, reach)}
    return {"days": days, "daily": daily, "week": period, "today": today_breakdown,
            "block": block if block is not None and block.active(now) else None, "sessions": sessions,
            "since": since, "today_start": today_start}
