"""Configuration: TOML -> frozen dataclasses, validated once at load.

Every problem in a file is reported at once, each naming the key, the value found and
what was expected, so a user fixes the file in one pass. A value is quoted as `_show`
makes it: a URL only to its host, secrets redacted, control characters escaped; a value
that looks like a key where a variable name belongs is not quoted at all. Secrets never
live here: an HTTP probe names the *environment variable* that holds its API key.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from aiki_hooks import paths
from aiki_hooks.model.thresholds import Threshold
from aiki_hooks.sanitize import CONTROL, has_controls, visible_controls

RESERVED_NAMES = frozenset({"cpu", "load", "memory", "swap"})
# \Z, not $: "name\n" must not pass.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]*\Z")


class ConfigError(Exception):
    """The config file is unusable. `problems` lists every problem found."""

    def __init__(self, file: Path | str, problems: list[str]):
        self.file = str(file)
        self.problems = list(problems)
        super().__init__(self.message())

    def message(self) -> str:
        if len(self.problems) == 1:
            return f"invalid config {self.file}: {self.problems[0]}"
        listed = "\n".join(f"  - {p}" for p in self.problems)
        return f"invalid config {self.file} ({len(self.problems)} problems):\n{listed}"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, kw_only=True)
class ResourcesConfig:
    """The [resources] table: CPU, memory and disk thresholds."""

    enabled: bool = True
    disk_paths: tuple[str, ...] = ("/",)
    cpu: Threshold = Threshold(warn=90.0, crit=98.0)
    memory: Threshold = Threshold(warn=85.0, crit=95.0)
    swap: Threshold = Threshold(warn=50.0, crit=80.0)
    disk_used: Threshold = Threshold(warn=90.0, crit=95.0)
    disk_free_gib: Threshold = Threshold(warn=5.0, crit=1.0, higher_is_worse=False)
    load_per_core: Threshold = Threshold(warn=2.0, crit=4.0)
    timeout_seconds: float = 5.0


@dataclass(frozen=True, kw_only=True)
class SystemdProbeConfig:
    """One [[probes.systemd]] entry: a unit to watch."""

    unit: str
    scope: str = "user"
    name: str = ""
    timeout_seconds: float = 5.0


@dataclass(frozen=True, kw_only=True)
class HttpProbeConfig:
    """One [[probes.http]] entry: an HTTP (or Qdrant) endpoint to check."""

    name: str
    url: str
    kind: str = "generic"
    timeout_seconds: float = 3.0
    expect_status: tuple[int, ...] = ()
    expect_body: str | None = None
    api_key_env: str | None = None
    verify_tls: bool = True


@dataclass(frozen=True, kw_only=True)
class TcpProbeConfig:
    """One [[probes.tcp]] entry: a port that must accept connections."""

    name: str
    host: str
    port: int
    timeout_seconds: float = 3.0


@dataclass(frozen=True, kw_only=True)
class CommandProbeConfig:
    """One [[probes.command]] entry: a Nagios-style plugin to run."""

    name: str
    command: tuple[str, ...]
    timeout_seconds: float = 10.0


@dataclass(frozen=True, kw_only=True)
class PriceOverride:
    """USD per million tokens for a model prefix ([costs.prices."claude-x"])."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


@dataclass(frozen=True, kw_only=True)
class ExternalCostConfig:
    """The user's own token tracker: a command printing JSON, or a JSON file."""

    command: tuple[str, ...] = ()
    json_file: str | None = None
    timeout_seconds: float = 5.0
    label: str = "tracker"


@dataclass(frozen=True, kw_only=True)
class CostsConfig:
    """The [costs] table: where the transcripts are, time zone, budgets, prices, tracker."""

    enabled: bool = True
    timezone: str | None = None
    claude_config_dirs: tuple[str, ...] = ()
    daily_usd: float | None = None
    block_usd: float | None = None
    timeout_seconds: float = 30.0
    prices: tuple[tuple[str, PriceOverride], ...] = ()
    external: ExternalCostConfig | None = None


@dataclass(frozen=True, kw_only=True)
class JournalConfig:
    """The issue journal: transitions damped over cycles, JSON lines rotated by size."""

    open_after_cycles: int = 2
    resolve_after_cycles: int = 2
    max_bytes: int = 5 * 1024 * 1024
    keep_files: int = 3


