"""Figures from the index: pure functions over messages (no I/O but the time zone).

- days: calendar days in the configured time zone (default: the machine's);
- the 5-hour billing block, as ccusage defines it: a block starts at the hour (UTC) of the
  first message more than 5 hours after the previous block's start or after the previous
  message, and lasts 5 hours;
- sessions by `sessionId`;
- tokens of models missing from the price book are reported as unpriced, with Claude
  Code's own price for them (its `cost-state` lines) shared out by tokens when known.
"""

from __future__ import annotations

import bisect
import datetime as _dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from aiki_hooks.costs.store import BY_TIME, Message, Row, messages_from_rows

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

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_write + self.cache_read

    def add(self, m: Row) -> None:
        """*m*: a Message, or a row of the same fields (by index: the Window keeps rows)."""
        self.input += m[5]
        self.output += m[6]
        self.cache_write += m[7] + m[8]
        self.cache_read += m[9]
        self.messages += 1
        if m[10] is None:
            self.unpriced_tokens += m[5] + m[6] + m[7] + m[8] + m[9]
        else:
            self.cost += m[10]

    def merge(self, other: "Totals") -> None:
        self.input += other.input
        self.output += other.output
        self.cache_write += other.cache_write
        self.cache_read += other.cache_read
        self.cost += other.cost
        self.unpriced_tokens += other.unpriced_tokens
        self.messages += other.messages

    def as_dict(self) -> dict:
        return {"input_tokens": self.input, "output_tokens": self.output, "cache_write_tokens": self.cache_write,
                "cache_read_tokens": self.cache_read, "total_tokens": self.tokens, "cost_usd": round(self.cost, 6),
                "unpriced_tokens": self.unpriced_tokens}


@dataclass
class Breakdown:
    """Totals in all and per model."""

    total: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)

    def add(self, m: Row) -> None:
        self.total.add(m)
        self.by_model.setdefault(m[3], Totals()).add(m)

    def merge(self, model: str, totals: Totals) -> None:
        self.total.merge(totals)
        self.by_model.setdefault(model, Totals()).merge(totals)


def combined(parts: Iterable[Mapping[str, Totals]]) -> Breakdown:
    """One Breakdown of several sets of per-model totals (Breakdowns' or Groups'
    `by_model`), in all and per model; models in the order they first appear."""
    result = Breakdown()
    for by_model in parts:
        for model, totals in by_model.items():
            result.merge(model, totals)
    return result


@dataclass(frozen=True)
class Block:
    """A 5-hour billing block, as ccusage defines it."""

    start: float
    end: float
    last_activity: float
    breakdown: Breakdown
    first_activity: float | None = None  # None: not known (made without it); burn_rate needs it

    def active(self, now: float) -> bool:
        return now < self.end and now - self.last_activity < BLOCK_SECONDS


@dataclass(frozen=True)
class BurnRate:
    """ccusage's burn rate of a block: its tokens and cost over the minutes from its first
    to its last message (not to now)."""

    tokens_per_minute: float
    tokens_per_minute_for_indicator: float  # input + output only: ccusage's colour indicator
    cost_per_hour: float


def burn_rate(block: Block) -> BurnRate | None:
    """The block's burn rate as ccusage computes it; None with fewer than two distinct
    message times (no duration to divide by) or without the first message's time."""
    if block.first_activity is None:
        return None
    minutes = (block.last_activity - block.first_activity) / 60
    if minutes <= 0:
        return None
    total = block.breakdown.total
    return BurnRate(tokens_per_minute=total.tokens / minutes,
                    tokens_per_minute_for_indicator=(total.input + total.output) / minutes,
                    cost_per_hour=total.cost / minutes * 60)


@dataclass(frozen=True)
class Projection:
    """Where the block ends up if its burn rate holds until its end (ccusage's projection)."""

    remaining_minutes: float
    total_tokens: float
    total_cost: float


