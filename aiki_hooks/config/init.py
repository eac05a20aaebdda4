"""`aiki-hooks init`: write a commented config, with the services it can detect."""

from __future__ import annotations

import http.client
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiki_hooks.cycle.cache import atomic_write_bytes
from aiki_hooks.paths import ensure_private_dir, user_unit_dir
from aiki_hooks.probes.systemd import parse_show
from aiki_hooks.proc import CommandNotFound, run_command

QDRANT_URL = "http://localhost:6333"


@dataclass(frozen=True)
class Detected:
    qdrant_url: str | None
    user_units: tuple[FoundUnit, ...]
    notes: tuple[str, ...]


def qdrant_candidates(env=None) -> list[str]:
    """$QDRANT_URL first (what Qdrant clients read), then Qdrant's default port."""
    env = os.environ if env is None else env
    urls = [env["QDRANT_URL"].rstrip("/")] if env.get("QDRANT_URL", "").startswith(("http://", "https://")) else []
    return list(dict.fromkeys(urls + [QDRANT_URL]))


def detect_qdrant(url: str, timeout: float = 0.5) -> bool:
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        conn = connection(parts.hostname or "localhost", parts.port, timeout=timeout)
    except ValueError:
        return False
    try:
        conn.request("GET", "/readyz")
        response = conn.getresponse()
        response.read(4096)
        if response.status == 404:  # Qdrant before 1.5 has only /healthz
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read(4096)
        return 200 <= response.status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --------------------------------------------------------------------------- user units

# Only services are offered: "is it up" is a service's question. A timer's or a socket's
# work is done by its service, which is offered (commented out, see _judge); targets,
# sockets, mounts and the rest are plumbing.

# `systemctl --user enable` writes a link per unit into these directories of
# ~/.config/systemd/user: that is how a unit the user enabled is told from one enabled for
# every user by a package (whose links live in /etc or /usr, not in the home).
LINK_DIRS = (".wants", ".requires", ".upholds")
# systemd's unit_name_is_valid() for services: these ASCII characters only, at most 255.
# A name it rejects cannot be loaded, so a probe on it could only say "not found".
_SERVICE_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\@-]*)?\.service")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SYSTEMCTL_TIMEOUT = 3.0
SHOW_PROPERTIES = ("Id", "LoadState", "ActiveState", "UnitFileState", "Type", "RemainAfterExit", "TriggeredBy")
# A stopped unit is CRITICAL to the systemd probe; said in every commented-out entry's reason.
_STOPPED_IS_CRITICAL = "a stopped unit is CRITICAL to this probe"


@dataclass(frozen=True)
class FoundUnit:
    """A user service `init` offers: *watch* is an active [[probes.systemd]] entry, else it
    is written commented out with *why_not* above it; *state* says it in words."""

    name: str
    watch: bool
    state: str
    why_not: str | None = None


@dataclass(frozen=True)
class UnitDir:
    """What is found by looking at the user's unit directory, without systemd."""

    path: Path
    services: tuple[str, ...]  # unit files of services, by the name systemd loads them under
    templates: frozenset[str]  # "foo@.service": offered through their running instances
    linked: frozenset[str]  # services linked in *.wants/*.requires/*.upholds: enabled by the user


def is_service_name(name: str) -> bool:
    return len(name) <= 255 and _SERVICE_NAME.fullmatch(name) is not None


def _is_template(name: str) -> bool:
    return name.endswith("@.service")


def _template_of(name: str) -> str | None:
    prefix, at, _ = name.partition("@")
    return f"{prefix}@.service" if at and not _is_template(name) else None


