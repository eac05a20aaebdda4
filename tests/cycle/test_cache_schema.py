"""docs/cache.schema.json against the caches the real command writes.

The caches come from `python -m aiki_hooks.cli refresh` and `refresher` run as a user
runs them, with probes of every kind that can run here against real things: the
machine's resources, a Nagios-style script that WARNs (then recovers, then WARNs
again, so the journal has a recurring issue and the cache carries a pattern), an HTTP
server on 127.0.0.1 that answers 500, a TCP port nobody listens on, a systemd unit
(UNKNOWN without a reachable user manager, CRITICAL "not-found" with one), Claude Code
transcripts with a priced and an unpriced model, an external cost tracker, guard
rules, and an output that fails (so the refresher adds its `outputs` check). Every
cache written is validated with jsonschema, and so is the example in docs/cache.md; a
cache with a wrong status must fail.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import jsonschema
import pytest

from aiki_hooks.model.result import utc_iso
from aiki_hooks.model.status import Status
from tests.conftest import CALM_RESOURCES, REPO, cli_env, run_cli
from tests.servers import HttpServer, Reply, closed_port

SCHEMA_PATH = REPO / "docs" / "cache.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def assert_valid(validator, data: dict, what: str) -> None:
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, f"{what} does not match docs/cache.schema.json:\n" + "\n".join(
        f"  {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)


def transcript_line(message_id: str, model: str, session: str, *, output: int) -> str:
    entry = {
        "parentUuid": None, "isSidechain": False, "type": "assistant", "uuid": message_id,
        "timestamp": utc_iso(time.time() - 60), "sessionId": session, "requestId": "req_" + message_id,
        "message": {"id": message_id, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "hi"}],
                    "usage": {"input_tokens": 1200, "cache_creation_input_tokens": 300,
                              "cache_read_input_tokens": 5000, "output_tokens": output}},
    }
    return json.dumps(entry, separators=(",", ":")) + "\n"


def write_setup(tmp_path: Path, http_url: str) -> tuple[Path, Path]:
    """The config (returned with the flag file that makes the backup check pass)."""
    state = tmp_path / "state"
    claude = tmp_path / "claude"
    project = claude / "projects" / "proj"
    project.mkdir(parents=True)
    (project / "s1.jsonl").write_text(
        transcript_line("msg_1", "claude-sonnet-4-5-20250929", "s1", output=400)
        + transcript_line("msg_2", "claude-nova-9", "s1", output=100))
    tracker = tmp_path / "tracker.json"
    tracker.write_text('{"today_usd": 3.9}\n')
    flag = tmp_path / "backup-ok"
    backup = tmp_path / "check_backup.sh"
    backup.write_text(
        "#!/bin/sh\n"
        f"if [ -e '{flag}' ]; then echo 'last backup 1h ago | age=3600s;93600;172800'; exit 0; fi\n"
        "echo 'last backup 27h ago (limit 26h) | age=97200s;93600;172800 size=2GB'\n"
        "exit 1\n")
    backup.chmod(0o755)
    not_a_file = tmp_path / "archive-is-a-directory"
    not_a_file.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f"""
interval_seconds = 60
[state]
dir = "{state}"
[journal]
open_after_cycles = 1
resolve_after_cycles = 1
[costs]
claude_config_dirs = ["{claude}"]
[costs.external]
json_file = "{tracker}"
label = "tracker"
{CALM_RESOURCES}
[[probes.http]]
name = "web"
url = "{http_url}/health"
timeout_seconds = 3
hint = "restart: systemctl --user restart web; logs in ~/web/logs"

[[probes.tcp]]
name = "postgres"
host = "127.0.0.1"
port = {closed_port()}

[[probes.command]]
name = "backup"
command = ["{backup}"]

[[probes.systemd]]
unit = "aiki-schema-test-missing.service"
timeout_seconds = 3

[[guard.rules]]
name = "web-down"
issue = "http:*"
tools = ["mcp__web*"]
decision = "ask"

[[guard.rules]]
name = "disk-full"
value = "disk:/.disk_free_bytes"
below = 1
tools = ["Write", "Edit", "Bash"]

