"""Hostile state (issue 13, items 1, 5, 6, 9, 10), with real parts: the real hook
scripts and command line in child processes, a state dir really owned by `nobody`, real
FIFOs and sparse 2 GB files, real tiny tmpfs mounts that fill up, real bursts of 50
hooks on 2 cores, a real refresher stopped by a real SIGTERM.

Some need root (chown to another uid, mount): they are skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from aiki_hooks import paths
from aiki_hooks.cycle.cache import read_cache, write_cache
from aiki_hooks.hooklib import runtime
from aiki_hooks.issues import journal
from aiki_hooks.model.result import utc_iso

from .conftest import REPO, cli_env, quiet_config, wait_for
from tests.hooklib.test_hooks import HOOKS, context_of, issue, journaled_snapshot, run_hook, snapshot

NOBODY = 65534
ROOT = os.getuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chown to another uid, mount)")


def hook_env_for(tmp_path: Path, state: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
    env.update(HOME=str(tmp_path), AIKI_HOOKS_STATE_DIR=str(state), PYTHONPATH=str(REPO), **extra)
    return env


def stale_snapshot(**kwargs) -> dict:
    return snapshot(generated_at=time.time() - 3600, interval=60.0, **kwargs)


def marker_script(path: Path, marker: Path, *, sleep: float = 0) -> Path:
    """An executable that appends its pid to *marker* (then sleeps): what a planted or
    real restart command would run."""
    path.write_text(f"#!/bin/sh\necho $$ >> '{marker}'\n" + (f"sleep {sleep}\n" if sleep else ""))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str):
    """A real, tiny tmpfs: writes past *size* fail with ENOSPC."""
    mountpoint.mkdir(mode=0o700, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of *directory* to the last byte; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "ab", buffering=0) as file:
        for size in (64 * 1024, 4096, 512, 64, 1):
            while True:
                try:
                    file.write(b"\0" * size)
                except OSError:
                    break
    return filler


def pids_in(marker: Path) -> list[int]:
    try:
        return [int(line) for line in marker.read_text().split()]
    except FileNotFoundError:
        return []


def kill_quietly(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- 1. trust


@pytest.mark.parametrize("info, expected", [
    (None, "does not exist"),
    (os.stat_result((stat.S_IFLNK | 0o777, 0, 0, 1, 1000, 1000, 0, 0, 0, 0)), "is a symbolic link"),
    (os.stat_result((stat.S_IFREG | 0o600, 0, 0, 1, 1000, 1000, 0, 0, 0, 0)), "is not a directory"),
    (os.stat_result((stat.S_IFDIR | 0o700, 0, 0, 1, NOBODY, 0, 0, 0, 0, 0)), "owned by uid 65534, not by this user"),
    (os.stat_result((stat.S_IFDIR | 0o777, 0, 0, 1, 1000, 1000, 0, 0, 0, 0)), "writable by group and others"),
    (os.stat_result((stat.S_IFDIR | 0o770, 0, 0, 1, 1000, 1000, 0, 0, 0, 0)), "writable by its group"),
    (os.stat_result((stat.S_IFDIR | 0o1703, 0, 0, 1, 1000, 1000, 0, 0, 0, 0)), "writable by others"),
    (os.stat_result((stat.S_IFDIR | 0o700, 0, 0, 1, 1000, 1000, 0, 0, 0, 0)), None),
    (os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 1, 1000, 1000, 0, 0, 0, 0)), None),
])
def test_judge_private_dir(info, expected):
    reason = paths.judge_private_dir("/s", info, uid=1000)
    if expected is None:
        assert reason is None
    else:
        assert expected in reason and reason.startswith("/s ") and "\n" not in reason


def _plant(state: Path, tmp_path: Path, *, cache: dict) -> dict:
    """What someone else would put in a state dir they control: a restart command that
    leaves a marker, a cache with a guard rule and an issue, and journal.jsonl and
    hook_events.jsonl linked to a root-owned file."""
    marker = tmp_path / "planted-ran"
    target = tmp_path / "root-owned.txt"
    target.write_text("root's file\n")
    target.chmod(0o600)
    script = marker_script(tmp_path / "planted.sh", marker)
    (state / "refresher.restart.json").write_text(json.dumps({"argv": [str(script)]}))
    (state / "system_health.json").write_text(json.dumps(cache))
    (state / "journal.jsonl").symlink_to(target)
    (state / "hook_events.jsonl").symlink_to(target)
    return {"marker": marker, "target": target}


def _untrusted_dir(tmp_path: Path, how: str) -> Path:
    if how == "symlink":
        real = tmp_path / "real-state"
        real.mkdir(mode=0o700)
        state = tmp_path / "state"
        state.symlink_to(real)
        return state
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    if how == "other-owner":
        os.chown(state, NOBODY, NOBODY)
    return state


PLANTED_GUARD = {"name": "planted", "tools": ["*"], "issue": "*", "min_severity": "WARNING", "decision": "deny"}


@needs_root
@pytest.mark.parametrize("how", ["other-owner", "world-writable", "symlink"])
def test_hooks_in_an_untrusted_state_dir_say_so_and_do_nothing_else(tmp_path, how):
    """As root, a state dir owned by `nobody` (and world-writable), or a root-owned one
    anyone can write, or a symlink: no planted command runs, no planted link is written
    through, no planted context or guard rule is taken; SessionStart says why in one line."""
    state = _untrusted_dir(tmp_path, how)
    env = hook_env_for(tmp_path, state)
    # A stale cache: SessionStart would start the planted restart command.
    planted = _plant(state, tmp_path, cache=stale_snapshot(issues=[issue("tcp:pg")]))
    if how == "other-owner":
        for entry in os.listdir(state):
            os.lchown(state / entry, NOBODY, NOBODY)
    before = sorted(os.listdir(state))

    start = run_hook("session_start", {"session_id": "s1", "source": "startup", "cwd": "/p"}, env)
    context = context_of(start, "SessionStart")
    assert context.startswith("System health unavailable: aiki-hooks does not trust its state directory (")
    assert "\n" not in context and "tcp:pg" not in context
    assert {"other-owner": "owned by uid 65534", "world-writable": "writable by group and others",
            "symlink": "is a symbolic link"}[how] in context

    # The guard rule and issue of a fresh planted cache are not taken either.
    (state / "system_health.json").write_text(json.dumps(journaled_snapshot(issues=[issue("tcp:pg")],
                                                                            guard=[PLANTED_GUARD])))
    tool = run_hook("pre_tool_use", {"session_id": "s1", "tool_name": "Bash", "cwd": "/p"}, env)
    assert tool.returncode == 0 and tool.stdout == b""
    assert b"state dir not trusted" in tool.stderr
    again = context_of(run_hook("session_start", {"session_id": "s2", "source": "startup"}, env), "SessionStart")
    assert "tcp:pg" not in again
    line = run_hook("statusline", {"session_id": "s1"}, env)
    assert line.returncode == 0 and line.stdout.decode().startswith("aiki ? state dir not trusted")

    time.sleep(1.0)  # a spawned command would have run by now
    assert not planted["marker"].exists()
    assert planted["target"].read_text() == "root's file\n"
    assert sorted(os.listdir(state)) == before  # no session memory, journal, lock or spool created


@needs_root
def test_library_writers_refuse_an_untrusted_state_dir(tmp_path):
    from aiki_hooks.install.daemon import DaemonError, stop_daemon
    from aiki_hooks.outputs.mem0.spool import Spool

    state = _untrusted_dir(tmp_path, "other-owner")
    record = journal.make_record(at=1.0, kind="transition", record_id="r1")
    with pytest.raises(paths.UntrustedStateError, match="owned by uid 65534"):
        journal.append(str(state), [record])
    with pytest.raises(paths.UntrustedStateError, match="owned by uid 65534"):
        write_cache(state / "system_health.json", snapshot())
    with pytest.raises(paths.UntrustedStateError, match="owned by uid 65534"):
        Spool(state)
    with pytest.raises(paths.UntrustedStateError, match="owned by uid 65534"):
        paths.ensure_private_dir(state)

    class Config:
        state_dir = state

    with pytest.raises(DaemonError, match="not using the state dir: .*owned by uid 65534"):
        stop_daemon(Config())
    assert os.listdir(state) == []


def test_writers_never_follow_a_planted_link_even_in_a_trusted_dir(tmp_path):
    """O_NOFOLLOW wherever a state file is opened for writing: a link in place of a
    journal, a lock, the hooks' event log or a session file is refused, its target untouched."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "target.txt"
    target.write_text("untouched\n")
    for name in ("journal.jsonl", "hook_events.jsonl", "system_health.json.lock", f"journal.seq.{os.getpid()}.tmp"):
        (state / name).symlink_to(target)
    (state / "sessions").mkdir(mode=0o700)
    (state / "sessions" / f"sess.json.{os.getpid()}.tmp").symlink_to(target)

    with pytest.raises(OSError, match="journal.jsonl is a symbolic link, not a regular file"):
        journal.append(str(state), [journal.make_record(at=1.0, kind="transition", record_id="r1")])
    with pytest.raises(OSError, match="system_health.json.lock is a symbolic link"):
        write_cache(state / "system_health.json", snapshot())
    runtime.record_told(str(state), "sess", "SessionStart", "told", now=1.0)
    runtime.save_session(str(state), "sess", {"fresh": True})
    (state / "journal.jsonl").unlink()
    written = journal.append(str(state), [journal.make_record(at=1.0, kind="transition", record_id="r1")])
    assert written[0]["seq"] == 1  # journaled; the seq file (its temp name a link) is only a hint
    assert target.read_text() == "untouched\n"
    assert not (state / "sessions" / "sess.json").exists()