def scan_unit_dir(path: Path) -> UnitDir:
    """The services in *path* (the user's unit directory), sorted.

    Skipped: other unit types, our own refresher (it cannot watch itself: its failure means
    no data at all, which the hooks already say), names systemd rejects (control characters
    included), masked units (a link to /dev/null or an empty file), entries that are not a
    readable regular file (broken links, directories such as drop-in `*.d`). A link whose
    target has another name is an alias: it is listed under the target's name, as systemd
    loads it. Template files are returned apart; names in the link directories too.
    """
    from aiki_hooks.install.service import UNIT_NAME

    services: set[str] = set()
    templates: set[str] = set()
    linked: set[str] = set()
    try:
        entries = list(os.scandir(path))
    except OSError:  # missing, not a directory, unreadable: nothing of the user's there
        entries = []
    for entry in entries:
        name = entry.name
        if name.endswith(LINK_DIRS):
            linked.update(_linked_services(Path(entry.path)))
            continue
        if not is_service_name(name) or name == UNIT_NAME:
            continue
        file = Path(entry.path)
        try:
            real = file.resolve(strict=True)
            if not real.is_file() or real.stat().st_size == 0 or not os.access(real, os.R_OK):
                continue
        except (OSError, RuntimeError):  # broken or looping link
            continue
        if _is_template(name):
            templates.add(name)
            continue
        if real.name != name:  # an alias
            if not is_service_name(real.name) or _is_template(real.name) or real.name == UNIT_NAME:
                continue
            name = real.name
        services.add(name)
    return UnitDir(path=path, services=tuple(sorted(services)), templates=frozenset(templates),
                   linked=frozenset(linked))


def _linked_services(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder) if is_service_name(entry.name)}
    except OSError:
        return set()


def _systemctl(run, args: list[str]) -> tuple[str | None, str | None]:
    """`systemctl --user ARGS`: (stdout, None) or (None, why it gave nothing)."""
    argv = ["systemctl", "--user", *args]
    try:
        out = run(argv, timeout=SYSTEMCTL_TIMEOUT)
    except CommandNotFound:
        return None, "systemctl not found"
    if out.timed_out:
        return None, f"systemctl gave no answer within {SYSTEMCTL_TIMEOUT:g} s"
    if out.returncode != 0:
        lines = [line.strip() for line in out.stderr.splitlines() if line.strip()]
        return None, f"systemctl --user {args[0]} failed ({lines[-1] if lines else f'exit code {out.returncode}'})"
    return out.stdout, None


def detect_user_units(run=run_command, env=None) -> tuple[tuple[FoundUnit, ...], UnitDir, str | None]:
    """The user's own services: unit files in their unit directory, running instances of
    their template files, and running services they enabled (linked in that directory).

    Units that run because the system enables them for every user (dbus, pipewire on a
    desktop) are not offered: they are the desktop's plumbing, not services the user set
    up, and the user did not ask for them. Two systemctl calls: `list-units` for what runs,
    `show` for the candidates' state. When systemctl is missing or fails, the unit files are
    still offered (the enabled ones watched, found by their links) with a note saying why
    the rest is unknown; the third return value is that note, else None.
    """
    from aiki_hooks.install.service import UNIT_NAME

    unit_dir = scan_unit_dir(user_unit_dir(env))
    where = _shown_path(unit_dir.path, env)
    own = set(unit_dir.services)
    listed, problem = _systemctl(run, ["list-units", "--type=service", "--state=running", "--no-legend",
                                       "--plain", "--no-pager"])
    running: set[str] | None = None
    if problem:
        problem += f": only the unit files in {where} were looked at, whether they run is unknown"
    elif listed is not None:
        running = {line.split()[0] for line in listed.splitlines() if line.strip()}
        running = {name for name in running if is_service_name(name) and name != UNIT_NAME}
    candidates = set(own)
    if running is not None:
        candidates |= {name for name in running
                       if name in unit_dir.linked or _template_of(name) in unit_dir.templates}
    names = sorted(candidates)
    props: dict[str, dict] = {}
    if running is not None and names:
        shown, problem = _systemctl(run, ["show", "--no-pager", "--property=" + ",".join(SHOW_PROPERTIES),
                                          "--", *names])
        blocks = parse_show(shown) if shown is not None else []
        if shown is not None and len(blocks) != len(names):
            problem = f"systemctl --user show answered with {len(blocks)} unit blocks for {len(names)} units"
        elif shown is not None:
            # One block per name, in the order asked (an alias's block has the unit's own Id).
            props = {name: dict(block.properties) for name, block in zip(names, blocks, strict=True)}
        if problem:
            problem += f": what runs is from list-units, what is enabled from the links in {where}, nothing more"
    found = []
    for name in names:
        unit_props = props.get(name, {})
        unit_id = unit_props.get("Id") or name
        if unit_id != name and unit_id in candidates:
            continue  # another name of a unit already offered
        if unit_props.get("LoadState") == "masked":  # masked elsewhere, e.g. `mask --runtime`
            continue
        found.append(_judge(name, unit_props, own=name in own, linked=name in unit_dir.linked,
                            running=None if running is None else name in running))
    found.sort(key=lambda unit: (not unit.watch, unit.name))
    return tuple(found), unit_dir, problem


