"""The refresher as a systemd user service: the unit's text, install, uninstall, status.

Everything goes through `systemctl --user` (and `loginctl` for the linger hint), run by
an injected runner (`proc.run_command` by default), so tests replay fake executables
and never need a systemd bus. Nothing here exits or prints: functions return the lines
that describe what they did, and raise `ServiceError` when systemctl refuses.

Where systemd is not available (containers, WSL without systemd, no user session) the
refresher runs detached instead: see `aiki_hooks.install.daemon`.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from aiki_hooks import paths
from aiki_hooks.config.load import Config
from aiki_hooks.proc import CommandNotFound, CommandOutput, CommandRunner, run_command

if TYPE_CHECKING:
    from aiki_hooks.probes.systemd import UnitState

UNIT_NAME = "aiki-hooks-refresher.service"
UNIT_MODE = 0o644  # what systemctl and package managers use for unit files

# `systemctl --user` asks a local manager over a unix socket: it answers in
# milliseconds or not at all. Only restart waits for the refresher's first cycle
# (Type=notify), so it gets the start timeout.
QUICK_TIMEOUT = 5.0
CALL_TIMEOUT = 30.0

MEMORY_MAX = "512M"
RESTART_SECONDS = 2
EXIT_CANNOT_RUN = 3  # cli.EXIT_ERROR: bad config, unusable state dir
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_SECONDS = 120
MIN_WATCHDOG_SECONDS = 60
MIN_START_TIMEOUT_SECONDS = 90  # systemd's own default (DefaultTimeoutStartSec)

# Running as far as install is concerned. Not "activating": that is also the state of a
# unit waiting to be restarted after a failure (SubState=auto-restart), which a restart
# must fix, and restarting a unit still in its first cycle costs one cycle.
_RUNNING_STATES = frozenset({"active", "reloading"})


class ServiceError(Exception):
    """systemctl refused or failed; the message says which call and why."""


# --------------------------------------------------------------------------- where


def unit_path(env: Mapping[str, str] | None = None) -> Path:
    """`${XDG_CONFIG_HOME:-~/.config}/systemd/user/aiki-hooks-refresher.service`."""
    return paths.user_unit_dir(env) / UNIT_NAME


def find_executable() -> str | None:
    """The absolute `aiki-hooks` command of this installation, or None.

    Prefer the script next to the running interpreter (the venv's own bin/, what
    install.sh links from ~/.local/bin): the unit must not depend on PATH.
    """
    beside = Path(sys.executable).parent / "aiki-hooks"
    if beside.is_file() and os.access(beside, os.X_OK):
        return os.path.abspath(beside)
    found = shutil.which("aiki-hooks")
    return os.path.abspath(found) if found else None


def config_file_of(config: Config) -> str | None:
    """The config file the refresher must read, absolute; None for embedded defaults."""
    if config.source.startswith("<"):
        return None
    return os.path.abspath(os.path.expanduser(config.source))


def default_documentation(env: Mapping[str, str] | None = None) -> str | None:
    """A `file:` URI of the README: a copy in the data dir (install.sh may put one
    there), else the checkout's. None when neither exists (a wheel ships no README)."""
    package_root = Path(paths.PACKAGE_PARENT)
    for candidate in (paths.data_dir(env) / "README.md", package_root / "README.md"):
        if candidate.is_file():
            return candidate.absolute().as_uri()
    return None


# --------------------------------------------------------------------------- quoting


def _escape_specifiers(value: str) -> str:
    # systemd expands %h, %u, ... in these settings whether quoted or not.
    return value.replace("%", "%%")


