"""`aiki-hooks costs`: the daily table (like ccusage's `daily`) and its JSON form, and the
named reports (daily, monthly, session, blocks) in ccusage's table and JSON shapes."""

from __future__ import annotations

import time
from typing import Any, Mapping

from aiki_hooks.config.load import CostsConfig
from aiki_hooks.costs.report import Block, Breakdown, Group, Totals, burn_rate, combined, local_date, projection
from aiki_hooks.model.dates import clock, local_minute, utc_iso

COLUMNS = ("Date", "Models", "Input", "Output", "Cache write", "Cache read", "Total tokens", "Cost")


def short_model(model: str) -> str:
    """claude-opus-4-5-20251101 -> opus-4-5: enough to tell models apart in one line."""
    name = model.removeprefix("claude-")
    parts = name.split("-")
    if parts and len(parts[-1]) == 8 and parts[-1].isdigit():
        parts = parts[:-1]
    return "-".join(parts)


def usd(value: float) -> str:
    return f"${value:,.2f}"


def costs_table(figures: Mapping[str, Any], external: tuple[float | None, str | None] | None,
                config: CostsConfig) -> str:
    rows = [list(COLUMNS)]
    for day, breakdown in figures["daily"].items():
        models = ", ".join(short_model(m) for m in sorted(breakdown.by_model))
        rows.append([day, models, *_numbers(breakdown.total)])
    rows.append(["Total", "", *_numbers(figures["week"].total)])
    lines = _aligned(rows, set(range(2, 8)), {0, len(rows) - 2})
    zone = config.timezone or time.strftime("%Z")
    lines.insert(0, f"Claude Code usage, last {figures['days']} day(s), days in {zone} "
                    f"({figures['stats'].files} transcript files)")
    today = figures["today"].total
    summary = [f"today {usd(today.cost)}"]
    if today.unpriced_tokens:
        unpriced = sorted(short_model(m) for m, t in figures["today"].by_model.items() if t.unpriced_tokens)
        summary.append(f"{today.unpriced_tokens:,} tokens of {', '.join(unpriced)} unpriced today"
                       + (f" (Claude Code's own count: {usd(figures['unpriced_today_estimate'])})"
                          if figures.get("unpriced_today_estimate") is not None else ""))
    block = figures.get("block")
    if block is not None:
        unpriced = block.breakdown.total.unpriced_tokens
        summary.append(f"current 5-hour block {usd(block.breakdown.total.cost)}"
                       + (f" + {unpriced:,} tokens unpriced" if unpriced else "")
                       + f", ends {clock(block.end)}")
    lines += ["", "; ".join(summary)]
    if external is not None:
        value, error = external
        label = config.external.label if config.external else "tracker"
        lines.append(f"{label}: " + (f"today {usd(value)}" if value is not None else f"unavailable ({error})"))
    return "\n".join(lines)


def _totals_json(t: Totals) -> dict:
    return t.as_dict()


def costs_json(figures: Mapping[str, Any], external: tuple[float | None, str | None] | None,
               config: CostsConfig) -> dict:
    block = figures.get("block")
    return {
        "timezone": config.timezone,
        "days": figures["days"],
        "daily": [{"date": day, **_totals_json(b.total),
                   "models": {m: _totals_json(t) for m, t in sorted(b.by_model.items())}}
                  for day, b in figures["daily"].items()],
        "totals": _totals_json(figures["week"].total),
        "today": {**_totals_json(figures["today"].total),
                  "unpriced_usd_claude_code": figures.get("unpriced_today_estimate")},
        "block": None if block is None else {"start": block.start, "end": block.end,
                                             **_totals_json(block.breakdown.total)},
        "external": None if external is None else {"label": config.external.label if config.external else None,
                                                   "today_usd": external[0], "error": external[1]},
    }


# --------------------------------------------------------------------------- named reports
# `aiki-hooks costs daily|monthly|session|blocks`: ccusage's reports, its JSON keys where
# the meaning is the same (docs/costs.md lists the differences).


def _counts(t: Totals) -> dict[str, int]:
    return {"inputTokens": t.input, "outputTokens": t.output, "cacheCreationTokens": t.cache_write,
            "cacheReadTokens": t.cache_read}