# --------------------------------------------------------------------------- 5. hooks under load


def _burst(tmp_path: Path, env: dict, *, count: int = 50, hook: str = "session_start", nice: bool = False,
           busy: int = 0) -> tuple[Counter, list[bytes]]:
    """*count* real hooks started at once, pinned to 2 CPUs (niced, with *busy* CPU hogs
    at normal priority on the same CPUs); their exit codes and outputs."""
    cpus = sorted(os.sched_getaffinity(0))[:2]

    def pin():
        os.sched_setaffinity(0, cpus)

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin) for _ in range(busy)]
    try:
        argv = [sys.executable, str(HOOKS / f"{hook}.py")]
        if nice:
            argv = ["nice", "-n", "19", *argv]
        procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  env=env, preexec_fn=pin) for _ in range(count)]
        for number, proc in enumerate(procs):
            payload = {"session_id": f"burst-{number}", "source": "startup", "cwd": "/p", "tool_name": "Bash"}
            with contextlib.suppress(BrokenPipeError):  # a hook past its deadline no longer reads
                proc.stdin.write(json.dumps(payload).encode())
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        outputs = [proc.stdout.read() for proc in procs]
        codes = Counter(proc.wait(timeout=60) for proc in procs)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return codes, outputs


def _valid_outputs(outputs: list[bytes], event: str) -> int:
    answered = 0
    for out in outputs:
        if out.strip():
            assert json.loads(out)["hookSpecificOutput"]["hookEventName"] == event
            answered += 1
    return answered


