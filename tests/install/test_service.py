"""The systemd user unit's text (pure: what install writes) and the detached fallback
(the real refresher from this checkout). Installing, restarting, uninstalling and judging
the unit run against a real systemd user manager: tests/e2e/test_service_unit.py and
tests/e2e/test_service_systemd.py.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aiki_hooks.config.load import Config, load_config, parse_config
from aiki_hooks.cycle.cache import read_cache
from aiki_hooks.paths import holder_pid
from aiki_hooks.install import service
from aiki_hooks.install.daemon import log_path, start_daemon, stop_daemon
from aiki_hooks.install.service import UNIT_NAME
from tests.conftest import wait_for

EXE = "/opt/aiki-hooks/venv/bin/aiki-hooks"


# --------------------------------------------------------------------------- helpers


def config_from(tmp_path: Path, toml: str, *, name: str = "config.toml") -> Config:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml)
    return load_config(path)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """INI-ish: section -> key -> values (a key may repeat); comments skipped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep and key == key.strip() and key.isidentifier(), f"not KEY=VALUE: {raw!r}"
        current.setdefault(key, []).append(value)
    return sections


def words(value: str, *, exec_line: bool = False) -> list[str]:
    """Split a setting as systemd does for what quote_word writes, and undo %% / $$."""
    split = shlex.split(value.replace("$$", "\0") if exec_line else value)
    return [w.replace("%%", "%").replace("\0", "$") for w in split]


def one(unit, section, key) -> str:
    values = unit[section][key]
    assert len(values) == 1, (key, values)
    return values[0]


# --------------------------------------------------------------------------- unit text


def test_unit_text_defaults_and_hardening(tmp_path):
    # resources only (5 s timeout); a state dir outside /tmp (tmp_path is under /tmp)
    config = parse_config({"costs": {"enabled": False}, "state": {"dir": "/home/u/.local/state/aiki-hooks"}})
    unit = parse_unit(service.unit_text(executable=EXE, config=config))
    assert set(unit) == {"Unit", "Service", "Install"}
    assert one(unit, "Unit", "Description").startswith("aiki-hooks refresher")
    assert (one(unit, "Unit", "StartLimitIntervalSec"), one(unit, "Unit", "StartLimitBurst")) == ("120", "5")
    svc = unit["Service"]
    assert words(one(unit, "Service", "ExecStart"), exec_line=True) == [EXE, "refresher"]  # defaults: no --config
    expected = {
        "Type": "notify", "Restart": "always", "RestartSec": "2", "RestartPreventExitStatus": "3",
        "TimeoutStopSec": "30", "TimeoutAbortSec": "10",
        "WatchdogSec": "60", "StandardOutput": "journal", "StandardError": "journal",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "read-only",
        "PrivateTmp": "yes", "MemoryMax": "512M",
    }
    assert {key: one(unit, "Service", key) for key in expected} == expected
    assert words(one(unit, "Service", "ReadWritePaths")) == [str(config.state_dir)]
    assert "PYTHONUNBUFFERED=1" in svc["Environment"]
    assert f"AIKI_HOOKS_STATE_DIR={config.state_dir}" in [words(v)[0] for v in svc["Environment"]]
    assert one(unit, "Install", "WantedBy") == "default.target"
    for uri in unit["Unit"].get("Documentation", []):
        assert uri.startswith("file:") and "pypi" not in uri


@pytest.mark.parametrize("toml, watchdog", [
    ("[costs]\nenabled = false\n", 60),                       # 5 s probes: the 60 s floor
    ("", 90),                                                  # the costs probe's 30 s: 3 x 30
    ('[costs]\nenabled = false\n[[probes.command]]\nname = "slow"\ncommand = ["true"]\ntimeout_seconds = 100\n',
     300),
    ('[costs]\nenabled = false\n[[probes.http]]\nname = "api"\nurl = "http://x"\ntimeout_seconds = 20.5\n',
     62),                                                      # ceil(61.5)
], ids=["floor", "costs-default", "slow-command", "fractional"])
def test_watchdog_grows_with_the_slowest_probe(tmp_path, toml, watchdog):
    config = config_from(tmp_path, toml)
    unit = parse_unit(service.unit_text(executable=EXE, config=config))
    assert int(one(unit, "Service", "WatchdogSec")) == watchdog
    # The longest silence between two pings (half a period asleep + the slowest cycle) fits.
    assert watchdog / 2 + 1.1 * config.max_probe_timeout < watchdog
    assert int(one(unit, "Service", "TimeoutStartSec")) >= max(90, 1.1 * config.max_probe_timeout)