@dataclass(frozen=True, kw_only=True)
class Mem0Config:
    """Delivery of journal records into mem0, by a short-lived helper process."""

    backend: str = "off"  # off | local | platform | rest
    user_id: str = "aiki-hooks"
    agent_id: str | None = None
    infer: bool = False
    telemetry: bool = False
    local_config: Mapping[str, Any] | None = None  # inline [mem0.config] table
    config_file: str | None = None  # or the user's mem0 JSON config
    host: str | None = None  # platform (self-hosted) or rest base URL
    api_key_env: str = "MEM0_API_KEY"
    max_spool_records: int = 1000
    backoff_initial_seconds: float = 30.0
    backoff_max_seconds: float = 1800.0
    timeout_seconds: float = 60.0


@dataclass(frozen=True, kw_only=True)
class GuardRule:
    """Deny or ask before some tools while the machine is in a given state.

    The condition is either an open issue (`issue`, a glob over issue ids, at or above
    `min_severity`) or a value of a probe (`value` = "<probe>.<key>") below/above a level.
    """

    name: str
    tools: tuple[str, ...]
    decision: str = "deny"
    issue: str | None = None
    min_severity: str = "CRITICAL"
    value: str | None = None
    below: float | None = None
    above: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v if not isinstance(v, tuple) else list(v) for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole validated config file."""

    source: str = "<defaults>"
    interval_seconds: float = 60.0
    state_dir: Path = field(default_factory=paths.default_state_dir)
    resources: ResourcesConfig = ResourcesConfig()
    systemd: tuple[SystemdProbeConfig, ...] = ()
    http: tuple[HttpProbeConfig, ...] = ()
    tcp: tuple[TcpProbeConfig, ...] = ()
    command: tuple[CommandProbeConfig, ...] = ()
    guard: tuple[GuardRule, ...] = ()
    costs: CostsConfig = CostsConfig()
    journal: JournalConfig = JournalConfig()
    mem0: Mem0Config = Mem0Config()
    outputs: tuple = ()  # tuple[outputs.OutputConfig, ...]; defaults applied at load

    @property
    def cache_path(self) -> Path:
        return self.state_dir / paths.CACHE_NAME

    @property
    def max_probe_timeout(self) -> float:
        timeouts = [self.resources.timeout_seconds] if self.resources.enabled else []
        if self.costs.enabled:
            timeouts.append(self.costs.timeout_seconds)
        for group in (self.systemd, self.http, self.tcp, self.command):
            timeouts.extend(p.timeout_seconds for p in group)
        return max(timeouts, default=1.0)


# --------------------------------------------------------------------------- checks
# A check returns None when the value is fine, else what was expected.

Check = Callable[[Any], "str | None"]


def _number(low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
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


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"a whole number from {low} to {high}"

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip() and not CONTROL.search(value):
        return None
    return "a non-empty string without control characters"


def _choice(*options: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in options else "one of " + ", ".join(f'"{o}"' for o in options)

    return check


def _probe_name(value: Any) -> str | None:
    if isinstance(value, str) and NAME_PATTERN.match(value):
        return None
    return "a name of letters, digits and _ . @ : + - (starting with a letter or digit)"


def _env_var_name(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return None
    return "the name of an environment variable (not the key itself)"


def _url(value: Any) -> str | None:
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


def _host(value: Any) -> str | None:
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


def _string_list(value: Any) -> str | None:
    if isinstance(value, list) and value and all(isinstance(v, str) and v and not has_controls(v) for v in value):
        return None
    return "a non-empty list of non-empty strings without control characters"


def _argv(value: Any) -> str | None:
    # Tabs and newlines may be part of an argument (`sh -c` scripts); a NUL cannot
    # reach exec at all, and other controls have no business in a command line.
    if isinstance(value, list) and value and all(isinstance(v, str) and v and not CONTROL.search(v) for v in value):
        return None
    return "a non-empty list of non-empty strings (program and arguments) without NUL or other control characters"


def _absolute_paths(value: Any) -> str | None:
    if _string_list(value) is None and all(v.startswith("/") for v in value):
        return None
    return "a non-empty list of absolute paths (starting with /)"


def _status_codes(value: Any) -> str | None:
    if isinstance(value, bool):
        return "an HTTP status (100-599) or a list of them"
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in items):
        return None
    return "an HTTP status (100-599) or a list of them"


def _unit_name(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9:_.\\@-]+", value):
        return None
    return 'a systemd unit name such as "qdrant.service"'


# --------------------------------------------------------------------------- loading


class _Reader:
    """Walks the raw TOML, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, raw: Any, where: str, spec: Mapping[str, tuple[Check, Any]], required=()) -> dict:
        if not isinstance(raw, dict):
            self.problems.append(f"{where or 'top level'}: expected a table, got {_show(raw)}")
            return {}
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in spec:
                known = ", ".join(sorted(spec))
                self.problems.append(f"{_full(where, key)}: unknown key (known keys here: {known})")
                continue
            check, _ = spec[key]
            expected = check(value)
            if key.endswith("_env") and _may_be_a_key(value):
                # A variable-name key holding what looks like the secret itself: refused
                # even when it could be a name, and never quoted.
                self.problems.append(f"{_full(where, key)}: looks like a key, not a variable name (value not shown); "
                                     f"expected {expected or 'the name of the environment variable that holds it'}")
                continue
            if expected:
                self.problems.append(f"{_full(where, key)} = {_show(value)}: expected {expected}")
                continue
            out[key] = value
        for key in required:
            if key not in raw:
                full = f"{where}.{key}" if where else key
                self.problems.append(f"{full}: missing (required)")
        for key, (_, default) in spec.items():
            out.setdefault(key, default)
        return out

    def array_of_tables(self, raw: Any, where: str) -> list:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            self.problems.append(f"{where}: expected an array of tables ([[{where}]]), got {_show(raw)}")
            return []
        return raw

    def threshold_pair(self, values: dict, warn_key: str, crit_key: str, where: str, higher_is_worse=True) -> Threshold:
        warn, crit = values[warn_key], values[crit_key]
        if warn is not None and crit is not None:
            inverted = warn > crit if higher_is_worse else warn < crit
            if inverted:
                relation = "<=" if higher_is_worse else ">="
                self.problems.append(
                    f"{where}.{warn_key} = {_show(warn)}: expected {relation} {where}.{crit_key} ({_show(crit)})"
                )
        return Threshold(
            warn=None if warn is None else float(warn),
            crit=None if crit is None else float(crit),
            higher_is_worse=higher_is_worse,
        )


