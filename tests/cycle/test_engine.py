"""A whole cycle through the real CLI with every probe kind at once: a fake Qdrant and a
server that accepts and never answers (real HTTP/TCP on 127.0.0.1), a closed port, a
Nagios plugin, and systemd through the fake systemctl on PATH, which replays output
captured from a real systemd 252 user manager (tests/fixtures/systemd/captured): here the
point is the cycle across probe kinds; tests/e2e/test_systemd_probe.py asks the real one."""

import json
import os
import shutil
import time

from tests.conftest import CALM_RESOURCES, FAKE_BIN, cli_env, run_cli
from tests.servers import HttpServer, RawServer, closed_port, never_answer, qdrant_routes

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "systemd", "captured")


def test_full_cycle_all_probe_kinds(write_config, tmp_path):
    scenario = tmp_path / "systemd"
    scenario.mkdir()
    shutil.copyfile(os.path.join(FIXTURES, "show_two_units.stdout"), scenario / "systemctl.stdout")
    shutil.copyfile(os.path.join(FIXTURES, "journal_failed_exit_code.stdout"), scenario / "journalctl.stdout")
    plugin = tmp_path / "check_backup"
    plugin.write_text("#!/bin/sh\necho 'backup 26h old | age=93600s;86400;172800'\nexit 1\n")
    plugin.chmod(0o755)

    with HttpServer(qdrant_routes(api_key="k-123")) as qdrant, RawServer(never_answer) as silent:
        write_config(f"""
interval_seconds = 60
{CALM_RESOURCES}
[[probes.systemd]]
unit = "qdrant.service"
[[probes.systemd]]
unit = "mem0-server.service"
[[probes.http]]
name = "qdrant"
url = "{qdrant.url}"
kind = "qdrant"
api_key_env = "QDRANT_KEY"
[[probes.http]]
name = "silent"
url = "{silent.url}/health"
timeout_seconds = 1.5
[[probes.tcp]]
name = "pg"
host = "127.0.0.1"
port = {closed_port()}
[[probes.command]]
name = "backup"
command = ["{plugin}"]
""")
        env = cli_env(
            PATH=f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}",
            FAKE_SYSTEMD_FIXTURE_DIR=str(scenario),
            QDRANT_KEY="k-123",
        )
        started = time.monotonic()
        result = run_cli("status", "--json", env=env)
        elapsed = time.monotonic() - started

    assert result.returncode == 2, result.stderr
    # Largest probe timeout is 5 s (resources, systemd); the hung server costs only its own 1.5 s.
    assert elapsed < 5.0, elapsed
    snapshot = json.loads(result.stdout)
    probes = {p["name"]: p for p in snapshot["probes"]}
    assert probes["qdrant"]["status"] == "OK" and probes["qdrant"]["values"]["collections"] == 2
    assert probes["silent"]["status"] == "CRITICAL" and probes["silent"]["error_kind"] == "timeout"
    assert probes["silent"]["duration_ms"] < 1500 * 1.1 + 100
    assert probes["pg"]["error_kind"] == "connection_failed"
    assert probes["backup"]["status"] == "WARNING" and probes["backup"]["values"]["age_seconds"] == 93600
    mem0 = probes["mem0-server.service"]
    assert mem0["status"] == "CRITICAL" and mem0["values"]["exit_status"] == 3
    assert mem0["details"][0].startswith("cannot reach qdrant at localhost:6333"), mem0["details"]
    assert probes["qdrant.service"]["kind"] == "systemd" and probes["qdrant.service"]["status"] == "OK"

    issues = [(i["id"], i["severity"]) for i in snapshot["issues"]]
    assert {i for i, s in issues if s == "CRITICAL"} == {"systemd:mem0-server.service", "http:silent", "tcp:pg"}
    assert ("command:backup", "WARNING") in issues
    assert [s for _, s in issues] == sorted((s for _, s in issues), key=["CRITICAL", "WARNING", "UNKNOWN"].index)
    assert "k-123" not in result.stdout
