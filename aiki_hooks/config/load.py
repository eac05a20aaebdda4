"""Configuration: TOML -> frozen dataclasses, validated once at load.

Every problem in a file is reported at once, each naming the key, the value found and
what was expected, so a user fixes the file in one pass. A value is quoted as `show`
makes it (config.validators): a URL only to its host, secrets redacted, control characters
escaped; a value that looks like a key where a variable name belongs is not quoted at all.
Secrets never live here: an HTTP probe names the *environment variable* that holds its API
key. Each `[[probes.<kind>]]` table is validated by its kind's spec (probes.registry), a
plugin's kind exactly as a built-in one.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from aiki_hooks import paths
from aiki_hooks.config.validators import (
    Reader,
    Spec,
    absolute_paths,
    argv,
    boolean,
    choice,
    env_var_name,
    hint_by_aspect,
    hint_text,
    integer,
    number,
    percent,
    probe_timeout,
    read_hints,
    redact_text,
    redact_url,
    show,
    show_key,
    string_list,
    table_check,
    text,
    url,
)
from aiki_hooks.model.thresholds import Threshold
from aiki_hooks.outputs.config import _COMMON_SPEC, _TYPE_SPECS, OutputConfig, parse_outputs
from aiki_hooks.sanitize import has_controls, visible_controls

if TYPE_CHECKING:
    from aiki_hooks.probes.registry import KindEntries

_Reader = Reader  # the name outputs' tests use
RESERVED_NAMES = frozenset({"cpu", "load", "memory", "swap"})


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
    # Hours until full at the last hour's rate (a level of None is off): disks fill over
    # days and take a while to clean; memory swings faster, so its horizon is shorter.
    disk_full_hours: Threshold = Threshold(warn=24.0, crit=2.0, higher_is_worse=False)
    memory_full_hours: Threshold = Threshold(warn=4.0, crit=1.0, higher_is_worse=False)
    swap_full_hours: Threshold = Threshold(warn=4.0, crit=1.0, higher_is_worse=False)
    timeout_seconds: float = 5.0
    # (aspect, the user's `hint`): RESOURCE_ASPECTS; "disk" covers every disk.
    hints: tuple[tuple[str, str], ...] = ()


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
    hint: str | None = None  # the user's, for every costs issue


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
    # The [[probes.<kind>]] records, one KindEntries per kind configured: built-in kinds in
    # registry order, then plugins' in the order of the file.
    probe_entries: tuple[KindEntries, ...] = ()
    guard: tuple[GuardRule, ...] = ()
    costs: CostsConfig = CostsConfig()
    journal: JournalConfig = JournalConfig()
    mem0: Mem0Config = Mem0Config()
    outputs: tuple[OutputConfig, ...] = ()  # defaults applied at load

    @property
    def cache_path(self) -> Path:
        return self.state_dir / paths.CACHE_NAME

    def entries(self, kind: str) -> tuple[Any, ...]:
        """The records of the [[probes.<kind>]] tables, () when there are none."""
        return next((e.configs for e in self.probe_entries if e.kind.name == kind), ())

    @property
    def max_probe_timeout(self) -> float:
        """The slowest probe's timeout: a cycle lasts at most 1.1 times this (the watchdog
        of the service is sized from it)."""
        timeouts = [self.resources.timeout_seconds] if self.resources.enabled else []
        if self.costs.enabled:
            timeouts.append(self.costs.timeout_seconds)
        for entries in self.probe_entries:
            timeouts.extend(p.timeout_seconds for p in entries.configs)
        return max(timeouts, default=1.0)


# --------------------------------------------------------------------------- loading

_HOURS = number(0, 8760)
# What a [resources] `hint` table may name: the aspects the probe judges ("disk": every disk).
RESOURCE_ASPECTS = ("cpu", "load", "memory", "swap", "disk")


def hours_or_off(value: Any) -> str | None:
    """A forecast level: hours up to a year, or 0 / false for off."""
    if value is False or _HOURS(value) is None:
        return None
    return "a number of hours from 0 to 8760, or 0 or false to turn this level off"


_RESOURCES_SPEC = {
    "enabled": (boolean, True),
    "disk_paths": (absolute_paths, ["/"]),
    "cpu_warn_percent": (percent, 90.0),
    "cpu_crit_percent": (percent, 98.0),
    "memory_warn_percent": (percent, 85.0),
    "memory_crit_percent": (percent, 95.0),
    "swap_warn_percent": (percent, 50.0),
    "swap_crit_percent": (percent, 80.0),
    "disk_warn_percent": (percent, 90.0),
    "disk_crit_percent": (percent, 95.0),
    "disk_warn_free_gib": (number(0), 5.0),
    "disk_crit_free_gib": (number(0), 1.0),
    "load_warn_per_core": (number(0), 2.0),
    "load_crit_per_core": (number(0), 4.0),
    "disk_warn_full_hours": (hours_or_off, 24.0),
    "disk_crit_full_hours": (hours_or_off, 2.0),
    "memory_warn_full_hours": (hours_or_off, 4.0),
    "memory_crit_full_hours": (hours_or_off, 1.0),
    "swap_warn_full_hours": (hours_or_off, 4.0),
    "swap_crit_full_hours": (hours_or_off, 1.0),
    "timeout_seconds": (probe_timeout, 5.0),
    "hint": (hint_by_aspect(RESOURCE_ASPECTS), None),
}

_TOP_SPEC = {
    "interval_seconds": (number(0.01, 86400), 60.0),
    "state": (table_check(), {}),
    "resources": (table_check(), {}),
    "probes": (table_check(), {}),
    "guard": (table_check(), {}),
    "costs": (table_check(), {}),
    "journal": (table_check(), {}),
    "mem0": (table_check(), {}),
    "outputs": (lambda v: None, None),  # checked by outputs.parse_outputs
}

_JOURNAL_SPEC = {
    "open_after_cycles": (integer(1, 1000), 2),
    "resolve_after_cycles": (integer(1, 1000), 2),
    "max_bytes": (integer(64 * 1024, 1024**3), 5 * 1024 * 1024),
    "keep_files": (integer(1, 100), 3),
}

_MEM0_SPEC = {
    "backend": (choice("off", "local", "platform", "rest"), "off"),
    "user_id": (text, "aiki-hooks"),
    "agent_id": (text, None),
    "infer": (boolean, False),
    "telemetry": (boolean, False),
    "config": (lambda v: None if isinstance(v, dict) else "a table (your mem0 config, as in Memory.from_config)",
               None),
    "config_file": (text, None),
    "host": (url, None),
    "api_key_env": (env_var_name, "MEM0_API_KEY"),
    "max_spool_records": (integer(1, 10_000_000), 1000),
    "backoff_initial_seconds": (number(0, 86400, low_open=True), 30.0),
    "backoff_max_seconds": (number(0, 7 * 86400, low_open=True), 1800.0),
    "timeout_seconds": (probe_timeout, 60.0),
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


_COSTS_SPEC: Spec = {
    "enabled": (boolean, True),
    "timezone": (_timezone, None),
    "claude_config_dirs": (string_list, []),
    "daily_usd": (number(0, low_open=True), None),
    "block_usd": (number(0, low_open=True), None),
    "timeout_seconds": (probe_timeout, 30.0),
    "prices": (lambda v: None if isinstance(v, dict) else 'a table of model prefixes ([costs.prices."claude-x"])', {}),
    "external": (lambda v: None if isinstance(v, dict) else "a table", None),
    "hint": (hint_text, None),
}

_PRICE_SPEC = {
    "input": (number(0), None),
    "output": (number(0), None),
    "cache_write_5m": (number(0), None),
    "cache_write_1h": (number(0), None),
    "cache_read": (number(0), None),
}

_EXTERNAL_SPEC = {
    "command": (argv, None),
    "json_file": (text, None),
    "timeout_seconds": (probe_timeout, 5.0),
    "label": (text, "tracker"),
}

_GUARD_SPEC: Spec = {"rules": (lambda v: None if isinstance(v, list) and all(isinstance(i, dict) for i in v)
                         else "an array of tables (write [[guard.rules]])", [])}

_GUARD_RULE_SPEC = {
    "name": (text, ""),
    "tools": (string_list, None),
    "decision": (choice("deny", "ask"), "deny"),
    "issue": (text, None),
    "min_severity": (choice("WARNING", "CRITICAL"), "CRITICAL"),
    "value": (lambda v: None if isinstance(v, str) and re.fullmatch(r".+\.[a-z0-9_]+", v) and not has_controls(v)
              else 'a probe name and value key such as "disk:/.disk_free_bytes"', None),
    "below": (number(), None),
    "above": (number(), None),
}

_STATE_SPEC = {"dir": (text, None)}

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
            return "".join(f"[{part}]" if isinstance(part, int) else f".{show_key(part)}"
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
    reader = Reader()
    top = reader.table(dict(raw), "", _TOP_SPEC)

    state = reader.table(top["state"], "state", _STATE_SPEC)
    if state["dir"]:
        state_dir = Path(os.path.expandvars(state["dir"])).expanduser()
        if not state_dir.is_absolute():
            reader.problems.append(f'state.dir = {show(state["dir"])}: expected an absolute path')
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
        **{f"{family}_full_hours": reader.threshold_pair(
            {key: res[key] or None for key in (f"{family}_warn_full_hours", f"{family}_crit_full_hours")},
            f"{family}_warn_full_hours", f"{family}_crit_full_hours", "resources", higher_is_worse=False)
           for family in ("disk", "memory", "swap")},  # 0 or false: that level is off
        timeout_seconds=float(res["timeout_seconds"]),
        hints=tuple(read_hints(reader, res["hint"], "resources.hint", RESOURCE_ASPECTS).items()),
    )

    probe_entries = _parse_probes(reader, top["probes"] if isinstance(top["probes"], dict) else {})

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
        reader.problems.append(f"mem0.backoff_initial_seconds = {show(m['backoff_initial_seconds'])}: expected <= "
                               f"mem0.backoff_max_seconds ({show(m['backoff_max_seconds'])})")
    mem0 = Mem0Config(
        backend=m["backend"], user_id=m["user_id"], agent_id=m["agent_id"], infer=m["infer"],
        telemetry=m["telemetry"], local_config=m["config"],
        config_file=os.path.expanduser(m["config_file"]) if m["config_file"] else None,
        host=m["host"], api_key_env=m["api_key_env"], max_spool_records=m["max_spool_records"],
        backoff_initial_seconds=float(m["backoff_initial_seconds"]),
        backoff_max_seconds=float(m["backoff_max_seconds"]), timeout_seconds=float(m["timeout_seconds"]),
    )


    outputs = parse_outputs(top["outputs"], reader, mem0_enabled=mem0.backend != "off")

    if reader.problems:
        raise ConfigError(source, reader.problems)
    return Config(
        source=source,
        interval_seconds=float(top["interval_seconds"]),
        state_dir=state_dir,
        resources=resources,
        probe_entries=probe_entries,
        guard=tuple(guard),
        costs=costs,
        journal=journal,
        mem0=mem0,
        outputs=tuple(outputs),
    )


def _parse_probes(reader: Reader, raw: Mapping[str, Any]) -> tuple[KindEntries, ...]:
    """Each [[probes.<kind>]] table through its kind's spec, then the result names, which
    share one namespace in the snapshot, checked across all kinds."""
    if not raw:
        return ()
    # The registry (its kinds' records and specs) only for a config that has probes: most
    # commands' configs have none, and loading them is every command's start-up.
    from aiki_hooks.probes import registry
    from aiki_hooks.probes.registry import KindEntries, UnusableConfig

    parsed: list[KindEntries] = []
    for kind_name, tables in raw.items():
        where = f"probes.{show_key(kind_name)}"
        kind = registry.find_kind(kind_name)
        if kind is None:
            known = ", ".join(registry.kind_names())
            reader.problems.append(f"{where}: unknown probe kind (known kinds: {known}; a plugin adds others)")
            continue
        if not isinstance(tables, list) or not all(isinstance(item, dict) for item in tables):
            reader.problems.append(f"{where} = {show(tables)}: expected an array of tables (write [[{where}]], not "
                                   f"[{where}])")
            continue
        if isinstance(kind, str):
            # The plugin is broken: its tables cannot be checked, so each becomes a probe
            # that says why (UNKNOWN), and everything else still runs.
            parsed.append(KindEntries(kind=registry.unusable_kind(kind_name, kind), configs=tuple(
                UnusableConfig(name=item["name"] if isinstance(item.get("name"), str) else f"{kind_name}[{index}]",
                               kind=kind_name, problem=kind)
                for index, item in enumerate(tables))))
            continue
        configs = []
        hints = []
        for index, item in enumerate(tables):
            here = f"{where}[{index}]"
            first = len(reader.problems)
            values, common = registry.split_common(reader.table(item, here, registry.table_spec(kind),
                                                                required=kind.required))
            if len(reader.problems) > first:
                continue
            try:
                record = kind.record(values)
            except (TypeError, ValueError) as exc:  # a plugin's record refusing what its spec let through
                reader.problems.append(f"{here}: not accepted by the {kind_name} kind: {exc}")
                continue
            for key, problem in kind.check_config(record) if kind.check_config else ():
                reader.problems.append(f"{here}.{key}: {problem}")
            configs.append(record)
            if common["hint"] is not None:
                hints.append((record.name, common["hint"]))
        parsed.append(KindEntries(kind=kind, configs=tuple(configs), hints=tuple(hints)))
    order = {name: rank for rank, name in enumerate(registry.BUILTIN_NAMES)}
    parsed.sort(key=lambda entries: order.get(entries.kind.name, len(order)))  # stable: plugins keep file order

    seen: dict[str, str] = {name: "the resources probe" for name in RESERVED_NAMES}
    for entries in parsed:
        for index, probe in enumerate(entries.configs):
            where = f"probes.{entries.kind.name}[{index}]"
            taken_by = seen.get(probe.name) or ("the resources probe" if probe.name.startswith("disk:") else None)
            if taken_by:
                reader.problems.append(f'{where}.name = "{probe.name}": expected a name not already used by {taken_by}')
            seen[probe.name] = where
    return tuple(parsed)


def _parse_costs(reader: Reader, raw: Any) -> CostsConfig:
    values = reader.table(raw, "costs", _COSTS_SPEC)
    prices = []
    for prefix, table in (values["prices"] or {}).items():
        where = f'costs.prices."{show_key(prefix)}"'
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
        hint=values["hint"],
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
            **{f"{name}_{level}_full_hours": False if getattr(threshold, level) is None else getattr(threshold, level)
               for name, threshold in (("disk", r.disk_full_hours), ("memory", r.memory_full_hours),
                                       ("swap", r.swap_full_hours))
               for level in ("warn", "crit")},
            "timeout_seconds": r.timeout_seconds,
        },
    }
    if r.hints:
        # Hints are the user's words: shown redacted like any other config text.
        by_aspect = {aspect: redact_text(hint) for aspect, hint in r.hints}
        one = set(by_aspect.values())
        doc["resources"]["hint"] = one.pop() if len(one) == 1 and len(by_aspect) == len(RESOURCE_ASPECTS) else by_aspect
    probes: dict[str, list[dict[str, Any]]] = {}
    for entries in config.probe_entries:
        hints = dict(entries.hints)
        for record in entries.configs:
            table = entries.kind.describe(record)
            if record.name in hints:
                table["hint"] = redact_text(hints[record.name])
            probes.setdefault(entries.kind.name, []).append(table)
            # A key naming the variable that holds a secret: whether it is set, never its value.
            notes.extend(_variable_note(f"{entries.kind.name} {record.name}: {key}", variable, env)
                         for key, variable in sorted(vars(record).items())
                         if key.endswith("_env") and isinstance(variable, str) and variable)
    if probes:
        doc["probes"] = probes
    c = config.costs
    costs: dict[str, Any] = _without_none({
        "enabled": c.enabled, "timeout_seconds": c.timeout_seconds, "timezone": c.timezone or None,
        "claude_config_dirs": list(c.claude_config_dirs) or None, "daily_usd": c.daily_usd, "block_usd": c.block_usd,
        "hint": redact_text(c.hint) if c.hint else None})
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

    outputs: list[dict[str, Any]] = []
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