def quote_word(value: str, *, exec_line: bool = False) -> str:
    """One word of a systemd setting, quoted per systemd.syntax(7) when needed.

    Words are split on whitespace; a double-quoted word keeps its spaces and honours
    backslash escapes, so `\\` and `"` are escaped inside. `%` is always doubled
    (specifiers are expanded even inside quotes); on Exec lines `$` is doubled too
    (`$FOO` would be replaced by the variable). Control characters cannot be written
    portably and are refused.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"a control character cannot be written in a systemd unit: {value!r}")
    text = _escape_specifiers(value)
    if exec_line:
        text = text.replace("$", "$$")
    if text and not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(argv: Iterable[str]) -> str:
    return " ".join(quote_word(arg, exec_line=True) for arg in argv)


# --------------------------------------------------------------------------- the unit


def watchdog_seconds(config: Config) -> int:
    """WatchdogSec for the slowest cycle this config can produce.

    The refresher sends WATCHDOG=1 after every cycle and, while it sleeps, every half
    watchdog period (refresher._sleep_until). It cannot ping during a cycle, which lasts
    at most max_probe_timeout * 1.1 (the runner's deadline). The longest silence is
    therefore W/2 (the last ping while sleeping) + 1.1 * T (the cycle); with W = 3 * T
    that is 2.6 * T < W, and with the 60 s floor (T <= 20 s) at most 30 + 22 = 52 s < 60.
    """
    return max(MIN_WATCHDOG_SECONDS, math.ceil(3 * config.max_probe_timeout))


def start_timeout_seconds(config: Config) -> int:
    """TimeoutStartSec: READY=1 comes after the first cycle (imports + <= 1.1 * T), and
    the watchdog is only armed once start-up completed, so start-up needs its own bound."""
    return max(MIN_START_TIMEOUT_SECONDS, math.ceil(3 * config.max_probe_timeout))


def writable_paths(config: Config) -> tuple[list[str], bool]:
    """(paths the service must write besides the read-only home, needs the shared /tmp).

    The state dir always. With `mem0.backend = "local"` the flush helper (a child of the
    refresher, in the same sandbox) also writes mem0's local Qdrant store and history
    database, wherever the user's mem0 config puts them. A path under /tmp or /var/tmp
    (mem0's default Qdrant path is /tmp/qdrant, a state dir may be there too) would be
    hidden by PrivateTmp= (and wiped at stop): then the real /tmp is kept, and listed,
    since ProtectSystem=strict makes it read-only.

    The outputs that write files too: a jsonl output's directory (rotation renames files
    there) and a prometheus_textfile output's directory.
    """
    wanted = [str(config.state_dir)]
    if config.mem0.backend == "local":
        wanted += _mem0_local_paths(config)
    wanted += _output_paths(config)
    writable: list[str] = []
    shared_tmp = False
    for index, where in enumerate(wanted):
        for tmp in _TMP_DIRS:
            if where == tmp or where.startswith(tmp + "/"):
                shared_tmp = True
                if index:  # the state dir keeps its own entry (it is created before start)
                    where = tmp
        if where not in writable:
            writable.append(where)
    return writable, shared_tmp


_TMP_DIRS = ("/tmp", "/var/tmp")


def _output_paths(config: Config) -> list[str]:
    found = []
    for out in config.outputs:
        if out.type == "jsonl" and out.path:
            found.append(os.path.dirname(os.path.abspath(os.path.expanduser(out.path))))
        elif out.type == "prometheus_textfile" and out.directory:
            found.append(os.path.abspath(os.path.expanduser(out.directory)))
    return found


def _mem0_local_paths(config: Config) -> list[str]:
    cfg: Any = config.mem0.local_config
    if cfg is None and config.mem0.config_file:
        import json

        try:
            cfg = json.loads(Path(config.mem0.config_file).read_bytes())
        except (OSError, ValueError):
            cfg = None  # the helper reports a broken mem0 config itself
    if not isinstance(cfg, Mapping):
        return []
    found = []
    store = cfg.get("vector_store") or {}
    if isinstance(store, Mapping) and store.get("provider", "qdrant") == "qdrant":
        inner = store.get("config") or {}
        if isinstance(inner, Mapping) and not (inner.get("url") or inner.get("host")):
            found.append(str(inner.get("path") or "/tmp/qdrant"))
    history = cfg.get("history_db_path")
    if isinstance(history, str) and history:
        found.append(os.path.dirname(history) or ".")
    return [os.path.abspath(os.path.expanduser(p)) for p in found]


def unit_text(*, executable: str, config: Config, documentation: str | None = "default",
              sandbox: bool = True) -> str:
    """The user unit that runs `<executable> refresher` for *config*.

    *executable* must be absolute (systemd requires it). *documentation* is a URI for
    Documentation= (default: `default_documentation()`; None leaves it out).

    *sandbox*=False leaves out the file-system namespace settings (ProtectSystem=,
    ProtectHome=, ReadWritePaths=, PrivateTmp=). In a user unit they need an
    unprivileged user namespace (systemd >= 253 implies PrivateUsers=yes for them;
    older versions ignore them), which some kernels refuse (Ubuntu >= 23.10 restricts
    them through AppArmor): the start then fails, and this is the way out.
    NoNewPrivileges= and MemoryMax= need no namespace and stay.
    """
    if not os.path.isabs(executable):
        raise ValueError(f"the unit needs an absolute path to aiki-hooks, got {executable!r}")
    argv = [executable, "refresher"]
    config_file = config_file_of(config)
    if config_file:
        argv += ["--config", config_file]
    if documentation == "default":
        documentation = default_documentation()
    writable, shared_tmp = writable_paths(config)
    state_dir = str(config.state_dir)
    lines = [
        "# Written by `aiki-hooks service install`; it rewrites this file. Local changes:",
        f"# `systemctl --user edit {UNIT_NAME}` (a drop-in that survives reinstalls).",
        "[Unit]",
        "Description=aiki-hooks refresher: system health for Claude Code, published to a cache",
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL_SECONDS}",
        f"StartLimitBurst={START_LIMIT_BURST}",
    ]
    if documentation:
        lines.append(f"Documentation={_escape_specifiers(documentation)}")
    lines += [
        "",
        "[Service]",
        "Type=notify",
        f"ExecStart={exec_line(argv)}",
        # The state dir is pinned: the manager's environment may lack the variables
        # (AIKI_HOOKS_STATE_DIR, XDG_STATE_HOME) that chose it in the installing shell,
        # and ReadWritePaths= below must be the dir the refresher really writes.
        f"Environment={quote_word('AIKI_HOOKS_STATE_DIR=' + state_dir)}",
        "Environment=PYTHONUNBUFFERED=1",
        # always: a refresher that ended for any reason (kill PID, a crash, kill -9, the
        # watchdog) comes back; `systemctl --user stop` still stops it. Exit status 3 is a
        # config or state dir it cannot use: restarting cannot help, the unit fails and says
        # why. Five starts within two minutes is a crash loop: the unit fails instead.
        "Restart=always",
        f"RestartSec={RESTART_SECONDS}",
        f"RestartPreventExitStatus={EXIT_CANNOT_RUN}",
        f"TimeoutStartSec={start_timeout_seconds(config)}",
        "TimeoutStopSec=30",
        # After the watchdog's SIGABRT (which prints the hung threads' tracebacks), SIGKILL.
        "TimeoutAbortSec=10",
        f"# A cycle lasts at most 1.1 x the slowest probe timeout ({config.max_probe_timeout:g} s) and the refresher",
        "# pings every half period while it sleeps: 3 x that timeout (at least 60 s) always covers it.",
        f"WatchdogSec={watchdog_seconds(config)}",
        "StandardOutput=journal",
        "StandardError=journal",
        "NoNewPrivileges=yes",
    ]
    if sandbox:
        lines += [
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "ReadWritePaths=" + " ".join(quote_word(p) for p in writable[:1])
            + "".join(" " + quote_word("-" + p) for p in writable[1:]),
        ]
        if shared_tmp:
            lines += ["# A path above is under /tmp: a private /tmp would hide it from everyone else.",
                      "PrivateTmp=no"]
        else:
            lines.append("PrivateTmp=yes")
    else:
        lines.append("# File-system sandboxing left out (installed with --no-sandbox).")
    lines += [
        "# The refresher (~40 MiB) plus its short-lived mem0 flush helper (~130 MiB).",
        f"MemoryMax={MEMORY_MAX}",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return "\n".join(lines) + "\n"


def prepare_paths(config: Config) -> None:
    """Create what ReadWritePaths= names before the unit starts: a missing path makes
    systemd fail the start (status 226/NAMESPACE)."""
    paths.ensure_private_dir(config.state_dir)
    writable, _ = writable_paths(config)
    # Output directories are the user's (a node_exporter textfile dir has its own owner
    # and mode): not created here; a missing one is skipped ("-") and the output reports it.
    outputs = set(_output_paths(config))
    for extra in writable[1:]:
        if extra in outputs:
            continue
        try:
            os.makedirs(extra, mode=0o700, exist_ok=True)
        except OSError:
            pass  # listed with "-": systemd skips it, the helper reports the error


# --------------------------------------------------------------------------- systemctl


def _systemctl(run: CommandRunner, *args: str, timeout: float = CALL_TIMEOUT) -> CommandOutput:
    """Run `systemctl --user ARGS`; CommandNotFound becomes ServiceError."""
    try:
        return run(["systemctl", "--user", *args], timeout=timeout)
    except CommandNotFound:
        raise ServiceError("systemctl not found: systemd is not available here") from None


def _checked(run: CommandRunner, *args: str, timeout: float = CALL_TIMEOUT) -> CommandOutput:
    out = _systemctl(run, *args, timeout=timeout)
    if out.returncode != 0:
        why = "timed out" if out.timed_out else _first_line(out.stderr) or f"exit code {out.returncode}"
        raise ServiceError(f"`systemctl --user {' '.join(args)}` failed: {why}")
    return out


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def systemd_available(run: CommandRunner = run_command) -> tuple[bool, str]:
    """(True, "") when the user's service manager answers, else (False, why)."""
    try:
        out = run(["systemctl", "--user", "show-environment"], timeout=QUICK_TIMEOUT)
    except CommandNotFound:
        return False, "systemctl not found"
    if out.returncode == 0:
        return True, ""
    if out.timed_out:
        return False, f"systemctl --user did not answer within {QUICK_TIMEOUT:g} s"
    return False, _first_line(out.stderr) or f"systemctl --user show-environment exited {out.returncode}"


def active_state(run: CommandRunner = run_command) -> str:
    """`systemctl --user is-active` for the unit ("active", "inactive", "failed", ...)."""
    out = _systemctl(run, "is-active", UNIT_NAME, timeout=QUICK_TIMEOUT)
    return _first_line(out.stdout) or "unknown"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, payload: bytes, mode: int) -> None:
    from aiki_hooks.cycle.cache import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, payload, mode=mode)


