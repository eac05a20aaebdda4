"""systemd units: one `systemctl show` call per scope, judged unit by unit.

The roles are kept apart so each is tested without systemd:
- measure: `SystemdProbe` runs systemctl through the injected runner, and `last_run_lines`
  runs journalctl for a failed or restarting unit;
- parse: `parse_show`, `unit_state`, `parse_timestamp`, `parse_journal_json` turn text
  into data;
- judge: `judge_unit` (state -> Status), `select_last_run` and `pick_lines` (which log
  lines tell why a unit died); no I/O;
- render: `describe_unit`, `unit_values`, `clean_line`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Literal, Mapping, Sequence

from aiki_hooks.config.validators import choice, probe_name, probe_timeout, redact_text
from aiki_hooks.model.dates import clock_or_date
from aiki_hooks.model.result import ProbeResult, Value
from aiki_hooks.model.status import Status
from aiki_hooks.model.thresholds import fmt_bytes, fmt_duration
from aiki_hooks.probes.registry import BuildContext, KindMetric, Probe, ProbeKind
from aiki_hooks.proc import CommandNotFound, CommandOutput, CommandRunner, run_command
from aiki_hooks.sanitize import strip_controls

Scope = Literal["user", "system"]

# StateChangeTimestamp is asked for too: a failed unit's "since" is when it failed, which
# ActiveEnterTimestamp (when it last became active) cannot tell. The ExecMain* properties
# describe the main process of the last run (kept after it died); InvocationID names that run.
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
    "ExecMainStartTimestamp",
    "ExecMainCode",
    "ExecMainStatus",
    "InvocationID",
)
# Microseconds, in UTC: the last run's start must be exact to tell its log lines from those
# of the run before (a restart loop restarts within the same second) and UTC spares us
# guessing what a zone abbreviation means. systemctl has this option since systemd 247.
PRECISE_TIMESTAMPS = "--timestamp=us+utc"
# How many lines of the last run a failed unit shows.
JOURNAL_LINES = 5
# Entries asked of journalctl: enough to find an error among the last run's lines, few
# enough to stay well inside run_command's output cap (~400 bytes an entry with these fields).
JOURNAL_ENTRIES = 100
JOURNAL_FIELDS = ("MESSAGE", "PRIORITY", "_SYSTEMD_CGROUP", "_SYSTEMD_INVOCATION_ID")
ERROR_PRIORITY = 3  # syslog "err"; 0-2 (emerg, alert, crit) are errors too
LINE_WIDTH = 200
# Less time than this is not worth starting a command for.
MIN_COMMAND_SECONDS = 0.1
# ExecMainCode: how the main process ended (waitid's si_code); 0 while it runs or never ran.
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
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
    main_started_at: float | None = None  # when the last run's main process started
    main_exit_code: int | None = None  # CLD_EXITED/KILLED/DUMPED; None: no main process ended
    main_exit_status: int | None = None  # exit status, or signal number when killed/dumped
    invocation_id: str | None = None
    skipped_lines: int = 0


def unit_state(block: ShowBlock, *, local_tz: _dt.tzinfo | None = None) -> UnitState:
    """Typed view of one block. Absent, empty and unparsable values become None."""
    props = block.properties

    def text(key: str) -> str | None:
        return props.get(key) or None

    main_pid = _integer(props.get("MainPID"))
    memory = _integer(props.get("MemoryCurrent"))
    exit_code = _integer(props.get("ExecMainCode"))
    if exit_code not in (CLD_EXITED, CLD_KILLED, CLD_DUMPED):
        exit_code = None  # 0: still running or never started
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
        main_started_at=parse_timestamp(props.get("ExecMainStartTimestamp"), local_tz=local_tz),
        main_exit_code=exit_code,
        main_exit_status=_integer(props.get("ExecMainStatus")) if exit_code is not None else None,
        invocation_id=text("InvocationID"),
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


@dataclass(frozen=True, kw_only=True)
class JournalEntry:
    """The fields of one `journalctl -o json` entry that tell whose line it is and when."""

    message: str | None
    priority: int | None = None
    realtime: float | None = None  # epoch seconds
    cgroup: str | None = None
    invocation_id: str | None = None


def parse_journal_json(text: str) -> list[JournalEntry]:
    """Entries of `journalctl -o json` (one JSON object a line), in the order printed.

    A field journalctl could not print as text is a list of byte values (non-UTF-8, or
    control characters) and is decoded with U+FFFD for bad bytes; a field given more than
    once is a list of values and its first is kept; a field too large to print is null
    (None here). Lines that are not a JSON object (a last line cut off) are skipped.
    """
    entries = []
    for line in text.splitlines():
        try:
            fields = json.loads(line)
        except ValueError:
            continue
        if not isinstance(fields, dict):
            continue
        realtime = _integer(_field_text(fields.get("__REALTIME_TIMESTAMP")))
        entries.append(
            JournalEntry(
                message=_field_text(fields.get("MESSAGE")),
                priority=_integer(_field_text(fields.get("PRIORITY"))),
                realtime=None if realtime is None else realtime / 1e6,
                cgroup=_field_text(fields.get("_SYSTEMD_CGROUP")),
                invocation_id=_field_text(fields.get("_SYSTEMD_INVOCATION_ID")),
            )
        )
    return entries


def _field_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, list) and value:
        return _field_text(value[0])
    return None


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
    """CRITICAL when the unit is missing, failed, stopped or died and waits to be restarted
    (SubState auto-restart: a restart loop); WARNING while it changes state otherwise; OK
    when active; UNKNOWN when the state is absent or not one systemd documents."""
    if state.load_state in LOAD_FAILURES:
        return Status.CRITICAL
    if state.active_state == "active":
        return Status.OK
    if state.sub_state == "auto-restart":
        return Status.CRITICAL
    if state.active_state in TRANSITION_STATES:
        return Status.WARNING
    if state.active_state in DOWN_STATES:
        return Status.CRITICAL
    return Status.UNKNOWN


def needs_last_run_lines(state: UnitState) -> bool:
    """A unit whose last run died: failed, or waiting to be restarted."""
    return state.active_state == "failed" or state.sub_state == "auto-restart"


def select_last_run(
    entries: Sequence[JournalEntry], *, scope: Scope, since: float | None, invocation_id: str | None = None
) -> list[JournalEntry]:
    """The entries of the unit's last run, in the given order.

    For a user unit, entries of a system unit of the same name (cgroup under
    /system.slice/) are dropped. Entries before *since* are dropped. When some entries
    carry *invocation_id* only those are kept: that names the run exactly, but a journal
    does not always record it (a user manager running as root does not), and then the
    time is all there is.
    """
    kept = [
        entry
        for entry in entries
        if not (scope == "user" and (entry.cgroup or "").startswith("/system.slice/"))
        and not (since is not None and entry.realtime is not None and entry.realtime < since)
    ]
    if invocation_id and any(entry.invocation_id == invocation_id for entry in kept):
        kept = [entry for entry in kept if entry.invocation_id == invocation_id]
    return kept


def pick_lines(entries: Sequence[JournalEntry], *, limit: int = JOURNAL_LINES) -> tuple[str, ...]:
    """At most *limit* cleaned lines (`clean_line`) of *entries* (oldest first): the last
    error lines (priority err or worse), then the last other lines, each in log order;
    a line already shown is not shown again; empty lines are skipped."""
    lines = [(entry.priority, clean_line(entry.message or "")) for entry in entries]
    lines = [(priority, line) for priority, line in lines if line]
    errors = _last_unique([line for priority, line in lines if priority is not None and priority <= ERROR_PRIORITY],
                          limit, skip=())
    rest = _last_unique([line for _, line in lines], limit - len(errors), skip=set(errors))
    return tuple(errors + rest)


def _last_unique(lines: Sequence[str], count: int, *, skip: Collection[str]) -> list[str]:
    picked: list[str] = []
    for line in reversed(lines):
        if len(picked) >= count:
            break
        if line not in picked and line not in skip:
            picked.append(line)
    return picked[::-1]


# --------------------------------------------------------------------------- render


def active_since(state: UnitState) -> float | None:
    """When the current run started; None unless the unit is running now (for a stopped
    unit ActiveEnterTimestamp belongs to a past run)."""
    return state.active_entered_at if state.active_state in RUNNING_STATES else None


def uptime_seconds(state: UnitState, now: float) -> float | None:
    started = active_since(state)
    return None if started is None else max(0.0, now - started)


def exit_status(state: UnitState) -> int | None:
    """The last run's main process exit status, when it exited (was not killed)."""
    return state.main_exit_status if state.main_exit_code == CLD_EXITED else None


