"""Running external commands: a hard deadline, bounded output, no process left behind.

- Deadline: enforced on the processes, not on our wait. The child runs in its own
  session; at the deadline its whole tree is killed (`kill_tree`), so a grandchild that
  keeps our pipes open cannot stall the cycle (plain `subprocess.run(timeout=)` would
  wait for it).
- Output: stdout and stderr are read as they come (one selector over both pipes, so
  neither can fill and block the command). At most MAX_OUTPUT_BYTES of each is kept;
  what follows is read and thrown away, so a chatty command still ends with its exit
  code, the verdict. Past FLOOD_BYTES on one stream it is a flood (`yes`, a runaway
  loop): the tree is killed at once rather than read for the rest of its timeout.
- Leftovers: a command still running when its caller gives up (the refresher stopping)
  is killed by `kill_running_commands`.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True, kw_only=True)
class CommandOutput:
    """What a command printed and how it ended."""

    argv: tuple[str, ...]
    returncode: int | None  # None: killed at the deadline, or for flooding
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    # More than MAX_OUTPUT_BYTES on that stream: the rest was read and discarded.
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    flooded: bool = False  # more than FLOOD_BYTES on one stream: killed before it ended


class CommandNotFound(Exception):
    """The program does not exist or is not executable."""


class CommandRunner(Protocol):
    def __call__(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> CommandOutput: ...


# Output beyond this is of no use to a status line and must not bloat the refresher.
MAX_OUTPUT_BYTES = 64 * 1024
# A command that prints this much on one stream is flooding, not reporting.
FLOOD_BYTES = 1024 * 1024
READ_BYTES = 64 * 1024
# Set in each command's environment; its descendants inherit it (see kill_tree).
TREE_VARIABLE = "AIKI_HOOKS_COMMAND_TREE"
# Rounds of "find the tree, stop what is new" before killing: a process forking while
# we look is stopped in the next round, and a stopped process cannot fork.
_FREEZE_ROUNDS = 5
# A killed process normally dies at once; one stuck in the kernel is not waited for.
REAP_SECONDS = 5.0


def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> CommandOutput:
    """Run *argv* (no shell) for at most *timeout* seconds. Raises CommandNotFound."""
    started = time.monotonic()
    deadline = started + timeout
    tree = _new_tree_id()
    child_env = dict(os.environ if env is None else env)
    child_env[TREE_VARIABLE] = tree
    # Started and registered under the lock, so kill_running_commands cannot run between
    # the two and miss this one.
    with _running_lock:
        if _stopping:
            # This process is stopping: its caller has given up on the result.
            return CommandOutput(argv=tuple(argv), returncode=None, stdout="", stderr="",
                                 seconds=0.0, timed_out=True)
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=child_env,
                start_new_session=True,
                close_fds=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise CommandNotFound(f"{argv[0]}: {exc.strerror or exc}") from None
        _running[child.pid] = tree
    ending = "abandoned"  # what an exception in here leaves: the tree is killed below
    try:
        out, err, ending = _read_bounded(child, deadline)
        if ending == "eof" and not _exited(child.pid, deadline):
            ending = "timeout"  # it closed its output but kept running
    finally:
        if ending != "eof":
            kill_tree(child.pid, tree)
        with _running_lock:
            # Reaped only now, unregistered in the same step: until then the pid cannot
            # name another process, so kill_running_commands never kills a stranger.
            del _running[child.pid]
            _reap(child)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    return CommandOutput(
        argv=tuple(argv),
        returncode=child.returncode if ending == "eof" else None,
        stdout=_decode(out.kept),
        stderr=_decode(err.kept),
        seconds=time.monotonic() - started,
        timed_out=ending == "timeout",
        stdout_truncated=out.seen > MAX_OUTPUT_BYTES,
        stderr_truncated=err.seen > MAX_OUTPUT_BYTES,
        flooded=ending == "flood",
    )


class _Capture:
    """The first MAX_OUTPUT_BYTES of a stream, and how much it printed in all."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.seen = 0

    def add(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        room = MAX_OUTPUT_BYTES - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]