def projection(block: Block, now: float) -> Projection | None:
    """None for a block that is not active at *now* or has no burn rate."""
    rate = burn_rate(block)
    if rate is None or not block.active(now):
        return None
    remaining = max(0.0, (block.end - now) / 60)
    total = block.breakdown.total
    return Projection(remaining_minutes=remaining, total_tokens=total.tokens + rate.tokens_per_minute * remaining,
                      total_cost=total.cost + rate.cost_per_hour / 60 * remaining)


def zone(name: str | None) -> _dt.tzinfo | None:
    """The configured zone, or None for the machine's local time."""
    if not name:
        return None
    if name == "UTC":  # the same offsets, without zoneinfo's import (and its search for tzdata)
        return _dt.timezone.utc
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


def block_starts(timestamps: Sequence[float]) -> list[int]:
    """Indexes where a new 5-hour block starts, over sorted timestamps: ccusage's rule,
    a message *more* than 5 hours after its block's start (floored to the hour) or after
    the previous message opens a new block. The one implementation of that rule."""
    starts: list[int] = []
    start = last = 0.0
    for index, ts in enumerate(timestamps):
        if not starts or ts - start > BLOCK_SECONDS or ts - last > BLOCK_SECONDS:
            starts.append(index)
            start = ts - (ts % 3600)
        last = ts
    return starts


def current_block_start(messages: Sequence[Row]) -> int:
    """Index of the first message of the last block, over messages sorted by time. Blocks
    chain only back to the last gap of more than 5 hours (where a block always starts),
    so the rule runs from there, not over the whole history."""
    chain = len(messages) - 1
    while chain > 0 and messages[chain][1] - messages[chain - 1][1] <= BLOCK_SECONDS:
        chain -= 1
    return chain + block_starts([m[1] for m in messages[chain:]])[-1]


def blocks(messages: Sequence[Message]) -> list[Block]:
    """ccusage's 5-hour blocks over messages sorted by time."""
    starts = block_starts([m.ts for m in messages])
    found = []
    for first, stop in zip(starts, starts[1:] + [len(messages)], strict=True):
        start = messages[first].ts - (messages[first].ts % 3600)
        found.append(Block(start, start + BLOCK_SECONDS, messages[stop - 1].ts, breakdown(messages[first:stop]),
                           first_activity=messages[first].ts))
    return found


def breakdown(messages: Iterable[Row]) -> Breakdown:
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


