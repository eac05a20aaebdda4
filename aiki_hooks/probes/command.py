"""Any executable that follows the Nagios / Monitoring Plugins conventions.

Exit code 0/1/2/3 is OK/WARNING/CRITICAL/UNKNOWN. Output (guidelines, "Plugin Output"):

    SUMMARY TEXT | perfdata
    long text line 2
    long text line 3 | more perfdata
    more perfdata

The first line's text is the summary; long text lines become details; perfdata is
`'label'=value[UOM];[warn];[crit];[min];[max]`, separated by spaces. Only the value is
kept, converted to base units; the thresholds are the plugin's business, its exit code
already carries the verdict.

measure: `CommandProbe`; parse: `parse_plugin_output`, `parse_perfdata`;
judge: `judge_exit_code`; render: `describe_outcome`, `plugin_values`.
"""

from __future__ import annotations

import re
import shlex
import signal
from dataclasses import dataclass
from typing import Sequence

from aiki_hooks.config.validators import argv, redact_text
from aiki_hooks.model.result import ProbeResult, Value
from aiki_hooks.model.status import Status
from aiki_hooks.model.thresholds import fmt_bytes
from aiki_hooks.probes.registry import BuildContext, Probe, ProbeKind, name_and_timeout
from aiki_hooks.proc import FLOOD_BYTES, MAX_OUTPUT_BYTES, CommandNotFound, CommandRunner, run_command

MAX_DETAILS = 5
MAX_SUMMARY_CHARS = 300
NO_OUTPUT = "(no output)"

_EXIT_STATUS = {0: Status.OK, 1: Status.WARNING, 2: Status.CRITICAL, 3: Status.UNKNOWN}

# UOM -> (key suffix, factor to the base unit). 1 KB = 1024 B, as the guidelines say.
_UNITS: dict[str, tuple[str, int | float]] = {
    "": ("", 1),
    "s": ("_seconds", 1),
    "ms": ("_seconds", 1e-3),
    "us": ("_seconds", 1e-6),
    "%": ("_percent", 1),
    "B": ("_bytes", 1),
    "KB": ("_bytes", 1024),
    "MB": ("_bytes", 1024**2),
    "GB": ("_bytes", 1024**3),
    "TB": ("_bytes", 1024**4),
    "c": ("_total", 1),
}


# --------------------------------------------------------------------------- parse


@dataclass(frozen=True, kw_only=True)
class PerfDatum:
    label: str
    key: str  # snake_case, with the unit's suffix: "time_seconds", "root_bytes"
    value: float | int | None  # base units; None for "U" (the plugin could not tell)


@dataclass(frozen=True, kw_only=True)
class PluginOutput:
    summary: str  # "" when the plugin printed nothing
    details: tuple[str, ...] = ()
    perfdata: tuple[PerfDatum, ...] = ()


def parse_plugin_output(stdout: str) -> PluginOutput:
    """Summary, long-text details (at most MAX_DETAILS) and perfdata of a plugin's stdout."""
    lines = stdout.splitlines()
    if not lines:
        return PluginOutput(summary="")
    summary, _, first_perfdata = lines[0].partition("|")
    perfdata_parts = [first_perfdata]
    details: list[str] = []
    in_perfdata = False  # after the first `|` on a later line, every line is perfdata
    for line in lines[1:]:
        if in_perfdata:
            perfdata_parts.append(line)
            continue
        text, bar, perfdata = line.partition("|")
        if text.strip():
            details.append(text.rstrip())
        if bar:
            in_perfdata = True
            perfdata_parts.append(perfdata)
    return PluginOutput(
        summary=_shorten(summary.strip()),
        details=tuple(details[:MAX_DETAILS]),
        perfdata=tuple(parse_perfdata(" ".join(perfdata_parts))),
    )


_PERF_ITEM = re.compile(r"\s*(?:'(?P<quoted>(?:[^']|'')+)'|(?P<plain>[^\s'=]+))=(?P<data>\S+)")
_NEXT_TOKEN = re.compile(r"\s*\S+")
_PERF_VALUE = re.compile(r"(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|U)(?P<unit>[A-Za-z%]*)")


def parse_perfdata(text: str) -> list[PerfDatum]:
    """Perfdata items in order. A malformed item (no `=`, bad number, unknown UOM) is
    skipped, never an error: perfdata is a bonus, the exit code is the verdict."""
    items: list[PerfDatum] = []
    position = 0
    while (token := _NEXT_TOKEN.match(text, position)) is not None:
        match = _PERF_ITEM.match(text, position)
        if match is None:
            position = token.end()
            continue
        position = match.end()
        label = match["plain"] if match["quoted"] is None else match["quoted"].replace("''", "'")
        datum = _perf_datum(label, match["data"].split(";")[0])
        if datum is not None:
            items.append(datum)
    return items


def _perf_datum(label: str, value_text: str) -> PerfDatum | None:
    match = _PERF_VALUE.fullmatch(value_text)
    if match is None or match["unit"] not in _UNITS:
        return None
    suffix, factor = _UNITS[match["unit"]]
    number = match["number"]
    value: float | int | None
    if number == "U":
        value = None
    elif re.fullmatch(r"[-+]?\d+", number) and isinstance(factor, int):
        value = int(number) * factor
    else:
        value = float(number) * factor
    key = perf_key(label)
    if not key.endswith(suffix):
        key += suffix
    return PerfDatum(label=label, key=key, value=value)


