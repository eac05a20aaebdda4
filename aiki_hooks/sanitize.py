"""Text from outside (probe output, HTTP bodies, journal lines, config values) made safe
to print, journal or tell the agent: terminal escape sequences and control characters
removed, so that a plugin cannot retitle the terminal, clear the screen or hide text.

Only `re`: cheap enough to import anywhere, the hooks included.
"""

from __future__ import annotations

import re

# An escape sequence: CSI (colours, cursor moves, "\x1b[2J"), OSC up to its BEL or ST
# ("\x1b]0;title\x07"), or a two-character escape. Other control characters go one by one.
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])")
# C0 and C1 controls but tab and newline (callers decide about those), DEL, and the
# bidirectional overrides and isolates, which reorder what a terminal shows.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"[\t\n\u2028\u2029]")
_ANY_CONTROL = re.compile(f"{CONTROL.pattern}|{_LINE_BREAKS.pattern}")


def strip_controls(text: str, *, multiline: bool = False) -> str:
    """*text* without escape sequences and control characters. Tabs and line breaks
    become spaces, unless *multiline* (then newlines and tabs are kept; a lone carriage
    return, which would overwrite the line, still goes)."""
    text = ANSI_ESCAPE.sub("", text)
    if multiline:
        text = text.replace("\u2028", "\n").replace("\u2029", "\n")
    else:
        text = _LINE_BREAKS.sub(" ", text)
    return CONTROL.sub("", text)


def has_controls(text: str) -> bool:
    """True when *text* holds a control character, tab and newline included (a value
    that must be one line has neither)."""
    return _ANY_CONTROL.search(text) is not None


def visible_controls(text: str) -> str:
    """*text* with each control character (tab and newline included) written as its
    escape: "\\x1b", "\\n", "\\u202e". For quoting a value in a message: safe to print,
    and it still shows what is wrong with the value."""
    return _ANY_CONTROL.sub(lambda match: match.group(0).encode("unicode_escape").decode("ascii"), text)