def exit_signal(state: UnitState) -> str | None:
    """The signal that killed the last run's main process ("SIGKILL"), if one did."""
    if state.main_exit_code not in (CLD_KILLED, CLD_DUMPED) or state.main_exit_status is None:
        return None
    try:
        return signal.Signals(state.main_exit_status).name
    except ValueError:
        return f"signal {state.main_exit_status}"


def last_run_ending(state: UnitState) -> str | None:
    """How the last run's main process ended: "exit status 3", "killed by SIGKILL",
    "core dumped (SIGSEGV)"; None when no main process has ended."""
    if state.main_exit_status is None:
        return None
    if state.main_exit_code == CLD_EXITED:
        return f"exit status {state.main_exit_status}"
    if state.main_exit_code == CLD_KILLED:
        return f"killed by {exit_signal(state)}"
    if state.main_exit_code == CLD_DUMPED:
        return f"core dumped ({exit_signal(state)})"
    return None


def describe_unit(state: UnitState, *, now: float, local_tz: _dt.tzinfo | None = None) -> str:
    """One line: "active (running) 3d, 2 restarts, 41.2 MiB", "failed (exit-code) since
    14:05, last run: exit status 3", "activating (auto-restart), 7 restarts, last run:
    killed by SIGKILL". How the last run ended is said for a unit whose last run died,
    unless its main process exited 0 (then something else failed it, or the exit is an
    earlier run's: systemd keeps it when a later start fails before the main process)."""
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
        head += f" since {clock_or_date(state.state_changed_at, now, local_tz)}"
    parts = [head]
    if state.restarts:
        parts.append(f"{state.restarts} restart{'' if state.restarts == 1 else 's'}")
    if state.memory_bytes is not None:
        parts.append(fmt_bytes(state.memory_bytes))
    if state.load_state == "masked":
        parts.append("masked")
    ending = last_run_ending(state)
    if needs_last_run_lines(state) and ending is not None and ending != "exit status 0":
        parts.append(f"last run: {ending}")
    return ", ".join(parts)


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
        "last_run_started_at": state.main_started_at,
        "exit_status": exit_status(state),
        "exit_signal": exit_signal(state),
        "core_dumped": None if state.main_exit_code is None else state.main_exit_code == CLD_DUMPED,
        "invocation_id": state.invocation_id,
    }


