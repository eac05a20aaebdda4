"""The command line as a user runs it: real child processes, real files."""

import json
import stat
import subprocess
import sys

import pytest

from aiki_hooks.cycle.cache import read_cache

from .conftest import CALM_RESOURCES, REPO, cli_env, quiet_config, run_cli


def _plugin(tmp_path, name, exit_code, text):
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/sh\necho '{text}'\nexit {exit_code}\n")
    script.chmod(0o755)
    return script


def test_status_without_cache_measures_publishes_and_exits_ok(write_config, state_dir):
    write_config(CALM_RESOURCES)  # the real resources probe, whatever this machine's load
    result = run_cli("status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("aiki-hooks on ")
    assert "measured just now (no health data yet)" in result.stdout
    assert "memory" in result.stdout and "disk:/" in result.stdout
    assert read_cache(state_dir / "system_health.json").state == "fresh"
    assert "\033[" not in result.stdout  # not a tty: no colour


@pytest.mark.parametrize("exit_code, expected", [(0, 0), (1, 1), (2, 2), (3, 3)])
def test_status_exit_code_is_the_worst_status(write_config, tmp_path, exit_code, expected):
    plugin = _plugin(tmp_path, "check", exit_code, "backup is old | age=90000s;86400;172800")
    write_config(CALM_RESOURCES + f'[[probes.command]]\nname = "backup"\ncommand = ["{plugin}"]\n')
    result = run_cli("status")
    assert result.returncode == expected, result.stdout + result.stderr
    assert "backup is old" in result.stdout


def test_status_json_is_the_snapshot_schema(write_config, tmp_path):
    plugin = _plugin(tmp_path, "check", 2, "replication broken")
    write_config(CALM_RESOURCES + f'[[probes.command]]\nname = "repl"\ncommand = ["{plugin}"]\n')
    result = run_cli("status", "--json")
    assert result.returncode == 2
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["status"] == "CRITICAL"
    assert set(data) >= {"generated_at", "interval_seconds", "host", "probes", "issues"}
    (issue,) = data["issues"]
    assert issue["id"] == "command:repl" and issue["severity"] == "CRITICAL"
    assert issue["summary"] == "replication broken" and issue["since"].endswith("Z")
    probe = next(p for p in data["probes"] if p["name"] == "repl")
    assert set(probe) >= {"name", "kind", "status", "summary", "values", "checked_at", "duration_ms", "error_kind"}


def test_issue_since_is_carried_across_refreshes(write_config, tmp_path):
    plugin = _plugin(tmp_path, "check", 1, "degraded")
    write_config(CALM_RESOURCES + f'[[probes.command]]\nname = "svc"\ncommand = ["{plugin}"]\n')
    assert run_cli("refresh").returncode == 0
    first = json.loads(run_cli("status", "--json").stdout)
    assert run_cli("refresh").returncode == 0
    second = json.loads(run_cli("status", "--json").stdout)
    assert second["generated_at"] != first["generated_at"]
    assert second["issues"][0]["since"] == first["issues"][0]["since"]


def test_config_error_is_one_clear_message_without_traceback(write_config):
    path = write_config("interval_seconds = -5\n[[probes.tcp]]\nname = 'pg'\nhost = 'h'\nport = 'x'\n")
    for command in ("status", "refresh", "refresher", "config"):
        result = run_cli(command)
        assert result.returncode == 3, command
        assert "Traceback" not in result.stderr + result.stdout
        assert result.stdout == ""
        assert result.stderr.startswith(f"aiki-hooks: invalid config {path} (2 problems):")
        assert "interval_seconds = -5: expected a number >= 0.01" in result.stderr
        assert 'probes.tcp[0].port = "x": expected a whole number from 1 to 65535' in result.stderr


def test_debug_flag_shows_the_traceback(write_config):
    write_config("interval_seconds = -5\n")
    result = run_cli("--debug", "status")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unwritable_state_dir_is_one_line(write_config, tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    write_config(f'[state]\ndir = "{blocker}/state"\n')
    result = run_cli("refresh")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_init_writes_private_commented_config_and_never_overwrites(isolated_home):
    result = run_cli("init")
    path = isolated_home / ".config" / "aiki-hooks" / "config.toml"
    assert result.returncode == 0 and f"wrote {path}" in result.stdout
    assert "Detected when this file was written" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run_cli("config").returncode == 0  # what init writes is valid
    path.write_text("interval_seconds = 30\n")
    again = run_cli("init")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert path.read_text() == "interval_seconds = 30\n"
    forced = run_cli("init", "--force")
    assert forced.returncode == 0
    assert (path.parent / "config.toml.bak").read_text() == "interval_seconds = 30\n"


def test_init_detects_qdrant(isolated_home):
    """A real HTTP server on 127.0.0.1 answering like Qdrant, found through $QDRANT_URL."""
    from tests.servers import HttpServer, qdrant_routes

    with HttpServer(qdrant_routes()) as qdrant:
        result = run_cli("init", "--stdout", env=cli_env(QDRANT_URL=qdrant.url + "/"))
    assert result.returncode == 0
    assert f'[[probes.http]]\nname = "qdrant"\nurl = "{qdrant.url}"\nkind = "qdrant"' in result.stdout
    assert f"Qdrant answers on {qdrant.url}" in result.stdout


def test_init_without_qdrant_leaves_the_example_commented(isolated_home):
    import socket

    from tests.servers import closed_port

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6333)) == 0:
            pytest.skip("something listens on localhost:6333 here, which init rightly detects")
    result = run_cli("init", "--stdout", env=cli_env(QDRANT_URL=f"http://127.0.0.1:{closed_port()}"))
    assert result.returncode == 0
    assert "\n[[probes.http]]" not in result.stdout and '# name = "qdrant"' in result.stdout
    assert "no Qdrant at http://127.0.0.1:" in result.stdout


