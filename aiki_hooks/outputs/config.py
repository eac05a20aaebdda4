"""The `[[outputs]]` entries: their record, their keys and the checks that load them.

Kept apart from the router (which delivers): every command loads the config, and loading
it must not import threads, sockets and the webhook machinery.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aiki_hooks.config import validators
from aiki_hooks.config.validators import Reader, Spec, show, url_for_errors
from aiki_hooks.model import severity

OUTPUT_TYPES = ("cache", "journal", "mem0", "prometheus_textfile", "prometheus_http", "jsonl", "webhook")
# Each of these writes one fixed thing in the state dir, so a second one would fight the first.
SINGLETON_TYPES = ("cache", "journal", "mem0")
SEVERITIES = severity.ORDER  # min_severity's choices, least severe first
WHAT = ("snapshot", "issues", "transitions")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_QUEUE_SIZE = 100
FORMATS = ("json", "slack", "discord", "ntfy")  # outputs.formats renders each, for every `what`


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    """One [[outputs]] entry: where snapshots and issues are sent."""

    type: str
    name: str = ""
    min_severity: str = "OK"
    probes: tuple[str, ...] = ()  # globs over probe names, `<kind>:<name>` and issue ids; () = all
    # jsonl
    path: str | None = None
    what: str = ""  # snapshot | issues | transitions; "" = the type's default
    max_bytes: int = DEFAULT_MAX_BYTES
    # webhook
    url: str | None = None
    timeout_seconds: float = 5.0
    retries: int = 3
    headers_env: str | None = None
    queue_size: int = DEFAULT_QUEUE_SIZE
    format: str = "json"  # FORMATS: what the body looks like
    # prometheus_textfile
    directory: str | None = None
    # prometheus_http
    host: str = "127.0.0.1"
    port: int = 9464

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.type)
        if not self.what:
            object.__setattr__(self, "what", "transitions" if self.type == "webhook" else "snapshot")

    @property
    def filtered(self) -> bool:
        return bool(self.probes) or self.min_severity != "OK"


def default_outputs(mem0_enabled: bool) -> tuple[OutputConfig, ...]:
    """What runs when the config has no [[outputs]]: the behaviour before outputs existed."""
    types = ("cache", "journal", "mem0") if mem0_enabled else ("cache", "journal")
    return tuple(OutputConfig(type=t) for t in types)


# --------------------------------------------------------------------------- validation
# The checks are config.validators', shared with the config loader and the probe kinds.


def _globs(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return None
    return "a list of glob patterns over probe names and issue ids"


_COMMON_SPEC: Spec = {
    "type": (validators.choice(*OUTPUT_TYPES), None),
    "name": (validators.probe_name, None),
    "min_severity": (validators.choice(*SEVERITIES), "OK"),
    "probes": (_globs, []),
}
_TYPE_SPECS: dict[str, Spec] = {
    "cache": {},
    "journal": {},
    "mem0": {},
    "prometheus_textfile": {"directory": (validators.file_path, None)},
    "prometheus_http": {"host": (validators.host, "127.0.0.1"), "port": (validators.integer(1, 65535), 9464)},
    "jsonl": {
        "path": (validators.file_path, None),
        "what": (validators.choice(*WHAT), "snapshot"),
        "max_bytes": (validators.integer(1024, 1024**3), DEFAULT_MAX_BYTES),
    },
    "webhook": {
        "url": (validators.url, None),
        "what": (validators.choice(*WHAT), "transitions"),
        "timeout_seconds": (validators.number(0, 600, low_open=True), 5.0),
        "retries": (validators.integer(0, 20), 3),
        "headers_env": (validators.env_var_name, None),
        "queue_size": (validators.integer(1, 100_000), DEFAULT_QUEUE_SIZE),
        "format": (validators.choice(*FORMATS), "json"),
    },
}
_REQUIRED = {"prometheus_textfile": ("directory",), "jsonl": ("path",), "webhook": ("url",)}
# Always written in full (the hooks, the patterns and `aiki-hooks issues` read them): a
# filter there would be silently ignored, so it is refused.
UNFILTERED_TYPES = ("cache", "journal")
_ANY_TYPE_SPEC = {key: spec for specs in _TYPE_SPECS.values() for key, spec in specs.items()}


def parse_outputs(raw: Any, reader: Reader, *, where: str = "outputs",
                  mem0_enabled: bool = False) -> tuple[OutputConfig, ...]:
    """The `[[outputs]]` array, validated with config.validators' `Reader` (problems are appended
    to `reader.problems`, never raised). A missing key means `default_outputs`."""
    if raw is None:
        return default_outputs(mem0_enabled)
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        reader.problems.append(f"{where}: expected an array of tables ([[{where}]]), got {show(raw)}")
        return ()
    if not raw:
        reader.problems.append(f"{where}: expected at least one [[{where}]] table (leave it out for the defaults: "
                               f"cache, journal and mem0 when enabled)")
        return ()
    outputs: list[OutputConfig] = []
    names: dict[str, str] = {}
    singletons: dict[str, str] = {}
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        kind = item.get("type")
        known = kind in _TYPE_SPECS
        spec = {**_COMMON_SPEC, **(_TYPE_SPECS[kind] if known else _ANY_TYPE_SPEC)}
        first = len(reader.problems)
        if known and "format" in item and "format" not in spec:
            # Said once, with what it is for, rather than as an unknown key.
            reader.problems.append(f"{here}.format = {show(item['format'])}: expected no format on a {kind} output "
                                   f"(format is a webhook's: {', '.join(FORMATS)})")
            item = {key: value for key, value in item.items() if key != "format"}
        values = reader.table(item, here, spec, required=("type",) + (_REQUIRED.get(kind, ()) if known else ()))
        given_url = item.get("url")
        if isinstance(given_url, str):
            # The reader quotes a refused value; a webhook URL may carry a token in its
            # path or query, so only the scheme and host are shown.
            reader.problems[first:] = [p.replace(show(given_url), show(url_for_errors(given_url)))
                                       for p in reader.problems[first:]]
        if kind in UNFILTERED_TYPES:
            for key in ("min_severity", "probes"):
                # An invalid value is reported already; "OK" and [] filter nothing.
                if key in item and values.get(key) == item[key] and item[key] not in ("OK", []):
                    reader.problems.append(
                        f"{here}.{key} = {show(item[key])}: expected no {key} on a {kind} output (it is always "
                        f"written in full, because the hooks and `aiki-hooks issues` read it); put the filter on a "
                        f"jsonl, webhook, mem0 or prometheus output instead")
        if not known or any(values.get(key) is None for key in _REQUIRED.get(kind, ())):
            continue
        if kind == "webhook" and values.get("format") == "ntfy" and not _ntfy_topic(values["url"]):
            reader.problems.append(f'{here}.url = {show(values["url"])}: expected a topic URL for format = "ntfy" '
                                   f"(https://host/topic: ntfy publishes the body to the topic in the path)")
        name = values["name"] or kind
        if name in names:
            reader.problems.append(f"{here}.name = {show(name)}: expected a name not already used by {names[name]}"
                                   + ("" if values["name"] else " (the name defaults to the type; set `name`)"))
        names.setdefault(name, here)
        if kind in SINGLETON_TYPES:
            if kind in singletons:
                reader.problems.append(f'{here}.type = "{kind}": expected at most one output of this type '
                                       f"(already {singletons[kind]})")
            singletons.setdefault(kind, here)
        fields = {key: values[key] for key in _TYPE_SPECS[kind]}
        for key in ("path", "directory"):
            if fields.get(key):
                fields[key] = os.path.expanduser(fields[key])
        if "timeout_seconds" in fields:
            fields["timeout_seconds"] = float(fields["timeout_seconds"])
        outputs.append(OutputConfig(type=kind, name=name, min_severity=values["min_severity"],
                                    probes=tuple(values["probes"]), **fields))
    return tuple(outputs)


def _ntfy_topic(url: str) -> str:
    """The topic an ntfy URL publishes to: its path's last segment ("" for none)."""
    path = urllib.parse.urlsplit(url).path
    return path.rsplit("/", 1)[-1] if path.count("/") >= 1 else ""


def validate_outputs(raw: Any, *, mem0_enabled: bool = False) -> tuple[tuple[OutputConfig, ...], list[str]]:
    """parse_outputs with a fresh reader: (outputs, problems)."""
    reader = Reader()
    outputs = parse_outputs(raw, reader, mem0_enabled=mem0_enabled)
    return outputs, list(reader.problems)