def test_a_burst_of_50_hooks_on_2_cores_all_exit_0(tmp_path):
    """The deadline timer used to be re-armed after the answer and outlive the hook's
    code: firing during interpreter shutdown, where SIGALRM is back to its default action,
    it killed hooks that had answered (exit 142, ~7 of 50 per burst here)."""
    state = tmp_path / "state"
    write_cache(state / "system_health.json", journaled_snapshot(issues=[issue("tcp:pg")]))
    env = hook_env_for(tmp_path, state)
    codes: Counter = Counter()
    answered = 0
    for _ in range(3):
        round_codes, outputs = _burst(tmp_path, env)
        codes += round_codes
        answered += _valid_outputs(outputs, "SessionStart")
    assert codes == Counter({0: 150}), codes
    assert answered > 0


def test_a_niced_burst_on_busy_cores_all_exit_0(tmp_path):
    state = tmp_path / "state"
    write_cache(state / "system_health.json", journaled_snapshot(issues=[issue("tcp:pg")]))
    env = hook_env_for(tmp_path, state)
    codes, outputs = _burst(tmp_path, env, nice=True, busy=4)
    assert codes == Counter({0: 50}), codes
    _valid_outputs(outputs, "SessionStart")


@pytest.mark.parametrize("hook", ["session_start", "pre_tool_use"])
def test_a_burst_on_a_stale_cache_starts_one_refresh(tmp_path, hook):
    """Counted as real processes: the restart command each start runs appends its pid.
    It runs for longer than the burst, as a slow refresh would."""
    state = tmp_path / "state"
    write_cache(state / "system_health.json", stale_snapshot())
    marker = tmp_path / "started"
    script = marker_script(tmp_path / "refresher.sh", marker, sleep=30)
    (state / "refresher.restart.json").write_text(json.dumps({"argv": [str(script)]}))
    env = hook_env_for(tmp_path, state)
    try:
        codes, outputs = _burst(tmp_path, env, hook=hook)
        time.sleep(0.5)  # a start still on its way would show now
        started = pids_in(marker)
        assert len(started) == 1, started
        assert codes == Counter({0: 50}), codes
        event = "SessionStart" if hook == "session_start" else "PreToolUse"
        said = [json.loads(out)["hookSpecificOutput"]["additionalContext"] for out in outputs if out.strip()]
        # At most one says so (the one that started it may have met its deadline before answering).
        assert sum("A background refresh was started." in text for text in said) <= 1
        assert _valid_outputs(outputs, event) == len(said)
    finally:
        kill_quietly(pids_in(marker))