def install_unit(executable: str, config: Config, *, run: CommandRunner = run_command, dry_run: bool = False,
                 force_restart: bool = False, sandbox: bool = True) -> list[str]:
    """Write the unit (only if its text changed), enable it, and make sure it runs.

    Idempotent: with the same text nothing is written, systemd is not reloaded and a
    running refresher is left alone. It is restarted when the unit changed, when it is
    not running, or with *force_restart* (after the package itself was upgraded: the
    unit's text does not change then, but the running code is old). A refresher that
    runs outside systemd for the same state dir (`refresher --daemon`, a terminal) is
    stopped first, else the unit's own would find the lock taken and fail.
    """
    from aiki_hooks.paths import holder_pid

    path = unit_path()
    text = unit_text(executable=executable, config=config, sandbox=sandbox)
    payload = text.encode("utf-8")
    changed = _read(path) != payload
    verb = "would " if dry_run else ""
    done: list[str] = []
    if changed:
        if not dry_run:
            prepare_paths(config)
            _write_atomically(path, payload, UNIT_MODE)
        done.append(f"{verb}write {path}" + (":\n" + text.rstrip("\n") if dry_run else ""))
        if not dry_run:
            _checked(run, "daemon-reload")
        done.append(f"{verb}run: systemctl --user daemon-reload")
    else:
        if not dry_run:
            prepare_paths(config)
        done.append(f"{path} is up to date")
    if not dry_run:
        _checked(run, "enable", UNIT_NAME)
    done.append(f"{verb}run: systemctl --user enable {UNIT_NAME}")
    state = active_state(run)
    running = state in _RUNNING_STATES
    if changed or force_restart or not running:
        if not running:
            stray = holder_pid(config.state_dir)
            if stray:
                if not dry_run:
                    from aiki_hooks.install.daemon import stop_daemon

                    stop_daemon(config)
                done.append(f"{verb}stop the refresher running outside systemd (pid {stray})")
        if not dry_run:
            _checked(run, "restart", UNIT_NAME, timeout=start_timeout_seconds(config) + 10)
        why = "the unit changed" if changed else ("asked to" if force_restart and running else f"it was {state}")
        done.append(f"{verb}run: systemctl --user restart {UNIT_NAME} ({why})")
    else:
        done.append(f"{UNIT_NAME} is {state}: left running")
    return done