@pytest.mark.parametrize("exe, conf_dir, state_dir", [
    (EXE, "conf", "state"),
    ("/opt/my tools/bin/aiki-hooks", "my conf", "state dir"),
    ("/opt/100%/bin/aiki-hooks", "price$HOME", 'odd "quoted" \\ dir'),
], ids=["plain", "spaces", "specials"])
def test_unit_text_quotes_paths_for_systemd(tmp_path, exe, conf_dir, state_dir):
    state = tmp_path / state_dir
    toml = f'[state]\ndir = {json.dumps(str(state))}\n'
    config = config_from(tmp_path, toml, name=f"{conf_dir}/aiki.toml")
    unit = parse_unit(service.unit_text(executable=exe, config=config))
    config_file = str(tmp_path / conf_dir / "aiki.toml")
    assert words(one(unit, "Service", "ExecStart"), exec_line=True) == [exe, "refresher", "--config", config_file]
    assert words(one(unit, "Service", "ReadWritePaths")) == [str(state)]
    assert f"AIKI_HOOKS_STATE_DIR={state}" in [words(v)[0] for v in unit["Service"]["Environment"]]
    if "%" in exe:
        assert "%%" in one(unit, "Service", "ExecStart")  # else systemd would expand a specifier
    if "$" in conf_dir:
        assert "$$HOME" in one(unit, "Service", "ExecStart")  # else systemd would substitute $HOME


def test_unit_text_without_sandbox_keeps_what_needs_no_namespace():
    config = parse_config({"state": {"dir": "/srv/aiki"}})
    unit = parse_unit(service.unit_text(executable=EXE, config=config, sandbox=False))
    for key in ("ProtectSystem", "ProtectHome", "ReadWritePaths", "PrivateTmp"):
        assert key not in unit["Service"], key
    assert one(unit, "Service", "NoNewPrivileges") == "yes" and one(unit, "Service", "MemoryMax") == "512M"
    assert one(unit, "Service", "Type") == "notify"


def test_unit_text_refuses_a_relative_executable_and_control_characters():
    with pytest.raises(ValueError, match="absolute"):
        service.unit_text(executable="aiki-hooks", config=parse_config({}))
    with pytest.raises(ValueError, match="control character"):
        service.quote_word("a\nb")


def test_local_mem0_store_is_writable_in_the_sandbox(tmp_path):
    store = "/srv/mem0 data/qdrant"  # not under /tmp, where PrivateTmp= decides
    base = ('[state]\ndir = "/srv/aiki"\n[mem0]\nbackend = "local"\n'
            '[mem0.config.vector_store]\nprovider = "qdrant"\n')
    with_path = config_from(tmp_path, base + f'[mem0.config.vector_store.config]\npath = "{store}"\n', name="a.toml")
    unit = parse_unit(service.unit_text(executable=EXE, config=with_path))
    assert words(one(unit, "Service", "ReadWritePaths")) == [str(with_path.state_dir), f"-{store}"]
    assert one(unit, "Service", "PrivateTmp") == "yes"
    # mem0's default local store is /tmp/qdrant: a private /tmp would hide and wipe it.
    default = config_from(tmp_path, base, name="b.toml")
    unit = parse_unit(service.unit_text(executable=EXE, config=default))
    assert one(unit, "Service", "PrivateTmp") == "no"
    # ProtectSystem=strict makes a shared /tmp read-only unless it is listed.
    assert words(one(unit, "Service", "ReadWritePaths")) == ["/srv/aiki", "-/tmp"]


