"""systemd units: one `systemctl show` call per scope, judged unit by unit.

The roles are kept apart so each is tested without systemd:
- measure: `SystemdProbe` runs systemctl (and journalctl for failed units) through the
  injected runner;
- parse: `parse_show`, `unit_state`, `parse_timestamp`, `parse_journal` turn text into data;
- judge: `judge_unit` (state -> Status, no I/O);
- render: `describe_unit`, `unit_values`.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import time
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

from ..config import SystemdProbeConfig
from ..proc import CommandNotFound, CommandRunner, run_command
from ..result import ProbeResult, Value
from ..status import Status
from ..thresholds import fmt_bytes, fmt_duration

Scope = Literal["user", "system"]

# StateChangeTimestamp is asked for too: a failed unit's "since" is when it failed, which
# ActiveEnterTimestamp (when it last became active) cannot tell.
SHOW_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "ActiveEnterTimestamp",
    "StateChangeTimestamp",
    "MainPID",
    "MemoryCurrent",
)
JOURNAL_LINES = 3
# Less time than this is not worth starting journalctl for.
MIN_JOURNAL_SECONDS = 0.1
NOT_SET = "[not set]"
# Older systemd prints UINT64_MAX where newer prints "[not set]".
UINT64_MAX = 2**64 - 1
# systemctl appends ".service" to a name without one of these suffixes.
UNIT_TYPES = frozenset(
    {"service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path", "slice", "scope"}
)

RUNNING_STATES = frozenset({"active", "reloading"})
TRANSITION_STATES = frozenset({"activating", "reloading", "deactivating", "maintenance", "refreshing"})
DOWN_STATES = frozenset({"failed", "inactive"})
LOAD_FAILURES = frozenset({"not-found", "error", "bad-setting"})


# --------------------------------------------------------------------------- parse


@dataclass(frozen=True, kw_only=True)
class ShowBlock:
    """One unit's `Key=Value` lines; a value of None was printed as `[not set]`."""

    properties: Mapping[str, str | None]
    skipped_lines: int = 0


_PROPERTY_LINE = re.compile(r"([A-Za-z][A-Za-z0-9]*)=(.*)")


def parse_show(text: str) -> list[ShowBlock]:
    """Split `systemctl show` output into per-unit blocks, in the order printed.

    Blocks are separated by blank lines. Lines that are not `Key=Value` are skipped and
    counted in their block; a block without any property is dropped.
    """
    blocks: list[ShowBlock] = []
    properties: dict[str, str | None] = {}
    skipped = 0
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if properties:
                blocks.append(ShowBlock(properties=properties, skipped_lines=skipped))
            properties, skipped = {}, 0
            continue
        match = _PROPERTY_LINE.fullmatch(line.strip())
        if match is None:
            skipped += 1
            continue
        key, value = match.groups()
        properties[key] = None if value == NOT_SET else value
    return blocks


@dataclass(frozen=True, kw_only=True)
class UnitState:
    id: str | None = None
    load_state: str | None = None
    active_state: str | None = None
    sub_state: str | None = None
    result: str | None = None
    restarts: int | None = None
    main_pid: int | None = None
    memory_bytes: int | None = None
    active_entered_at: float | None = None
    state_changed_at: float | None = None
    skipped_lines: int = 0


def unit_state(block: ShowBlock, *, local_tz: _dt.tzinfo | None = None) -> UnitState:
    """Typed view of one block. Absent, empty and unparsable values become None."""
    props = block.properties

    def text(key: str) -> str | None:
        return props.get(key) or None

    main_pid = _integer(props.get("MainPID"))
    memory = _integer(props.get("MemoryCurrent"))
    return UnitState(
        id=text("Id"),
        load_state=text("LoadState"),
        active_state=text("ActiveState"),
        sub_state=text("SubState"),
        result=text("Result"),
        restarts=_integer(props.get("NRestarts")),
        main_pid=main_pid or None,  # 0: no main process
        memory_bytes=None if memory == UINT64_MAX else memory,
        active_entered_at=parse_timestamp(props.get("ActiveEnterTimestamp"), local_tz=local_tz),
        state_changed_at=parse_timestamp(props.get("StateChangeTimestamp"), local_tz=local_tz),
        skipped_lines=block.skipped_lines,
    )


