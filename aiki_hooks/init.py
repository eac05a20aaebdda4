"""`aiki-hooks init`: write a commented config, with the services it can detect."""

from __future__ import annotations

import http.client
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .cache import atomic_write_bytes
from .paths import ensure_private_dir
from .proc import CommandNotFound, run_command

QDRANT_URL = "http://localhost:6333"


@dataclass(frozen=True)
class Detected:
    qdrant_url: str | None
    user_units: tuple[str, ...]
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


def detect_user_units(pattern: str = "aiki-*", run=run_command) -> tuple[tuple[str, ...], str | None]:
    """Running user units matching *pattern*, or a note saying why none could be listed.
    Our own refresher's unit is left out: it cannot watch itself (its failure means no
    data at all, which the hooks already say)."""
    from .service import UNIT_NAME

    argv = ["systemctl", "--user", "list-units", pattern, "--state=running", "--no-legend", "--plain", "--no-pager"]
    try:
        out = run(argv, timeout=3.0)
    except CommandNotFound:
        return (), "systemctl not found: no systemd units detected"
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["systemctl failed"])[-1]
        return (), f"could not list user units ({reason})"
    units = tuple(unit for unit in (line.split()[0] for line in out.stdout.splitlines() if line.strip())
                  if unit != UNIT_NAME)
    return units, None


def detect(run=run_command) -> Detected:
    notes = []
    candidates = qdrant_candidates()
    qdrant = next((url for url in candidates if detect_qdrant(url)), None)
    notes.append(f"Qdrant answers on {qdrant}" if qdrant else "no Qdrant at " + " or ".join(candidates))
    units, note = detect_user_units(run=run)
    if note:
        notes.append(note)
    elif units:
        notes.append("running user units: " + ", ".join(units))
    else:
        notes.append("no running user units named aiki-*")
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
    if found.user_units:
        for unit in found.user_units:
            lines += ["[[probes.systemd]]", f'unit = "{unit}"', 'scope = "user"', ""]
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