def test_output_files_are_writable_in_the_sandbox(tmp_path):
    """ProtectSystem=strict + ProtectHome=read-only: a jsonl or textfile output outside
    the state dir would fail on every cycle unless its directory is listed."""
    config = parse_config({"state": {"dir": "/srv/aiki"}, "outputs": [
        {"type": "cache"},
        {"type": "jsonl", "path": "/srv/logs/aiki/health.jsonl"},
        {"type": "jsonl", "name": "issues", "path": "/srv/aiki/issues.jsonl", "what": "issues"},  # in the state dir
        {"type": "prometheus_textfile", "directory": "/var/lib/node_exporter/textfile"},
    ]})
    unit = parse_unit(service.unit_text(executable=EXE, config=config))
    assert words(one(unit, "Service", "ReadWritePaths")) == [
        "/srv/aiki", "-/srv/logs/aiki", "-/var/lib/node_exporter/textfile"]
    assert one(unit, "Service", "PrivateTmp") == "yes"
    # Under /tmp: the shared /tmp is kept and listed.
    in_tmp = parse_config({"state": {"dir": "/srv/aiki"},
                           "outputs": [{"type": "cache"}, {"type": "jsonl", "path": "/tmp/out/health.jsonl"}]})
    unit = parse_unit(service.unit_text(executable=EXE, config=in_tmp))
    assert words(one(unit, "Service", "ReadWritePaths")) == ["/srv/aiki", "-/tmp"]
    assert one(unit, "Service", "PrivateTmp") == "no"


def test_prepare_paths_leaves_output_directories_to_their_owner(tmp_path):
    textfile = tmp_path / "textfile"
    config = parse_config({"state": {"dir": str(tmp_path / "state")},
                           "outputs": [{"type": "prometheus_textfile", "directory": str(textfile)}]})
    service.prepare_paths(config)
    assert (tmp_path / "state").is_dir() and not textfile.exists()


def test_a_state_dir_under_tmp_keeps_tmp_shared(tmp_path):
    """PrivateTmp=yes would give the service its own empty /tmp: the cache would land
    where the hooks never look."""
    config = parse_config({"state": {"dir": "/tmp/aiki state"}})
    unit = parse_unit(service.unit_text(executable=EXE, config=config))
    assert one(unit, "Service", "PrivateTmp") == "no"
    assert words(one(unit, "Service", "ReadWritePaths")) == ["/tmp/aiki state"]
    for outside in ("/tmpfoo/state", "/var/lib/aiki"):
        unit = parse_unit(service.unit_text(executable=EXE, config=parse_config({"state": {"dir": outside}})))
        assert one(unit, "Service", "PrivateTmp") == "yes", outside


def _systemd_analyze_works(tmp_path: Path) -> bool:
    if not shutil.which("systemd-analyze"):
        return False
    probe = tmp_path / "probe-ok.service"
    probe.write_text("[Service]\nExecStart=/bin/true\n")
    try:
        done = subprocess.run(["systemd-analyze", "verify", str(probe)], check=False, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_unit_passes_systemd_analyze_verify_where_available(tmp_path):
    """A second opinion from systemd's own parser (it checks that ExecStart's unquoted
    path is an executable, and flags unknown keys); skipped where it cannot run."""
    if not _systemd_analyze_works(tmp_path):
        pytest.skip("systemd-analyze verify cannot run here")
    exe = tmp_path / "bin dir 100%" / "aiki-hooks"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    config = config_from(tmp_path, f'[state]\ndir = "{tmp_path / "state dir"}"\n', name="my conf/aiki.toml")
    unit = tmp_path / UNIT_NAME
    unit.write_text(service.unit_text(executable=str(exe), config=config))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], check=False, capture_output=True, text=True, timeout=20)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for complaint in ("Unknown key", "Unknown section", "not executable", "Invalid", "ignoring"):
        assert complaint.lower() not in output.lower(), output
    # The same check notices a wrongly quoted path: an unquoted space splits the path.
    broken = unit.read_text().replace(service.quote_word(str(exe), exec_line=True), str(exe))
    unit.write_text(broken)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], check=False, capture_output=True, text=True, timeout=20)
    assert done.returncode != 0