def uninstall_unit(*, run: CommandRunner = run_command, dry_run: bool = False) -> list[str]:
    """Stop and disable the unit, remove its file, reload. Fine when it is not there."""
    path = unit_path()
    verb = "would " if dry_run else ""
    if not path.exists():
        return [f"{path} does not exist: nothing to uninstall"]
    done = []
    if not dry_run:
        _checked(run, "disable", "--now", UNIT_NAME)
    done.append(f"{verb}run: systemctl --user disable --now {UNIT_NAME}")
    if not dry_run:
        path.unlink(missing_ok=True)
    done.append(f"{verb}remove {path}")
    if not dry_run:
        _checked(run, "daemon-reload")
    done.append(f"{verb}run: systemctl --user daemon-reload")
    return done


def remove_unit(run: CommandRunner = run_command) -> list[str]:
    """Take out a unit that failed to start, whatever its state, so it cannot crash-loop:
    disable and stop it, forget its failure, remove its file. Never raises: each step
    that fails is said and the next one is tried."""
    done = []
    for args in (("disable", "--now", UNIT_NAME), ("reset-failed", UNIT_NAME)):
        try:
            _checked(run, *args)
        except ServiceError as exc:
            done.append(str(exc))
    path = unit_path()
    try:
        path.unlink(missing_ok=True)
        done.append(f"removed {path} (disabled and stopped: it cannot restart in a loop)")
    except OSError as exc:
        done.append(f"cannot remove {path}: {exc.strerror or exc}")
    try:
        _checked(run, "daemon-reload")
    except ServiceError as exc:
        done.append(str(exc))
    return done