def _judge(name: str, props: dict, *, own: bool, linked: bool, running: bool | None) -> FoundUnit:
    """Watched when enabled or running, unless it stops by design: a service started by a
    timer, socket or path unit, or a Type=oneshot one without RemainAfterExit=yes, is
    stopped most of the time, which the probe would call CRITICAL from the first day."""
    triggered_by = (props.get("TriggeredBy") or "").split()
    if triggered_by:
        by = " and ".join(triggered_by)
        return FoundUnit(name, False, f"started by {by}, commented out",
                         f"started by {by}, so stopped between runs; {_STOPPED_IS_CRITICAL}")
    if props.get("Type") == "oneshot" and props.get("RemainAfterExit") != "yes":
        return FoundUnit(name, False, "runs once, commented out",
                         f"Type=oneshot: it exits when done; {_STOPPED_IS_CRITICAL}")
    if props.get("LoadState") == "not-found":
        return FoundUnit(name, False, "not found by systemd, commented out",
                         "the user manager does not find this unit (is its XDG_CONFIG_HOME another?)")
    enabled = linked or (own and props.get("UnitFileState") in ("enabled", "enabled-runtime"))
    if running:
        return FoundUnit(name, True, "running")
    if enabled:
        active = props.get("ActiveState")
        return FoundUnit(name, True, f"enabled, {active}" if active else "enabled")
    if running is None:
        return FoundUnit(name, False, "not enabled, commented out",
                         f"not enabled, and whether it runs is unknown; {_STOPPED_IS_CRITICAL}")
    word = "disabled" if props.get("UnitFileState") == "disabled" else "not enabled"
    return FoundUnit(name, False, f"{word}, commented out", f"{word} and not running; {_STOPPED_IS_CRITICAL}")


def _shown_path(path: Path, env=None) -> str:
    """*path* with the home as ~, as the user knows it."""
    env = os.environ if env is None else env
    home = env.get("HOME") or ""
    if home and path.is_relative_to(home) and path != Path(home):
        return "~/" + str(path.relative_to(home))
    return str(path)


def describe_units(units: tuple[FoundUnit, ...], unit_dir: UnitDir, problem: str | None, env=None) -> str:
    """The note line's words: "2 user services of yours: a.service (running), b.service (...)"."""
    if units:
        text = f"{len(units)} user service{'' if len(units) == 1 else 's'} of yours: " + ", ".join(
            f"{unit.name} ({unit.state})" for unit in units)
    else:
        text = (f"no user services of yours (no service files in {_shown_path(unit_dir.path, env)}, "
                "none running that you enabled)")
    return f"{text}; {problem}" if problem else text


