"""The checks every config table is validated with, and how a value is shown in a problem.

Shared by config.load, outputs.router and the probe kinds (built-in or third-party), so
that a bad value anywhere gets the same one line: the key, the value as `show` quotes it
(a URL only to its host, secrets redacted, control characters escaped) and what was
expected. A check returns None when the value is fine, else what was expected; a spec
maps each key of a table to its check and its default; `Reader.table` applies one.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Iterable, Mapping

from aiki_hooks.model.thresholds import Threshold
from aiki_hooks.model.units import finite_number
from aiki_hooks.sanitize import CONTROL, has_controls, visible_controls

# \Z, not $: "name\n" must not pass.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]*\Z")

# A check returns None when the value is fine, else what was expected.

Check = Callable[[Any], "str | None"]
# A key's spec: its check and its default (None: no default, so the key is optional
# unless the table lists it as required).
Spec = Mapping[str, tuple[Check, Any]]


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        ok = finite_number(value) is not None  # (an int too large for a float is not one)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if ok:
            return None
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"<= {high:g}")
        return "a number" + (" " + " and ".join(bounds) if bounds else "")

    return check


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"a whole number from {low} to {high}"

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and not CONTROL.search(value):
        return None
    return "a non-empty string without control characters"


def choice(*options: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in options else "one of " + ", ".join(f'"{o}"' for o in options)

    return check


def probe_name(value: Any) -> str | None:
    if isinstance(value, str) and NAME_PATTERN.match(value):
        return None
    return "a name of letters, digits and _ . @ : + - (starting with a letter or digit)"


def env_var_name(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return None
    return "the name of an environment variable (not the key itself)"


def url(value: Any) -> str | None:
    expected = "an http:// or https:// URL with a host (no spaces or control characters)"
    if not isinstance(value, str) or re.search(r"\s", value) or has_controls(value):
        return expected
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # raises on a port that is not a number or above 65535
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return expected
    if port is not None and not 1 <= port <= 65535:
        return "an http:// or https:// URL whose port is a number from 1 to 65535"
    return None


# A DNS name: labels of letters (any script), digits, _ and -, dot-separated.
_HOST = re.compile(r"[\w-]{1,63}(?:\.[\w-]{1,63})*\.?")


def host(value: Any) -> str | None:
    if isinstance(value, str) and _HOST.fullmatch(value):
        return None
    if isinstance(value, str):
        import ipaddress

        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            pass
    return "a host name or IP address (no port, user, scheme or spaces)"


def string_list(value: Any) -> str | None:
    if isinstance(value, list) and value and all(isinstance(v, str) and v and not has_controls(v) for v in value):
        return None
    return "a non-empty list of non-empty strings without control characters"


def argv(value: Any) -> str | None:
    # Tabs and newlines may be part of an argument (`sh -c` scripts); a NUL cannot
    # reach exec at all, and other controls have no business in a command line.
    if isinstance(value, list) and value and all(isinstance(v, str) and v and not CONTROL.search(v) for v in value):
        return None
    return "a non-empty list of non-empty strings (program and arguments) without NUL or other control characters"


def absolute_paths(value: Any) -> str | None:
    if string_list(value) is None and all(v.startswith("/") for v in value):
        return None
    return "a non-empty list of absolute paths (starting with /)"


# `hint` on any check: the user's own runbook line, told to the agent beside that check's
# issue. One line and bounded, because it is spent from the agent's text budget.
MAX_HINT_CHARS = 200
HINT_EXPECTED = f"a one-line string of 1 to {MAX_HINT_CHARS} characters without control characters"


def hint_text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= MAX_HINT_CHARS and not has_controls(value):
        return None
    return HINT_EXPECTED


def hint_by_aspect(aspects: Iterable[str]) -> Check:
    """`hint` of a table that checks several aspects ([resources]): one string for all of
    them, or a table of strings by aspect (whose keys and values `read_hints` checks)."""
    known = ", ".join(aspects)

    def check(value: Any) -> str | None:
        if isinstance(value, dict):
            return None
        return None if hint_text(value) is None else f"{HINT_EXPECTED}, or a table of them by aspect ({known})"

    return check


def read_hints(reader: Reader, value: Any, where: str, aspects: Iterable[str]) -> dict[str, str]:
    """{aspect: hint} from a `hint` that passed `hint_by_aspect`: a string applies to every
    aspect; a table's keys and values are checked here, each bad one named."""
    aspects = tuple(aspects)
    if value is None:
        return {}
    if isinstance(value, str):
        return dict.fromkeys(aspects, value)
    by_aspect = reader.table(value, where, {aspect: (hint_text, None) for aspect in aspects})
    return {aspect: text for aspect, text in by_aspect.items() if text is not None}