def perf_key(label: str) -> str:
    """snake_case key for a perfdata label: "Response Time" -> "response_time",
    "cpuLoad" -> "cpu_load", "/var/log" -> "var_log", "/" -> "root"."""
    if label.strip() == "/":
        return "root"  # check_disk's label for the root filesystem
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", label)
    return re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_").lower() or "value"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"


# --------------------------------------------------------------------------- judge


def judge_exit_code(exit_code: int) -> tuple[Status, str | None]:
    """Status and error_kind for a plugin's exit code; codes outside 0-3 (and deaths by
    signal, negative here) mean the plugin itself misbehaved: UNKNOWN "bad_exit_code"."""
    if exit_code in _EXIT_STATUS:
        return _EXIT_STATUS[exit_code], None
    return Status.UNKNOWN, "bad_exit_code"


# --------------------------------------------------------------------------- render


def describe_outcome(exit_code: int, output: PluginOutput) -> str:
    text = output.summary or NO_OUTPUT
    if exit_code in _EXIT_STATUS:
        return text
    if exit_code < 0:
        return f"killed by {_signal_name(-exit_code)}: {text}"
    return f"exit code {exit_code}: {text}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def plugin_values(exit_code: int | None, perfdata: tuple[PerfDatum, ...]) -> dict[str, Value]:
    """exit_code plus one value per perfdata item; a key already taken gets _2, _3..."""
    values: dict[str, Value] = {"exit_code": exit_code}
    for datum in perfdata:
        key, copy = datum.key, 1
        while key in values:
            copy += 1
            key = f"{datum.key}_{copy}"
        values[key] = datum.value
    return values


# --------------------------------------------------------------------------- measure


class CommandProbe:
    """Runs one plugin (argv, no shell) under the configured timeout."""

    kind = "command"

    def __init__(self, config: CommandProbeConfig, *, run: CommandRunner = run_command) -> None:
        self.config = config
        self.names: tuple[str, ...] = (config.name,)
        self.timeout_seconds = config.timeout_seconds
        self._run = run

    def check(self) -> list[ProbeResult]:
        try:
            output = self._run(self.config.command, timeout=self.timeout_seconds)
        except CommandNotFound as exc:
            return [self._result(Status.UNKNOWN, f"cannot run {exc}", error_kind="tool_missing")]
        if output.flooded:
            return [
                self._result(
                    Status.UNKNOWN,
                    f"stopped: printed more than {fmt_bytes(FLOOD_BYTES)} (a plugin prints a few lines)",
                    error_kind="output_flood",
                    values={"exit_code": None, "output_truncated": True},
                )
            ]
        if output.timed_out or output.returncode is None:  # None: timed out
            return [
                self._result(
                    Status.UNKNOWN,
                    f"no result within {self.timeout_seconds:g} s",
                    error_kind="timeout",
                    values={"exit_code": None},
                )
            ]
        parsed = parse_plugin_output(output.stdout)
        status, error_kind = judge_exit_code(output.returncode)
        details = parsed.details
        if not parsed.summary:
            # Nothing on stdout: stderr is all there is to explain the result.
            details = tuple(line.rstrip() for line in output.stderr.splitlines() if line.strip())[:MAX_DETAILS]
        values = plugin_values(output.returncode, parsed.perfdata)
        if output.stdout_truncated or output.stderr_truncated:
            # Perfdata past the cut is lost; the exit code, the verdict, is not.
            values["output_truncated"] = True
            details = (*details[: MAX_DETAILS - 1], f"(output beyond {fmt_bytes(MAX_OUTPUT_BYTES)} not kept)")
        return [
            self._result(
                status,
                describe_outcome(output.returncode, parsed),
                error_kind=error_kind,
                values=values,
                details=details,
            )
        ]

    def _result(
        self,
        status: Status,
        summary: str,
        *,
        error_kind: str | None = None,
        values: dict[str, Value] | None = None,
        details: tuple[str, ...] = (),
    ) -> ProbeResult:
        return ProbeResult(
            name=self.config.name,
            kind=self.kind,
            status=status,
            summary=summary,
            values=values or {},
            error_kind=error_kind,
            details=details,
        )


# --------------------------------------------------------------------------- kind


@dataclass(frozen=True, kw_only=True)
class CommandProbeConfig:
    """One [[probes.command]] entry: a Nagios-style plugin to run."""

    name: str
    command: tuple[str, ...]
    timeout_seconds: float = 10.0


def _build(configs: Sequence[CommandProbeConfig], context: BuildContext) -> list[Probe]:
    return [CommandProbe(config) for config in configs]


def _hint_fields(config: CommandProbeConfig) -> dict[str, str]:
    # Quoted for a shell, so that it can be pasted and runs as the probe runs it.
    return {"name": config.name, "command": redact_text(shlex.join(config.command))}


PROBE_KIND = ProbeKind(
    name="command",
    config_type=CommandProbeConfig,
    spec={**name_and_timeout(10.0), "command": (argv, None)},
    required=("name", "command"),
    build=_build,
    describe=lambda c: {"name": c.name, "command": [redact_text(arg) for arg in c.command],
                        "timeout_seconds": c.timeout_seconds},
    is_service=True,
    hints={
        "tool_missing": "the command does not exist: fix `command` (absolute path recommended)",
        None: "run it by hand to see its full output: {command}",
    },
    hint_fields=_hint_fields,
)
