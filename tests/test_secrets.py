"""No planted secret reaches what a command prints, nor the state it writes.

A config holds distinct secrets in every place a user puts one (a URL's password, path
token and ?token=, a key written where a variable name belongs, mem0's host credentials,
the value of a headers_env variable, a webhook URL's token, a DSN a plugin prints). Every
command of cli.COMMANDS runs as a real process with a valid and with an invalid variant
of it, and its stdout and stderr are searched for each secret.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from aiki_hooks import cli

from .conftest import cli_env, run_cli
from tests.servers import HttpServer, Reply, closed_port

# Each secret is distinct, so a finding names the place it leaked from.
URL_PASSWORD = "UrlPw4planted1Secret"
PATH_TOKEN = "Tk9plantedSecretPath2x"
QUERY_TOKEN = "QueryPlantedSecret3"
API_KEY = "sk-ant-api03-plantedKeyValue4abcdEFGH"
GENERIC_KEY = "plantedGenericToken7abcdef123456"
MEM0_PASSWORD = "Mem0PlantedPw6xyz"
MEM0_KEY = "Mem0KeyPlanted8qrstuvWXYZ"
HEADER_BEARER = "HeaderPlantedBearer10zz"
WEBHOOK_TOKEN = "WebhookPlantedTok8n1234"
WEBHOOK_QUERY = "WebhookQuery9planted"
DSN_PASSWORD = "DsnPlantedPw5abc"
TCP_PASSWORD = "TcpPlantedPw11abc"
SECRETS = (URL_PASSWORD, PATH_TOKEN, QUERY_TOKEN, API_KEY, GENERIC_KEY, MEM0_PASSWORD, MEM0_KEY, HEADER_BEARER,
           WEBHOOK_TOKEN, WEBHOOK_QUERY, DSN_PASSWORD, TCP_PASSWORD)

ENV = {"API_KEY_VAR": API_KEY, "MEM0_KEY_VAR": MEM0_KEY, "HOOK_HEADERS": f"Authorization: Bearer {HEADER_BEARER}"}


def _runs(settings: str) -> dict[str, list[list[str]]]:
    """The argv lists each command is run with (every command of cli.COMMANDS)."""
    return {
        "status": [["status"], ["status", "--json"]],
        "refresh": [["refresh"]],
        "refresher": [["refresher", "--cycles", "1"]],
        "config": [["config"]],
        "init": [["init", "--stdout"]],
        "doctor": [["doctor"]],
        "statusline": [["statusline"]],
        "preview": [["preview"]],
        "probe": [["probe", "--json"], ["probe", "--issues"]],
        "metrics": [["metrics"]],
        "service": [["service", "status"], ["service", "install", "--dry-run"]],
        "install-hooks": [["install-hooks", "--dry-run", "--settings", settings]],
        "uninstall-hooks": [["uninstall-hooks", "--dry-run", "--settings", settings]],
        "costs": [["costs", "--days", "1"]],
        "mem0-flush": [["mem0-flush", "--force"]],
        "issues": [["issues"], ["issues", "--json"]],
    }


def test_every_command_is_covered():
    assert set(_runs("x")) == set(cli.COMMANDS)


def _echo_headers(request) -> Reply:
    # A hostile (or merely verbose) endpoint that answers with the request's headers.
    return Reply(status=500, body=json.dumps(dict(request.headers)).encode())


def _valid(state, port: int, dead: int) -> str:
    return f"""
interval_seconds = 60
[state]
dir = "{state}"
[resources]
enabled = false
[costs]
enabled = false

[[probes.http]]
name = "api"
url = "http://alice:{URL_PASSWORD}@127.0.0.1:{port}/health/{PATH_TOKEN}?token={QUERY_TOKEN}"
api_key_env = "API_KEY_VAR"

[[probes.command]]
name = "db"
command = ["/bin/sh", "-c", "echo 'db down: postgres://app:{DSN_PASSWORD}@127.0.0.1/db'; exit 2"]