def linger_hint(user: str, run: CommandRunner = run_command) -> str | None:
    """Advice when the user's manager (and so the refresher) stops at logout; else None."""
    try:
        out = run(["loginctl", "show-user", user, "--property=Linger"], timeout=QUICK_TIMEOUT)
    except CommandNotFound:
        return None
    if out.returncode != 0:
        return None  # cannot tell (no logind, unknown user): say nothing rather than guess
    for line in out.stdout.splitlines():
        if line.strip() == "Linger=no":
            return f"run `loginctl enable-linger {user}` so the refresher keeps running when you are logged out"
    return None


# The probe's properties (how the last run ended, when it started) and the unit file's.
_HEALTH_PROPERTIES = ("UnitFileState", "NeedDaemonReload")
# Works where the unit's lines are in the user's journal (a desktop) and where they are in
# the system journal (a user manager running as root): one match for each.
LOGS_COMMAND = f"journalctl _SYSTEMD_USER_UNIT={UNIT_NAME} + _SYSTEMD_UNIT={UNIT_NAME} -n 50 --no-pager"
UNSTABLE_CRASHES_PER_HOUR = 3  # a crash, kill -9 or watchdog abort now and then is survivable


@dataclass(frozen=True)
class UnitHealth:
    """The refresher unit as doctor and `service status` judge it.

    state: "running", "starting", "unstable" (running, but it died and was restarted
    often in the last hour), "restart-loop", "failed", "stopped", "not-installed" or
    "no-systemd".
    """

    state: str
    healthy: bool
    detail: str
    log_lines: tuple[str, ...] = ()
    logs_command: str = ""
    main_pid: int = 0


