"""What a webhook output posts, by its `format`: our own JSON, or a message that Slack's
and Discord's incoming webhooks and an ntfy topic accept.

Pure: `render(format, what, payload)` takes what `router.webhook_payload` selected (the
transitions, the open issues or the snapshot) and returns the body and the headers that
go with it; sending is router.py's. No input makes it raise or exceed the service's
documented limits: each text is cut to its limit with a marker ("…", "… and 3 more").

- json: the payload as compact JSON, exactly as before formats existed.
- slack: `text` (the notification and the fallback) plus `blocks` (sections of mrkdwn,
  a context footer); at most 50 blocks, 3000 characters a text.
- discord: `content` (the notification line) plus one embed (title, description, fields,
  footer, the severity's colour); `allowed_mentions` parses nothing, so no text pings.
- ntfy: the message as the plain-text body of a POST to the topic's URL (at most 4096
  bytes, ntfy's default message limit), with `Title`, `Priority` and `Tags` headers.

Text from outside (issue summaries, sentences, ids, the host name) has its control
characters and escape sequences removed, then the service's markup escaped: Slack's
`&`, `<` and `>` (so `<!channel>` or `<https://x|y>` stay text), Discord's markdown
characters (so `[text](url)`, `@everyone` or a bare URL stay text). Lengths are counted
in UTF-16 code units, as the services' JavaScript counts them (an emoji is 2).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiki_hooks.hooklib.text import clip
from aiki_hooks.model import severity
from aiki_hooks.model.dates import parse_utc, utc_iso
from aiki_hooks.model.units import fmt_duration_words
from aiki_hooks.sanitize import strip_controls

JSON_HEADERS = (("Content-Type", "application/json"),)
TEXT_HEADERS = (("Content-Type", "text/plain; charset=utf-8"),)

CUT = "…"  # ends a text cut to fit

# Slack: blocks per message, characters per section text (Block Kit's limits).
SLACK_MAX_BLOCKS = 50
SLACK_TEXT_CHARS = 3000
# Discord: the execute-webhook limits. An embed's text together may not pass 6000: title
# 256 + description 4096 + one field (256 + 1024) + our footer (FOOTER_UNITS) stays under.
DISCORD_CONTENT_CHARS = 2000
DISCORD_TITLE_CHARS = 256
DISCORD_DESCRIPTION_CHARS = 4096
DISCORD_FIELD_NAME_CHARS = 256
DISCORD_FIELD_VALUE_CHARS = 1024
# ntfy: the server's default message-size-limit; a longer body would become an attachment.
NTFY_MESSAGE_BYTES = 4096
NTFY_TITLE_CHARS = 200
# ntfy's priorities (1-5 by name): a CRITICAL one pops up, an ended one stays quiet.
NTFY_PRIORITY = {"CRITICAL": "high", "WARNING": "default", "UNKNOWN": "default", "OK": "low"}

# Outside text is clipped before markup, so one long summary cannot crowd out the rest.
LABEL_CHARS = 120
SUMMARY_CHARS = 500
DETAIL_CHARS = 400
HINT_CHARS = 300
HOST_CHARS = 64
FOOTER_UNITS = 200  # "devbox · aiki-hooks", and a snapshot's probe tally on Slack
# The parts of one entry once escaped (markup can double a text): together well under a
# Slack section's 3000, and a Discord description still shows several entries.
HEADLINE_UNITS = 200
SUMMARY_UNITS = 300
DETAIL_UNITS = 250
HINT_UNITS = 200


@dataclass(frozen=True)
class Message:
    """A rendered webhook body and the headers that describe it (Content-Type first)."""

    body: bytes
    headers: tuple[tuple[str, str], ...]


def render(fmt: str, what: str, payload: Any) -> Message:
    """The body and headers for *payload* (what `webhook_payload` returned for *what*)."""
    if fmt == "json":
        return Message(json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8"), JSON_HEADERS)
    alert = read_alert(what, payload if isinstance(payload, Mapping) else {})
    if fmt == "slack":
        return _json_message(slack_body(alert))
    if fmt == "discord":
        return _json_message(discord_body(alert))
    if fmt == "ntfy":
        return ntfy_message(alert)
    raise ValueError(f"unknown webhook format {fmt!r}")  # the config refuses it first


def _json_message(body: Mapping[str, Any]) -> Message:
    return Message(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), JSON_HEADERS)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Entry:
    """One line of an alert: a transition or an open issue, as plain (unescaped) text."""

    state: str  # whose emoji it shows: the issue's severity, OK once it ended
    headline: str  # "opened: qdrant (http) CRITICAL"
    summary: str = ""  # "connection refused"
    detail: str = ""  # "qdrant (http) stopped answering at 14:05 (connection refused)."
    hint: str = ""  # the user's runbook line for the check (`hint` in the config)


@dataclass(frozen=True)
class Alert:
    """A payload read for people: the title holds none of the issues' own text, so a
    service that shows it without markup (Discord's embed title) needs no escaping."""

    title: str  # "CRITICAL issue opened on box", "box is WARNING, 2 open issues"
    notice: str  # the one line a notification shows: the entry when there is one, else the title
    notice_state: str  # the state of that line
    state: str  # the worst state in it; OK when everything in it ended or is fine
    tag: str  # one word for ntfy's tags: critical, warning, unknown, ok, resolved
    entries: tuple[Entry, ...]
    footer: str  # "box · aiki-hooks"
    timestamp: str | None  # ISO 8601, for Discord's embed
    facts: tuple[tuple[str, str], ...] = ()  # ("Probes", "13 OK, 1 CRITICAL")


def read_alert(what: str, payload: Mapping[str, Any]) -> Alert:
    if what == "transitions":
        return _transitions_alert([r for r in payload.get("transitions") or () if isinstance(r, Mapping)])
    return _issues_alert(payload, snapshot=what == "snapshot")


def _transitions_alert(records: list[Mapping[str, Any]]) -> Alert:
    entries = tuple(_transition_entry(record) for record in records)
    host = _host(next((r.get("host") for r in records if r.get("host")), None))
    ongoing = [e.state for e, r in zip(entries, records, strict=True) if r.get("transition") != "resolved"]
    state = severity.worst(ongoing)
    if len(records) == 1:
        record = records[0]
        transition = _word(record.get("transition"))
        if transition in ("escalated", "de-escalated"):
            title = f"issue {transition} to {_state(record.get('severity'))} on {host}"
        elif transition == "resolved":
            title = f"issue resolved on {host}"
        else:
            title = f"{_state(record.get('severity'))} issue {transition} on {host}"
    else:
        counts: dict[str, int] = {}
        for record in records:
            name = _word(record.get("transition"))
            counts[name] = counts.get(name, 0) + 1
        title = f"{len(records)} issue changes on {host} ({', '.join(f'{n} {t}' for t, n in counts.items())})"
    times = [float(at) for r in records if isinstance(at := r.get("at"), (int, float))]
    notice, notice_state = _notice(entries, title, state)
    return Alert(title=title, notice=notice, notice_state=notice_state, state=state,
                 tag=state.lower() if ongoing else "resolved", entries=entries,
                 footer=f"{host} · aiki-hooks", timestamp=utc_iso(max(times)) if times else None)


def _transition_entry(record: Mapping[str, Any]) -> Entry:
    transition = _text(record.get("transition") or record.get("kind"), 30) or "changed"
    state = _state(record.get("severity"))
    label = _label(record.get("issue_id"), record.get("probe"))
    summary = _text(record.get("summary"), SUMMARY_CHARS)
    detail = _text(record.get("sentence"), DETAIL_CHARS)
    if transition == "resolved":
        lasted = record.get("duration_seconds")
        after = f" after {fmt_duration_words(lasted)}" if isinstance(lasted, (int, float)) else ""
        return Entry("OK", f"resolved: {label}{after}", "", detail)
    hint = _text(record.get("hint"), HINT_CHARS)
    previous = record.get("previous_severity")
    if transition in ("escalated", "de-escalated") and previous in severity.ORDER:
        return Entry(state, f"{transition}: {label} {previous} → {state}", summary, detail, hint)
    return Entry(state, f"{transition}: {label} {state}", summary, detail, hint)


def _issues_alert(payload: Mapping[str, Any], *, snapshot: bool) -> Alert:
    host = _host(payload.get("host"))
    generated = payload.get("generated_at")
    issues = [i for i in payload.get("issues") or () if isinstance(i, Mapping)]
    entries = tuple(_issue_entry(issue, generated) for issue in issues)
    worst = severity.worst(e.state for e in entries)
    some = f"{len(issues)} open issue{'' if len(issues) == 1 else 's'}"
    facts: tuple[tuple[str, str], ...] = ()
    if snapshot:
        status = _state(payload.get("status"))
        worst = severity.worst((worst, status))
        title = f"{host} is {status}" + (f", {some}" if issues else "")
        probes = [p for p in payload.get("probes") or () if isinstance(p, Mapping)]
        counts = {name: sum(1 for p in probes if _state(p.get("status")) == name) for name in severity.ORDER}
        tally = ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "none"
        facts = (("Probes", tally),)
        if not entries:
            entries = (Entry(status, "no open issues", f"{len(probes)} probe{'' if len(probes) == 1 else 's'}: "
                                                       f"{tally}"),)
    else:
        title = f"{some} on {host} (worst: {worst})"
    # A snapshot's notice is the host's state, even with one issue.
    notice, notice_state = (title, worst) if snapshot else _notice(entries, title, worst)
    return Alert(title=title, notice=notice, notice_state=notice_state, state=worst, tag=worst.lower(),
                 entries=entries, footer=f"{host} · aiki-hooks", timestamp=_iso(generated), facts=facts)


def _notice(entries: tuple[Entry, ...], title: str, state: str) -> tuple[str, str]:
    """The line a notification shows, and its state: the entry when there is one."""
    if len(entries) != 1:
        return title, state
    (entry,) = entries
    return (f"{entry.headline} — {entry.summary}" if entry.summary else entry.headline), entry.state


def _issue_entry(issue: Mapping[str, Any], generated: Any) -> Entry:
    state = _state(issue.get("severity"))
    detail = ""
    try:
        lasted = parse_utc(str(generated)) - parse_utc(str(issue.get("since")))
        detail = f"open for {fmt_duration_words(lasted)}"
    except ValueError:
        pass
    return Entry(state, f"{_label(issue.get('id'), issue.get('probe'))} {state}",
                 _text(issue.get("summary"), SUMMARY_CHARS), detail, _text(issue.get("hint"), HINT_CHARS))


def _text(value: Any, limit: int) -> str:
    """Outside text made one safe line: no escapes or control characters, runs of
    whitespace as one space, at most *limit* characters."""
    return "" if value is None else clip(strip_controls(str(value)), limit)


def _label(issue_id: Any, probe: Any) -> str:
    """How an issue is named: "qdrant (http)" for `http:qdrant` of probe qdrant, else its id."""
    issue, name = _text(issue_id, LABEL_CHARS), _text(probe, LABEL_CHARS)
    kind, colon, rest = issue.partition(":")
    if colon and name and rest == name:
        return f"{name} ({kind})"
    return issue or name or "an issue"


def _host(value: Any) -> str:
    # Titles show it unescaped: only the characters a host name has.
    return re.sub(r"[^\w.-]", "?", _text(value, HOST_CHARS)) or "this host"


def _word(transition: Any) -> str:
    # Titles show it unescaped: "opened", "de-escalated".
    return re.sub(r"[^\w-]", "?", _text(transition, 30)) or "changed"


def _state(value: Any) -> str:
    return value if isinstance(value, str) and value in severity.RANK else "UNKNOWN"


def _iso(value: Any) -> str | None:
    try:
        return utc_iso(parse_utc(str(value)))
    except (ValueError, OverflowError, OSError):
        return None


# --------------------------------------------------------------------------- fitting


def utf16_units(text: str) -> int:
    """Length as the services count it (JavaScript strings): an emoji is 2."""
    return len(text.encode("utf-16-le")) // 2


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def fit(raw: str, limit: int, escape: Callable[[str], str] = str,
        measure: Callable[[str], int] = utf16_units) -> str:
    """*raw* escaped, cut so that it measures at most *limit*, ending in CUT when cut.
    The cut is made in the raw text, so no escape is ever split."""
    whole = escape(raw)
    if measure(whole) <= limit:
        return whole
    low, high = 0, len(raw)
    while low < high:  # the longest raw prefix whose escaped form and CUT fit
        middle = (low + high + 1) // 2
        if measure(escape(raw[:middle].rstrip()) + CUT) <= limit:
            low = middle
        else:
            high = middle - 1
    return escape(raw[:low].rstrip()) + CUT


def join_within(pieces: list[str], limit: int, separator: str = "\n",
                measure: Callable[[str], int] = utf16_units) -> str:
    """*pieces* joined while they fit in *limit*; the ones left out are counted in a last
    line "… and N more". Each piece must fit on its own."""
    for shown in range(len(pieces), -1, -1):
        left_out = len(pieces) - shown
        parts = pieces[:shown] + ([f"{CUT} and {left_out} more"] if left_out else [])
        text = separator.join(parts)
        if measure(text) <= limit:
            return text
    return fit(f"{CUT} and {len(pieces)} more", limit, measure=measure)


# --------------------------------------------------------------------------- Slack


def slack_escape(text: str) -> str:
    """Slack's three control characters, as its docs ask: `<!channel>` stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _entry_markup(entry: Entry, escape: Callable[[str], str], bold: str,
                  measure: Callable[[str], int] = utf16_units) -> str:
    """"🚨 *opened: qdrant (http) CRITICAL* — connection refused" and the sentence below;
    each part escaped and cut on its own (no escape is split, and the whole stays under
    HEADLINE_UNITS + SUMMARY_UNITS + DETAIL_UNITS + HINT_UNITS and a few marks)."""
    line = f"{severity.EMOJI[entry.state]} {bold}{fit(entry.headline, HEADLINE_UNITS, escape, measure)}{bold}"
    if entry.summary:
        line += " — " + fit(entry.summary, SUMMARY_UNITS, escape, measure)
    if entry.detail:
        line += "\n" + fit(entry.detail, DETAIL_UNITS, escape, measure)
    if entry.hint:
        line += "\n" + fit(f"hint: {entry.hint}", HINT_UNITS, escape, measure)
    return line


def slack_body(alert: Alert) -> dict[str, Any]:
    """An incoming-webhook message: `text` for notifications, sections for the entries."""
    emoji = severity.EMOJI[alert.state]
    heading = f"{emoji} *{fit(alert.title, HEADLINE_UNITS, slack_escape)}*"
    lines = [_entry_markup(e, slack_escape, "*") for e in alert.entries]
    # A header section, the entries, maybe an "… and N more" context, the footer context.
    room = SLACK_MAX_BLOCKS - 3
    blocks: list[dict[str, Any]] = [_section(heading)]
    blocks += [_section(line) for line in lines[:room]]
    if len(lines) > room:
        blocks.append(_context(f"{CUT} and {len(lines) - room} more"))
    facts = "  ".join(f"{name}: {value}" for name, value in alert.facts)
    blocks.append(_context(fit(" · ".join(part for part in (facts, alert.footer) if part), SLACK_TEXT_CHARS,
                               slack_escape)))
    # The notification and fallback: the same lines without bold marks, which it would show.
    plain = [_entry_markup(e, slack_escape, "") for e in alert.entries]
    text = join_within([f"{emoji} {fit(alert.title, HEADLINE_UNITS, slack_escape)}", *plain], SLACK_TEXT_CHARS)
    return {"text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(mrkdwn, SLACK_TEXT_CHARS)}}


def _context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(mrkdwn, SLACK_TEXT_CHARS)}]}


# --------------------------------------------------------------------------- Discord

# The characters Discord's markdown gives a meaning anywhere (emphasis, code, spoilers,
# the brackets of a masked link, mentions, `<...>` tags), those that do at the start of a
# line (headings, quotes, lists: each escaped text may start one) and the colon of
# `scheme://` (an autolink); a backslash before one shows it as itself.
_DISCORD_MARKUP = re.compile(r"[\\*_~`|<>\[\]@]|^[#>-]|:(?=//)")


def discord_escape(text: str) -> str:
    return _DISCORD_MARKUP.sub(lambda match: "\\" + match.group(0), text)


def discord_body(alert: Alert) -> dict[str, Any]:
    """An execute-webhook body: `content` is the notification line, the embed the rest."""
    emoji = severity.EMOJI[alert.state]
    content = f"{severity.EMOJI[alert.notice_state]} {fit(alert.notice, DISCORD_CONTENT_CHARS - 4, discord_escape)}"
    embed: dict[str, Any] = {
        # Ours alone (no issue text, a host name of [\w.-]): shown without markup.
        "title": fit(f"{emoji} {alert.title}", DISCORD_TITLE_CHARS),
        "color": severity.RGB_COLORS[alert.state],
        "footer": {"text": fit(alert.footer, FOOTER_UNITS)},
    }
    if alert.entries:
        embed["description"] = join_within([_entry_markup(e, discord_escape, "**") for e in alert.entries],
                                           DISCORD_DESCRIPTION_CHARS, separator="\n\n")
    if alert.facts:
        embed["fields"] = [{"name": fit(name, DISCORD_FIELD_NAME_CHARS, discord_escape),
                            "value": fit(value, DISCORD_FIELD_VALUE_CHARS, discord_escape), "inline": True}
                           for name, value in alert.facts]
    if alert.timestamp:
        embed["timestamp"] = alert.timestamp
    return {"content": content, "embeds": [embed], "allowed_mentions": {"parse": []}}


# --------------------------------------------------------------------------- ntfy


def ntfy_message(alert: Alert) -> Message:
    """A plain-text publish to the topic URL: the body is the message, the headers say
    how it shows (RFC 2047 for a title that is not ASCII: header values are Latin-1)."""
    lines = [_entry_markup(e, str, "", utf8_bytes) for e in alert.entries]  # ntfy shows text as is
    footer = fit(alert.footer, FOOTER_UNITS, measure=utf8_bytes)
    body = join_within(lines, NTFY_MESSAGE_BYTES - utf8_bytes(footer) - 1, measure=utf8_bytes) + "\n" + footer
    title = fit(alert.notice.replace(" — ", " - "), NTFY_TITLE_CHARS, measure=len)  # ASCII when it can be
    if not title.isascii():
        title = "=?UTF-8?B?" + base64.b64encode(title.encode("utf-8")).decode("ascii") + "?="
    headers = (*TEXT_HEADERS, ("Title", title), ("Priority", NTFY_PRIORITY[alert.state]),
               ("Tags", f"{severity.EMOJI_NAMES[alert.state]},{alert.tag}"))
    return Message(body.encode("utf-8"), headers)
