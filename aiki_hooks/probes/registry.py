"""Probe kinds: what a `[[probes.<kind>]]` table holds and how its probes are built.

A kind is declared once, in its own module, as a `ProbeKind`: its config record, the spec
its tables are validated with, how its probes are built, and what the rest of the program
needs to know about it (whether it watches a service, its metrics, its doctor hints). It
is registered by one line in BUILTIN_KINDS, or, from a package outside this project, by
an entry point in the group "aiki_hooks.probes" naming a ProbeKind object:

    [project.entry-points."aiki_hooks.probes"]
    file_age = "aiki_file_age:FILE_AGE"

Config loading, name uniqueness, the watchdog's timeout, `aiki-hooks config`, doctor hints,
metrics and the issue patterns ask this registry instead of switching on kind names.

What is imported when: a built-in kind's module only when a config uses it (http.client
and ssl weigh ~6 MiB in the refresher); entry points are read only when a config names a
kind that is not built in, or when asked for every kind (doctor, tests), because
importlib.metadata alone costs ~7 MiB and ~50 ms. A plugin that fails to load never
raises: its tables become probes that report UNKNOWN with the reason, and the others run.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiki_hooks.config.validators import Check, Spec, hint_text, probe_name, probe_timeout

if TYPE_CHECKING:
    from aiki_hooks.model.result import ProbeResult

GROUP = "aiki_hooks.probes"

# The built-in kinds: (kind name, "module:attribute" of its ProbeKind), imported on use.
BUILTIN_KINDS: tuple[tuple[str, str], ...] = (
    ("systemd", "aiki_hooks.probes.systemd:PROBE_KIND"),
    ("http", "aiki_hooks.probes.http:PROBE_KIND"),
    ("tcp", "aiki_hooks.probes.tcp:PROBE_KIND"),
    ("command", "aiki_hooks.probes.command:PROBE_KIND"),
)
BUILTIN_NAMES = tuple(name for name, _ in BUILTIN_KINDS)
# Kinds of probes configured by their own top-level tables ([resources], [costs]), not by
# [[probes.<kind>]]: a plugin may not take these names either.
RESERVED_KIND_NAMES = ("resources", "costs", "mem0", "output")


class Probe(Protocol):
    """What the runner needs of a probe.

    - `kind`: the kind's name ("systemd", "http", ..., or a plugin's).
    - `names`: the result names it will produce, so the runner can report UNKNOWN for each
      of them when the probe raises or misses its deadline.
    - `timeout_seconds`: the probe's own deadline, enforced on its I/O.
    - `check()`: one ProbeResult per name; may raise (the runner turns that into UNKNOWN).
      `checked_at` / `duration_ms` are stamped by the runner.
    """

    # Read-only, so that a probe may narrow them (names = (config.name,) is a tuple[str]).
    @property
    def kind(self) -> str: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def timeout_seconds(self) -> float: ...

    def check(self) -> Sequence[ProbeResult]: ...


@dataclass(frozen=True, kw_only=True)
class BuildContext:
    """What a kind's `build` may use besides its config records."""

    env: Mapping[str, str]
    state_dir: Path


@dataclass(frozen=True, kw_only=True)
class KindMetric:
    """One Prometheus family fed by a numeric value of each result of a kind, labelled by
    the result's name: `aiki_tcp_connect_seconds{probe="db"}` from values.connect_seconds."""

    name: str
    documentation: str
    value_key: str
    label: str = "probe"
    counter: bool = False


def _config_entry(record: Any) -> dict[str, Any]:
    """A record as a TOML table: tuples as lists, unset (None or empty) keys left out."""
    table = {}
    for key, value in vars(record).items():
        if value is None or value == ():
            continue
        table[key] = list(value) if isinstance(value, tuple) else value
    return table


def _record_from(config_type: type) -> Callable[[Mapping[str, Any]], Any]:
    def make(values: Mapping[str, Any]) -> Any:
        fields = {f.name for f in dataclasses.fields(config_type)}
        kwargs: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                  for key, value in values.items() if key in fields and value is not None}
        if "timeout_seconds" in kwargs:
            kwargs["timeout_seconds"] = float(kwargs["timeout_seconds"])
        return config_type(**kwargs)

    return make


