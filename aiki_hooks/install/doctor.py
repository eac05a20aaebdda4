"""`aiki-hooks doctor`: check the installation and say what to do about each problem."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Callable

from aiki_hooks.config.load import Config, ConfigError, load_config
from aiki_hooks.cycle.cache import read_cache
from aiki_hooks.install.findings import FAIL, PASS, WARN, Finding
from aiki_hooks.paths import holder_pid, judge_private_dir
from aiki_hooks.probes.registry import builtin_kind
from aiki_hooks.proc import CommandNotFound, run_command
from aiki_hooks.sanitize import strip_controls

# Hints for the probes configured by their own tables; a [[probes.<kind>]] kind brings
# its own (ProbeKind.hints).
HINTS: dict[tuple[str, str | None], str] = {
    ("resources", None): "see `aiki-hooks status` for the numbers and the processes involved",
}


def _hint(config: Config, kind: str, name: str, error_kind: str | None) -> str:
    """What to do about a result that is not OK: the kind's hint for its error_kind (or
    for any error), filled in from the configured probe of that name."""
    entries = next((e for e in config.probe_entries if e.kind.name == kind), None)
    if entries is None:
        return HINTS.get((kind, error_kind)) or HINTS.get((kind, None), "")
    template = entries.kind.hints.get(error_kind) or entries.kind.hints.get(None, "")
    record = next((r for r in entries.configs if getattr(r, "name", None) == name), None)
    fields = entries.kind.fields_for_hint(record) if record is not None else {}
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return template


def _check_plugins() -> list[Finding]:
    """Every probe kind plugin installed (entry points in aiki_hooks.probes): loaded, or why not."""
    from aiki_hooks.probes import registry

    found = registry.plugins()
    out = [Finding(PASS, f"probe kind plugin {name} loaded") for name in sorted(found.kinds)]
    out.extend(Finding(FAIL, problem, "reinstall or fix that package, or uninstall it")
               for _, problem in sorted(found.broken.items()))
    return out


def run_doctor(config_path: Path | None, *, run=run_command, cycle: Callable | None = None) -> list[Finding]:
    findings: list[Finding] = []
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return [Finding(FAIL, exc.message(), "fix the keys listed above, then run `aiki-hooks config`")]
    findings.append(Finding(PASS, f"config valid ({config.source})"))

    findings.extend(_check_state_dir(config))
    findings.extend(_check_plugins())
    from aiki_hooks.install.settings import check_settings, claude_settings_files

    findings.extend(check_settings(claude_settings_files(project=Path.cwd())))
    findings.extend(_check_cache_and_refresher(config))
    findings.extend(_check_systemctl(config, run))
    findings.extend(_check_unit(run, config))

    if cycle is None:
        from aiki_hooks.cycle.engine import Engine

        engine = Engine(config)
        snapshot = engine.cycle()
    else:
        snapshot = cycle(config)
    for probe in snapshot.probes if snapshot else ():
        if probe.status.name == "OK":
            findings.append(Finding(PASS, f"{probe.kind} {probe.name}: {probe.summary}"))
        else:
            level = WARN if probe.status.name == "WARNING" else FAIL
            findings.append(Finding(level, f"{probe.kind} {probe.name}: {probe.status.name}: {probe.summary}",
                                    _hint(config, probe.kind, probe.name, probe.error_kind)))
    return findings


def _check_state_dir(config: Config) -> list[Finding]:
    state = config.state_dir
    try:
        info = os.lstat(state)  # not stat(): the hooks and the refresher refuse a symlinked dir
    except FileNotFoundError:
        return [Finding(WARN, f"state dir {state} does not exist yet", "run `aiki-hooks refresh` to create it")]
    if not stat.S_ISDIR(info.st_mode):
        return [Finding(FAIL, f"state dir: {judge_private_dir(str(state), info)}",
                        f"move {state} away; `aiki-hooks refresh` then creates a private one")]
    out = []
    if info.st_uid != os.getuid():
        out.append(Finding(FAIL, f"state dir {state} is owned by uid {info.st_uid}", f"chown -R $USER {state}"))
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        out.append(Finding(FAIL, f"state dir {state} has mode {mode:o}, expected 700", f"chmod 700 {state}"))
    cache = config.cache_path
    if cache.exists():
        cmode = stat.S_IMODE(cache.stat().st_mode)
        if cmode & 0o077:
            out.append(Finding(FAIL, f"cache {cache} has mode {cmode:o}, expected 600", f"chmod 600 {cache}"))
    if not out:
        out.append(Finding(PASS, f"state dir {state} private (700)"))
    return out


def _check_cache_and_refresher(config: Config) -> list[Finding]:
    out = []
    read = read_cache(config.cache_path, now=time.time())
    if read.state == "fresh":
        out.append(Finding(PASS, f"cache fresh ({read.age_seconds:.0f} s old)"))
    elif read.state == "stale":
        # The reason tells a refresher that is not running from one that cannot write the cache.
        out.append(Finding(WARN, f"cache is {(read.age_seconds or 0) / 60:.0f} min old: {read.reason}",
                           "`aiki-hooks service status` says whether it runs and why not; "
                           "install.sh sets it up as a service"))
    elif read.state == "missing":
        out.append(Finding(WARN, f"no cache at {config.cache_path} yet", "run `aiki-hooks refresh`"))
    else:
        out.append(Finding(FAIL, f"cache {config.cache_path} is {read.state}: {read.reason}",
                           "run `aiki-hooks refresh` to rewrite it"))
    try:
        pid = holder_pid(config.state_dir)
    except OSError as exc:  # a lock file that is not one (a FIFO, a link): say it, go on
        out.append(Finding(FAIL, f"refresher lock: {exc}", f"remove it: rm {config.state_dir}/refresher.lock"))
        return out
    if pid:
        out.append(Finding(PASS, f"refresher running (pid {pid})"))
    else:
        out.append(Finding(WARN, "no refresher running for this state dir",
                           "start `aiki-hooks refresher` (install.sh sets it up under systemd)"))
    return out


def _check_systemctl(config: Config, run) -> list[Finding]:
    units = config.entries("systemd")
    scopes = sorted({u.scope for u in units}) or ["user"]
    needed = bool(units)
    out = []
    for scope in scopes:
        argv = ["systemctl", *(["--user"] if scope == "user" else []), "show", "--property=Version", "--no-pager"]
        try:
            result = run(argv, timeout=3.0)
        except CommandNotFound:
            out.append(Finding(FAIL if needed else WARN, "systemctl not found",
                               "systemd probes cannot work on this machine" if needed else ""))
            break
        if result.returncode == 0:
            out.append(Finding(PASS, f"systemctl reachable ({scope} manager, {result.stdout.strip()})"))
        else:
            reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
            out.append(Finding(FAIL if needed else WARN, f"systemctl ({scope}) unreachable: {reason}",
                               builtin_kind("systemd").hints["no_bus"]))
    return out


def _check_unit(run, config: Config) -> list[Finding]:
    """The refresher's user unit, where systemd is reachable (else the lock check speaks).
    Only a running unit passes; a crash loop, a failed or stopped unit fails with its last
    log lines."""
    from aiki_hooks.install.service import unit_health

    health = unit_health(run, state_dir=config.state_dir)
    if health.state == "no-systemd":
        return []
    if health.healthy:
        return [Finding(PASS, f"refresher unit {health.detail}")]
    if health.state == "not-installed":
        return [Finding(WARN, f"refresher unit not installed: {health.detail}",
                        "run ./install.sh or `aiki-hooks service install`")]
    what = f"refresher unit {health.state}: {health.detail}"
    if health.log_lines:
        what += "\n       its last log lines:\n" + "\n".join(f"         {line}" for line in health.log_lines)
    return [Finding(FAIL, what, f"the whole log: `{health.logs_command}`; once the cause is fixed, "
                                "`aiki-hooks service install --restart` starts it again")]


def render_findings(findings: list[Finding]) -> str:
    """The report; what came from outside (probe summaries, log lines, paths) without
    escape sequences or control characters, its line breaks kept."""
    lines = []
    for f in findings:
        lines.append(f"[{f.level:^4}] {strip_controls(f.what, multiline=True)}")
        if f.fix and f.level != PASS:
            lines.append(f"       -> {strip_controls(f.fix, multiline=True)}")
    return "\n".join(lines)