[[outputs]]
type = "cache"
[[outputs]]
type = "journal"
[[outputs]]
type = "jsonl"
name = "archive"
path = "{not_a_file}"
""")
    return config, flag


def by_name(data: dict) -> dict[str, dict]:
    return {probe["name"]: probe for probe in data["probes"]}


@pytest.mark.slow
def test_real_caches_match_the_schema(validator, tmp_path, monkeypatch):
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    with HttpServer({"/health": Reply(status=500, body=b"internal error")}) as server:
        config, flag = write_setup(tmp_path, server.url)
        env = cli_env(AIKI_HOOKS_CONFIG=str(config))
        cache = tmp_path / "state" / "system_health.json"
        seen_kinds: set[str] = set()

        def refresh(what: str) -> dict:
            result = run_cli("refresh", env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            data = json.loads(cache.read_text())
            assert_valid(validator, data, what)
            seen_kinds.update(probe["kind"] for probe in data["probes"])
            return data

        first = refresh("the first cache")
        probes = by_name(first)
        assert probes["web"]["status"] == "CRITICAL" and probes["web"]["values"]["result"] == "bad_status"
        assert probes["web"]["values"]["http_status"] == 500
        assert probes["postgres"]["status"] == "CRITICAL" and probes["postgres"]["error_kind"] == "connection_failed"
        assert probes["backup"]["status"] == "WARNING" and probes["backup"]["values"]["age_seconds"] == 97200
        assert probes["aiki-schema-test-missing.service"]["status"] in ("UNKNOWN", "CRITICAL")
        assert {"cpu", "load", "memory", "swap", "disk:/", "claude-costs", "cost-tracker"} <= set(probes)
        assert probes["claude-costs"]["values"]["today_by_model_usd"]  # a per-model map, not a scalar
        assert probes["claude-costs"]["values"]["today_unpriced_tokens"] > 0  # claude-nova-9 has no price
        assert [rule["name"] for rule in first["hooks"]["guard"]] == ["web-down", "disk-full"]
        assert {"http:web", "tcp:postgres", "command:backup"} <= {issue["id"] for issue in first["issues"]}
        hints = {issue["id"]: issue["hint"] for issue in first["issues"]}
        assert hints["http:web"] == "restart: systemctl --user restart web; logs in ~/web/logs"
        assert hints["tcp:postgres"] is None

        flag.touch()
        recovered = refresh("the cache after the backup check recovered")
        assert "command:backup" not in {issue["id"] for issue in recovered["issues"]}
        flag.unlink()
        refresh("the cache after it failed again")
        last = refresh("the cache with a recurring issue")
        assert [p["issue_id"] for p in last["patterns"]] == ["command:backup"]
        assert all(issue["occurrence_id"] for issue in last["issues"])

        # The long-running refresher adds its own check of the outputs (the jsonl one fails).
        result = run_cli("refresher", "--cycles", "3", "--interval", "0.3", env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        from_refresher = json.loads(cache.read_text())
        assert_valid(validator, from_refresher, "the refresher's cache")
        assert by_name(from_refresher)["outputs"]["status"] == "WARNING"
        assert "output:archive" in {issue["id"] for issue in from_refresher["issues"]}
        seen_kinds.update(probe["kind"] for probe in from_refresher["probes"])

        # The same object on stdout.
        for args in (("status", "--json"), ("probe", "--json")):
            result = run_cli(*args, env=env)
            assert result.returncode in (0, 1, 2, 3), result.stderr
            assert_valid(validator, json.loads(result.stdout), f"`aiki-hooks {' '.join(args)}`")

    assert seen_kinds == {"resources", "systemd", "http", "tcp", "command", "costs", "outputs"}


def test_the_schema_names_exactly_the_statuses_of_status_py(validator):
    defs = validator.schema["$defs"]
    assert defs["status"]["enum"] == [status.name for status in Status]
    assert set(defs["issue"]["properties"]["severity"]["enum"]) == {s.name for s in Status if s is not Status.OK}


def test_the_example_in_docs_cache_md_matches_the_schema(validator):
    import re

    blocks = re.findall(r"```json\n(.*?)```", (REPO / "docs" / "cache.md").read_text(), re.S)
    assert len(blocks) == 1
    assert_valid(validator, json.loads(blocks[0]), "the example in docs/cache.md")


def example_cache() -> dict:
    import re

    blocks = re.findall(r"```json\n(.*?)```", (REPO / "docs" / "cache.md").read_text(), re.S)
    return json.loads(blocks[0])


@pytest.mark.parametrize("hint", [5, "", "two\nlines", "x" * 201])
def test_a_hint_that_is_not_one_bounded_line_fails_validation(validator, hint):
    data = example_cache()
    assert data["issues"][0]["hint"]  # the example shows one
    data["issues"][0]["hint"] = None
    assert_valid(validator, data, "an issue without a hint")
    del data["issues"][0]["hint"]
    assert list(validator.iter_errors(data)), "an issue must say hint: null when its check has none"
    data["issues"][0]["hint"] = hint
    assert list(validator.iter_errors(data)), f"hint {hint!r} passed validation"


@pytest.mark.parametrize("where", ["top", "probe", "issue"])
def test_a_wrong_status_fails_validation(validator, tmp_path, where):
    config = tmp_path / "config.toml"
    state = tmp_path / "state"
    config.write_text(f'[state]\ndir = "{state}"\n[costs]\nenabled = false\n'
                      f'[[probes.tcp]]\nname = "postgres"\nhost = "127.0.0.1"\nport = {closed_port()}\n')
    result = run_cli("refresh", env=cli_env(AIKI_HOOKS_CONFIG=str(config)))
    assert result.returncode == 0, result.stderr
    data = json.loads((state / "system_health.json").read_text())
    assert_valid(validator, data, "the real cache")  # so the failure below is the edit's

    broken = copy.deepcopy(data)
    if where == "top":
        broken["status"] = "DEGRADED"
    elif where == "probe":
        broken["probes"][0]["status"] = "ok"  # the names are upper case
    else:
        broken["issues"][0]["severity"] = "OK"  # an issue is never OK
    errors = list(validator.iter_errors(broken))
    assert errors, f"a cache with a wrong {where} status passed validation"
    assert all(error.validator == "enum" for error in errors), [error.message for error in errors]