def _read_bounded(child: subprocess.Popen, deadline: float) -> tuple[_Capture, _Capture, str]:
    """Read both pipes until they close ("eof"), the deadline ("timeout") or a flood ("flood")."""
    assert child.stdout is not None and child.stderr is not None
    out, err = _Capture(), _Capture()
    captures = {child.stdout.fileno(): out, child.stderr.fileno(): err}
    with selectors.DefaultSelector() as selector:
        for fd in captures:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out, err, "timeout"
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, READ_BYTES)  # a pipe the selector called readable: does not block
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                capture = captures[key.fd]
                capture.add(chunk)
                if capture.seen > FLOOD_BYTES:
                    return out, err, "flood"
    return out, err, "eof"


def _exited(pid: int, deadline: float) -> bool:
    """Wait until our child *pid* has exited, at most until *deadline*, without reaping it."""
    pause = 0.001
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.05)


def _reap(child: subprocess.Popen) -> None:
    try:
        child.wait(REAP_SECONDS)
    except subprocess.TimeoutExpired:
        pass  # stuck in the kernel even after SIGKILL; subprocess reaps it later


def _decode(data: bytes | bytearray) -> str:
    return bytes(data[:MAX_OUTPUT_BYTES]).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- process trees

# Commands being run right now: leader pid -> tree id.
_running: dict[int, str] = {}
_running_lock = threading.Lock()
_stopping = False  # set by kill_running_commands: no command starts after it


def _new_tree_id() -> str:
    return f"{os.getpid()}-{os.urandom(8).hex()}"


def kill_running_commands() -> int:
    """For a process that is stopping (the refresher, mid-cycle): kill the tree of every
    command `run_command` is still running, and start none from now on. Returns how many
    processes were killed; the waiting `run_command` calls then return."""
    global _stopping
    with _running_lock:  # held throughout: no pid here is reaped (and reusable) meanwhile
        _stopping = True
        return sum(kill_tree(pid, tree) for pid, tree in list(_running.items()))


def kill_tree(pid: int, tree: str) -> int:
    """SIGKILL the command *pid* (our child, not yet reaped) and every process it started;
    returns how many processes were signalled.

    A process group is not enough: a descendant that calls setsid() leaves it. The parent
    links are not enough either: once an intermediate process exits, its children are
    re-parented (to init or a subreaper) and no longer descend from *pid*. What survives
    both is the environment: each command gets TREE_VARIABLE=*tree*, which descendants
    inherit (Jenkins' ProcessTreeKiller finds a build's processes the same way), so the
    tree is *pid*'s descendants plus every process of ours carrying the variable. Only
    a process that both leaves the parent chain and clears its environment escapes; a
    cgroup would catch that too, but needs systemd's delegation, which a one-shot command
    does not have. Each round SIGSTOPs what it found, so nothing forks behind our back;
    then all of it is killed.
    """
    found: set[int] = set()
    for _ in range(_FREEZE_ROUNDS):
        new = _tree_members(pid, tree) - found
        if not new:
            break
        found |= new
        for member in new:
            _signal(member, signal.SIGSTOP)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return sum(_signal(member, signal.SIGKILL) for member in found)


def _signal(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _tree_members(pid: int, tree: str, proc: str = "/proc") -> set[int]:
    """*pid*, its descendants, and the processes whose environment holds TREE_VARIABLE=*tree*.

    One pass over /proc, read directly: psutil builds an object per process and took
    ~100 ms for 150 processes where this takes a few, while the deadline is counting."""
    entry = f"{TREE_VARIABLE}={tree}\0".encode()
    children: dict[int, list[int]] = {}
    marked: set[int] = set()
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc}/{name}/stat", "rb") as file:
                stat = file.read()
            # The fields after the command name, which may hold spaces and ")": state, ppid, ...
            parent = int(stat[stat.rindex(b")") + 1:].split()[1])
            children.setdefault(parent, []).append(int(name))
            with open(f"{proc}/{name}/environ", "rb") as file:  # only our own processes' are readable
                environ = file.read()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours
        if environ.startswith(entry) or b"\0" + entry in environ:
            marked.add(int(name))
    members, stack = {pid}, [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in members:
                members.add(child)
                stack.append(child)
    return members | marked
