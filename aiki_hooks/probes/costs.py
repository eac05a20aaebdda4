"""Claude usage and cost: today, this 5-hour block, the last 7 days, per session and
per model, from the incremental transcript index; budgets become issues. The user's
own tracker (a command or a JSON file) is shown beside it as a second, labelled source.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Mapping

from aiki_hooks.config.load import CostsConfig, ExternalCostConfig
from aiki_hooks.costs import report
from aiki_hooks.costs.figures import CostFigures
from aiki_hooks.costs.render import short_model, usd
from aiki_hooks.costs.store import KEEP_DAYS as KEEP_DAYS  # (where the tests and older callers look)
from aiki_hooks.model.dates import clock
from aiki_hooks.model.result import Finding, ProbeResult
from aiki_hooks.model.status import Status, worst
from aiki_hooks.model.thresholds import Threshold
from aiki_hooks.proc import FLOOD_BYTES, MAX_OUTPUT_BYTES, CommandNotFound, run_command

KIND = "costs"
CLAUDE_NAME = "claude-costs"
TRACKER_NAME = "cost-tracker"
MAX_SESSIONS_REPORTED = 20
BUDGET_WARN_FRACTION = 0.8


def budget_status(spent: float, budget: float | None) -> tuple[Status, str]:
    if not budget:
        return Status.OK, ""
    status = Threshold(warn=budget * BUDGET_WARN_FRACTION, crit=budget).evaluate(spent)
    return status, f"{spent / budget * 100:.0f}% of the {usd(budget)} budget"


def tracker_today(source: ExternalCostConfig, run=None) -> tuple[float | None, str | None]:
    """(today's USD from the user's tracker, error); *run* replaces proc.run_command. The
    error is a fixed short reason (and an exit code): the tracker's own output never goes
    into the summary, from where it would reach the issue journal and mem0 (it may print
    tokens or keys)."""
    try:
        if source.command:
            try:
                out = (run or run_command)(source.command, timeout=source.timeout_seconds)
            except CommandNotFound:
                return None, "command not found"
            if out.flooded:
                return None, f"stopped after printing more than {FLOOD_BYTES // 1024**2} MiB"
            if out.timed_out:
                return None, f"no answer within {source.timeout_seconds:g} s"
            if out.returncode != 0:
                return None, f"exited with code {out.returncode}"
            if out.stdout_truncated:  # its JSON was cut: it would only fail to parse
                return None, f"printed more than {MAX_OUTPUT_BYTES // 1024} KiB (a JSON answer is a few bytes)"
            text = out.stdout
        elif source.json_file:
            with open(source.json_file, encoding="utf-8") as file:
                text = file.read(1024 * 1024)
        else:  # (the config requires one of the two)
            return None, "neither command nor json_file"
        data = json.loads(text)
    except OSError as exc:
        return None, f"json_file unreadable ({exc.strerror or type(exc).__name__})"
    except ValueError:
        return None, "did not print JSON" if source.command else "json_file is not JSON"
    value = data.get("today_usd") if isinstance(data, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None, 'no number "today_usd" in its JSON'
    return float(value), None


class CostsProbe(CostFigures):
    """The figures (CostFigures) judged against the budgets, and the user's own tracker."""

    kind = KIND

    def __init__(self, config: CostsConfig, state_dir: str | os.PathLike, *, env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time, run=None, workers: int = 1, one_shot: bool = False) -> None:
        super().__init__(config, state_dir, env=env, clock=clock, workers=workers, one_shot=one_shot)
        self.run = run  # None: proc.run_command
        self.timeout_seconds = config.timeout_seconds
        self.names = (CLAUDE_NAME,) + ((TRACKER_NAME,) if config.external else ())

    def external(self, source: ExternalCostConfig) -> tuple[float | None, str | None]:
        return tracker_today(source, self.run)

    # ------------------------------------------------------------------ check

    def check(self) -> list[ProbeResult]:
        if not self._lock.acquire(blocking=False):
            # A first full scan outlived the cycle; it carries on, this cycle reports that.
            return [ProbeResult(name=CLAUDE_NAME, kind=KIND, status=Status.UNKNOWN, error_kind="busy",
                                summary="still indexing Claude Code transcripts")]
        try:
            results = [judge_costs(self.figures(), self.config)]
        finally:
            self._lock.release()
        if self.config.external:
            value, error = self.external(self.config.external)
            results.append(judge_external(self.config.external, value, error))
        return results


# --------------------------------------------------------------------------- judge (pure)


def _models_text(breakdown: report.Breakdown, limit: int = 3) -> str:
    priced = sorted(((t.cost, model) for model, t in breakdown.by_model.items() if t.cost > 0), reverse=True)
    if len(priced) <= 1:
        return ""
    shown = ", ".join(f"{short_model(model)} {usd(cost)}" for cost, model in priced[:limit])
    return f" ({shown}{', …' if len(priced) > limit else ''})"


def _unpriced_text(breakdown: report.Breakdown, estimate: float | None, *, models: bool = False) -> str:
    """" + 1,234 tokens unpriced (nova-9, $0.50 by Claude Code's own count)", or ""."""
    tokens = breakdown.total.unpriced_tokens
    if not tokens:
        return ""
    inside = []
    if models:
        inside.append(", ".join(sorted(short_model(m) for m, t in breakdown.by_model.items() if t.unpriced_tokens)))
    if estimate is not None:
        inside.append(f"{usd(estimate)} by Claude Code's own count")
    return f" + {tokens:,} tokens unpriced" + (f" ({', '.join(inside)})" if inside else "")