def _by_cost(b: Breakdown) -> list[tuple[str, Totals]]:
    """Models costliest first (ccusage's order of modelBreakdowns), then by name."""
    return sorted(b.by_model.items(), key=lambda item: (-item[1].cost, item[0]))


def model_breakdowns(b: Breakdown) -> list[dict[str, Any]]:
    """ccusage's modelBreakdowns; `missingPricing` marks a model the price table lacks."""
    found = []
    for model, t in _by_cost(b):
        entry: dict[str, Any] = {"modelName": model, **_counts(t), "cost": t.cost}
        if t.unpriced_tokens:
            entry["missingPricing"] = True
            entry["unpricedTokens"] = t.unpriced_tokens
        found.append(entry)
    return found


def _group_json(key_name: str, group: Group) -> dict[str, Any]:
    breakdown = group.breakdown
    t = breakdown.total
    entry: dict[str, Any] = {key_name: group.key}
    if key_name == "sessionId":
        entry.update(projectPath=group.project, firstActivity=utc_iso(group.first_activity),
                     lastActivity=utc_iso(group.last_activity))
    entry.update(_counts(t), totalTokens=t.tokens, totalCost=t.cost, unpricedTokens=t.unpriced_tokens,
                 modelsUsed=list(breakdown.by_model), modelBreakdowns=model_breakdowns(breakdown))
    return entry


def _totals_of(total: Breakdown) -> dict[str, Any]:
    t = total.total
    found: dict[str, Any] = {**_counts(t), "totalTokens": t.tokens, "totalCost": t.cost,
                             "unpricedTokens": t.unpriced_tokens}
    unpriced = sorted(m for m, mt in total.by_model.items() if mt.unpriced_tokens)
    if unpriced:
        found["unpricedModels"] = unpriced
    return found


GROUP_KEYS = {"daily": "date", "monthly": "month", "session": "sessionId"}
LIST_NAMES = {"daily": "daily", "monthly": "monthly", "session": "sessions"}


def groups_json(kind: str, groups: list[Group]) -> dict[str, Any]:
    """ccusage's `daily`, `monthly` or `session` JSON: {"daily"|"monthly"|"sessions": [...], "totals": {...}}."""
    return {LIST_NAMES[kind]: [_group_json(GROUP_KEYS[kind], g) for g in groups],
            "totals": _totals_of(combined(g.by_model for g in groups))}


def block_json(block: Block, now: float, *, breakdown: bool) -> dict[str, Any]:
    """ccusage's JSON of one block; burnRate and projection only for the active one, as ccusage."""
    t = block.breakdown.total
    active = block.active(now)
    rate = burn_rate(block) if active else None
    ahead = projection(block, now) if active else None
    entry: dict[str, Any] = {
        "id": utc_iso(block.start), "startTime": utc_iso(block.start), "endTime": utc_iso(block.end),
        "actualEndTime": utc_iso(block.last_activity), "isActive": active, "isGap": False, "entries": t.messages,
        "tokenCounts": {"inputTokens": t.input, "outputTokens": t.output, "cacheCreationInputTokens": t.cache_write,
                        "cacheReadInputTokens": t.cache_read},
        "totalTokens": t.tokens, "costUSD": t.cost, "unpricedTokens": t.unpriced_tokens,
        "models": list(block.breakdown.by_model),
        "burnRate": None if rate is None else {"tokensPerMinute": rate.tokens_per_minute,
                                               "tokensPerMinuteForIndicator": rate.tokens_per_minute_for_indicator,
                                               "costPerHour": rate.cost_per_hour},
        # Rounded as ccusage rounds them: minutes and tokens to units, the cost to cents.
        "projection": None if ahead is None else {"remainingMinutes": round(ahead.remaining_minutes),
                                                  "totalTokens": round(ahead.total_tokens),
                                                  "totalCost": round(ahead.total_cost, 2)},
    }
    if breakdown:
        entry["modelBreakdowns"] = model_breakdowns(block.breakdown)
    return entry