def _show(value: Any) -> str:
    """*value* quoted for a problem message: a URL as its scheme and host only (its path
    and query may carry a token), secrets redacted (redact_text), control characters
    written as escapes, at most 60 characters."""
    if isinstance(value, str):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
            from aiki_hooks.outputs.router import url_for_errors  # lazily: outputs imports this module

            value = url_for_errors(value)
        text = '"' + redact_text(visible_controls(value)) + '"'
    else:
        text = redact_text(visible_controls(repr(value)))
    return text if len(text) <= 60 else text[:57] + "..."


def _show_key(key: Any) -> str:
    """A TOML key for a message: a quoted key may hold anything."""
    return redact_text(visible_controls(str(key)))


def _full(where: str, key: Any) -> str:
    """The dotted name of *key* in the table at *where*, for a message."""
    return f"{where}.{_show_key(key)}" if where else _show_key(key)


def _may_be_a_key(value: Any) -> bool:
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


# Below 10 ms no probe can connect, run a program or read a file.
_TIMEOUT = _number(0.01, 600)
_PERCENT = _number(0, 100)

_RESOURCES_SPEC = {
    "enabled": (_boolean, True),
    "disk_paths": (_absolute_paths, ["/"]),
    "cpu_warn_percent": (_PERCENT, 90.0),
    "cpu_crit_percent": (_PERCENT, 98.0),
    "memory_warn_percent": (_PERCENT, 85.0),
    "memory_crit_percent": (_PERCENT, 95.0),
    "swap_warn_percent": (_PERCENT, 50.0),
    "swap_crit_percent": (_PERCENT, 80.0),
    "disk_warn_percent": (_PERCENT, 90.0),
    "disk_crit_percent": (_PERCENT, 95.0),
    "disk_warn_free_gib": (_number(0), 5.0),
    "disk_crit_free_gib": (_number(0), 1.0),
    "load_warn_per_core": (_number(0), 2.0),
    "load_crit_per_core": (_number(0), 4.0),
    "timeout_seconds": (_TIMEOUT, 5.0),
}

_SYSTEMD_SPEC = {
    "unit": (_unit_name, None),
    "scope": (_choice("user", "system"), "user"),
    "name": (_probe_name, ""),
    "timeout_seconds": (_TIMEOUT, 5.0),
}

_HTTP_SPEC = {
    "name": (_probe_name, None),
    "url": (_url, None),
    "kind": (_choice("generic", "qdrant"), "generic"),
    "timeout_seconds": (_TIMEOUT, 3.0),
    "expect_status": (_status_codes, []),
    "expect_body": (_text, None),
    "api_key_env": (_env_var_name, None),
    "verify_tls": (_boolean, True),
}