def toml_string(text: str) -> str:
    """*text* as a TOML basic string. ValueError for control characters (a unit name with one
    is skipped, never escaped: systemd rejects such names)."""
    if _CONTROL.search(text):
        raise ValueError(f"control character in {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def detect(run=run_command, env=None) -> Detected:
    notes = []
    candidates = qdrant_candidates(env)
    qdrant = next((url for url in candidates if detect_qdrant(url)), None)
    notes.append(f"Qdrant answers on {qdrant}" if qdrant else "no Qdrant at " + " or ".join(candidates))
    units, unit_dir, problem = detect_user_units(run=run, env=env)
    notes.append(describe_units(units, unit_dir, problem, env))
    return Detected(qdrant_url=qdrant, user_units=units, notes=tuple(notes))


def render_config(found: Detected) -> str:
    lines = [
        "# aiki-hooks configuration. Reference: the README's \"Configuration\" section.",
        "# Check it with `aiki-hooks config` (prints the effective values) and `aiki-hooks doctor`.",
        "# Detected when this file was written: " + "; ".join(found.notes) + ".",
        "",
        "# Seconds between refresher cycles.",
        "interval_seconds = 60",
        "",
        "[state]",
        "# Where the cache (system_health.json) and other state live. Default:",
        "# $AIKI_HOOKS_STATE_DIR, else ${XDG_STATE_HOME:-~/.local/state}/aiki-hooks",
        '# dir = "/home/me/.local/state/aiki-hooks"',
        "",
        "[resources]",
        "enabled = true",
        'disk_paths = ["/"]',
        "# Levels: WARNING at *_warn_*, CRITICAL at *_crit_*.",
        "cpu_warn_percent = 90",
        "cpu_crit_percent = 98",
        "memory_warn_percent = 85",
        "memory_crit_percent = 95",
        "swap_warn_percent = 50",
        "swap_crit_percent = 80",
        "disk_warn_percent = 90",
        "disk_crit_percent = 95",
        "# Free space below these is a problem too, whatever the percentage.",
        "disk_warn_free_gib = 5",
        "disk_crit_free_gib = 1",
        "# 5-minute load average divided by the number of cores.",
        "load_warn_per_core = 2.0",
        "load_crit_per_core = 4.0",
        "",
    ]
    units = [unit for unit in found.user_units if not _CONTROL.search(unit.name)]
    if units:
        lines += ["# Your user services: failed/inactive/not found is CRITICAL, activating is WARNING.", ""]
        for unit in units:
            entry = ["[[probes.systemd]]", f"unit = {toml_string(unit.name)}", 'scope = "user"']
            if not unit.watch:
                entry = [f"# Commented out, {unit.why_not}."] + ["# " + line for line in entry]
            lines += [*entry, ""]
    else:
        lines += [
            "# A systemd unit: failed/inactive/not found is CRITICAL, activating is WARNING.",
            "# [[probes.systemd]]",
            '# unit = "memory-daemon.service"',
            '# scope = "user"            # or "system"',
            "",
        ]
    if found.qdrant_url:
        lines += [
            "[[probes.http]]",
            'name = "qdrant"',
            f'url = "{found.qdrant_url}"',
            'kind = "qdrant"',
            "timeout_seconds = 3",
            '# api_key_env = "QDRANT_API_KEY"   # name of the variable holding the key, never the key',
            "",
        ]
    else:
        lines += [
            "# Qdrant: readiness, version and collection count.",
            "# [[probes.http]]",
            '# name = "qdrant"',
            '# url = "http://localhost:6333"',
            '# kind = "qdrant"',
            "# timeout_seconds = 3",
            '# api_key_env = "QDRANT_API_KEY"',
            "",
        ]
    lines += [
        "# Any HTTP endpoint; expect_status defaults to any 2xx/3xx.",
        "# [[probes.http]]",
        '# name = "mem0-api"',
        '# url = "http://127.0.0.1:8000/docs"',
        "# expect_status = [200]",
        '# expect_body = "ok"',
        "",
        "# A TCP port that must accept connections.",
        "# [[probes.tcp]]",
        '# name = "postgres"',
        '# host = "127.0.0.1"',
        "# port = 5432",
        "",
        "# Any Nagios-style plugin: exit 0/1/2/3, first line = summary, perfdata after |.",
        "# [[probes.command]]",
        '# name = "backup-age"',
        '# command = ["/usr/lib/nagios/plugins/check_file_age", "-f", "/var/backups/last", "-w", "90000"]',
        "# timeout_seconds = 10",
        "",
    ]
    return "\n".join(lines)


def write_config(path: Path, text: str, *, force: bool = False) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists (use --force to replace it; the old one is kept as .bak)")
    ensure_private_dir(path.parent)
    if path.exists():
        backup = path.with_name(path.name + ".bak")
        os.replace(path, backup)
    atomic_write_bytes(path, text.encode("utf-8"))