def clean_line(text: str, *, width: int = LINE_WIDTH) -> str:
    """A log message fit to show: escape sequences and control characters removed,
    newlines and tabs as spaces, secrets redacted (config.redact_text), clipped to
    *width* characters with a trailing "…"."""
    text = redact_text(strip_controls(text).strip())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


# --------------------------------------------------------------------------- measure


def journal_argv(unit: str, *, scope: Scope, since: float | None) -> list[str]:
    """journalctl for *unit*'s newest entries (newest first, so that an output cut at
    run_command's cap loses the oldest), from *since* on when given.

    No --user: a user unit's lines are in the user's journal (`_SYSTEMD_USER_UNIT`) on a
    desktop but in the system journal (`_SYSTEMD_UNIT`) when the user manager runs as
    root; plain journalctl reads every journal the caller may read, and one call asks
    for both fields.
    """
    argv = [
        "journalctl",
        "--no-pager",
        "--quiet",
        "--output=json",
        "--output-fields=" + ",".join(JOURNAL_FIELDS),
        "--reverse",
        f"--lines={JOURNAL_ENTRIES}",
    ]
    if since is not None:
        argv.append(f"--since=@{since:.6f}")
    if scope == "user":
        argv += [f"_SYSTEMD_USER_UNIT={unit}", "+"]
    argv.append(f"_SYSTEMD_UNIT={unit}")
    return argv


def last_run_lines(
    unit: str,
    *,
    scope: Scope,
    since: float | None,
    invocation_id: str | None = None,
    run: CommandRunner = run_command,
    timeout: float = 3.0,
    limit: int = JOURNAL_LINES,
) -> tuple[str, ...]:
    """The last few log lines of *unit*'s last run: what a crashed unit printed before it
    died (a traceback, "cannot reach qdrant at localhost:6333"), for the agent to act on.

    *since* is when the last run started (UnitState.main_started_at, from
    ExecMainStartTimestamp) and *invocation_id* its InvocationID; either may be None
    (then that restriction is not applied). One journalctl call (`journal_argv`) within
    *timeout* seconds; the lines are chosen by `select_last_run` and `pick_lines`:
    errors first, at most *limit*, cleaned, secrets redacted, clipped. Returns () when
    journalctl is missing, fails or times out, or *timeout* is too short to start it.
    """
    if scope not in ("user", "system"):
        raise ValueError(f"scope must be 'user' or 'system', not {scope!r}")
    if timeout < MIN_COMMAND_SECONDS or limit <= 0:
        return ()
    try:
        output = run(journal_argv(mangled_unit_name(unit), scope=scope, since=since), timeout=timeout)
    except CommandNotFound:
        return ()
    if output.timed_out or output.returncode != 0:
        return ()
    entries = parse_journal_json(output.stdout)[::-1]  # asked --reverse: back to log order
    return pick_lines(select_last_run(entries, scope=scope, since=since, invocation_id=invocation_id), limit=limit)