_TCP_SPEC = {
    "name": (_probe_name, None),
    "host": (_host, None),
    "port": (_integer(1, 65535), None),
    "timeout_seconds": (_TIMEOUT, 3.0),
}

_COMMAND_SPEC = {
    "name": (_probe_name, None),
    "command": (_argv, None),
    "timeout_seconds": (_TIMEOUT, 10.0),
}

_TOP_SPEC = {
    "interval_seconds": (_number(0.01, 86400), 60.0),
    "state": (lambda v: None if isinstance(v, dict) else "a table", {}),
    "resources": (lambda v: None if isinstance(v, dict) else "a table", {}),
    "probes": (lambda v: None if isinstance(v, dict) else "a table", {}),
    "guard": (lambda v: None if isinstance(v, dict) else "a table", {}),
    "costs": (lambda v: None if isinstance(v, dict) else "a table", {}),
    "journal": (lambda v: None if isinstance(v, dict) else "a table", {}),
    "mem0": (lambda v: None if isinstance(v, dict) else "a table", {}),
    "outputs": (lambda v: None, None),  # checked by outputs.parse_outputs
}

_JOURNAL_SPEC = {
    "open_after_cycles": (_integer(1, 1000), 2),
    "resolve_after_cycles": (_integer(1, 1000), 2),
    "max_bytes": (_integer(64 * 1024, 1024**3), 5 * 1024 * 1024),
    "keep_files": (_integer(1, 100), 3),
}

_MEM0_SPEC = {
    "backend": (_choice("off", "local", "platform", "rest"), "off"),
    "user_id": (_text, "aiki-hooks"),
    "agent_id": (_text, None),
    "infer": (_boolean, False),
    "telemetry": (_boolean, False),
    "config": (lambda v: None if isinstance(v, dict) else "a table (your mem0 config, as in Memory.from_config)",
               None),
    "config_file": (_text, None),
    "host": (_url, None),
    "api_key_env": (_env_var_name, "MEM0_API_KEY"),
    "max_spool_records": (_integer(1, 10_000_000), 1000),
    "backoff_initial_seconds": (_number(0, 86400, low_open=True), 30.0),
    "backoff_max_seconds": (_number(0, 7 * 86400, low_open=True), 1800.0),
    "timeout_seconds": (_TIMEOUT, 60.0),
}


def _timezone(value: Any) -> str | None:
    if value == "UTC":  # needs no zoneinfo (see costs.report.zone)
        return None
    if isinstance(value, str) and value:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(value)
            return None
        except (ValueError, KeyError, OSError):
            pass
    return 'an IANA time zone name such as "Europe/Berlin"'


_COSTS_SPEC = {
    "enabled": (_boolean, True),
    "timezone": (_timezone, None),
    "claude_config_dirs": (_string_list, []),
    "daily_usd": (_number(0, low_open=True), None),
    "block_usd": (_number(0, low_open=True), None),
    "timeout_seconds": (_TIMEOUT, 30.0),
    "prices": (lambda v: None if isinstance(v, dict) else 'a table of model prefixes ([costs.prices."claude-x"])', {}),
    "external": (lambda v: None if isinstance(v, dict) else "a table", None),
}

_PRICE_SPEC = {
    "input": (_number(0), None),
    "output": (_number(0), None),
    "cache_write_5m": (_number(0), None),
    "cache_write_1h": (_number(0), None),
    "cache_read": (_number(0), None),
}

_EXTERNAL_SPEC = {
    "command": (_argv, None),
    "json_file": (_text, None),
    "timeout_seconds": (_TIMEOUT, 5.0),
    "label": (_text, "tracker"),
}

_GUARD_SPEC = {"rules": (lambda v: None if isinstance(v, list) and all(isinstance(i, dict) for i in v)
                         else "an array of tables (write [[guard.rules]])", [])}

_GUARD_RULE_SPEC = {
    "name": (_text, ""),
    "tools": (_string_list, None),
    "decision": (_choice("deny", "ask"), "deny"),
    "issue": (_text, None),
    "min_severity": (_choice("WARNING", "CRITICAL"), "CRITICAL"),
    "value": (lambda v: None if isinstance(v, str) and re.fullmatch(r".+\.[a-z0-9_]+", v) and not has_controls(v)
              else 'a probe name and value key such as "disk:/.disk_free_bytes"', None),
    "below": (_number(), None),
    "above": (_number(), None),
}

