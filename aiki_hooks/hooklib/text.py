"""Pure text for the agent and the status line: snapshot dict in, words out.

Statements, not instructions (imperative "system" wording can trip prompt-injection
defences), numbers in the text, issues first with how long they have lasted.
"""

from __future__ import annotations

from aiki_hooks.model.dates import clock, parse_utc
from aiki_hooks.model.severity import ANSI_COLORS, rank
from aiki_hooks.model.units import (  # statusline reads text.finite_number too
    finite_number,
    fmt_bytes,
    fmt_duration,
    fmt_duration_words,
    fmt_ratio,
    gib_figure,
)

TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    from typing import Any, Mapping

HEALTHY_BLOCK_LIMIT = 320
ISSUE_BLOCK_LIMIT = 1000
MAX_LISTED_ISSUES = 5
ISSUE_SUMMARY_CHARS = 140
SERVICE_SUMMARY_CHARS = 40
# A check's `hint` (the user's runbook line) beside its issue: in full as the config allows
# it (config.validators.MAX_HINT_CHARS; the hooks do not import config), shortened, then
# left out when a crowded status block needs the room for the issues themselves.
HINT_CHARS = (200, 80, 0)


def clip(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --------------------------------------------------------------------------- SessionStart


def resources_line(probes: list[Mapping[str, Any]]) -> str:
    """"cpu 12%, mem 6.1/15.6 GiB, load 0.2/core, disk / 81.0 GiB free" from the values."""
    by_name = {p.get("name"): p.get("values") or {} for p in probes if p.get("kind") == "resources"}
    parts = []
    cpu = by_name.get("cpu", {}).get("cpu_percent")
    if cpu is not None:
        parts.append(f"cpu {cpu:.0f}%")
    memory = by_name.get("memory", {})
    if memory.get("memory_total_bytes"):
        parts.append(f"mem {gib_figure(memory['memory_used_bytes'])}/{gib_figure(memory['memory_total_bytes'])} GiB")
    swap = by_name.get("swap", {})
    if swap.get("swap_total_bytes") and swap.get("swap_used_bytes"):
        parts.append(f"swap {fmt_ratio(swap['swap_used_ratio'])}")
    load = by_name.get("load", {}).get("load5_per_core")
    if load is not None:
        parts.append(f"load {load:.2f}/core")
    for name, values in by_name.items():
        if isinstance(name, str) and name.startswith("disk:") and values.get("disk_free_bytes") is not None:
            parts.append(f"disk {name[5:]} {gib_figure(values['disk_free_bytes'])} GiB free")
    return ", ".join(parts)


def _service_phrases(probes: list[Mapping[str, Any]], detail: bool) -> list[str]:
    phrases = []
    for probe in probes:
        if probe.get("kind") in ("resources", "costs", "mem0") or probe.get("status") != "OK":
            continue
        if detail:
            short = ", ".join(str(probe.get("summary", "")).split(", ")[:2])
            phrases.append(f"{probe['name']} {clip(short, SERVICE_SUMMARY_CHARS)}")
        else:
            phrases.append(str(probe["name"]))
    return phrases


def costs_line(probes: list[Mapping[str, Any]]) -> str:
    """"Claude today $4.12, block $1.20; tracker today $3.90." from the costs probe's values."""
    parts = []
    for probe in probes:
        if probe.get("kind") != "costs":
            continue
        values = probe.get("values") or {}
        today = values.get("today_usd")
        if isinstance(today, (int, float)):
            text = f"Claude today ${today:.2f}"
            if values.get("today_unpriced_tokens"):
                text += f" + {values['today_unpriced_tokens']:,} tokens unpriced"
                if isinstance(values.get("today_unpriced_usd_claude_code"), (int, float)):
                    text += f" (${values['today_unpriced_usd_claude_code']:.2f} by Claude Code's count)"
            if isinstance(values.get("block_usd"), (int, float)):
                text += f", block ${values['block_usd']:.2f}"
                if values.get("block_unpriced_tokens"):
                    text += f" + {values['block_unpriced_tokens']:,} tokens unpriced"
            parts.append(text)
        elif isinstance(values.get("external_today_usd"), (int, float)):
            parts.append(f"{values.get('label') or 'tracker'} today ${values['external_today_usd']:.2f}")
    return "; ".join(parts) + "." if parts else ""


def pattern_line(data: Mapping[str, Any]) -> str:
    """At most one line of recurring trouble: for an issue open now, else one seen 3+ times."""
    patterns = [p for p in data.get("patterns") or () if isinstance(p, dict) and p.get("text")]
    open_ids = {i.get("id") for i in data.get("issues") or ()}
    chosen = next((p for p in patterns if p.get("issue_id") in open_ids), None) or next(
        (p for p in patterns if (p.get("count") or 0) >= 3), None)
    return f"Recurring: {clip(chosen['text'], 160)}." if chosen else ""


def hint_phrase(issue: Mapping[str, Any], limit: int = HINT_CHARS[0]) -> str:
    """'. Hint (from the user's config): "..."' for an issue whose check has a hint, else
    "". Quoted and attributed: the user's words, reported, not ours to the agent."""
    hint = issue.get("hint")
    if not isinstance(hint, str) or not hint.strip() or limit <= 0:
        return ""
    return f'. Hint (from the user\'s config): "{clip(hint, limit)}"'


def issue_phrase(issue: Mapping[str, Any], now: float, hint_chars: int = HINT_CHARS[0]) -> str:
    lasted = fmt_duration_words(now - parse_utc(issue["since"]))
    return (f"{issue['id']} {issue['severity']} for {lasted}: {clip(issue.get('summary', ''), ISSUE_SUMMARY_CHARS)}"
            + hint_phrase(issue, hint_chars))


def session_block(data: Mapping[str, Any], *, now: float) -> str:
    """The status block for SessionStart: at most ~320 characters when healthy, ~1,000
    with issues; detail is dropped (service summaries, then names, then the hints are
    shortened and left out) to stay inside."""
    generated = parse_utc(data["generated_at"])
    age = fmt_duration_words(now - generated)
    head = f"System health {clock(generated)} ({age} old): {data.get('status', 'UNKNOWN')}."
    issues = list(data.get("issues") or [])
    probes = list(data.get("probes") or [])
    resources = resources_line(probes)
    costs = costs_line(probes)
    recurring = pattern_line(data)

    limit = ISSUE_BLOCK_LIMIT if issues else HEALTHY_BLOCK_LIMIT
    # The services, from most to least detail: summaries, names, a count.
    detailed, names = _service_phrases(probes, True), _service_phrases(probes, False)
    services_texts = [("Services OK: " + ", ".join(phrases) + ".") if phrases else "" for phrases in (detailed, names)]
    services_texts.append(f"{len(names)} services OK." if names else "")
    more = f"; {len(issues) - MAX_LISTED_ISSUES} more" if len(issues) > MAX_LISTED_ISSUES else ""
    hinted = any(i.get("hint") for i in issues[:MAX_LISTED_ISSUES])
    for hint_chars in HINT_CHARS if hinted else HINT_CHARS[:1]:
        issue_text = ""
        if issues:
            listed = [issue_phrase(i, now, hint_chars) for i in issues[:MAX_LISTED_ISSUES]]
            issue_text = f"Issues ({len(issues)}): " + "; ".join(listed) + more + "."
        for services in services_texts:
            block = " ".join(part for part in (head, issue_text, recurring, services,
                                               resources + "." if resources else "", costs) if part)
            if len(block) <= limit:
                return block
    return clip(block, limit)


def block_fingerprint(data: Mapping[str, Any]) -> str:
    """What makes a block worth repeating on resume/compact: status and open issues,
    not the numbers that move every cycle."""
    issues = sorted(f"{i.get('id')}={i.get('severity')}" for i in data.get("issues") or [])
    return f"{data.get('status')}|" + ",".join(issues)


def degraded_line(state: str, reason: str, age: float | None, data: Mapping[str, Any] | None,
                  refresh_started: bool) -> str:
    """One line for a missing, stale, skewed (dated in the future), corrupt or unknown cache."""
    after = " A background refresh was started." if refresh_started else ""
    if state == "skewed" and data is not None:
        issues = data.get("issues") or []
        listed = ", ".join(str(i.get("id")) for i in issues[:3])
        known = f"{data.get('status')}" + (f", {len(issues)} issue(s): {listed}" if issues else "")
        return f"System health data of unknown age ({reason}); last known: {known}.{after}"
    if state == "stale" and data is not None and age is not None:
        issues = data.get("issues") or []
        listed = ", ".join(str(i.get("id")) for i in issues[:3])
        known = f"{data.get('status')}" + (f", {len(issues)} issue(s): {listed}" if issues else "")
        return f"System health data is {fmt_duration_words(age)} old ({reason}); last known: {known}.{after}"
    if state == "missing":
        return f"System health: no data yet ({reason}).{after}"
    return f"System health data unreadable ({reason}).{after}"


def untrusted_line(reason: str) -> str:
    """SessionStart's only words when the state dir fails the trust check."""
    return (f"System health unavailable: aiki-hooks does not trust its state directory ({clip(reason, 300)}), "
            "so it read nothing from it and wrote nothing to it.")


# --------------------------------------------------------------------------- PreToolUse


def issue_memory(data: Mapping[str, Any]) -> dict[str, list]:
    """{issue id: [severity, since, summary]}: what a session has been told."""
    return {str(i["id"]): [i.get("severity"), i.get("since"), i.get("summary", "")] for i in data.get("issues") or []}


def changed_issues(seen: Mapping[str, list], data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The open issues of *data* that are new since *seen* or have another severity: what
    a change notice tells of (resolved ones are gone from *data*)."""
    return [i for i in data.get("issues") or []
            if isinstance(i, dict) and (seen.get(str(i.get("id"))) or [None])[0] != i.get("severity")]


def change_notice(seen: Mapping[str, list], data: Mapping[str, Any], *, now: float) -> str | None:
    """One short line naming what opened, escalated, de-escalated or resolved since *seen*;
    a changed issue's hint is shortened, then left out, if the line would not fit."""
    current = issue_memory(data)
    # Hints are not in the session's memory (its format outlives versions): read from the issues.
    by_id = {str(i["id"]): i for i in data.get("issues") or [] if isinstance(i, dict) and i.get("hint")}
    count = len(current)
    tail = f"now {data.get('status')}, {count} open issue(s)" if count else f"now {data.get('status')}, no open issues"
    for hint_chars in HINT_CHARS if by_id else HINT_CHARS[:1]:
        changes = []
        for issue_id, (severity, since, summary) in current.items():
            before = seen.get(issue_id)
            started = clock(parse_utc(since)) if since else "?"
            hint = hint_phrase(by_id[issue_id], hint_chars) if issue_id in by_id else ""
            if before is None:
                changes.append(f"{issue_id} {severity} since {started}: {clip(summary, ISSUE_SUMMARY_CHARS)}{hint}")
            elif before[0] != severity:
                direction = "escalated" if rank(severity) > rank(before[0]) else "eased"
                changes.append(f"{issue_id} {direction} {before[0]} -> {severity}: "
                               f"{clip(summary, ISSUE_SUMMARY_CHARS)}{hint}")
        for issue_id, (severity, since, _summary) in seen.items():
            if issue_id not in current:
                lasted = f" after {fmt_duration_words(now - parse_utc(since))}" if since else ""
                changes.append(f"{issue_id} resolved (was {severity}){lasted}")
        if not changes:
            return None
        notice = " ".join(("System health change: " + "; ".join(changes) + f" ({tail}).").split())
        if len(notice) <= ISSUE_BLOCK_LIMIT:
            return notice
    return clip(notice, ISSUE_BLOCK_LIMIT)


def _fmt_value(key: str, value: float) -> str:
    if key.endswith("_bytes"):
        return fmt_bytes(value)
    if key.endswith("_ratio"):
        return fmt_ratio(value)
    if key.endswith("_seconds"):
        return f"{value:g} s"
    return f"{value:g}"


def guard_decision(rules: list[Mapping[str, Any]], data: Mapping[str, Any], tool_name: str,
                   *, now: float) -> tuple[str, str] | None:
    """("deny" | "ask", reason) for the strictest matching guard rule, or None."""
    if not rules or not tool_name:
        return None
    from fnmatch import fnmatchcase  # only guard users pay for it

    issues = list(data.get("issues") or [])
    values = {p.get("name"): p.get("values") or {} for p in data.get("probes") or []}
    found: list[tuple[str, str]] = []
    for rule in rules:
        if not any(fnmatchcase(tool_name, pattern) for pattern in rule.get("tools") or ()):
            continue
        why = None
        if rule.get("issue"):
            floor = rank(rule.get("min_severity", "CRITICAL"), default=rank("CRITICAL"))
            for issue in issues:
                if fnmatchcase(str(issue["id"]), rule["issue"]) and rank(issue["severity"]) >= floor:
                    since = clock(parse_utc(issue["since"]))
                    why = (f"{issue['id']} is {issue['severity']} since {since} "
                           f"({clip(issue.get('summary', ''), 160)}){hint_phrase(issue)}")
                    break
        elif rule.get("value"):
            probe, _, key = str(rule["value"]).rpartition(".")
            value = values.get(probe, {}).get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if rule.get("below") is not None and value < rule["below"]:
                    why = f"{probe} {key} is {_fmt_value(key, value)}, below {_fmt_value(key, rule['below'])}"
                elif rule.get("above") is not None and value > rule["above"]:
                    why = f"{probe} {key} is {_fmt_value(key, value)}, above {_fmt_value(key, rule['above'])}"
        if why:
            decision = "deny" if rule.get("decision", "deny") == "deny" else "ask"
            verb = "blocked" if decision == "deny" else "held for confirmation"
            found.append((decision, f"{tool_name} is {verb} by the aiki-hooks guard rule "
                                    f"\"{rule.get('name', 'guard')}\" while {why}."))
    if not found:
        return None
    found.sort(key=lambda item: item[0] != "deny")
    return found[0]


# --------------------------------------------------------------------------- status line

SYMBOL = {"OK": "●", "WARNING": "▲", "CRITICAL": "✖", "UNKNOWN": "?"}
SEPARATOR = " · "
# Context use is coloured from these percentages on (Claude Code compacts near the top).
CONTEXT_WARN_PERCENT = 70
CONTEXT_CRIT_PERCENT = 90
# A burn rate over a few minutes of a block is noise: none before this much activity.
BURN_RATE_MIN_SECONDS = 600
BLOCK_SECONDS = 5 * 3600
# Characters of our own that terminals (and Claude Code's renderer) draw one column wide.
_OWN_NARROW = frozenset("●▲✖·…")


def display_width(text: str) -> int:
    """Terminal columns *text* takes: East Asian wide and full-width characters take two,
    combining marks and format characters none (unicodedata only for such text)."""
    if all(char < "\x7f" or char in _OWN_NARROW for char in text):
        return len(text)
    import unicodedata

    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def fit(text: str, columns: int) -> str:
    """*text* cut to *columns* display columns, ending in "…" when cut (no limit at 0)."""
    if columns <= 0 or display_width(text) <= columns:
        return text
    kept, width = [], 1  # the ellipsis
    for char in text:
        width += display_width(char)
        if width > columns:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "…"


def _count(tokens: float) -> str:
    return f"{tokens / 1e6:.1f}M" if tokens >= 1e6 else f"{tokens / 1e3:.1f}k" if tokens >= 1e3 else f"{tokens:.0f}"


def _time_left(seconds: float) -> str:
    return "<1m left" if seconds < 60 else f"{fmt_duration(seconds)} left"


def _costs_values(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    for probe in (data or {}).get("probes") or ():
        if isinstance(probe, dict) and probe.get("kind") == "costs" and isinstance(probe.get("values"), dict) \
                and "today_usd" in probe["values"]:
            return probe["values"]
    return {}


def block_variants(values: Mapping[str, Any], now: float) -> list[str]:
    """The block part from the costs check's values, longest first: ["block $3.20 · 2h14m
    left · $1.45/h", "block $3.20 · 2h14m left", "block 2h14m left"]; [] when there is no
    active block. "$3.20+": tokens of models without a price are not in the figure (and
    the rate is then in tokens a minute). No rate before BURN_RATE_MIN_SECONDS of activity."""
    spent, ends = finite_number(values.get("block_usd")), finite_number(values.get("block_ends_at"))
    if spent is None or ends is None or not 0 < ends - now <= BLOCK_SECONDS:
        return []  # no block, or one that has ended (or a date that cannot be right)
    unpriced = finite_number(values.get("block_unpriced_tokens")) or 0
    left = _time_left(ends - now)
    cost = f"block ${spent:.2f}{'+' if unpriced > 0 else ''}"
    first = finite_number(values.get("block_first_activity_at"))
    last = finite_number(values.get("block_last_activity_at"))
    rate = None
    if first is not None and last is not None and last - first >= BURN_RATE_MIN_SECONDS:
        per_hour, per_minute = finite_number(values.get("block_usd_per_hour")), finite_number(
            values.get("block_tokens_per_minute"))
        if unpriced <= 0 and per_hour is not None and per_hour >= 0:
            rate = f"${per_hour:.2f}/h"
        elif per_minute is not None and per_minute >= 0:
            rate = f"{_count(per_minute)} tok/min"
    variants = [f"{cost}{SEPARATOR}{left}{SEPARATOR}{rate}"] if rate else []
    return variants + [f"{cost}{SEPARATOR}{left}", f"block {left}"]


def _context_color(percent: float) -> str | None:
    if percent >= CONTEXT_CRIT_PERCENT:
        return ANSI_COLORS["CRITICAL"]
    return ANSI_COLORS["WARNING"] if percent >= CONTEXT_WARN_PERCENT else None


def status_line(data: Mapping[str, Any] | None, *, state: str, age: float | None,
                session_cost_usd: float | None, columns: int, color: bool = True,
                context_percent: float | None = None, now: float | None = None) -> str:
    """One line: worst status, the issues, this session's context use, the 5-hour block
    (cost, time left, burn rate), this session's and today's cost; fitted to *columns*
    display columns by dropping detail in a fixed order (see DROP_ORDER). A part whose
    data is missing or stale is left out, never guessed. *now*: for the block's time left
    (without it there is no block part)."""
    if data is None:
        status, issues = "UNKNOWN", []
        note = "no health data" if state == "missing" else "health data unreadable"
    else:
        status, issues = str(data.get("status", "UNKNOWN")), list(data.get("issues") or [])
        note = (f"data {fmt_duration_words(age or 0)} old" if state == "stale"
                else "clock skew: data dated ahead" if state == "skewed" else "")
    head = f"{SYMBOL.get(status, '?')} {status}"
    count = f"{len(issues)} issue{'s' if len(issues) != 1 else ''}" if issues else ""
    names = ", ".join(str(i.get("id")) for i in issues[:3]) + (", …" if len(issues) > 3 else "")
    costs = _costs_values(data)
    today = _today_cost(costs)
    # Costs of a stale cache may belong to an earlier block: only fresh data gives a block.
    block = block_variants(costs, now) if state == "fresh" and now is not None else []
    context = None
    if context_percent is not None and 0 <= context_percent <= 100:
        context = f"ctx {context_percent:.0f}%"

    # Each part's variants, longest first; "" is the part gone.
    parts: dict[str, list[str]] = {
        "head": [f"aiki {head}"],
        "issues": [f"{count}: {names}", count, ""] if issues else [""],
        "note": [note, ""] if note else [""],
        "context": [context, ""] if context else [""],
        "block": block + [""],
        "today": [today, ""] if today else [""],
        "session": [f"session ${session_cost_usd:.2f}", ""] if session_cost_usd is not None else [""],
    }
    chosen = dict.fromkeys(parts, 0)

    def shown() -> list[tuple[str, str]]:
        return [(name, parts[name][chosen[name]]) for name in parts if parts[name][chosen[name]]]

    plain = SEPARATOR.join(part for _, part in shown())
    for name in DROP_ORDER:
        if columns <= 0 or display_width(plain) <= columns:
            break
        if chosen[name] < len(parts[name]) - 1:
            chosen[name] += 1
            plain = SEPARATOR.join(part for _, part in shown())
    fitted = fit(plain, columns)
    if not color or fitted != plain:  # (a cut status word stays plain)
        return fitted
    # Colour the status word and a high context figure; widths were counted without them.
    shades = {"head": ANSI_COLORS.get(status),
              "context": _context_color(context_percent) if context and context_percent is not None else None}
    coloured = []
    for name, part in shown():
        shade = shades.get(name)
        if name == "head" and shade:
            part = part.replace(head, f"\033[{shade}m{head}\033[0m", 1)
        elif shade:
            part = f"\033[{shade}m{part}\033[0m"
        coloured.append(part)
    return SEPARATOR.join(coloured)


# What gives way first when the line is too wide; each entry takes one step down that
# part's variants (the block has up to three). The status itself is only ever cut.
DROP_ORDER = ("today", "session", "block", "block", "issues", "block", "context", "issues", "note")


def untrusted_status(columns: int) -> str:
    """The status line when the state dir fails the trust check."""
    return fit("aiki ? state dir not trusted: see aiki-hooks doctor", columns)


def _today_cost(values: Mapping[str, Any]) -> str | None:
    """"today $1.20", plus the unpriced tokens (never a bare $0.00 for them) and Claude
    Code's own price for them when known: "today $0.00 + 12.3k tok unpriced (CC $0.50)"."""
    value = finite_number(values.get("today_usd"))
    if value is None:
        return None
    text = f"today ${value:.2f}"
    tokens = values.get("today_unpriced_tokens")
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
        text += f" + {_count(tokens)} tok unpriced"
        estimate = finite_number(values.get("today_unpriced_usd_claude_code"))
        if estimate is not None:
            text += f" (CC ${estimate:.2f})"
    return text
