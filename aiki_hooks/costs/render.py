"""`aiki-hooks costs`: the daily table (like ccusage's `daily`) and its JSON form."""

from __future__ import annotations

import time
from typing import Any, Mapping

from aiki_hooks.config.load import CostsConfig
from aiki_hooks.costs.report import Totals
from aiki_hooks.model.dates import clock
from aiki_hooks.probes.costs import short_model, usd

COLUMNS = ("Date", "Models", "Input", "Output", "Cache write", "Cache read", "Total tokens", "Cost")


def _row(label: str, models: str, t: Totals) -> list[str]:
    cost = usd(t.cost) + (" + unpriced" if t.unpriced_tokens else "")
    return [label, models, f"{t.input:,}", f"{t.output:,}", f"{t.cache_write:,}", f"{t.cache_read:,}",
            f"{t.tokens:,}", cost]


def costs_table(figures: Mapping[str, Any], external: tuple[float | None, str | None] | None,
                config: CostsConfig) -> str:
    rows = [list(COLUMNS)]
    for day, breakdown in figures["daily"].items():
        models = ", ".join(short_model(m) for m in sorted(breakdown.by_model))
        rows.append(_row(day, models, breakdown.total))
    rows.append(_row("Total", "", figures["week"].total))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    right = {2, 3, 4, 5, 6, 7}
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0 or index == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
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
