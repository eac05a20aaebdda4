"""A check's `hint` travels with its result into the issue: through the real `aiki-hooks
refresh` into the cache, the journal's records and `aiki-hooks status`, only while the
check is not OK, made safe (secrets redacted) on the way."""

from __future__ import annotations

import json

from aiki_hooks.config.load import parse_config
from aiki_hooks.cycle.build import check_hints
from aiki_hooks.issues import journal
from aiki_hooks.model.result import ProbeResult, derive_issues
from aiki_hooks.model.status import Status
from tests.conftest import CALM_RESOURCES, cli_env, run_cli
from tests.servers import closed_port

RUNBOOK = "restart: systemctl --user restart aiki-memory; logs in ~/aiki/logs"


def write_setup(tmp_path):
    flag = tmp_path / "queue-ok"
    queue = tmp_path / "check_queue"
    queue.write_text(f"#!/bin/sh\nif [ -e '{flag}' ]; then echo 'queue flowing'; exit 0; fi\n"
                     "echo 'queue stuck: 9000 jobs waiting'; exit 2\n")
    queue.chmod(0o755)
    state = tmp_path / "state"
    # Every level out of reach but the disk's: disk:/ is a WARNING issue whatever the machine.
    resources = CALM_RESOURCES.replace("disk_warn_percent = 100", "disk_warn_percent = 0")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[state]
dir = "{state}"
[journal]
open_after_cycles = 1
resolve_after_cycles = 1
[costs]
enabled = false
{resources}
hint = {{disk = "du -xh ~/aiki | sort -h | tail", memory = "restart the indexer"}}

[[probes.command]]
name = "queue"
command = ["{queue}"]
hint = "{RUNBOOK}"

[[probes.command]]
name = "healthy"
command = ["/bin/true"]
hint = "never shown: this check is OK"

[[probes.tcp]]
name = "postgres"
host = "127.0.0.1"
port = {closed_port()}
hint = "pg_ctl restart; password=hunter2hunter2 is in ~/.pgpass"
""")
    return config, state, flag


def test_the_hint_reaches_cache_journal_and_status_only_while_not_ok(tmp_path):
    config, state, flag = write_setup(tmp_path)
    env = cli_env(AIKI_HOOKS_CONFIG=str(config))
    result = run_cli("refresh", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads((state / "system_health.json").read_text())
    hints = {issue["id"]: issue["hint"] for issue in data["issues"]}
    assert hints["command:queue"] == RUNBOOK
    assert hints["tcp:postgres"] == "pg_ctl restart; password=*** is in ~/.pgpass"  # redacted on the way
    assert hints["disk:/"] == "du -xh ~/aiki | sort -h | tail"
    assert "command:healthy" not in hints
    assert "never shown" not in json.dumps(data)
    assert "hunter2" not in (state / "system_health.json").read_text()

    opened = {r["issue_id"]: r for r in journal.read(str(state)) if r["transition"] == "opened"}
    assert opened["command:queue"]["hint"] == RUNBOOK
    assert opened["tcp:postgres"]["hint"] == "pg_ctl restart; password=*** is in ~/.pgpass"

    status = run_cli("status", env=env)
    lines = status.stdout.splitlines()
    queue_line = next(i for i, line in enumerate(lines) if "command:queue" in line and "queue stuck" in line)
    assert lines[queue_line + 1].split() == ["hint:", *RUNBOOK.split()]
    assert "never shown" not in status.stdout and "hunter2" not in status.stdout

    flag.touch()  # the queue recovers: its issue and its hint are gone, the resolution carries none
    assert run_cli("refresh", env=env).returncode == 0
    data = json.loads((state / "system_health.json").read_text())
    assert "command:queue" not in {issue["id"] for issue in data["issues"]}
    assert RUNBOOK not in json.dumps(data)
    (resolved,) = [r for r in journal.read(str(state)) if r["transition"] == "resolved"]
    assert resolved["issue_id"] == "command:queue" and resolved["hint"] is None


class Stub:
    def __init__(self, kind, names):
        self.kind, self.names, self.timeout_seconds = kind, tuple(names), 1.0

    def check(self):
        return []


def test_check_hints_by_result_name_for_resources_costs_and_probes():
    config = parse_config({
        "resources": {"disk_paths": ["/", "/home"], "hint": {"disk": "clean up", "cpu": "nice it"}},
        "costs": {"hint": "use a cheaper model"},
        "probes": {"tcp": [{"name": "db", "host": "h", "port": 1, "hint": "restart\u200b db"},
                           {"name": "cache", "host": "h", "port": 2}]},
    })
    probes = [Stub("resources", ["cpu", "load", "memory", "swap", "disk:/", "disk:/home"]),
              Stub("costs", ["claude-costs", "cost-tracker"]), Stub("tcp", ["db", "cache"])]
    assert check_hints(config, probes) == {
        "cpu": "nice it", "disk:/": "clean up", "disk:/home": "clean up",
        "claude-costs": "use a cheaper model", "cost-tracker": "use a cheaper model", "db": "restart\u200b db",
    }


def test_derive_issues_gives_each_finding_of_a_result_its_hint():
    now = 1000.0
    costs = ProbeResult(name="claude-costs", kind="costs", status=Status.CRITICAL, summary="over budget",
                        findings=(_finding("costs:today", Status.CRITICAL), _finding("costs:block", Status.WARNING),
                                  _finding("costs:week", Status.OK)))
    plain = ProbeResult(name="db", kind="tcp", status=Status.CRITICAL, summary="refused")
    issues = derive_issues([costs, plain], [], now, {"claude-costs": "use sonnet"})
    assert {issue.id: issue.hint for issue in issues} == {"costs:today": "use sonnet", "costs:block": "use sonnet",
                                                          "tcp:db": None}
    # It round-trips through the cache's form.
    from aiki_hooks.model.result import Issue

    assert [Issue.from_dict(issue.to_dict()) for issue in issues] == list(issues)


def _finding(issue_id, status):
    from aiki_hooks.model.result import Finding

    return Finding(id=issue_id, status=status, summary=issue_id)