def unit_health(run: CommandRunner = run_command, *, state_dir: Path | None = None,
                now: float | None = None) -> UnitHealth:
    """Judge the refresher's unit: only a running unit is healthy. A unit waiting to be
    restarted (activating/auto-restart: a crash loop with pid 0), failed or stopped is
    not, and comes with its last run's log lines. *state_dir* (the refresher's) holds its
    recent starts and stops, from which "died and was restarted N times in the last hour"
    is told."""
    import time

    from aiki_hooks.probes.systemd import PRECISE_TIMESTAMPS, SHOW_PROPERTIES, parse_show, unit_state

    ok, why = systemd_available(run)
    if not ok:
        return UnitHealth("no-systemd", False, why)
    properties = ",".join((*SHOW_PROPERTIES, *_HEALTH_PROPERTIES))
    try:
        out = _checked(run, "show", PRECISE_TIMESTAMPS, f"--property={properties}", UNIT_NAME, timeout=QUICK_TIMEOUT)
    except ServiceError as exc:
        return UnitHealth("no-systemd", False, str(exc))
    blocks = parse_show(out.stdout)
    if not blocks:
        return UnitHealth("no-systemd", False, f"systemctl --user show {UNIT_NAME} printed nothing")
    state = unit_state(blocks[0])
    unit_file = {key: blocks[0].properties.get(key) or "" for key in _HEALTH_PROPERTIES}
    health = _judge_unit(state, unit_file["UnitFileState"] or "unknown", run,
                         crashes=_recent_crashes(state_dir, time.time() if now is None else now))
    if unit_file["NeedDaemonReload"] == "yes":  # what runs is not what the file now says
        health = replace(health, healthy=False, detail=f"{health.detail}; {unit_path()} changed on disk since "
                                                       "systemd read it: run `systemctl --user daemon-reload`")
    return health


def _recent_crashes(state_dir: Path | None, now: float) -> int:
    from aiki_hooks.cycle.refresher import recent_crashes

    return recent_crashes(state_dir, now=now) if state_dir else 0


def _judge_unit(state: UnitState, enabled: str, run: CommandRunner, *, crashes: int) -> UnitHealth:
    from aiki_hooks.probes.systemd import last_run_ending

    active, sub, pid = state.active_state or "", state.sub_state or "", state.main_pid or 0
    restarts = state.restarts or 0
    if state.load_state == "not-found" or (not unit_path().exists() and active == "inactive"):
        return UnitHealth("not-installed", False, f"no {UNIT_NAME} (install it with `aiki-hooks service install`)")
    ending = last_run_ending(state)
    ended = f", last run ended: {ending}" if ending else ""
    if active in ("active", "reloading") and pid:
        if crashes >= UNSTABLE_CRASHES_PER_HOUR:
            return _with_logs(UnitHealth("unstable", False, f"running (pid {pid}) but it died and was restarted "
                                                            f"{crashes} times in the last hour", main_pid=pid),
                              state, run)
        return UnitHealth("running", True, f"{active} ({sub}), pid {pid}, {enabled}, {restarts} restart(s)"
                          + (f", {crashes} unplanned in the last hour" if crashes else ""), main_pid=pid)
    if active == "activating" and sub == "auto-restart":
        return _with_logs(UnitHealth("restart-loop", False, f"restarting in a loop: {restarts} restart(s), "
                                                            f"no process running{ended}"), state, run)
    if active == "activating":
        return UnitHealth("starting", True, f"starting ({sub}), pid {pid}: ready after its first cycle", main_pid=pid)
    if active == "failed":
        return _with_logs(UnitHealth("failed", False, f"failed ({state.result}){ended}, {restarts} restart(s), "
                                                      f"{enabled}"), state, run)
    return _with_logs(UnitHealth("stopped", False, f"{active or 'unknown'} ({sub or '?'}), {enabled}{ended}: "
                                                   f"start it with `systemctl --user start {UNIT_NAME}`"), state, run)


def _with_logs(health: UnitHealth, state: UnitState, run: CommandRunner) -> UnitHealth:
    from aiki_hooks.probes.systemd import last_run_lines

    lines = last_run_lines(UNIT_NAME, scope="user", since=state.main_started_at, invocation_id=state.invocation_id,
                           run=run, timeout=QUICK_TIMEOUT)
    return replace(health, log_lines=lines, logs_command=LOGS_COMMAND)
