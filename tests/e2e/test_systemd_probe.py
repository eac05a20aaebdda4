"""The systemd probe against a real systemd user manager (tests/e2e/user-manager.sh): real
units that run, fail, crash, dump core, loop, are missing or masked, asked with the real
systemctl and journalctl inside the manager's namespace through the real run_command.

The units are those tests/fixtures/systemd/capture.py makes for the captured fixtures, so
what the unit tests replay is what is checked live here. Expectations come from systemd
itself (`manager.show`) where a run decides them (restart counts, whether a core could be
dumped), not from copies of the captures.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Mapping, Sequence

import pytest

from aiki_hooks.model.status import Status
from aiki_hooks.probes.systemd import Scope, SystemdProbe, SystemdProbeConfig, last_run_lines
from aiki_hooks.proc import CommandOutput, CommandRunner, run_command

from ..fixtures.systemd.capture import make_units, start_units
from .user_manager import UserManager

pytestmark = pytest.mark.slow


def inside(manager: UserManager) -> CommandRunner:
    """run_command, executed in the manager's namespace as a logged-in user would type it."""

    def run(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> CommandOutput:
        output = run_command(["nsenter", "-m", "-t", str(manager.pid), "--", *argv], env=manager.env(env),
                             timeout=timeout)
        return dataclasses.replace(output, argv=tuple(argv))

    return run


def probe(manager: UserManager, *units: str, scope: Scope = "user", timeout: float = 5.0) -> SystemdProbe:
    configs = [SystemdProbeConfig(unit=unit, scope=scope, name=unit, timeout_seconds=timeout) for unit in units]
    return SystemdProbe(configs, scope=scope, run=inside(manager))


def test_every_kind_of_unit_in_one_call(user_manager: UserManager) -> None:
    make_units(user_manager)
    start_units(user_manager)
    units = ["qdrant.service", "mem0-server.service", "embedder.service", "indexer.service", "worker.service",
             "backup.service", "nope.service", "legacy.service", "agent@bar"]
    # Caught between two runs of the loop, as the agent would most often see it.
    user_manager.wait_for(lambda: user_manager.show("worker.service", "SubState")["SubState"] == "auto-restart",
                          timeout=10, what="worker.service between two runs", step=0.02)
    results = {r.name: r for r in probe(user_manager, *units).check()}

    qdrant = results["qdrant.service"]
    assert qdrant.status is Status.OK
    assert qdrant.summary.startswith("active (running) ") and ", 2 restarts, " in qdrant.summary
    assert qdrant.values["memory_bytes"] and qdrant.values["main_pid"]

    mem0 = results["mem0-server.service"]
    assert mem0.status is Status.CRITICAL
    assert mem0.summary.startswith("failed (exit-code) since ") and mem0.summary.endswith("last run: exit status 3")
    assert (mem0.values["exit_status"], mem0.values["exit_signal"], mem0.values["core_dumped"]) == (3, None, False)
    # Its second run's lines only, the error-priority line first, then the traceback's end.
    assert mem0.details == (
        "cannot reach qdrant at localhost:6333 (run 2)",
        "connect()",
        'File "/home/aiki-tester/bin/mem0-server", line 12, in connect',
        'raise ConnectionRefusedError(111, "Connection refused")',
        "ConnectionRefusedError: [Errno 111] Connection refused",
    )

    embedder = results["embedder.service"]
    assert (embedder.status, embedder.values["exit_signal"]) == (Status.CRITICAL, "SIGKILL")
    assert embedder.summary.startswith("failed (signal) since ")
    assert embedder.summary.endswith("last run: killed by SIGKILL")

    indexer = results["indexer.service"]
    assert indexer.status is Status.CRITICAL and indexer.values["exit_signal"] == "SIGSEGV"
    assert indexer.details == ("indexer starting",)
    # Whether the kernel wrote a core depends on its core_pattern: systemd says which it was.
    if user_manager.show("indexer.service", "Result")["Result"] == "core-dump":
        assert indexer.values["core_dumped"] is True
        assert indexer.summary.endswith("last run: core dumped (SIGSEGV)")
    else:
        assert indexer.values["core_dumped"] is False
        assert indexer.summary.endswith("last run: killed by SIGSEGV")

    worker = results["worker.service"]
    restarts = worker.values["restarts"]
    assert isinstance(restarts, int) and restarts >= 3
    assert worker.status is Status.CRITICAL
    assert worker.summary == f"activating (auto-restart), {restarts} restarts, last run: exit status 3"
    # A later run may have begun between systemctl and journalctl; no earlier run may show.
    assert worker.details[0] == f"worker attempt {restarts + 1}: cannot reach qdrant at localhost:6333"
    assert len(worker.details) <= 2

    assert (results["backup.service"].status, results["backup.service"].summary) == (Status.CRITICAL,
                                                                                     "inactive (dead)")
    assert (results["nope.service"].status, results["nope.service"].summary) == (Status.CRITICAL, "unit not found")
    legacy = results["legacy.service"]
    assert (legacy.status, legacy.summary, legacy.values["load_state"]) == (Status.CRITICAL,
                                                                            "inactive (dead), masked", "masked")
    agent = results["agent@bar"]
    assert agent.status is Status.OK and agent.summary.startswith("active (running) ")
    for result in results.values():
        assert result.error_kind is None, (result.name, result.summary)


def test_last_run_lines_of_a_real_crash(user_manager: UserManager) -> None:
    user_manager.write_unit("crashy.service", "[Service]\nExecStart=/bin/sh -c "
                            "'echo first line; echo token=sk-ant-api03-AbCdEf0123456789xyz >&2; exit 7'\n")
    user_manager.systemctl("daemon-reload")
    user_manager.systemctl("start", "crashy.service")
    user_manager.wait_for(lambda: user_manager.show("crashy.service", "ActiveState")["ActiveState"] == "failed",
                          timeout=10, what="crashy.service to fail")
    invocation = user_manager.show("crashy.service", "InvocationID")["InvocationID"]
    # journald stores what the unit wrote asynchronously: on a loaded machine the unit can
    # be `failed` before its lines are readable.
    user_manager.wait_for(lambda: len(last_run_lines("crashy", scope="user", since=None, invocation_id=invocation,
                                                     run=inside(user_manager))) >= 2,
                          timeout=10, what="journald to store crashy.service's lines")
    lines = last_run_lines("crashy", scope="user", since=None, invocation_id=invocation, run=inside(user_manager))
    assert lines == ("first line", "token=***")
    # The same unit asked as a system unit: the lines are there, the cgroup is not a system one.
    assert last_run_lines("crashy", scope="system", since=None, run=inside(user_manager)) == lines
    assert last_run_lines("crashy", scope="user", since=time.time() + 60, run=inside(user_manager)) == ()


def test_a_restart_loop_counts_its_restarts(user_manager: UserManager) -> None:
    """Restart count and the last run's exit from one show, while the loop keeps going."""
    user_manager.write_unit("loop.service", "[Unit]\nStartLimitIntervalSec=0\n[Service]\n"
                            "ExecStart=/bin/sh -c 'echo started; exit 4'\nRestart=always\nRestartSec=300ms\n")
    user_manager.systemctl("daemon-reload")
    user_manager.systemctl("start", "--no-block", "loop.service")
    user_manager.wait_for(lambda: int(user_manager.show("loop.service", "NRestarts")["NRestarts"]) >= 2,
                          timeout=20, what="loop.service to restart twice")
    for _ in range(100):  # between two runs
        (result,) = probe(user_manager, "loop.service").check()
        if result.values["sub_state"] == "auto-restart":
            break
        time.sleep(0.02)
    assert result.status is Status.CRITICAL
    assert result.summary == f"activating (auto-restart), {result.values['restarts']} restarts, last run: exit status 4"
    assert result.details[0] == "started"


def test_a_system_scope_lookup_without_a_system_manager_is_unknown(user_manager: UserManager) -> None:
    started = time.monotonic()
    results = probe(user_manager, "qdrant.service", "mem0-server.service", scope="system").check()
    elapsed = time.monotonic() - started
    assert [(r.status, r.error_kind) for r in results] == [(Status.UNKNOWN, "no_bus")] * 2
    assert results[0].summary == "systemctl --system: Failed to connect to bus: No such file or directory"
    assert elapsed < 2.0