def test_a_burst_on_a_stale_cache_runs_one_real_refresh(tmp_path):
    """The real `aiki-hooks refresh --if-idle`: one cycle in all (its command probe
    leaves one line per run), also for the hooks that read the stale cache before that
    refresh replaced it and asked after it had finished."""
    state = tmp_path / "state"
    counter = tmp_path / "cycles"
    probe = tmp_path / "probe.sh"
    probe.write_text(f"#!/bin/sh\necho run >> '{counter}'\necho fine\n")
    probe.chmod(0o755)
    config = quiet_config(tmp_path / "config.toml", state, interval=60,
                          extra=f'[[probes.command]]\nname = "count"\ncommand = ["{probe}"]\n')
    write_cache(state / "system_health.json", stale_snapshot())
    env = hook_env_for(tmp_path, state, AIKI_HOOKS_CONFIG=str(config))
    codes, _ = _burst(tmp_path, env)
    wait_for(lambda: read_cache(state / "system_health.json").state == "fresh", timeout=30)
    time.sleep(2.0)  # a second refresh, had one started, would have run its probe by now
    later, _ = _burst(tmp_path, env, count=10)  # fresh now: nothing more to start
    time.sleep(1.0)
    assert counter.read_text().split() == ["run"]
    assert codes + later == Counter({0: 60}), codes + later


# --------------------------------------------------------------------------- 6. blocking reads


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _sparse_2gb(path: Path) -> None:
    with open(path, "wb") as file:
        file.truncate(2 * 1024**3)


HOSTILE_CACHES = {"fifo": (_fifo, "system_health.json is a FIFO, not a regular file"),
                  "2gb": (_sparse_2gb, "system_health.json is 2.0 GiB, more than the 8.0 MiB a state file may hold")}


@pytest.mark.parametrize("kind", HOSTILE_CACHES)
@pytest.mark.parametrize("command", ["status", "metrics", "probe", "doctor", "refresh"])
def test_cli_commands_return_promptly_on_a_fifo_or_huge_cache(tmp_path, kind, command):
    make, words = HOSTILE_CACHES[kind]
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    make(state / "system_health.json")
    config = quiet_config(tmp_path / "config.toml", state, interval=60,
                          extra='[[probes.command]]\nname = "ok"\ncommand = ["/bin/true"]\n')
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "--config", str(config), command],
                            capture_output=True, text=True, timeout=60, env=cli_env(), stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    assert took < 30, took
    assert "Traceback" not in result.stderr, result.stderr
    if command in ("status", "doctor"):  # the commands that say what they found
        assert words in result.stdout, result.stdout
    if command != "doctor":  # a measured cycle replaced it with a real cache
        assert stat.S_ISREG(os.lstat(state / "system_health.json").st_mode)


@pytest.mark.parametrize("kind", HOSTILE_CACHES)
@pytest.mark.parametrize("hook", ["session_start", "pre_tool_use", "statusline"])
def test_hooks_answer_within_their_deadline_on_a_fifo_or_huge_cache(tmp_path, kind, hook):
    make, words = HOSTILE_CACHES[kind]
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    make(state / "system_health.json")
    # A refresher "runs" (holds its lock), so no background refresh replaces the file mid-test.
    lock = os.open(state / "refresher.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        env = hook_env_for(tmp_path, state, NO_COLOR="1")
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(HOOKS / f"{hook}.py")], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        proc.stdin.write(json.dumps({"session_id": "h", "source": "startup", "tool_name": "Bash"}).encode())
        proc.stdin.close()
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
        proc.returncode = os.waitstatus_to_exitcode(status)
        took = time.monotonic() - started
        peak_kib = usage.ru_maxrss
    finally:
        os.close(lock)
    assert proc.returncode == 0
    assert took < 2.0, took
    assert peak_kib < 200 * 1024, peak_kib  # it did not read 2 GB
    if hook == "statusline":
        assert out.decode().startswith("aiki ? UNKNOWN") and "health data unreadable" in out.decode()
    else:
        said = json.loads(out)["hookSpecificOutput"]["additionalContext"]
        assert said == f"System health data unreadable ({words})."