@dataclass(frozen=True, kw_only=True)
class ProbeKind:
    """Everything the program knows about one kind of probe.

    `config_type` is a frozen dataclass with at least `name` (the result name, unique
    across all probes) and `timeout_seconds`. `spec` maps each key of a
    `[[probes.<name>]]` table to (check, default), checks as in config.validators;
    `required` lists the keys that must be given. A table that passes becomes a record
    through `make_config` (default: the dataclass from the keys it declares, lists as
    tuples, timeout_seconds as a float), then `check_config` may return (key, problem)
    pairs that span keys. `build(records, context)` returns the probes for all records of
    the kind at once (systemd asks about all units in one call).
    """

    name: str
    config_type: type
    spec: Mapping[str, tuple[Check, Any]]
    build: Callable[[Sequence[Any], BuildContext], list[Probe]]
    required: tuple[str, ...] = ()
    make_config: Callable[[Mapping[str, Any]], Any] | None = None
    check_config: Callable[[Any], list[tuple[str, str]]] | None = None
    # The record as `aiki-hooks config` prints it: redact what may hold a secret here.
    describe: Callable[[Any], dict[str, Any]] = _config_entry
    # A service kind's failure means "the service is down" in issue patterns and context.
    is_service: bool = False
    metrics: tuple[KindMetric, ...] = ()
    # Doctor's advice by a result's error_kind (None: any other), formatted with
    # `hint_fields(record)` (default: the record's fields as text).
    hints: Mapping[str | None, str] = field(default_factory=dict)
    hint_fields: Callable[[Any], Mapping[str, str]] | None = None

    def record(self, values: Mapping[str, Any]) -> Any:
        return (self.make_config or _record_from(self.config_type))(values)

    def fields_for_hint(self, record: Any) -> Mapping[str, str]:
        if self.hint_fields is not None:
            return self.hint_fields(record)
        return {key: str(value) for key, value in vars(record).items()}


# Keys every [[probes.<kind>]] table may have whatever its kind declares (a plugin's too):
# they belong to the check, not to the probe, so they never reach the kind's record.
COMMON_SPEC: Spec = {"hint": (hint_text, None)}


def table_spec(kind: ProbeKind) -> dict[str, tuple[Check, Any]]:
    """The spec a table of *kind* is read with: the kind's own keys and COMMON_SPEC (which
    wins: `hint` means the same on every check)."""
    return {**kind.spec, **COMMON_SPEC}


