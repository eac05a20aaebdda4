"""The `aiki-hooks` command: parses the arguments, runs one command, picks the exit code.

Exit codes: `status` exits with the worst status, Nagios style (0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN); every command exits 3 on an error it cannot get past (bad config,
unwritable state dir), with one line on stderr and no traceback unless --debug.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from aiki_hooks import __version__

EXIT_ERROR = 3
ONESHOT_LOCK = "oneshot.lock"  # the hooks check the same name (hooklib.runtime)


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse's parser (and, through add_subparsers, every command's), with usage errors
    exiting 3, UNKNOWN like every other error: 2 would read as CRITICAL to a Nagios-style caller."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    """--config and --debug, on the top parser and on every command's: they work before and
    after the command (`aiki-hooks --config F refresher`, `aiki-hooks refresher --config F`).
    SUPPRESS: an option not given after the command leaves the one given before intact
    (main() fills in the defaults)."""
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="config file (default: $AIKI_HOOKS_CONFIG or the XDG path)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")


class _Subcommands:
    """add_subparsers' result whose every command takes the global options too."""

    def __init__(self, actions) -> None:
        self._actions = actions

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        parser = self._actions.add_parser(name, **kwargs)
        _add_global_options(parser)
        return parser


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aiki-hooks", description="System-health companion for Claude Code.")
    _add_global_options(parser)
    parser.add_argument("--version", action="version", version=f"aiki-hooks {__version__}")
    sub = _Subcommands(parser.add_subparsers(dest="command", metavar="COMMAND"))

    status = sub.add_parser("status", help="show the machine's health (exit code = worst status)")
    status.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    status.add_argument("--color", choices=("auto", "always", "never"), default="auto")

    refresh = sub.add_parser("refresh", help="run one cycle now, publish it, print one line")
    refresh.add_argument("--if-idle", action="store_true",
                         help="do nothing if a refresher or another --if-idle refresh is running (used by the hooks)")

    refresher = sub.add_parser("refresher", help="run cycles forever (what the service runs)")
    refresher.add_argument("--cycles", type=int, help="stop after N cycles (for tests and benchmarks)")
    refresher.add_argument("--interval", type=float, help="override interval_seconds")
    refresher.add_argument("--daemon", action="store_true",
                           help="start it detached (no systemd) and return; does nothing if one runs")

    service = sub.add_parser("service", help="run the refresher as a systemd user service (detached without systemd)")
    actions = _Subcommands(service.add_subparsers(dest="service_command", metavar="ACTION", required=True))
    install = actions.add_parser("install", help="write, enable and start the user unit (idempotent)")
    install.add_argument("--executable", help="absolute aiki-hooks path for ExecStart (default: this installation's)")
    install.add_argument("--restart", action="store_true", help="restart even if unchanged (after an upgrade)")
    install.add_argument("--no-sandbox", action="store_true",
                         help="leave out ProtectSystem/ProtectHome/ReadWritePaths/PrivateTmp")
    install.add_argument("--dry-run", action="store_true")
    remove = actions.add_parser("uninstall", help="stop and remove the unit (and a detached refresher)")
    remove.add_argument("--dry-run", action="store_true")
    actions.add_parser("status", help="the unit's state, or the detached refresher's")

    sub.add_parser("config", help="print the effective config (secrets redacted)")

    init = sub.add_parser("init", help="write a commented config with the services detected here")
    init.add_argument("--force", action="store_true", help="replace an existing config (kept as .bak)")
    init.add_argument("--stdout", action="store_true", help="print it instead of writing it")

    sub.add_parser("doctor", help="check the installation and say how to fix problems")
    costs = sub.add_parser("costs", help="Claude usage and cost per day, month, session or 5-hour block, like ccusage")
    costs.add_argument("report", nargs="?", choices=("daily", "monthly", "session", "blocks"),
                       help="which report (default: daily)")
    costs.add_argument("--json", action="store_true", help="print the report as JSON")
    costs.add_argument("--days", type=int, help="how many days back, today included (default 7 for daily, 38 else)")
    costs.add_argument("--since", help="from this date on (YYYYMMDD), instead of --days")
    costs.add_argument("--until", help="up to this date, included (YYYYMMDD)")
    costs.add_argument("--breakdown", action="store_true", help="a row per model under each period")
    costs.add_argument("--active", action="store_true", help="blocks: only the active block, burn rate and projection")

    flush = sub.add_parser("mem0-flush", help="deliver the spooled journal records to mem0 (the refresher starts it)")
    flush.add_argument("--force", action="store_true", help="ignore the backoff after failures")

    history = sub.add_parser("issues", help="recent issue occurrences from the journal, with durations")
    history.add_argument("--days", type=int, default=7, help="how many days back (default 7)")
    history.add_argument("--json", action="store_true", help="print them as JSON")

    for name, text in (("install-hooks", "register the hooks in Claude Code's settings (install.sh does it)"),
                       ("uninstall-hooks", "remove our hooks and status line from Claude Code's settings")):
        settings = sub.add_parser(name, help=text)
        where = settings.add_mutually_exclusive_group()
        where.add_argument("--settings", help="this settings file")
        where.add_argument("--project", help="DIR/.claude/settings.json")
        settings.add_argument("--dry-run", action="store_true", help="print the change, write nothing")
        if name == "install-hooks":
            settings.add_argument("--statusline", action="store_true", help="also register the status line")
            settings.add_argument("--force", action="store_true", help="replace a status line that is not ours")
            settings.add_argument("--python", help="interpreter for the hooks (default: this one)")
            settings.add_argument("--hooks-dir", help="where the hook scripts go (default: the data dir)")

    probe = sub.add_parser("probe", help="one compact JSON line for collectors (Vector's exec source)")
    probe.add_argument("--json", action="store_true", help="JSON output (the only format; for clarity in pipelines)")
    probe.add_argument("--issues", action="store_true", help="only the issues, not the whole snapshot")

    sub.add_parser("metrics", help="print the current snapshot as Prometheus metrics")

    sub.add_parser("preview", help="print the status block exactly as the agent gets it at session start")

    sub.add_parser("statusline", help="one status line for Claude Code's statusLine setting (reads its JSON on stdin)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.config = getattr(args, "config", None)
    args.debug = getattr(args, "debug", False)
    if not args.command:
        args.command, args.json, args.color = "status", False, "auto"
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        if args.debug:
            raise
        from aiki_hooks.cycle.sdnotify import ERR, priority_prefix

        sys.stderr.write(f"{priority_prefix(ERR, sys.stderr)}aiki-hooks: {_explain(exc)}\n")
        return EXIT_ERROR


def _explain(exc: BaseException) -> str:
    from aiki_hooks.config.load import ConfigError, redact_text
    from aiki_hooks.sanitize import strip_controls

    if isinstance(exc, ConfigError):
        return exc.message()  # its values are quoted redacted, their controls escaped
    if isinstance(exc, UsageError):
        text = str(exc)
    elif isinstance(exc, PermissionError):
        text = f"permission denied: {exc.filename or exc} (run `aiki-hooks doctor`)"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # An unexpected error's text may quote a URL, a header or a file's content.
    return redact_text(strip_controls(text))


def _config(args):
    from aiki_hooks.config.load import load_config

    return load_config(args.config)


def cmd_status(args) -> int:
    from aiki_hooks.cycle.cache import read_cache
    from aiki_hooks.cycle.engine import Engine
    from aiki_hooks.render import render_status

    config = _config(args)
    read = read_cache(config.cache_path)
    note = ""
    data = read.data
    if read.state != "fresh" or data is None:
        # No fresh data: measure now rather than show something old.
        engine = Engine(config, oneshot=True)
        try:
            snapshot = engine.cycle()
            note = f"measured just now ({read.reason or read.state})"
            try:
                snapshot = engine.publish(snapshot)
            except OSError as exc:
                note += f"; could not update the cache: {exc.strerror or exc}"
        finally:
            engine.close()  # webhooks send what this cycle queued (bounded wait)
        data = snapshot.to_dict()
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        color = args.color == "always" or (
            args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        )
        sys.stdout.write(render_status(data, now=time.time(), color=color, note=note) + "\n")
    from aiki_hooks.model.status import Status

    return int(Status.parse(data.get("status", "UNKNOWN")))


def cmd_refresh(args) -> int:
    from aiki_hooks.cycle.engine import Engine, start_mem0_flush
    from aiki_hooks.cycle.refresher import AlreadyRunning, InstanceLock, one_line_status
    from aiki_hooks.paths import holder_pid

    config = _config(args)
    if args.if_idle:
        if holder_pid(config.state_dir):
            return 0
        try:
            # Held for the rest of this short process: concurrent hooks start one refresh, not many.
            InstanceLock(config.state_dir, name=ONESHOT_LOCK).acquire()
        except AlreadyRunning:
            return 0
    engine = Engine(config, oneshot=True)
    try:
        snapshot = engine.publish(engine.cycle())
    finally:
        engine.close()  # webhooks send what this cycle queued (bounded wait), even if the cache failed
    start_mem0_flush(config)  # detached; it outlives this short process
    sys.stdout.write(f"{one_line_status(snapshot)} -> {config.cache_path}\n")
    return 0


def cmd_refresher(args) -> int:
    import dataclasses

    from aiki_hooks.cycle.refresher import AlreadyRunning, Refresher

    config = _config(args)
    if args.interval is not None:
        if not 0.01 <= args.interval <= 86400:
            raise UsageError("--interval must be between 0.01 and 86400 seconds")
        config = dataclasses.replace(config, interval_seconds=args.interval)
    from aiki_hooks.paths import config_path

    if args.daemon:
        from aiki_hooks.install.daemon import start_daemon

        extra = ["--interval", str(args.interval)] if args.interval is not None else []
        started, pid, message = start_daemon(config, extra_args=extra)
        sys.stdout.write(f"refresher {message}" + (f" (pid {pid})" if not started and pid else "") + "\n")
        return 0 if started or pid else 1
    refresher = Refresher(
        config,
        interval_overridden=args.interval is not None,
        config_file=args.config or config_path(),
        reload_config=lambda: _config(args),
    )
    refresher.install_signal_handlers()
    # A hung refresher is killed by the watchdog with SIGABRT: its threads' tracebacks then
    # go to stderr (the journal), which says where it hung.
    faulthandler.enable()
    try:
        return refresher.run(max_cycles=args.cycles)
    except AlreadyRunning as exc:
        sys.stderr.write(f"aiki-hooks: {exc}\n")
        return 1


def cmd_config(args) -> int:
    from aiki_hooks.config.load import effective_config_toml

    sys.stdout.write(effective_config_toml(_config(args)))
    return 0


def cmd_init(args) -> int:
    from aiki_hooks.config.init import detect, render_config, write_config
    from aiki_hooks.paths import config_path

    text = render_config(detect())
    if args.stdout:
        sys.stdout.write(text)
        return 0
    path = args.config or config_path()
    try:
        write_config(path, text, force=args.force)
    except FileExistsError as exc:
        sys.stderr.write(f"aiki-hooks: {exc}\n")
        return 1
    sys.stdout.write(f"wrote {path}\n")
    for line in text.splitlines():
        if line.startswith("# Detected"):
            sys.stdout.write(line[2:] + "\n")
    return 0


def cmd_doctor(args) -> int:
    from aiki_hooks.install.doctor import render_findings, run_doctor
    from aiki_hooks.install.findings import FAIL

    findings = run_doctor(args.config)
    sys.stdout.write(render_findings(findings) + "\n")
    return 1 if any(f.level == FAIL for f in findings) else 0


def cmd_costs(args) -> int:
    if args.days is not None and not 1 <= args.days <= 3660:
        raise UsageError("--days must be between 1 and 3660")
    if args.report or args.since or args.until or args.breakdown or args.active:
        return _costs_report(args)
    from aiki_hooks.costs.figures import WEEK_DAYS, CostFigures
    from aiki_hooks.costs.render import costs_json, costs_table

    args.days = args.days or WEEK_DAYS
    # No report named and none of its options: the daily table and JSON as they always were.
    config = _config(args)
    source = CostFigures(config.costs, config.state_dir, workers=os.cpu_count() or 1, one_shot=True)
    with source.locked():
        figures = source.figures(days=args.days)
    external = None
    if config.costs.external:  # (the probe's module, with its subprocess runner, only for a tracker)
        from aiki_hooks.probes.costs import tracker_today

        external = tracker_today(config.costs.external)
    if args.json:
        sys.stdout.write(json.dumps(costs_json(figures, external, config.costs), indent=2) + "\n")
    else:
        sys.stdout.write(costs_table(figures, external, config.costs) + "\n")
    source.close()
    return 0


def _costs_report(args) -> int:
    """`aiki-hooks costs daily|monthly|session|blocks` (ccusage's reports and JSON shapes)."""
    import datetime as dt
    import time

    from aiki_hooks.costs import command, render, report

    kind = args.report or "daily"
    try:
        since = command.parse_date(args.since, "--since") if args.since else None
        until = command.parse_date(args.until, "--until") if args.until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if since and args.days is not None:
        raise UsageError("give --since or --days, not both")
    if since and until and since > until:
        raise UsageError(f"--since {args.since} is after --until {args.until}")
    if args.active and kind != "blocks":
        raise UsageError("--active goes with the blocks report: aiki-hooks costs blocks --active")
    config = _config(args)
    now = time.time()
    tz = report.zone(config.costs.timezone)
    if since is None:
        since = report.local_date(now, tz) - dt.timedelta(days=(args.days or command.DEFAULT_DAYS[kind]) - 1)
    loaded = command.load(config.costs, config.state_dir, since, workers=os.cpu_count() or 1)
    zone = config.costs.timezone or time.strftime("%Z")
    span = f"{since.isoformat()} to {until.isoformat() if until else 'today'}, days in {zone}"
    if kind == "blocks":
        found = [b for b in report.blocks_since(report.messages_from_rows(loaded.messages), report.day_start(since, tz))
                 if until is None or report.local_date(b.start, tz) <= until]
        if args.active:
            found = [b for b in found if b.active(now)]
        if args.json:
            out = {"blocks": [render.block_json(b, now, breakdown=args.breakdown) for b in found]}
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
        elif args.active:
            sys.stdout.write(render.active_block_text(found[-1] if found else None, now, tz=tz,
                                                      breakdown=args.breakdown) + "\n")
        else:
            heading = f"Claude Code usage by 5-hour block, {span} ({loaded.stats.files} transcript files)"
            sys.stdout.write(render.blocks_table(found, now, heading=heading, breakdown=args.breakdown, tz=tz) + "\n")
        return 0
    if kind == "session":
        low, high = report.date_span(tz, since, until)
        groups = report.by_session([(p, m) for p, m in loaded.rows if low <= m[1] < high], loaded.projects_dirs)
    else:
        groups = report.by_day(report.in_dates(loaded.messages, tz, since, until), tz, month=kind == "monthly")
    if args.json:
        sys.stdout.write(json.dumps(render.groups_json(kind, groups), indent=2) + "\n")
    else:
        title = {"daily": "by day", "monthly": "by month", "session": "by session"}[kind]
        heading = f"Claude Code usage {title}, {span} ({loaded.stats.files} transcript files)"
        sys.stdout.write(render.groups_table(kind, groups, heading=heading, breakdown=args.breakdown, tz=tz) + "\n")
    return 0


def cmd_issues(args) -> int:
    from aiki_hooks.issues import journal
    from aiki_hooks.issues.history import as_json, occurrences, render_table, within_days

    if not 1 <= args.days <= 3660:
        raise UsageError("--days must be between 1 and 3660")
    config = _config(args)
    now = time.time()
    found = within_days(occurrences(journal.read(str(config.state_dir))), now=now, days=args.days)
    if args.json:
        sys.stdout.write(json.dumps(as_json(found, now), indent=2) + "\n")
    else:
        sys.stdout.write(render_table(found, now) + "\n")
    return 0


def cmd_mem0_flush(args) -> int:
    from aiki_hooks.outputs.mem0.delivery import main as flush

    config = _config(args)
    return flush(config.mem0, config.state_dir, force=args.force, quiet=not args.debug)


def cmd_install_hooks(args) -> int:
    from pathlib import Path as _Path

    from aiki_hooks.install.settings import (
        SettingsError,
        claude_settings_files,
        default_hooks_dir,
        install_hook_scripts,
        install_settings,
        load_settings,
        resolve_interpreter,
        settings_path,
    )

    hooks_dir = _Path(args.hooks_dir) if args.hooks_dir else default_hooks_dir()
    target = settings_path(project=args.project, settings=args.settings)
    try:
        python = resolve_interpreter(args.python, must_exist=not args.dry_run) if args.python else sys.executable
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        if not args.dry_run:
            load_settings(target, for_writing=True)  # an unusable file stops us before the scripts are written
            install_hook_scripts(hooks_dir)
        # The files Claude Code reads in this project (or here): where the plugin may be enabled.
        read_too = claude_settings_files(project=args.project or os.getcwd())
        change = install_settings(target, python, hooks_dir, statusline=args.statusline,
                                  force=args.force, dry_run=args.dry_run, read_too=read_too)
    except SettingsError as exc:
        sys.stderr.write(f"aiki-hooks: {exc}\n")
        return 1
    return _report_settings_change(change, args.dry_run)


def cmd_uninstall_hooks(args) -> int:
    from aiki_hooks.install.settings import SettingsError, settings_path, uninstall_settings

    try:
        change = uninstall_settings(settings_path(project=args.project, settings=args.settings), dry_run=args.dry_run)
    except SettingsError as exc:
        sys.stderr.write(f"aiki-hooks: {exc}\n")
        return 1
    return _report_settings_change(change, args.dry_run)


def _report_settings_change(change, dry_run: bool) -> int:
    if dry_run:
        sys.stdout.write(change.diff or f"{change.path}: no change\n")
    elif change.note:
        sys.stdout.write(f"{change.note}\n")
    elif change.changed:
        backup = f" (your version before aiki-hooks is kept in {change.backup})" if change.backup else ""
        sys.stdout.write(f"updated {change.path}{backup}\n")
    else:
        sys.stdout.write(f"{change.path} already up to date\n")
    for warning in change.warnings:
        sys.stderr.write(f"aiki-hooks: warning: {warning}\n")
    return 0


def cmd_service(args) -> int:
    import getpass

    from aiki_hooks.paths import holder_pid
    from aiki_hooks.install import service
    from aiki_hooks.install.daemon import start_daemon, stop_daemon

    if args.service_command == "status":
        return _service_status(args)
    config = _config(args)
    available, why = service.systemd_available()
    if args.service_command == "install":
        if not available:
            sys.stdout.write(f"no systemd user manager ({why}): running the refresher detached instead; "
                             "the hooks restart it when its data goes stale\n")
            if args.dry_run:
                return 0
            if args.restart:
                stop_daemon(config)
            started, pid, message = start_daemon(config)
            sys.stdout.write(f"refresher {message}" + (f" (pid {pid})" if not started and pid else "") + "\n")
            return 0 if started or pid else 1
        executable = args.executable or service.find_executable()
        if not executable:
            raise UsageError("cannot find the aiki-hooks command; pass --executable /abs/path/to/aiki-hooks")
        try:
            for line in service.install_unit(os.path.abspath(executable), config, dry_run=args.dry_run,
                                             force_restart=args.restart, sandbox=not args.no_sandbox):
                sys.stdout.write(line + "\n")
        except service.ServiceError as exc:
            return _fall_back_to_detached(config, exc)
        hint = service.linger_hint(getpass.getuser())
        if hint:
            sys.stdout.write(f"note: {hint}\n")
        return 0
    if args.service_command == "uninstall":
        if available:
            for line in service.uninstall_unit(dry_run=args.dry_run):
                sys.stdout.write(line + "\n")
        elif service.unit_path().exists() and not args.dry_run:
            service.unit_path().unlink()
            sys.stdout.write(f"removed {service.unit_path()} (systemd not reachable: {why})\n")
        pid = holder_pid(config.state_dir)
        if pid and not args.dry_run:
            stop_daemon(config)
            sys.stdout.write(f"stopped the refresher (pid {pid})\n")
        elif pid:
            sys.stdout.write(f"would stop the refresher (pid {pid})\n")
    return 0


def _service_status(args) -> int:
    """The unit's state even when the config does not load: a unit failed by a config
    error is exactly when this is asked."""
    from aiki_hooks.config.load import ConfigError
    from aiki_hooks.paths import holder_pid
    from aiki_hooks.install import service

    try:
        state_dir = _config(args).state_dir
    except ConfigError as exc:
        sys.stderr.write(f"aiki-hooks: {exc.message()}\n")
        state_dir = None
    health = service.unit_health(state_dir=state_dir)
    sys.stdout.write(f"{health.state}: {health.detail}\n")
    if health.log_lines:
        sys.stdout.write("last log lines:\n" + "".join(f"  {line}\n" for line in health.log_lines))
    if health.logs_command:
        sys.stdout.write(f"the whole log: {health.logs_command}\n")
    pid = holder_pid(state_dir) if state_dir else None
    if pid and pid != health.main_pid:
        sys.stdout.write(f"a refresher runs outside systemd: pid {pid}\n")
    return 0 if health.healthy or (pid and health.state in ("no-systemd", "not-installed")) else 1


EXIT_DETACHED = 2  # `service install`: the unit would not run; the refresher runs detached instead


def _fall_back_to_detached(config, failure: Exception) -> int:
    """The unit did not start: say why (its last log lines), take it out so it cannot
    crash-loop, and run the refresher detached, the state install.sh documents."""
    from aiki_hooks.install import service
    from aiki_hooks.install.daemon import start_daemon

    health = service.unit_health(state_dir=config.state_dir)
    err = sys.stderr.write
    err(f"aiki-hooks: the refresher service did not start: {failure}\n")
    if health.detail:
        err(f"aiki-hooks: unit state: {health.state}: {health.detail}\n")
    if health.log_lines:
        err("aiki-hooks: its last log lines:\n" + "".join(f"    {line}\n" for line in health.log_lines))
    if health.logs_command:
        err(f"aiki-hooks: the whole log: {health.logs_command}\n")
    for line in service.remove_unit():
        err(f"aiki-hooks: {line}\n")
    started, pid, message = start_daemon(config)
    if started or pid:
        err(f"aiki-hooks: running the refresher detached instead (pid {pid}); the hooks restart it when its data "
            "goes stale. Fix the cause above, then run `aiki-hooks service install` to go back to systemd.\n")
        return EXIT_DETACHED
    err(f"aiki-hooks: the detached refresher did not start either: {message}\n")
    return EXIT_ERROR


def _current_snapshot(config) -> dict:
    """The cache when fresh, else a cycle measured now (and published)."""
    from aiki_hooks.cycle.cache import read_cache
    from aiki_hooks.cycle.engine import Engine

    read = read_cache(config.cache_path)
    if read.state == "fresh" and read.data is not None:
        return read.data
    engine = Engine(config, oneshot=True)
    try:
        snapshot = engine.cycle()
        try:
            snapshot = engine.publish(snapshot)
        except OSError:
            pass  # the line still goes out; the engine logged the cache failure
    finally:
        engine.close()  # webhooks send what this cycle queued (bounded wait)
    return snapshot.to_dict()


def cmd_probe(args) -> int:
    data = _current_snapshot(_config(args))
    if args.issues:
        data = {"generated_at": data["generated_at"], "host": data["host"], "status": data["status"],
                "issues": data["issues"]}
    sys.stdout.write(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
    return 0  # the status is in the line; collectors treat a non-zero exit as their own error


def cmd_metrics(args) -> int:
    from aiki_hooks.outputs.metrics import exposition

    sys.stdout.write(exposition(_current_snapshot(_config(args))).decode("utf-8"))
    return 0


def cmd_preview(args) -> int:
    from aiki_hooks.hooklib.session_start import build

    config = _config(args)
    context, _, _ = build({"source": "startup"}, str(config.state_dir), time.time())
    sys.stdout.write((context or "") + "\n")
    return 0


def cmd_statusline(args) -> int:
    from aiki_hooks.hooklib.statusline import main as statusline

    return statusline()


COMMANDS = {
    "status": cmd_status,
    "refresh": cmd_refresh,
    "refresher": cmd_refresher,
    "config": cmd_config,
    "init": cmd_init,
    "doctor": cmd_doctor,
    "statusline": cmd_statusline,
    "preview": cmd_preview,
    "probe": cmd_probe,
    "metrics": cmd_metrics,
    "service": cmd_service,
    "install-hooks": cmd_install_hooks,
    "uninstall-hooks": cmd_uninstall_hooks,
    "costs": cmd_costs,
    "mem0-flush": cmd_mem0_flush,
    "issues": cmd_issues,
}

if __name__ == "__main__":
    sys.exit(main())