def test_config_prints_effective_values(write_config, monkeypatch):
    write_config('interval_seconds = 15\n[[probes.http]]\nname = "q"\nurl = "http://u:pw@127.0.0.1:1"\n'
                 'api_key_env = "MY_KEY"\n')
    result = run_cli("config", env=cli_env(MY_KEY="s3cr3t-value"))
    assert result.returncode == 0
    assert "interval_seconds = 15.0" in result.stdout
    assert "s3cr3t-value" not in result.stdout and ":pw@" not in result.stdout
    assert 'api_key_env = "MY_KEY"' in result.stdout
    assert "# http q: api_key_env MY_KEY is set in this environment; value not shown" in result.stdout


def test_doctor_reports_problems_with_fixes(write_config, state_dir):
    write_config('[[probes.tcp]]\nname = "pg"\nhost = "127.0.0.1"\nport = 1\ntimeout_seconds = 1\n')
    result = run_cli("doctor")
    assert result.returncode == 1
    assert "[ ok ] config valid" in result.stdout
    assert "[warn] no cache at" in result.stdout
    assert "[warn] no refresher running" in result.stdout
    assert "[FAIL] tcp pg: CRITICAL: connection refused" in result.stdout
    assert "-> nothing accepts connections on 127.0.0.1:1" in result.stdout
    assert "cost scanner" not in result.stdout  # one scanner, in Python: nothing to report