def split_common(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A read table as (the kind's own values, for its record; the common keys' values)."""
    own = {key: value for key, value in values.items() if key not in COMMON_SPEC}
    return own, {key: values.get(key) for key in COMMON_SPEC}


def name_and_timeout(timeout_default: float) -> dict[str, tuple[Check, Any]]:
    """The two keys every kind's table has: `name` (required unless the kind defaults it)
    and `timeout_seconds`."""
    return {"name": (probe_name, None), "timeout_seconds": (probe_timeout, timeout_default)}


@dataclass(frozen=True, kw_only=True)
class KindEntries:
    """The records of one kind as configured, in the order of the file."""

    kind: ProbeKind
    configs: tuple[Any, ...]
    # (result name, the user's `hint`) for the tables that give one.
    hints: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- lookup

_builtins: dict[str, ProbeKind] = {}


def builtin_kind(name: str) -> ProbeKind:
    """A built-in kind, its module imported on first use."""
    if name not in _builtins:
        target = dict(BUILTIN_KINDS)[name]
        module, _, attribute = target.partition(":")
        _builtins[name] = getattr(importlib.import_module(module), attribute)
    return _builtins[name]


@dataclass(frozen=True, kw_only=True)
class Plugins:
    """The kinds found through entry points; `broken` maps a name to why it is unusable."""

    kinds: Mapping[str, ProbeKind]
    broken: Mapping[str, str]


_plugins: Plugins | None = None


def plugins() -> Plugins:
    """Every entry point in GROUP, loaded once per process. Never raises: a plugin that
    fails to import, is not a ProbeKind, or takes a taken name is put in `broken` with one
    line naming the entry point and its distribution."""
    global _plugins
    if _plugins is None:
        _plugins = _load_plugins()
    return _plugins


def _load_plugins() -> Plugins:
    from importlib.metadata import entry_points

    kinds: dict[str, ProbeKind] = {}
    broken: dict[str, str] = {}
    for point in entry_points(group=GROUP):
        dist = getattr(point, "dist", None)
        source = (f"entry point {point.name} = {point.value} (distribution {dist.name} {dist.version})"
                  if dist is not None else f"entry point {point.name} = {point.value}")
        problem = None
        try:
            kind = point.load()
        except Exception as exc:  # noqa: BLE001 - a plugin's import may raise anything
            problem = f"cannot be loaded: {type(exc).__name__}: {_one_line(exc)}"
        else:
            problem = _not_a_kind(point.name, kind)
        if point.name in BUILTIN_NAMES or point.name in RESERVED_KIND_NAMES:
            problem = f"clashes with the built-in kind {point.name!r}, so it is ignored"
        elif point.name in kinds or point.name in broken:
            problem = f"clashes with another plugin of the kind {point.name!r}, so both are ignored"
            kinds.pop(point.name, None)
        if problem is None:
            kinds[point.name] = kind
        else:
            broken[point.name] = f"probe kind plugin {source} {problem}"
    return Plugins(kinds=kinds, broken=broken)


def _not_a_kind(name: str, kind: Any) -> str | None:
    if not isinstance(kind, ProbeKind):
        return f"is not a ProbeKind (it is a {type(kind).__name__})"
    if kind.name != name:
        return f"names its kind {kind.name!r}; expected the entry point's name {name!r}"
    if not dataclasses.is_dataclass(kind.config_type):
        return "has a config_type that is not a dataclass"
    if "timeout_seconds" not in kind.spec or "name" not in kind.spec:
        return "has a spec without `name` and `timeout_seconds` (see name_and_timeout)"
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def find_kind(name: str) -> ProbeKind | str | None:
    """The kind *name*: a ProbeKind, else why its plugin cannot be used, else None (no
    such kind). Entry points are read only for a name that is not built in."""
    if name in BUILTIN_NAMES:
        return builtin_kind(name)
    found = plugins()
    return found.kinds.get(name) or found.broken.get(name)


def kind_names() -> tuple[str, ...]:
    """The names of every kind, built-in first (reads entry points)."""
    found = plugins()
    return BUILTIN_NAMES + tuple(sorted({*found.kinds, *found.broken}))


def loaded_kind(name: str) -> ProbeKind | None:
    """A kind this process already knows, without reading entry points: a built-in one
    (imported if need be), or a plugin's when plugins were loaded (the refresher always
    has when its config uses one). For what runs on every snapshot: the issue patterns."""
    if name in BUILTIN_NAMES:
        return builtin_kind(name)
    return _plugins.kinds.get(name) if _plugins is not None else None


def is_service_kind(name: str) -> bool:
    """Whether a failure of a result of this kind means "the service is down"."""
    kind = loaded_kind(name)
    return kind is not None and kind.is_service


# --------------------------------------------------------------------------- unusable plugins


@dataclass(frozen=True, kw_only=True)
class UnusableConfig:
    """A [[probes.<kind>]] table whose kind's plugin could not be loaded."""

    name: str
    kind: str
    problem: str
    timeout_seconds: float = 1.0


class UnusableProbe:
    """Reports UNKNOWN, with why, for each table of a kind whose plugin is broken."""

    timeout_seconds = 1.0

    def __init__(self, config: UnusableConfig) -> None:
        self.config = config
        self.kind = config.kind
        self.names = (config.name,)

    def check(self) -> list[ProbeResult]:
        from aiki_hooks.model.result import ProbeResult
        from aiki_hooks.model.status import Status

        return [ProbeResult(name=self.config.name, kind=self.kind, status=Status.UNKNOWN,
                            summary=self.config.problem, error_kind="plugin_broken")]


def unusable_kind(name: str, problem: str) -> ProbeKind:
    """A stand-in for a broken plugin's kind: any table is accepted (it cannot be checked)."""
    return ProbeKind(
        name=name, config_type=UnusableConfig, spec={}, is_service=False,
        build=lambda configs, context: [UnusableProbe(config) for config in configs],
        hints={None: "reinstall or fix the plugin that provides it (`aiki-hooks doctor` lists the plugins)"},
    )