class Window:
    """The figures for `days` calendar days up to today, updated incrementally.

    Built once from the index, then fed only the messages each refresh adds; rebuilt
    when the day changes or a transcript was forgotten. Messages are summed once, into
    one cell per (day, model); days, models, today and the period are sums of cells.
    It takes rows (Messages, or the scanner's tuples and the index's lists of the same
    fields, read by index) and hands out Messages.
    """

    def __init__(self, *, days: int, tz: _dt.tzinfo | None, now: float) -> None:
        self.days = days
        self.tz = tz
        self.today = local_date(now, tz)
        first_day = self.today.toordinal() - (days - 1)
        self.since = day_start(_dt.date.fromordinal(first_day), tz)
        self.today_start = day_start(self.today, tz)
        # Midnights of the window's days and the next one: a message's day by bisection,
        # exact in any zone (DST, half-hour offsets).
        self._day_starts = [day_start(_dt.date.fromordinal(first_day + i), tz) for i in range(days + 1)]
        self._day_names = [_dt.date.fromordinal(first_day + i).isoformat() for i in range(days)]
        # Blocks chain back to the last 5-hour gap: keep a day more than the period.
        self.lookback = min(self.since, now - 86400) - BLOCK_SECONDS
        self._cells: dict[tuple[str, str], list] = {}  # (day, model) -> sums, see add()
        self.recent: list[Row] = []
        self._sorted = True
        self._version = 0
        self._memo: dict[str, tuple] = {}  # derived figures, valid while nothing is added

    def valid_for(self, now: float, days: int) -> bool:
        return days == self.days and local_date(now, self.tz) == self.today

    @property
    def memo_key(self) -> str:
        """Names the window's days exactly (their count, zone and date: their midnights)."""
        return repr((self.days, self._day_starts))

    def memo(self, now: float) -> dict:
        """What the figures need at *now* or later, while no message is added and the day
        stays (valid_for): the cells, and of the messages only those current_block,
        sessions and unpriced_since read: every message of the sessions with one in the
        last 24 hours (which holds any block still open; session-less messages count as
        one session here) and the unpriced ones. restored() takes it back."""
        messages = self._ordered()
        first = bisect.bisect_left(messages, now - 86400, key=BY_TIME)
        active = {m[2] for m in messages[first:]}
        kept = [m for m in messages if m[2] in active or m[10] is None]
        return {"cells": [[day, model, *sums] for (day, model), sums in self._cells.items()], "rows": kept}

    @classmethod
    def restored(cls, memo: dict, *, days: int, tz: _dt.tzinfo | None, now: float) -> "Window":
        """The window memo() described; no message may be added to it (it lacks those of
        the sessions that were not active)."""
        window = cls(days=days, tz=tz, now=now)
        window._cells = {(day, model): sums for day, model, *sums in memo["cells"]}
        window.recent = memo["rows"]  # in time order, as memo() kept them
        window._version += 1
        return window

    def add(self, messages: Iterable[Row], *, unordered: bool = False) -> None:
        """Sum *messages* into their cells. Plain lists, tuple indexes and inline
        arithmetic, and the last cell reused while the day and model stay the same (a
        transcript's messages come in runs): a first scan brings every message of the
        period through here. *unordered*: one of many batches not in time order (a first
        scan's files, one at a time): sorted once, when needed."""
        lookback = self.lookback
        fresh = [m for m in messages if m[1] >= lookback]
        if not fresh:
            return
        recent = self.recent
        bulk = unordered or len(fresh) > 64
        if bulk:  # a first scan: sorted once when needed (timsort, on runs)
            self._sorted = False
        else:  # a refresh's few: still in order, most of the time
            last = recent[-1][1] if recent else fresh[0][1]
            for m in fresh:
                if m[1] < last:
                    self._sorted = False
                last = m[1]
        recent.extend(fresh)
        cells, since = self._cells, self.since
        starts, names, days, tz = self._day_starts, self._day_names, self.days, self.tz
        cell = None
        cell_model = None
        cell_from = cell_to = 0.0  # the current cell's day, [from, to)
        for m in fresh:
            ts = m[1]
            if ts < since:
                continue
            model = m[3]
            if cell is None or model != cell_model or not cell_from <= ts < cell_to:
                index = bisect.bisect_right(starts, ts) - 1
                if index < days:
                    day, cell_from, cell_to = names[index], starts[index], starts[index + 1]
                else:  # after today (a clock ahead): no reuse
                    day, cell_from, cell_to = local_date(ts, tz).isoformat(), 0.0, 0.0
                cell = cells.get((day, model))
                if cell is None:
                    cell = cells[(day, model)] = [0, 0, 0, 0, 0.0, 0, 0]
                cell_model = model
            # input, output, cache writes, cache reads, cost, unpriced tokens, messages
            # (m: key, ts, session, model, sidechain, input, output, write 5m, write 1h, read, cost)
            cost = m[10]
            cell[0] += m[5]
            cell[1] += m[6]
            cell[2] += m[7] + m[8]
            cell[3] += m[9]
            if cost is None:
                cell[5] += m[5] + m[6] + m[7] + m[8] + m[9]
            else:
                cell[4] += cost
            cell[6] += 1
        self._version += 1  # the derived figures are stale

    def _derived(self) -> tuple[dict[str, Breakdown], Breakdown, Breakdown]:
        """(days, the period, today) from the cells; recomputed only after an add."""
        memo = self._memo.get("cells")
        if memo is None or memo[0] != self._version:
            days: dict[str, Breakdown] = {}
            period, today = Breakdown(), Breakdown()
            today_name = self.today.isoformat()
            for (day, model), cell in sorted(self._cells.items()):
                totals = Totals(input=cell[0], output=cell[1], cache_write=cell[2], cache_read=cell[3], cost=cell[4],
                                unpriced_tokens=cell[5], messages=cell[6])
                days.setdefault(day, Breakdown()).merge(model, totals)
                period.merge(model, totals)
                if day >= today_name:
                    today.merge(model, totals)
            memo = self._memo["cells"] = (self._version, (days, period, today))
        return memo[1]

    @property
    def period(self) -> Breakdown:
        return self._derived()[1]

    @property
    def today_breakdown(self) -> Breakdown:
        return self._derived()[2]

    def daily_sorted(self) -> dict[str, Breakdown]:
        return self._derived()[0]

    def _ordered(self) -> list[Row]:
        if not self._sorted:
            self.recent.sort(key=BY_TIME)
            self._sorted = True
        return self.recent

    def current_block(self, now: float) -> Block | None:
        memo = self._memo.get("block")
        if memo is None or memo[0] != self._version:
            messages = self._ordered()
            block = None
            if messages:
                first = current_block_start(messages)
                start_ts = messages[first][1] - (messages[first][1] % 3600)
                block = Block(start_ts, start_ts + BLOCK_SECONDS, messages[-1][1], breakdown(messages[first:]),
                              first_activity=messages[first][1])
            memo = self._memo["block"] = (self._version, block)
        block = memo[1]
        return block if block is not None and block.active(now) else None

    def sessions(self, now: float) -> dict[str, Totals]:
        """Sessions active in the last 24 hours, each with all its messages since
        `lookback` (the period plus a day and 5 hours), not only its last 24 hours; a
        session older than that is counted from there. Recomputed at most once a minute
        when idle."""
        memo = self._memo.get("sessions")
        if memo is not None and memo[0] == (self._version, int(now // 60)):
            return memo[1]
        found = self._sessions(now)
        self._memo["sessions"] = ((self._version, int(now // 60)), found)
        return found

    def _sessions(self, now: float) -> dict[str, Totals]:
        messages = self._ordered()
        first = bisect.bisect_left(messages, now - 86400, key=BY_TIME)
        active = {m[2] for m in messages[first:] if m[2]}  # (rows: index 2 is the session)
        found: dict[str, Totals] = {}
        if not active:
            return found
        for m in messages:
            if m[2] in active:
                found.setdefault(m[2], Totals()).add(m)
        return found

    def unpriced_since(self, since: float) -> list[Message]:
        """The unpriced messages at or after *since* (for Claude Code's own estimate)."""
        return messages_from_rows([m for m in self.recent if m[10] is None and m[1] >= since])


# --------------------------------------------------------------------------- reports
# `aiki-hooks costs daily|monthly|session|blocks`: ccusage's reports over the unique
# messages of a date range, each message counted once in the period, session or block
# it falls in.


@dataclass
class Group:
    """One row of a report: a day, a month or a session, per model (in the order of each
    model's first message) and in all (`breakdown`)."""

    key: str
    project: str = ""  # sessions only
    first_activity: float = 0.0
    last_activity: float = 0.0
    by_model: dict[str, Totals] = field(default_factory=dict)

    def add(self, m: Row) -> None:
        """Sums per model only (the total is their sum, made when asked): a month's report
        adds every message of the month here."""
        if not self.by_model:
            self.first_activity = m[1]
        totals = self.by_model.get(m[3])
        if totals is None:
            totals = self.by_model[m[3]] = Totals()
        totals.add(m)
        if m[1] > self.last_activity:
            self.last_activity = m[1]

    @property
    def breakdown(self) -> Breakdown:
        """Made anew at each access (add() may follow): a reader of several of its
        figures takes it once."""
        return combined([self.by_model])


def session_of(path: str, projects_dirs: Sequence[str]) -> tuple[str, str]:
    """(project path, session id) of a transcript as ccusage 20 derives them from its path
    below a `projects` folder (not from the lines' `sessionId`): `P/S.jsonl` is session S of
    project P, a subagent's `P/S/subagents/x.jsonl` belongs to S too, any other deeper file
    to the folder that holds it; a file right in `projects` is its own session of "Unknown
    Project"."""
    for root in projects_dirs:
        if path.startswith(root.rstrip("/") + "/"):
            parts = path[len(root.rstrip("/")) + 1:].split("/")
            break
    else:
        parts = [path.rsplit("/", 1)[-1]]
    if len(parts) == 1:
        return "Unknown Project", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1].removesuffix(".jsonl")
    if len(parts) >= 4 and parts[-2] == "subagents":
        return "/".join(parts[:-3]), parts[-3]
    return "/".join(parts[:-2]), parts[-2]


def date_span(tz: _dt.tzinfo | None, since: _dt.date | None, until: _dt.date | None) -> tuple[float, float]:
    """[start, end) of the local dates since..until, both included (None: open)."""
    low = day_start(since, tz) if since else float("-inf")
    high = day_start(until + _dt.timedelta(days=1), tz) if until else float("inf")
    return low, high


def in_dates(messages: Iterable[Row], tz: _dt.tzinfo | None, since: _dt.date | None,
             until: _dt.date | None) -> list[Row]:
    """The messages whose local date lies in since..until (both included, either open), by time."""
    low, high = date_span(tz, since, until)
    return sorted((m for m in messages if low <= m[1] < high), key=BY_TIME)


def by_day(messages: Iterable[Row], tz: _dt.tzinfo | None, *, month: bool = False) -> list[Group]:
    """Days (YYYY-MM-DD) or months (YYYY-MM) in *tz*, in date order."""
    groups: dict[str, Group] = {}
    # A date per quarter hour, not per message: zone offsets are whole quarter hours, and
    # converting each of a month's ~25,000 messages doubled the report's time.
    keys: dict[int, str] = {}
    for m in messages:
        quarter = int(m[1] // 900)
        key = keys.get(quarter)
        if key is None:
            key = keys[quarter] = local_date(quarter * 900, tz).isoformat()[:7 if month else 10]
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key)
        group.add(m)
    return [groups[key] for key in sorted(groups)]


def by_session(messages: Iterable[tuple[str, Row]], projects_dirs: Sequence[str]) -> list[Group]:
    """Sessions as ccusage groups them ((project, session) from each message's file, see
    session_of), costliest first (ccusage's order), from (transcript path, row) pairs."""
    groups: dict[tuple[str, str], Group] = {}
    places: dict[str, tuple[str, str]] = {}
    for path, m in messages:
        place = places.get(path)
        if place is None:
            place = places[path] = session_of(path, projects_dirs)
        group = groups.get(place)
        if group is None:
            group = groups[place] = Group(place[1], project=place[0])
        group.add(m)
    return sorted(groups.values(), key=lambda g: (-g.breakdown.total.cost, -g.last_activity, g.project, g.key))


def blocks_since(messages: Sequence[Message], since: float) -> list[Block]:
    """ccusage's blocks over *messages* (by time) that start at or after *since*. The rule
    runs from the last gap of more than 5 hours before *since* (where a block starts
    whatever came before), so that the first blocks are placed as over the whole history;
    without such a gap among *messages*, from the first of them."""
    first = 0
    for index in range(1, len(messages)):
        if messages[index].ts > since:
            break
        if messages[index].ts - messages[index - 1].ts > BLOCK_SECONDS:
            first = index
    return [b for b in blocks(messages[first:]) if b.start >= since]