def test_doctor_refuses_a_symlinked_state_dir_as_the_hooks_do(tmp_path):
    """doctor judges the state dir as the hooks and the refresher do (paths.check_private_dir):
    a link to a private dir is not one, so doctor must not call it fine."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    config = quiet_config(tmp_path / "config.toml", link, interval=60)
    result = run_cli("--config", str(config), "doctor")
    assert f"[FAIL] state dir: {link} is a symbolic link, not a directory" in result.stdout, result.stdout
    assert "private (700)" not in result.stdout


def test_hook_read_path_imports_only_the_standard_library():
    """The hooks import aiki_hooks.cycle.cache and .paths on every tool call."""
    code = (
        "import sys; import aiki_hooks.cycle.cache, aiki_hooks.paths; "
        "heavy = {'psutil', 'filelock', 'requests', 'mem0'} & set(sys.modules); print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=REPO)
    assert result.stdout.strip() == "[]", result.stderr


# --------------------------------------------------------------------------- probe --json, metrics (collectors)


def _collector_config(write_config, tmp_path, exit_code=2):
    plugin = _plugin(tmp_path, "check", exit_code, "replication broken")
    write_config(f'[resources]\nenabled = false\n[costs]\nenabled = false\n'
                 f'[[probes.command]]\nname = "repl"\ncommand = ["{plugin}"]\n')


def test_probe_json_measures_when_there_is_no_cache_and_prints_one_compact_line(write_config, tmp_path, state_dir):
    _collector_config(write_config, tmp_path)
    result = run_cli("probe", "--json")
    assert result.returncode == 0, result.stderr  # CRITICAL is in the line, not the exit code
    assert result.stderr == ""
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    data = json.loads(result.stdout)
    assert result.stdout == json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n"  # compact
    assert data["status"] == "CRITICAL" and data["schema_version"] == 1
    assert [p["name"] for p in data["probes"]] == ["repl"]
    cache = read_cache(state_dir / "system_health.json")
    assert cache.state == "fresh" and cache.data["generated_at"] == data["generated_at"]  # published


def test_probe_json_issues_reads_a_fresh_cache_without_probing(write_config, tmp_path):
    _collector_config(write_config, tmp_path)
    assert run_cli("refresh").returncode == 0
    first = json.loads(run_cli("probe", "--json").stdout)
    result = run_cli("probe", "--json", "--issues")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"generated_at", "host", "status", "issues"}
    assert data["generated_at"] == first["generated_at"]  # the cache, not a new cycle
    (issue,) = data["issues"]
    assert (issue["id"], issue["severity"], issue["summary"]) == ("command:repl", "CRITICAL", "replication broken")


def test_metrics_prints_an_exposition_prometheus_parses(write_config, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    _collector_config(write_config, tmp_path, exit_code=1)
    result = run_cli("metrics")
    assert result.returncode == 0, result.stderr
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    (status,) = [s for s in families["aiki_probe_status"].samples if s.labels["probe"] == "repl"]
    assert status.labels == {"probe": "repl", "kind": "command"} and status.value == 1
    assert {s.labels["severity"]: s.value for s in families["aiki_open_issues"].samples}["WARNING"] == 1
    assert families["aiki_probe_status"].type == "gauge"
    # A second run reads the cache the first one published: the same snapshot.
    again = run_cli("metrics")
    assert again.stdout == result.stdout


def test_global_options_before_or_after_the_command_and_usage_errors_exit_3():
    """--config and --debug as users (and the unit's ExecStart) type them, either side of
    the command; a usage error is UNKNOWN (3), not CRITICAL (2)."""
    from aiki_hooks import cli

    parser = cli._parser()
    assert sorted(parser._subparsers._group_actions[0].choices) == sorted(cli.COMMANDS)
    for argv, config, debug in ((["--config", "/a.toml", "refresher"], "/a.toml", False),
                                (["refresher", "--config", "/a.toml", "--debug"], "/a.toml", True),
                                (["--config", "/a.toml", "service", "install", "--config", "/b.toml"], "/b.toml", False),
                                (["service", "--debug", "status"], None, True),
                                (["--debug", "status", "--json"], None, True)):
        args = parser.parse_args(argv)
        assert (str(args.config) if getattr(args, "config", None) else None, getattr(args, "debug", False)) == \
            (config, debug), argv
    result = run_cli("nonsense")
    assert result.returncode == 3 and "costs" in result.stderr and "status" in result.stderr
    result = run_cli("status", "--bogus")
    assert result.returncode == 3 and "unrecognized arguments: --bogus" in result.stderr