_STATE_SPEC = {"dir": (_text, None)}

def _array_of_tables(kind: str) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return None
        return f"an array of tables (write [[probes.{kind}]], not [probes.{kind}])"

    return check


_PROBES_SPEC = {kind: (_array_of_tables(kind), []) for kind in ("systemd", "http", "tcp", "command")}


# Far deeper than any real config (mem0's own config goes 4 levels down); checked before
# anything recurses into the document.
MAX_NESTING = 32


def _too_deep(raw: Any, limit: int = MAX_NESTING) -> str | None:
    """The dotted path of a value nested deeper than *limit*, else None (iterative: a
    document thousands of levels deep must not exhaust the stack here)."""
    stack: list[tuple[Any, tuple]] = [(raw, ())]
    while stack:
        value, where = stack.pop()
        if len(where) > limit:
            return "".join(f"[{part}]" if isinstance(part, int) else f".{_show_key(part)}"
                           for part in where).lstrip(".") or "top level"
        if isinstance(value, dict):
            stack.extend((item, (*where, key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*where, index)) for index, item in enumerate(value))
    return None


def parse_config(raw: Mapping[str, Any], source: str = "<defaults>", env=None) -> Config:
    """Validate a decoded TOML document; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    deep = _too_deep(raw)
    if deep is not None:
        where = deep if len(deep) <= 80 else deep[:77] + "..."
        raise ConfigError(source, [f"{where}: nested more than {MAX_NESTING} levels deep; expected a flatter file"])
    reader = _Reader()
    top = reader.table(dict(raw), "", _TOP_SPEC)

    state = reader.table(top["state"], "state", _STATE_SPEC)
    if state["dir"]:
        state_dir = Path(os.path.expandvars(state["dir"])).expanduser()
        if not state_dir.is_absolute():
            reader.problems.append(f'state.dir = {_show(state["dir"])}: expected an absolute path')
    else:
        state_dir = paths.default_state_dir(env)

    res = reader.table(top["resources"], "resources", _RESOURCES_SPEC)
    resources = ResourcesConfig(
        enabled=res["enabled"],
        disk_paths=tuple(dict.fromkeys(res["disk_paths"])),
        cpu=reader.threshold_pair(res, "cpu_warn_percent", "cpu_crit_percent", "resources"),
        memory=reader.threshold_pair(res, "memory_warn_percent", "memory_crit_percent", "resources"),
        swap=reader.threshold_pair(res, "swap_warn_percent", "swap_crit_percent", "resources"),
        disk_used=reader.threshold_pair(res, "disk_warn_percent", "disk_crit_percent", "resources"),
        disk_free_gib=reader.threshold_pair(
            res, "disk_warn_free_gib", "disk_crit_free_gib", "resources", higher_is_worse=False
        ),
        load_per_core=reader.threshold_pair(res, "load_warn_per_core", "load_crit_per_core", "resources"),
        timeout_seconds=float(res["timeout_seconds"]),
    )

    probes = reader.table(top["probes"], "probes", _PROBES_SPEC)

    def entries(kind: str, spec, required):
        for index, item in enumerate(reader.array_of_tables(probes[kind], f"probes.{kind}")):
            values = reader.table(item, f"probes.{kind}[{index}]", spec, required=required)
            if all(values.get(k) is not None for k in required):
                yield index, values

    systemd = tuple(
        SystemdProbeConfig(
            unit=v["unit"],
            scope=v["scope"],
            name=v["name"] or v["unit"],
            timeout_seconds=float(v["timeout_seconds"]),
        )
        for _, v in entries("systemd", _SYSTEMD_SPEC, ("unit",))
    )
    http = tuple(
        HttpProbeConfig(
            name=v["name"],
            url=v["url"],
            kind=v["kind"],
            timeout_seconds=float(v["timeout_seconds"]),
            expect_status=tuple(v["expect_status"] if isinstance(v["expect_status"], list) else [v["expect_status"]]),
            expect_body=v["expect_body"],
            api_key_env=v["api_key_env"],
            verify_tls=v["verify_tls"],
        )
        for _, v in entries("http", _HTTP_SPEC, ("name", "url"))
    )
    for index, probe in enumerate(http):
        if probe.kind == "qdrant":
            for key in ("expect_status", "expect_body"):
                if getattr(probe, key):
                    reader.problems.append(
                        f"probes.http[{index}].{key}: not used with kind = \"qdrant\" (readiness is checked on "
                        f"/readyz); expected it only with kind = \"generic\""
                    )
    tcp = tuple(
        TcpProbeConfig(name=v["name"], host=v["host"], port=v["port"], timeout_seconds=float(v["timeout_seconds"]))
        for _, v in entries("tcp", _TCP_SPEC, ("name", "host", "port"))
    )
    command = tuple(
        CommandProbeConfig(name=v["name"], command=tuple(v["command"]), timeout_seconds=float(v["timeout_seconds"]))
        for _, v in entries("command", _COMMAND_SPEC, ("name", "command"))
    )

    # Result names share one namespace in the snapshot (the resources probe takes cpu,
    # load, memory, swap and disk:<path>), so a name may be used once across all kinds.
    seen: dict[str, str] = {name: "the resources probe" for name in RESERVED_NAMES}
    for kind, group in (("systemd", systemd), ("http", http), ("tcp", tcp), ("command", command)):
        for index, probe in enumerate(group):
            where = f"probes.{kind}[{index}]"
            taken_by = seen.get(probe.name) or ("the resources probe" if probe.name.startswith("disk:") else None)
            if taken_by:
                reader.problems.append(f'{where}.name = "{probe.name}": expected a name not already used by {taken_by}')
            seen[probe.name] = where

    guard_table = reader.table(top["guard"], "guard", _GUARD_SPEC)
    guard = []
    for index, item in enumerate(guard_table["rules"]):
        where = f"guard.rules[{index}]"
        rule = reader.table(item, where, _GUARD_RULE_SPEC, required=("tools",))
        has_issue, has_value = rule["issue"] is not None, rule["value"] is not None
        if has_issue == has_value:
            reader.problems.append(f"{where}: expected exactly one condition, `issue` or `value`")
        if has_value and (rule["below"] is None) == (rule["above"] is None):
            reader.problems.append(f"{where}: expected exactly one of `below` or `above` with `value`")
        if rule["tools"] is None:
            continue
        guard.append(GuardRule(
            name=rule["name"] or f"guard rule {index + 1}",
            tools=tuple(rule["tools"]),
            decision=rule["decision"],
            issue=rule["issue"],
            min_severity=rule["min_severity"],
            value=rule["value"],
            below=None if rule["below"] is None else float(rule["below"]),
            above=None if rule["above"] is None else float(rule["above"]),
        ))

    costs = _parse_costs(reader, top["costs"])
    j = reader.table(top["journal"], "journal", _JOURNAL_SPEC)
    journal = JournalConfig(open_after_cycles=j["open_after_cycles"], resolve_after_cycles=j["resolve_after_cycles"],
                            max_bytes=j["max_bytes"], keep_files=j["keep_files"])
    m = reader.table(top["mem0"], "mem0", _MEM0_SPEC)
    if m["backend"] == "local" and m["config"] is not None and m["config_file"] is not None:
        reader.problems.append("mem0: expected at most one of `config` or `config_file`")
    host_given = isinstance(top["mem0"], dict) and "host" in top["mem0"]  # if refused, that is said already
    if m["backend"] in ("rest",) and not m["host"] and not host_given:
        reader.problems.append('mem0.host: missing (required with backend = "rest")')
    if m["backoff_initial_seconds"] > m["backoff_max_seconds"]:
        reader.problems.append(f"mem0.backoff_initial_seconds = {_show(m['backoff_initial_seconds'])}: expected <= "
                               f"mem0.backoff_max_seconds ({_show(m['backoff_max_seconds'])})")
    mem0 = Mem0Config(
        backend=m["backend"], user_id=m["user_id"], agent_id=m["agent_id"], infer=m["infer"],
        telemetry=m["telemetry"], local_config=m["config"],
        config_file=os.path.expanduser(m["config_file"]) if m["config_file"] else None,
        host=m["host"], api_key_env=m["api_key_env"], max_spool_records=m["max_spool_records"],
        backoff_initial_seconds=float(m["backoff_initial_seconds"]),
        backoff_max_seconds=float(m["backoff_max_seconds"]), timeout_seconds=float(m["timeout_seconds"]),
    )

    from aiki_hooks.outputs.router import parse_outputs

    outputs = parse_outputs(top["outputs"], reader, mem0_enabled=mem0.backend != "off")

    if reader.problems:
        raise ConfigError(source, reader.problems)
    return Config(
        source=source,
        interval_seconds=float(top["interval_seconds"]),
        state_dir=state_dir,
        resources=resources,
        systemd=systemd,
        http=http,
        tcp=tcp,
        command=command,
        guard=tuple(guard),
        costs=costs,
        journal=journal,
        mem0=mem0,
        outputs=tuple(outputs),
    )


def _parse_costs(reader: "_Reader", raw: Any) -> CostsConfig:
    values = reader.table(raw, "costs", _COSTS_SPEC)
    prices = []
    for prefix, table in (values["prices"] or {}).items():
        where = f'costs.prices."{_show_key(prefix)}"'
        if not str(prefix).startswith("claude-"):
            reader.problems.append(f'{where}: expected a model prefix starting with "claude-"')
        price = reader.table(table, where, _PRICE_SPEC, required=("input", "output"))
        if price["input"] is None or price["output"] is None:
            continue
        rate = float(price["input"])
        # Anthropic's usual multiples of the input price when a cache rate is not given.
        prices.append((str(prefix), PriceOverride(
            input=rate,
            output=float(price["output"]),
            cache_write_5m=float(price["cache_write_5m"] if price["cache_write_5m"] is not None else rate * 1.25),
            cache_write_1h=float(price["cache_write_1h"] if price["cache_write_1h"] is not None else rate * 2),
            cache_read=float(price["cache_read"] if price["cache_read"] is not None else rate * 0.1),
        )))
    external = None
    if values["external"] is not None:
        ext = reader.table(values["external"], "costs.external", _EXTERNAL_SPEC)
        if (ext["command"] is None) == (ext["json_file"] is None):
            reader.problems.append("costs.external: expected exactly one of `command` or `json_file`")
        external = ExternalCostConfig(
            command=tuple(ext["command"] or ()),
            json_file=os.path.expanduser(ext["json_file"]) if ext["json_file"] else None,
            timeout_seconds=float(ext["timeout_seconds"]),
            label=ext["label"],
        )
    return CostsConfig(
        enabled=values["enabled"],
        timezone=values["timezone"],
        claude_config_dirs=tuple(values["claude_config_dirs"]),
        daily_usd=None if values["daily_usd"] is None else float(values["daily_usd"]),
        block_usd=None if values["block_usd"] is None else float(values["block_usd"]),
        timeout_seconds=float(values["timeout_seconds"]),
        prices=tuple(prices),
        external=external,
    )


def load_config(path: Path | str | None = None, env=None) -> Config:
    """Load the config from *path*, `$AIKI_HOOKS_CONFIG`, or the XDG default.

    A missing default file means embedded defaults; a missing *explicit* file is an error
    (the user asked for it, so silently ignoring it would hide a typo).
    """
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get("AIKI_HOOKS_CONFIG"))
    file = Path(path) if path is not None else paths.config_path(env)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(file, ["file not found"]) from None
        return parse_config({}, source="<defaults>", env=env)
    except OSError as exc:
        raise ConfigError(file, [f"cannot read: {exc.strerror or exc}"]) from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(file, [f"not UTF-8 text (byte {exc.start})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, [f"not valid TOML: {visible_controls(str(exc))}"]) from None
    except RecursionError:
        # tomllib recurses per level of nested arrays and inline tables.
        raise ConfigError(file, [f"arrays or inline tables nested too deeply to read; expected at most "
                                 f"{MAX_NESTING} levels"]) from None
    return parse_config(raw, source=str(file), env=env)


# --------------------------------------------------------------------------- showing


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


def effective_config_toml(config: Config, env=None) -> str:
    """The effective configuration as TOML (written by tomli-w, so any value comes out as
    valid TOML), with secrets redacted: URLs through redact_url, command arguments through
    redact_text, API keys never (only whether their variable is set, in the header)."""
    import tomli_w

    env = os.environ if env is None else env
    notes = [f"effective configuration (source: {config.source})", f"cache: {config.cache_path}"]
    r = config.resources
    doc: dict[str, Any] = {
        "interval_seconds": config.interval_seconds,
        "state": {"dir": str(config.state_dir)},
        "resources": {
            "enabled": r.enabled, "disk_paths": list(r.disk_paths),
            **{f"{name}_{level}_{unit}": getattr(threshold, level)
               for name, threshold, unit in (("cpu", r.cpu, "percent"), ("memory", r.memory, "percent"),
                                             ("swap", r.swap, "percent"), ("disk", r.disk_used, "percent"),
                                             ("disk", r.disk_free_gib, "free_gib"))
               for level in ("warn", "crit")},
            "load_warn_per_core": r.load_per_core.warn, "load_crit_per_core": r.load_per_core.crit,
            "timeout_seconds": r.timeout_seconds,
        },
    }
    probes: dict[str, list[dict[str, Any]]] = {}
    for p in config.systemd:
        probes.setdefault("systemd", []).append(
            {"name": p.name, "unit": p.unit, "scope": p.scope, "timeout_seconds": p.timeout_seconds})
    for p in config.http:
        probes.setdefault("http", []).append(_without_none({
            "name": p.name, "url": redact_url(p.url), "kind": p.kind, "timeout_seconds": p.timeout_seconds,
            "expect_status": list(p.expect_status) or None, "expect_body": p.expect_body,
            "api_key_env": p.api_key_env or None, "verify_tls": p.verify_tls}))
        if p.api_key_env:
            notes.append(_variable_note(f"http {p.name}: api_key_env", p.api_key_env, env))
    for p in config.tcp:
        probes.setdefault("tcp", []).append(
            {"name": p.name, "host": p.host, "port": p.port, "timeout_seconds": p.timeout_seconds})
    for p in config.command:
        probes.setdefault("command", []).append(
            {"name": p.name, "command": [redact_text(arg) for arg in p.command], "timeout_seconds": p.timeout_seconds})
    if probes:
        doc["probes"] = probes
    c = config.costs
    costs: dict[str, Any] = _without_none({
        "enabled": c.enabled, "timeout_seconds": c.timeout_seconds, "timezone": c.timezone or None,
        "claude_config_dirs": list(c.claude_config_dirs) or None, "daily_usd": c.daily_usd, "block_usd": c.block_usd})
    if c.prices:
        costs["prices"] = {prefix: dict(vars(price)) for prefix, price in c.prices}
    if c.external:
        costs["external"] = _without_none({
            "command": [redact_text(arg) for arg in c.external.command] if c.external.command else None,
            "json_file": c.external.json_file, "timeout_seconds": c.external.timeout_seconds,
            "label": c.external.label})
    doc["costs"] = costs
    doc["journal"] = dict(vars(config.journal))
    m = config.mem0
    doc["mem0"] = _without_none({
        "backend": m.backend, "user_id": m.user_id, "agent_id": m.agent_id or None, "infer": m.infer,
        "telemetry": m.telemetry, "host": redact_url(m.host) if m.host else None, "config_file": m.config_file,
        "api_key_env": m.api_key_env, "max_spool_records": m.max_spool_records,
        "backoff_initial_seconds": m.backoff_initial_seconds, "backoff_max_seconds": m.backoff_max_seconds,
        "timeout_seconds": m.timeout_seconds})
    notes.append(_variable_note("mem0: api_key_env", m.api_key_env, env))
    if m.local_config is not None:
        notes.append(f"mem0 config: an inline table of {len(m.local_config)} key(s), not shown (it may hold API keys)")
    from aiki_hooks.outputs.router import _COMMON_SPEC, _TYPE_SPECS

    outputs = []
    for out in config.outputs:
        entry: dict[str, Any] = {}
        for key in [*_COMMON_SPEC, *_TYPE_SPECS.get(out.type, {})]:
            value = getattr(out, key, None)
            if value is None or value == ():
                continue
            entry[key] = redact_url(value) if key == "url" else list(value) if isinstance(value, tuple) else value
        outputs.append(entry)
    if outputs:
        doc["outputs"] = outputs
    if config.guard:
        doc["guard"] = {"rules": [_without_none(rule.to_dict()) for rule in config.guard]}
    header = "".join(f"# {_COMMENT_ESCAPE.sub(_escape, note)}\n" for note in notes)
    # tomli-w writes what TOML requires escaped; C1 controls and bidi overrides are legal in
    # TOML strings but must not reach a terminal raw: the same \uXXXX escape, still valid TOML.
    return header + _VISIBLE_ESCAPE.sub(_escape, tomli_w.dumps(doc))


_VISIBLE_ESCAPE = re.compile(r"[\x80-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# A comment ends at a newline and may hold no control character at all.
_COMMENT_ESCAPE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def _without_none(table: Mapping[str, Any]) -> dict[str, Any]:
    """TOML has no null: a key not set is left out."""
    return {key: value for key, value in table.items() if value is not None}


def _variable_note(what: str, variable: str, env: Mapping[str, str]) -> str:
    return f"{what} {variable} is {'set' if env.get(variable) else 'NOT set'} in this environment; value not shown"