[mem0]
backend = "rest"
host = "http://mem0user:{MEM0_PASSWORD}@127.0.0.1:{dead}"
api_key_env = "MEM0_KEY_VAR"

[[outputs]]
type = "cache"
[[outputs]]
type = "journal"
[[outputs]]
type = "mem0"
[[outputs]]
type = "webhook"
name = "hook"
url = "http://127.0.0.1:{port}/hooks/{WEBHOOK_TOKEN}?token={WEBHOOK_QUERY}"
headers_env = "HOOK_HEADERS"
what = "snapshot"
retries = 0
timeout_seconds = 2
"""


def _invalid(state) -> str:
    # Each value is refused at load; each carries a secret.
    return f"""
[state]
dir = "{state}"

[[probes.http]]
name = "api"
url = "ftp://alice:{URL_PASSWORD}@example.org/{PATH_TOKEN}?token={QUERY_TOKEN}"
api_key_env = "{API_KEY}"

[[probes.http]]
name = "api2"
url = "http://example.org/a b/{PATH_TOKEN}?token={QUERY_TOKEN}"
api_key_env = "{GENERIC_KEY}"

[[probes.tcp]]
name = "db"
host = "app:{TCP_PASSWORD}@db.example.org"
port = 99999

[[probes.command]]
name = "nul"
command = ["/bin/echo", "--password={DSN_PASSWORD}\\u0000"]

[mem0]
backend = "rest"
host = "ftp://mem0user:{MEM0_PASSWORD}@mem0.example.org"
api_key_env = "{MEM0_KEY}"

[[outputs]]
type = "webhook"
url = "http://127.0.0.1:1/hooks/{WEBHOOK_TOKEN}?token={WEBHOOK_QUERY} x"
headers_env = "Authorization: Bearer {HEADER_BEARER}"
"""


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def _run_all(config, settings, env) -> dict[str, str]:
    found = {}
    for argvs in _runs(str(settings)).values():
        for argv in argvs:
            result = run_cli("--config", str(config), *argv, env=env, timeout=60)
            assert "Traceback" not in result.stdout + result.stderr, (argv, result.stderr)
            leaked = _leaks(result.stdout + result.stderr)
            if leaked:
                found[" ".join(argv)] = leaked
    return found


def _wait_for_flush(state) -> None:
    """The refresh starts a detached mem0-flush; let it finish before the state is read."""
    lock = state / "mem0-flush.lock"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            return
        if not pid or not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.05)


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"model": "opus"}\n')
    return path


def test_no_command_echoes_a_secret_of_a_valid_config(tmp_path, settings):
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    with HttpServer({f"/health/{PATH_TOKEN}": _echo_headers, f"/hooks/{WEBHOOK_TOKEN}": _echo_headers}) as server:
        config.write_text(_valid(state, server.port, closed_port()))
        found = _run_all(config, settings, cli_env(**ENV))
    assert found == {}
    _wait_for_flush(state)
    stored = {}
    for path in state.rglob("*"):
        if path.is_file():
            leaked = _leaks(path.read_bytes().decode("utf-8", "replace"))
            if leaked:
                stored[path.name] = leaked
    assert stored == {}
    assert (state / "system_health.json").exists()  # the state was written, so searching it meant something


def test_no_command_echoes_a_secret_of_an_invalid_config(tmp_path, settings):
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(_invalid(state))
    env = cli_env(**ENV)
    result = run_cli("--config", str(config), "config", env=env)
    assert result.returncode == 3
    # Every planted value was refused (so each was in a message that could have quoted it).
    for key in ("probes.http[0].url", "probes.http[0].api_key_env", "probes.http[1].url",
                "probes.http[1].api_key_env", "probes.tcp[0].host", "probes.tcp[0].port", "probes.command[0].command",
                "mem0.host", "mem0.api_key_env", "outputs[0].url", "outputs[0].headers_env"):
        assert key in result.stderr, (key, result.stderr)
    assert "looks like a key, not a variable name" in result.stderr
    assert _run_all(config, settings, env) == {}