def _aligned(rows: list[list[str]], right: set[int], rules: set[int]) -> list[str]:
    """Columns padded to their widest cell (*right*: right-aligned), a rule of dashes after
    each row index in *rules*."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index in rules:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    return lines


def _numbers(t: Totals) -> list[str]:
    return [f"{t.input:,}", f"{t.output:,}", f"{t.cache_write:,}", f"{t.cache_read:,}", f"{t.tokens:,}",
            usd(t.cost) + (" + unpriced" if t.unpriced_tokens else "")]


GROUP_TITLES = {"daily": "Date", "monthly": "Month", "session": "Session"}


def groups_table(kind: str, groups: list[Group], *, heading: str, breakdown: bool, tz: Any) -> str:
    """The table of a daily, monthly or session report; with *breakdown*, a row per model
    under each period (`  └ model`)."""
    session = kind == "session"
    header = [GROUP_TITLES[kind], *(["Project"] if session else []), "Models", *COLUMNS[2:],
              *(["Last activity"] if session else [])]
    rows = [header]
    for g in groups:
        extra = [local_date(g.last_activity, tz).isoformat()] if session else []
        sums = g.breakdown
        models = ", ".join(short_model(m) for m in sums.by_model)
        rows.append([g.key, *([g.project] if session else []), models, *_numbers(sums.total), *extra])
        if breakdown:
            for model, t in _by_cost(sums):
                rows.append([f"  └ {short_model(model)}", *([""] if session else []), "", *_numbers(t),
                             *([""] if session else [])])
    total = combined(g.by_model for g in groups)
    rows.append(["Total", *([""] if session else []), "", *_numbers(total.total), *([""] if session else [])])
    first_number = 3 if session else 2
    right = set(range(first_number, first_number + 6))
    return "\n".join([heading, *_aligned(rows, right, {0, len(rows) - 2})])


def blocks_table(blocks: list[Block], now: float, *, heading: str, breakdown: bool, tz: Any) -> str:
    """One row per 5-hour block (start in local time; the active one marked), the models'
    rows under each with *breakdown*."""
    rows = [["Block start", "Models", *COLUMNS[2:], ""]]
    for block in blocks:
        mark = f"ACTIVE, {_minutes(block.end - now)} left" if block.active(now) else ""
        models = ", ".join(short_model(m) for m in block.breakdown.by_model)
        rows.append([local_minute(block.start, tz), models, *_numbers(block.breakdown.total), mark])
        if breakdown:
            for model, t in _by_cost(block.breakdown):
                rows.append([f"  └ {short_model(model)}", "", *_numbers(t), ""])
    total = combined(block.breakdown.by_model for block in blocks)
    rows.append(["Total", "", *_numbers(total.total), ""])
    return "\n".join([heading, *_aligned(rows, set(range(2, 8)), {0, len(rows) - 2})])


def _minutes(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    return f"{minutes // 60}h {minutes % 60:02d}m"


def active_block_text(block: Block | None, now: float, *, tz: Any, breakdown: bool) -> str:
    """`blocks --active`: the active block, its time left, burn rate and projection (ccusage's figures)."""
    if block is None or not block.active(now):
        return "No active 5-hour block (no Claude Code message in the last 5 hours)."
    t = block.breakdown.total
    lines = [f"Active 5-hour block: {local_minute(block.start, tz)} to {local_minute(block.end, tz)[11:]}",
             f"  elapsed {_minutes(now - block.start)}, {_minutes(block.end - now)} left",
             f"  tokens {t.tokens:,} (input {t.input:,}, output {t.output:,}, cache write {t.cache_write:,}, "
             f"cache read {t.cache_read:,}), cost {usd(t.cost)}"
             + (f" + {t.unpriced_tokens:,} tokens unpriced" if t.unpriced_tokens else "")]
    if breakdown:
        for model, mt in _by_cost(block.breakdown):
            lines.append(f"    {short_model(model)}: {mt.tokens:,} tokens, {usd(mt.cost)}")
    rate = burn_rate(block)
    ahead = projection(block, now)
    if rate is None or ahead is None:
        lines.append("  burn rate: not yet (one message time so far)")
    else:
        lines.append(f"  burn rate {rate.tokens_per_minute:,.0f} tokens/min ({rate.tokens_per_minute * 60:,.0f}/h), "
                     f"{usd(rate.cost_per_hour)}/h")
        lines.append(f"  projected by {local_minute(block.end, tz)[11:]}: {ahead.total_tokens:,.0f} tokens, "
                     f"{usd(ahead.total_cost)}")
    return "\n".join(lines)