def test_a_refresher_with_a_fifo_for_a_cache_runs_and_exits_on_sigterm(tmp_path):
    """It used to block in open() at start-up, retrying after each signal: SIGTERM did
    nothing. Now it publishes over the FIFO, and stops on SIGTERM."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cache = state / "system_health.json"
    _fifo(cache)
    config = quiet_config(tmp_path / "config.toml", state, interval=0.2,
                          extra='[[probes.command]]\nname = "ok"\ncommand = ["/bin/true"]\n')
    refresher = subprocess.Popen([sys.executable, "-m", "aiki_hooks.cli", "--config", str(config), "refresher"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        deadline = time.monotonic() + 20
        while not stat.S_ISREG(os.lstat(cache).st_mode) and time.monotonic() < deadline:
            time.sleep(0.05)
        replaced = stat.S_ISREG(os.lstat(cache).st_mode)
        refresher.send_signal(signal.SIGTERM)
        _, err = refresher.communicate(timeout=10)
    finally:
        if refresher.poll() is None:
            refresher.kill()
            refresher.wait()
    assert refresher.returncode == 0, err
    assert "Traceback" not in err
    assert replaced


def _returns_promptly(call, timeout: float = 5.0):
    """Run *call* in a thread: it must come back (with a value or an exception) in time."""
    box: dict = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} blocked"
    return box


STATE_FILES = {
    "sessions/s.json": lambda d: runtime.load_session(d, "s"),
    "refresher.restart.json": lambda d: runtime.restart_command(d),
    "refresher.lock": lambda d: runtime.lock_is_held(os.path.join(d, "refresher.lock")),
    "journal.seq": lambda d: journal.last_seq(d),
    "journal.jsonl": lambda d: journal.read(d),
    "journal.jsonl.1": lambda d: journal.records_after(d, 0),
    "sessions_told.json": lambda d: journal.session_event(
        d, session_id="s", cwd=None, open_issues=[{"id": "x", "occurrence_id": "o", "since": utc_iso(0)}],
        now=1.0, host="h"),
    "occurrences.json": lambda d: __import__("aiki_hooks.issues.occurrences", fromlist=["x"]).IssueTracker(
        d, __import__("aiki_hooks.config.load", fromlist=["x"]).JournalConfig(), host="h"),
    "spool/state.json": lambda d: __import__("aiki_hooks.outputs.mem0.spool", fromlist=["x"]).Spool(d).load_state(),
    "hook_events.jsonl": lambda d: runtime.record_told(d, "s", "E", "t", now=1.0),
}


@pytest.mark.parametrize("kind", ["fifo", "2gb"])
@pytest.mark.parametrize("name", STATE_FILES)
def test_other_state_files_never_block_nor_load_whole(tmp_path, name, kind):
    state = tmp_path / "state"
    (state / "spool").mkdir(parents=True, mode=0o700)
    (state / "sessions").mkdir(mode=0o700)
    os.chmod(state, 0o700)
    (_fifo if kind == "fifo" else _sparse_2gb)(state / name)
    import tracemalloc

    tracemalloc.start()
    try:
        box = _returns_promptly(lambda: STATE_FILES[name](str(state)), timeout=5.0 if kind == "fifo" else 30.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    error = box.get("error")
    assert error is None or isinstance(error, OSError), error
    assert peak < 32 * 1024 * 1024, peak  # never the whole 2 GB in memory


# --------------------------------------------------------------------------- 9. clock skew, failing writes


def test_a_cache_dated_in_the_future_is_clock_skew_not_fresh(tmp_path):
    state = tmp_path / "state"
    write_cache(state / "system_health.json", snapshot(generated_at=time.time() + 7230))
    read = read_cache(state / "system_health.json")
    assert read.state == "skewed" and not read.state == "fresh"
    assert read.reason.startswith("clock skew: the cache is dated 2 h") and "ahead of this machine's clock" in read.reason
    near = tmp_path / "near"
    write_cache(near / "system_health.json", snapshot(generated_at=time.time() + 2))
    assert read_cache(near / "system_health.json").state == "fresh"  # within the tolerance

    # A "refresher" holds its lock, so no background refresh rewrites the cache meanwhile.
    with paths.StateLock(state / "refresher.lock"):
        env = hook_env_for(tmp_path, state)
        context = context_of(run_hook("session_start", {"session_id": "k", "source": "startup"}, env), "SessionStart")
        assert context.startswith("System health data of unknown age (clock skew: the cache is dated 2 h")
        line = run_hook("statusline", {"session_id": "k"}, env).stdout.decode()
        assert "clock skew" in line
        config = quiet_config(tmp_path / "config.toml", state, interval=60)
        doctor = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "--config", str(config), "doctor"],
                                capture_output=True, text=True, timeout=60, env=cli_env(), stdin=subprocess.DEVNULL)
        assert "clock skew: the cache is dated 2 h" in doctor.stdout, doctor.stdout


@needs_root
def test_a_refresher_that_cannot_write_the_cache_is_not_called_not_running(tmp_path):
    """A real refresher on a real tmpfs that fills up: the hooks say it runs but cannot
    write, with the error; once it is stopped they say it is not running."""
    with tmpfs(tmp_path / "mnt", "256k") as mount:
        state = mount / "state"
        config = quiet_config(tmp_path / "config.toml", state, interval=0.2,
                              extra='[[probes.command]]\nname = "ok"\ncommand = ["/bin/true"]\n')
        refresher = subprocess.Popen([sys.executable, "-m", "aiki_hooks.cli", "--config", str(config), "refresher"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env())
        try:
            wait_for(lambda: read_cache(state / "system_health.json").state == "fresh", timeout=20)
            fill(mount)
            wait_for(lambda: read_cache(state / "system_health.json").state == "stale", timeout=20)
            env = hook_env_for(tmp_path, state, AIKI_HOOKS_CONFIG=str(config))
            context = context_of(run_hook("session_start", {"session_id": "d", "source": "startup"}, env),
                                 "SessionStart")
            assert "(the refresher runs but cannot write the cache: No space left on device)" in context, context
            assert "refresher not running" not in context
        finally:
            refresher.send_signal(signal.SIGTERM)
            refresher.communicate(timeout=20)
        read = read_cache(state / "system_health.json")
        assert read.state == "stale" and read.reason == "refresher not running"


# --------------------------------------------------------------------------- 10. whole journal lines


@needs_root
def test_a_hook_journal_append_on_a_full_disk_fails_whole_and_no_seq_is_reused(tmp_path):
    """A real SessionStart hook journals a session event on a tmpfs with less room than
    its line: nothing of it stays (no half line), the next append (the refresher's)
    gets the next seq, and once there is room the hook's event is written after all."""
    with tmpfs(tmp_path / "mnt", "64k") as mount:
        state = mount / "state"
        long_summary = "connection refused " * 300  # a line of ~6 KiB: more than any page has left
        write_cache(state / "system_health.json",
                    journaled_snapshot(issues=[issue("tcp:pg", summary=long_summary)]))
        first = journal.append(str(state), [journal.make_record(at=1.0, kind="transition", record_id="t1")])
        assert first[0]["seq"] == 1
        journal_file = state / "journal.jsonl"
        events = state / "hook_events.jsonl"
        events.write_text(json.dumps({"at": 0, "text": "x" * 4024}) + "\n")  # 50 bytes left in its page
        filler = fill(mount)
        size_before, events_before = journal_file.stat().st_size, events.read_bytes()
        env = hook_env_for(tmp_path, state)

        full = run_hook("session_start", {"session_id": "full-disk", "source": "startup", "cwd": "/p"}, env)
        assert full.returncode == 0 and b"Traceback" not in full.stdout
        assert "tcp:pg" in context_of(full, "SessionStart")  # the agent is still told
        assert journal_file.stat().st_size == size_before  # all of the line or none of it
        assert events.read_bytes() == events_before
        assert b"[Errno 28]" in full.stderr  # ENOSPC, said on stderr (Claude Code's debug log)

        filler.unlink()
        nxt = journal.append(str(state), [journal.make_record(at=2.0, kind="transition", record_id="t2")])
        assert nxt[0]["seq"] == 2
        again = run_hook("session_start", {"session_id": "full-disk", "source": "startup", "cwd": "/p"}, env)
        assert again.returncode == 0
        lines = journal_file.read_bytes().splitlines()
        records = [json.loads(line) for line in lines]  # every line whole
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert [r["record_id"] for r in records] == ["t1", "t2", "session:full-disk:occ0"]
        assert all(json.loads(line) for line in events.read_bytes().splitlines())