def _budget_finding(finding_id: str, what: str, breakdown: report.Breakdown, estimate: float | None,
                    budget: float | None) -> tuple[Finding, str] | None:
    """(the finding, "96% of the $0.40 budget") for a budget. Spend counts Claude Code's own
    price for unpriced models; tokens it gave no price for are named, so a budget is never
    silently met by leaving them out."""
    spent = breakdown.total.cost + (estimate or 0.0)
    status, share = budget_status(spent, budget)
    if not share:
        return None
    text = share
    unpriced = breakdown.total.unpriced_tokens
    if unpriced and estimate is not None:
        text += f" (with {usd(estimate)} by Claude Code's own count for {unpriced:,} unpriced tokens)"
    elif unpriced:
        text += f", plus {unpriced:,} unpriced tokens not counted"
    return Finding(id=finding_id, status=status, summary=f"Claude spend {what} {usd(spent)}, {text}"), share


def judge_costs(figures: Mapping[str, Any], config: CostsConfig) -> ProbeResult:
    today: report.Breakdown = figures["today"]
    week: report.Breakdown = figures["week"]
    block: report.Block | None = figures["block"]
    today_estimate = figures.get("unpriced_today_estimate")
    block_estimate = figures.get("unpriced_block_estimate")
    week_estimate = figures.get("unpriced_week_estimate")

    parts = [f"today {usd(today.total.cost)}{_models_text(today)}"]
    if today.total.unpriced_tokens:
        parts.append(_unpriced_text(today, today_estimate, models=True).lstrip())
    if block is not None:
        ends = clock(block.end)
        parts.append(f"block {usd(block.breakdown.total.cost)}{_unpriced_text(block.breakdown, block_estimate)} "
                     f"until {ends}")
    parts.append(f"7 d {usd(week.total.cost)}{_unpriced_text(week, week_estimate)}")

    findings = []
    day_budget = _budget_finding("costs:today", "today", today, today_estimate, config.daily_usd)
    if day_budget is not None:
        parts[0] += f", {day_budget[1]}"
        findings.append(day_budget[0])
    if block is not None:
        block_budget = _budget_finding("costs:block", "this 5-hour block", block.breakdown, block_estimate,
                                       config.block_usd)
        if block_budget is not None:
            findings.append(block_budget[0])
    status = worst(f.status for f in findings)

    # Sessions active in the last 24 hours, the costliest MAX_SESSIONS_REPORTED; each with
    # its whole cost since the window's lookback (see report.Window.sessions).
    sessions = sorted(figures["sessions"].items(), key=lambda item: -item[1].cost)[:MAX_SESSIONS_REPORTED]
    # ccusage's burn rate (`blocks --active`): over the block's first to last message.
    rate = report.burn_rate(block) if block is not None else None
    values: dict[str, Any] = {
        "today_usd": round(today.total.cost, 6),
        "today_tokens": today.total.tokens,
        "today_unpriced_tokens": today.total.unpriced_tokens,
        "today_unpriced_usd_claude_code": today_estimate,
        "week_usd": round(week.total.cost, 6),
        "week_tokens": week.total.tokens,
        "week_unpriced_tokens": week.total.unpriced_tokens,
        "week_unpriced_usd_claude_code": week_estimate,
        "block_usd": round(block.breakdown.total.cost, 6) if block else None,
        "block_unpriced_tokens": block.breakdown.total.unpriced_tokens if block else None,
        "block_unpriced_usd_claude_code": block_estimate,
        "block_tokens": block.breakdown.total.tokens if block else None,
        "block_started_at": block.start if block else None,
        "block_ends_at": block.end if block else None,
        "block_first_activity_at": block.first_activity if block else None,
        "block_last_activity_at": block.last_activity if block else None,
        "block_tokens_per_minute": round(rate.tokens_per_minute, 3) if rate else None,
        "block_usd_per_hour": round(rate.cost_per_hour, 6) if rate else None,
        "today_by_model_usd": {m: round(t.cost, 6) for m, t in sorted(today.by_model.items())},
        "session_usd": {sid: round(t.cost, 6) for sid, t in sessions},
        "session_unpriced_tokens": {sid: t.unpriced_tokens for sid, t in sessions if t.unpriced_tokens},
        "files": figures["stats"].files,
    }
    stats = figures["stats"]
    details = tuple(stats.errors[:3])
    if stats.unreadable:
        details += (f"skipped {stats.unreadable} unreadable transcript file(s)",)
    if stats.bad_lines or stats.oversized_lines:
        details += (f"skipped {stats.bad_lines} unreadable and {stats.oversized_lines} oversized line(s)",)
    return ProbeResult(name=CLAUDE_NAME, kind=KIND, status=status, summary=", ".join(parts), values=values,
                       details=details, findings=tuple(findings))


def judge_external(source: ExternalCostConfig, value: float | None, error: str | None) -> ProbeResult:
    if value is None:  # (external() gives a value or an error)
        return ProbeResult(name=TRACKER_NAME, kind=KIND, status=Status.UNKNOWN, error_kind="tracker_failed",
                           summary=f"{source.label}: {error}")
    return ProbeResult(name=TRACKER_NAME, kind=KIND, status=Status.OK, summary=f"{source.label} today {usd(value)}",
                       values={"external_today_usd": value, "label": source.label})