class Reader:
    """Walks the raw TOML, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, raw: Any, where: str, spec: Spec, required: Iterable[str] = ()) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.problems.append(f"{where or 'top level'}: expected a table, got {show(raw)}")
            return {}
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in spec:
                known = ", ".join(sorted(spec))
                self.problems.append(f"{full_key(where, key)}: unknown key (known keys here: {known})")
                continue
            check, _ = spec[key]
            expected = check(value)
            if key.endswith("_env") and may_be_a_key(value):
                # A variable-name key holding what looks like the secret itself: refused
                # even when it could be a name, and never quoted.
                self.problems.append(f"{full_key(where, key)}: looks like a key, not a variable name (value not shown); "
                                     f"expected {expected or 'the name of the environment variable that holds it'}")
                continue
            if expected:
                self.problems.append(f"{full_key(where, key)} = {show(value)}: expected {expected}")
                continue
            out[key] = value
        for key in required:
            if key not in raw:
                full = f"{where}.{key}" if where else key
                self.problems.append(f"{full}: missing (required)")
        for key, (_, default) in spec.items():
            out.setdefault(key, default)
        return out

    def threshold_pair(self, values: dict, warn_key: str, crit_key: str, where: str, higher_is_worse=True) -> Threshold:
        warn, crit = values[warn_key], values[crit_key]
        if warn is not None and crit is not None:
            inverted = warn > crit if higher_is_worse else warn < crit
            if inverted:
                relation = "<=" if higher_is_worse else ">="
                self.problems.append(
                    f"{where}.{warn_key} = {show(warn)}: expected {relation} {where}.{crit_key} ({show(crit)})"
                )
        return Threshold(
            warn=None if warn is None else float(warn),
            crit=None if crit is None else float(crit),
            higher_is_worse=higher_is_worse,
        )


def show(value: Any) -> str:
    """*value* quoted for a problem message: a URL as its scheme and host only (its path
    and query may carry a token), secrets redacted (redact_text), control characters
    written as escapes, at most 60 characters."""
    if isinstance(value, str):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
            value = url_for_errors(value)
        text = '"' + redact_text(visible_controls(value)) + '"'
    else:
        text = redact_text(visible_controls(repr(value)))
    return text if len(text) <= 60 else text[:57] + "..."


def show_key(key: Any) -> str:
    """A TOML key for a message: a quoted key may hold anything."""
    return redact_text(visible_controls(str(key)))


def full_key(where: str, key: Any) -> str:
    """The dotted name of *key* in the table at *where*, for a message."""
    return f"{where}.{show_key(key)}" if where else show_key(key)


def may_be_a_key(value: Any) -> bool:
    """Whether a value given for a variable name may be the secret itself: a known key
    prefix (sk-ant-...) or anything redact_text hides; in a name's syntax, a part of 20+
    characters with a token's look (FOO_a8Kq...); otherwise anything but a short run of
    name characters."""
    if not isinstance(value, str):
        return False
    if _KEY_PREFIX.search(value) is not None or redact_text(value) != value:
        return True
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return any(len(part) >= 20 and _TOKEN_LIKE.fullmatch(part) for part in value.split("_"))
    return not re.fullmatch(r"[\w.-]{1,64}", value) or _TOKEN_LIKE.search(value) is not None



# A path segment that looks like a credential: 16+ characters mixing letters and digits
# or upper and lower case, or any 32+ (Slack's and Discord's webhook URLs carry their
# secret in the path). Hiding a harmless one costs nothing.
_TOKEN_CHARS = r"[A-Za-z0-9_.~+=:%-]"
_TOKEN_LIKE = re.compile(rf"(?=[^/]*\d)(?=[^/]*[A-Za-z]){_TOKEN_CHARS}{{16,}}"
                         rf"|(?=[^/]*[a-z])(?=[^/]*[A-Z]){_TOKEN_CHARS}{{16,}}|{_TOKEN_CHARS}{{32,}}")


def redact_url(url: str) -> str:
    """A URL fit to print: the password, a token-like user name or path segment, the
    query string and the fragment become *** (https://u:pw@h/hook/T0k3n...?key=v ->
    https://u:***@h/hook/***?***)."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "***"  # unparseable: nothing of it is known to be safe
    if not parts.scheme or not parts.netloc:
        return re.sub(r"[?#].*", "?***", url) if _TOKEN_LIKE.search(url) is None else "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        user = "***" if _TOKEN_LIKE.fullmatch(user) else user
        netloc = f"{user}:***@{hostport}" if colon else f"{user}@{hostport}"
    path = "/".join("***" if _TOKEN_LIKE.fullmatch(segment) else segment for segment in parts.path.split("/"))
    return (f"{parts.scheme}://{netloc}{path}" + ("?***" if parts.query else "")
            + ("#***" if parts.fragment else ""))


# Trailing punctuation is left out: "see http://h/x." ends at x.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}]+(?<![.,;:!?])")
# A bearer token wherever it stands ("Authorization: Bearer abc", curl -H "bearer abc").
_BEARER = re.compile(r"\b(Bearer)(\s+)[A-Za-z0-9._~+/=:-]+", re.IGNORECASE)
# A key naming a secret, then = or :, then its value: password=x, "api_key": "x",
# QDRANT_API_KEY=x (not `--token x`: no separator). No dot after the key word, so that
# tokenizer.py:45 keeps its line number.
_SECRET_KEY = (r"[\w.-]*(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|credentials?)[\w-]*"
               r"|authorization|auth")
_SECRET_ASSIGNMENT = re.compile(
    rf"(?P<key>[\"']?\b(?:{_SECRET_KEY})[\"']?\s*[=:]\s*)"
    rf"(?P<scheme>(?:Bearer|Basic|Token|Digest)\s+)?(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)",
    re.IGNORECASE,
)
# Keys that announce themselves by a prefix (Anthropic/OpenAI sk-..., GitHub, GitLab,
# Slack, AWS) when the rest is token-like; JSON web tokens (three parts, the first eyJ).
_KEY_PREFIX = re.compile(r"\b(?:sk-(?:ant-)?|gh[pousr]_|github_pat_|glpat-|xox[abeprs]-|AKIA)(?P<rest>[A-Za-z0-9_-]+)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
# user:password@host without a scheme before it (a host key holding credentials, a DSN
# cut at a space).
_USERINFO = re.compile(r"(?<![\w.%+-])(?P<user>[\w.%+-]+):(?P<password>[^\s:@/'\"]+)@(?=[\w\[])")


def redact_text(text: str) -> str:
    """Free text (a log line) fit to print: each URL as redact_url shows it; the value
    after a secret-naming key (password=, token:, "api_key": "...", X_API_KEY=) or an
    Authorization scheme (Bearer ...); the password of a user:password@host without a
    scheme; keys known by their prefix (sk-ant-..., ghp_..., AKIA...) and JWTs become
    ***. Other words are kept, even long ones: a log line's class and module names would
    look token-like to _TOKEN_LIKE."""
    text = _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
    text = _USERINFO.sub(lambda match: f"{match['user']}:***@", text)
    text = _KEY_PREFIX.sub(lambda match: "***" if _TOKEN_LIKE.fullmatch(match["rest"]) else match.group(0), text)
    text = _JWT.sub("***", text)
    text = _BEARER.sub(lambda match: f"{match.group(1)}{match.group(2)}***", text)
    return _SECRET_ASSIGNMENT.sub(_redact_assignment, text)


def _redact_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    if value.strip("\"'") in ("", "***"):
        return match.group(0)  # empty, or already hidden by an earlier pattern
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{match['scheme'] or ''}{quote}***{quote}"


def url_for_errors(url: str) -> str:
    """Scheme and host of *url* (password hidden), `/...` for the rest: safe in an error."""
    shown = redact_url(url)
    start = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*", shown)
    if start is None:
        return "***"
    return start.group(0) + ("/..." if len(shown) > start.end() else "")


def file_path(value: Any) -> str | None:
    if isinstance(value, str) and os.path.isabs(os.path.expanduser(value)):
        return None
    return "an absolute path (~ allowed)"


def table_check(what: str = "a table") -> Check:
    """A value that must be a table (its keys are checked by its own spec)."""

    def check(value: Any) -> str | None:
        return None if isinstance(value, dict) else what

    return check


# Below 10 ms no probe can connect, run a program or read a file.
probe_timeout = number(0.01, 600)
percent = number(0, 100)