@dataclass
class _Budget:
    """Seconds left of the probe's deadline, reduced by each command's reported run time."""

    seconds_left: float

    def runner(self, run: CommandRunner) -> CommandRunner:
        """*run*, charging each command's time to this budget."""

        def charged(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> CommandOutput:
            output = run(argv, timeout=timeout, env=env)
            self.seconds_left -= output.seconds
            return output

        return charged


def _rejects_precise_timestamps(output: CommandOutput) -> bool:
    """An older systemctl (before 247) that does not know --timestamp= and said so."""
    return output.returncode not in (0, None) and not output.stdout.strip() and "--timestamp" in output.stderr


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

    def show_argv(self, *, precise_timestamps: bool = True) -> list[str]:
        return [
            "systemctl",
            self._scope_flag,
            "show",
            "--no-pager",
            *([PRECISE_TIMESTAMPS] if precise_timestamps else []),
            "--property=" + ",".join(SHOW_PROPERTIES),
            *(u.unit for u in self.units),
        ]

    def check(self) -> list[ProbeResult]:
        budget = _Budget(self.timeout_seconds)
        run = budget.runner(self._run)
        try:
            output = run(self.show_argv(), timeout=self.timeout_seconds)
            if _rejects_precise_timestamps(output) and budget.seconds_left >= MIN_COMMAND_SECONDS:
                output = run(self.show_argv(precise_timestamps=False), timeout=budget.seconds_left)
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
        if needs_last_run_lines(state):
            details.extend(
                last_run_lines(
                    state.id or config.unit,  # the Id: an alias's lines are logged under its real name
                    scope=self.scope,
                    since=state.main_started_at,
                    invocation_id=state.invocation_id,
                    run=budget.runner(self._run),
                    timeout=budget.seconds_left,
                )
            )
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

    def _unknown(self, config: SystemdProbeConfig, error_kind: str, summary: str) -> ProbeResult:
        return ProbeResult(
            name=config.name, kind=self.kind, status=Status.UNKNOWN, summary=summary, error_kind=error_kind
        )

    def _all_unknown(self, error_kind: str, summary: str) -> list[ProbeResult]:
        return [self._unknown(config, error_kind, summary) for config in self.units]


# --------------------------------------------------------------------------- kind


@dataclass(frozen=True, kw_only=True)
class SystemdProbeConfig:
    """One [[probes.systemd]] entry: a unit to watch."""

    unit: str
    scope: str = "user"
    name: str = ""
    timeout_seconds: float = 5.0


def _unit_name(value: object) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9:_.\\@-]+", value):
        return None
    return 'a systemd unit name such as "qdrant.service"'


def _record(values: Mapping[str, Any]) -> SystemdProbeConfig:
    # The name defaults to the unit's.
    return SystemdProbeConfig(unit=values["unit"], scope=values["scope"], name=values["name"] or values["unit"],
                              timeout_seconds=float(values["timeout_seconds"]))


def _build(units: Sequence[SystemdProbeConfig], context: BuildContext) -> list[Probe]:
    # One probe per scope: all of a scope's units are asked about in one systemctl call.
    by_scope: list[Probe] = []
    for scope in ("user", "system"):
        of_scope = [u for u in units if u.scope == scope]
        if of_scope:
            by_scope.append(SystemdProbe(of_scope, scope=scope))
    return by_scope


PROBE_KIND = ProbeKind(
    name="systemd",
    config_type=SystemdProbeConfig,
    spec={
        "unit": (_unit_name, None),
        "scope": (choice("user", "system"), "user"),
        "name": (probe_name, ""),
        "timeout_seconds": (probe_timeout, 5.0),
    },
    required=("unit",),
    make_config=_record,
    build=_build,
    describe=lambda u: {"name": u.name, "unit": u.unit, "scope": u.scope, "timeout_seconds": u.timeout_seconds},
    is_service=True,
    metrics=(
        KindMetric(name="aiki_systemd_restarts", documentation="Automatic restarts of the unit (NRestarts).",
                   value_key="restarts", label="unit", counter=True),
        KindMetric(name="aiki_systemd_memory_bytes", documentation="Memory of the unit's cgroup (MemoryCurrent).",
                   value_key="memory_bytes", label="unit"),
    ),
    hints={
        "no_bus": "no systemd bus for this user: log in through a real session, or run "
                  "`loginctl enable-linger $USER`; in a container systemd probes cannot work",
        "tool_missing": "systemctl is not installed here; remove the [[probes.systemd]] entries",
        None: "inspect it with `systemctl {scope}status {unit}` and `journalctl {scope}-u {unit}`",
    },
    hint_fields=lambda u: {"unit": u.unit, "name": u.name, "scope": "--user " if u.scope == "user" else ""},
)