# --------------------------------------------------------------------------- install / uninstall


def _defaults():
    return parse_config({"costs": {"enabled": False}})


def test_unit_path_follows_xdg_config_home(tmp_path):
    assert service.unit_path({"XDG_CONFIG_HOME": str(tmp_path / "c"), "HOME": "/nowhere"}) == \
        tmp_path / "c" / "systemd" / "user" / UNIT_NAME
    assert service.unit_path({"HOME": "/home/u"}) == Path("/home/u/.config/systemd/user") / UNIT_NAME


# --------------------------------------------------------------------------- availability, linger, status


# --------------------------------------------------------------------------- the detached fallback


@pytest.fixture
def daemon_config(tmp_path):
    """A config for a real detached refresher; whatever still holds its lock at the end
    (a test that failed before stop_daemon) is killed, so no test leaves a process behind."""
    made = []

    def make(interval: float = 0.2):
        config = config_from(tmp_path, f"interval_seconds = {interval}\n[state]\ndir = \"{tmp_path / 'state dir'}\"\n"
                                       "[costs]\nenabled = false\n", name="aiki.toml")
        made.append(config)
        return config

    yield make
    for config in made:
        pid = holder_pid(config.state_dir)
        if pid and pid > 0:
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_daemon_starts_once_writes_the_cache_and_stops(daemon_config):
    config = daemon_config()
    started, pid, message = start_daemon(config)
    try:
        assert started, message
        assert holder_pid(config.state_dir) == pid and _alive(pid)
        assert os.getsid(pid) == pid  # its own session: no terminal, no SIGHUP
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert stat.S_IMODE(log_path(config).stat().st_mode) == 0o600
        assert start_daemon(config) == (False, pid, "already running")
        data = wait_for(lambda: read_cache(config.cache_path).data)
        assert data["interval_seconds"] == 0.2
    finally:
        stopped = stop_daemon(config)
    assert stopped == pid
    assert holder_pid(config.state_dir) is None
    wait_for(lambda: not _alive(pid), timeout=5)
    log = log_path(config).read_text()
    assert "aiki-hooks refresher: started" in log and "stopped after" in log
    assert stop_daemon(config) is None  # nothing left to stop


def test_daemon_concurrent_starts_leave_one_refresher(daemon_config):
    config = daemon_config(interval=5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(start_daemon(config))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(r[0] for r in results) == [False, True], results
        winner = next(r for r in results if r[0])
        loser = next(r for r in results if not r[0])
        assert loser[1] == winner[1] == holder_pid(config.state_dir)
        assert loser[2] == "already running"
    finally:
        stop_daemon(config)


def test_daemon_start_reports_a_refresher_that_dies(daemon_config):
    config = daemon_config()
    crash = [sys.executable, "-c", "import sys; print('boom: bad things', file=sys.stderr); sys.exit(3)"]
    started, pid, message = start_daemon(config, argv_prefix=crash)
    assert (started, pid) == (False, None)
    assert message == "the refresher exited with code 3: boom: bad things"




def test_doctor_names_the_missing_hooks(tmp_path):
    """`aiki-hooks doctor` where no hooks are registered: a FAIL that says how to add them."""
    import subprocess as sp
    import sys as _sys

    from tests.conftest import cli_env

    home = tmp_path / "doctor-home"
    home.mkdir()
    env = cli_env(HOME=str(home), CLAUDE_CONFIG_DIR=str(home / ".claude"), XDG_CONFIG_HOME=str(home / ".config"),
                  XDG_STATE_HOME=str(home / ".state"), XDG_RUNTIME_DIR=str(home / "no-manager"))
    result = sp.run([_sys.executable, "-m", "aiki_hooks.cli", "doctor"], env=env, capture_output=True, text=True,
                    timeout=60, cwd=str(home))
    assert result.returncode == 1
    assert "aiki-hooks install-hooks" in result.stdout