def _integer(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


_TIMESTAMP = re.compile(
    r"(?:[A-Za-z]+ )?(?P<when>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?P<fraction>\.\d{1,6})?(?: (?P<zone>\S+))?"
)
_NUMERIC_ZONE = re.compile(r"(?P<sign>[+-])(?P<hours>\d{2})(?P<minutes>\d{2})?")


def parse_timestamp(text: str | None, *, local_tz: _dt.tzinfo | None = None) -> float | None:
    """Epoch seconds from systemd's `Mon 2026-11-23 09:12:01 UTC` or `@1700000000`.

    UTC, GMT and numeric zones (`+0530`, `-03`) are exact. Any other abbreviation is read
    as *local_tz* (default: the system's local zone): systemctl prints in the local zone
    and abbreviations such as CST are ambiguous. Unparsable text gives None.
    """
    if not text or not text.strip():
        return None
    text = text.strip()
    if text.startswith("@"):
        try:
            seconds = float(text[1:])
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) else None
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    try:
        moment = _dt.datetime.strptime(match["when"], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    zone = _zone(match["zone"]) or local_tz
    if zone is not None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp() + float(match["fraction"] or 0)  # naive: local time


def _zone(name: str | None) -> _dt.tzinfo | None:
    if name in ("UTC", "GMT"):
        return _dt.timezone.utc
    match = _NUMERIC_ZONE.fullmatch(name or "")
    if match is None:
        return None
    offset = _dt.timedelta(hours=int(match["hours"]), minutes=int(match["minutes"] or 0))
    return _dt.timezone(-offset if match["sign"] == "-" else offset)


def parse_journal(text: str) -> tuple[str, ...]:
    """The last JOURNAL_LINES log lines of `journalctl -o short-iso`, without its
    `-- ... --` markers (boot separators, "-- No entries --")."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip() and not line.startswith("-- ")]
    return tuple(lines[-JOURNAL_LINES:])


def classify_failure(stderr: str) -> str:
    """error_kind for a systemctl that failed without output: "no_bus" when it could not
    reach systemd at all (no session bus, not booted with systemd), else "systemctl_failed"."""
    if re.search(r"\bbus\b", stderr, re.IGNORECASE) or "not been booted with systemd" in stderr:
        return "no_bus"
    return "systemctl_failed"


def mangled_unit_name(name: str) -> str:
    """The unit name systemctl reports as Id for *name* ("qdrant" -> "qdrant.service")."""
    stem, dot, suffix = name.rpartition(".")
    return name if dot and stem and suffix in UNIT_TYPES else f"{name}.service"


# --------------------------------------------------------------------------- judge


def judge_unit(state: UnitState) -> Status:
    """CRITICAL when the unit is missing, failed or stopped; WARNING while it changes
    state; OK when active; UNKNOWN when the state is absent or not one systemd documents."""
    if state.load_state in LOAD_FAILURES:
        return Status.CRITICAL
    if state.active_state == "active":
        return Status.OK
    if state.active_state in TRANSITION_STATES:
        return Status.WARNING
    if state.active_state in DOWN_STATES:
        return Status.CRITICAL
    return Status.UNKNOWN


# --------------------------------------------------------------------------- render


def active_since(state: UnitState) -> float | None:
    """When the current run started; None unless the unit is running now (for a stopped
    unit ActiveEnterTimestamp belongs to a past run)."""
    return state.active_entered_at if state.active_state in RUNNING_STATES else None


def uptime_seconds(state: UnitState, now: float) -> float | None:
    started = active_since(state)
    return None if started is None else max(0.0, now - started)


def describe_unit(state: UnitState, *, now: float, local_tz: _dt.tzinfo | None = None) -> str:
    """One line: "active (running) 3d, 2 restarts, 41.2 MiB", "failed (exit-code) since 14:05"."""
    if state.load_state == "not-found":
        return "unit not found"
    if state.load_state in LOAD_FAILURES:
        return f"unit failed to load ({state.load_state})"
    if state.active_state is None:
        return "systemctl output has no ActiveState"
    reason = state.result if state.active_state == "failed" and state.result else state.sub_state
    head = f"{state.active_state} ({reason})" if reason else state.active_state
    uptime = uptime_seconds(state, now)
    if uptime is not None:
        head += f" {fmt_duration(uptime)}"
    elif state.active_state in DOWN_STATES and state.state_changed_at is not None:
        head += f" since {_clock_time(state.state_changed_at, now, local_tz)}"
    parts = [head]
    if state.restarts:
        parts.append(f"{state.restarts} restart{'' if state.restarts == 1 else 's'}")
    if state.memory_bytes is not None:
        parts.append(fmt_bytes(state.memory_bytes))
    if state.load_state == "masked":
        parts.append("masked")
    return ", ".join(parts)


def _clock_time(epoch: float, now: float, local_tz: _dt.tzinfo | None) -> str:
    """ "14:05" for today, "2026-11-20 14:05" for an earlier day."""
    moment = _dt.datetime.fromtimestamp(epoch, local_tz)
    today = _dt.datetime.fromtimestamp(now, local_tz).date()
    return moment.strftime("%H:%M" if moment.date() == today else "%Y-%m-%d %H:%M")


def unit_values(state: UnitState, *, now: float) -> dict[str, Value]:
    return {
        "load_state": state.load_state,
        "active_state": state.active_state,
        "sub_state": state.sub_state,
        "result": state.result,
        "restarts": state.restarts,
        "main_pid": state.main_pid,
        "memory_bytes": state.memory_bytes,
        "active_since": active_since(state),
        "uptime_seconds": uptime_seconds(state, now),
        "state_changed_at": state.state_changed_at,
    }


# --------------------------------------------------------------------------- measure


@dataclass
class _Budget:
    """Seconds left of the probe's deadline, reduced by each command's reported run time."""

    seconds_left: float


class SystemdProbe:
    """All units of one scope, checked with a single `systemctl show` call."""

    kind = "systemd"

    def __init__(
        self,
        units: Sequence[SystemdProbeConfig],
        *,
        scope: Scope,
        run: CommandRunner = run_command,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if scope not in ("user", "system"):
            raise ValueError(f"scope must be 'user' or 'system', not {scope!r}")
        if not units:
            raise ValueError("SystemdProbe needs at least one unit")
        strays = [u.unit for u in units if u.scope != scope]
        if strays:
            raise ValueError(f"units of another scope given to the {scope} probe: {', '.join(strays)}")
        self.units = tuple(units)
        self.scope = scope
        self.names = tuple(u.name for u in self.units)
        self.timeout_seconds = max(u.timeout_seconds for u in self.units)
        self._run = run
        self._clock = clock

    @property
    def _scope_flag(self) -> str:
        return f"--{self.scope}"

    def show_argv(self) -> list[str]:
        return [
            "systemctl",
            self._scope_flag,
            "show",
            "--no-pager",
            "--property=" + ",".join(SHOW_PROPERTIES),
            *(u.unit for u in self.units),
        ]

    def journal_argv(self, unit: str) -> list[str]:
        scope = ["--user"] if self.scope == "user" else []
        return [
            "journalctl",
            *scope,
            "-u",
            unit,
            "-p",
            "err",
            "-n",
            str(JOURNAL_LINES),
            "--no-pager",
            "-o",
            "short-iso",
        ]

    def check(self) -> list[ProbeResult]:
        try:
            output = self._run(self.show_argv(), timeout=self.timeout_seconds)
        except CommandNotFound:
            return self._all_unknown("tool_missing", "systemctl not found")
        if output.timed_out:
            return self._all_unknown("timeout", f"systemctl gave no answer within {self.timeout_seconds:g} s")
        blocks = parse_show(output.stdout)
        if output.returncode != 0 and not blocks:
            first_line = next((line.strip() for line in output.stderr.splitlines() if line.strip()), "")
            reason = first_line or f"exit code {output.returncode}"
            return self._all_unknown(classify_failure(output.stderr), f"systemctl {self._scope_flag}: {reason}")
        if len(blocks) != len(self.units):
            return self._all_unknown(
                "unparsable", f"systemctl answered with {len(blocks)} unit blocks for {len(self.units)} units"
            )

        now = self._clock()
        budget = _Budget(self.timeout_seconds - output.seconds)
        requested_ids = {mangled_unit_name(u.unit) for u in self.units}
        results = []
        for config, block in zip(self.units, blocks, strict=True):
            state = unit_state(block)
            expected_id = mangled_unit_name(config.unit)
            # An Id naming another requested unit means the blocks are not in the order
            # asked; any other Id is an alias (sshd.service -> ssh.service) and fine.
            if state.id not in (None, expected_id) and state.id in requested_ids:
                results.append(
                    self._unknown(config, "unparsable", f"systemctl answered for {state.id} in place of {expected_id}")
                )
                continue
            results.append(self._judged(config, state, now, budget))
        return results

    def _judged(self, config: SystemdProbeConfig, state: UnitState, now: float, budget: _Budget) -> ProbeResult:
        status = judge_unit(state)
        details: list[str] = []
        if state.active_state == "failed":
            details.extend(self._recent_errors(config.unit, budget))
        if state.skipped_lines:
            details.append(f"skipped {state.skipped_lines} malformed line(s) of systemctl output")
        return ProbeResult(
            name=config.name,
            kind=self.kind,
            status=status,
            summary=describe_unit(state, now=now),
            values=unit_values(state, now=now),
            error_kind="unparsable" if status is Status.UNKNOWN else None,
            details=tuple(details),
        )

    def _recent_errors(self, unit: str, budget: _Budget) -> tuple[str, ...]:
        """The unit's last error lines; empty when journalctl fails or time is short."""
        if budget.seconds_left < MIN_JOURNAL_SECONDS:
            return ()
        try:
            output = self._run(self.journal_argv(unit), timeout=budget.seconds_left)
        except CommandNotFound:
            return ()
        budget.seconds_left -= output.seconds
        if output.timed_out or output.returncode != 0:
            return ()
        return parse_journal(output.stdout)

    def _unknown(self, config: SystemdProbeConfig, error_kind: str, summary: str) -> ProbeResult:
        return ProbeResult(
            name=config.name, kind=self.kind, status=Status.UNKNOWN, summary=summary, error_kind=error_kind
        )

    def _all_unknown(self, error_kind: str, summary: str) -> list[ProbeResult]:
        return [self._unknown(config, error_kind, summary) for config in self.units]
