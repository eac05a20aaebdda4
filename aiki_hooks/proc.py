"""Running external commands with a hard deadline.

The deadline is enforced on the process itself: the child runs in its own session and
on expiry the whole process group is killed, so a grandchild that keeps our pipes open
cannot stall the cycle (plain `subprocess.run(timeout=)` would wait for it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True, kw_only=True)
class CommandOutput:
    """What a command printed and how it ended."""

    argv: tuple[str, ...]
    returncode: int | None  # None: killed at the deadline
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


class CommandNotFound(Exception):
    """The program does not exist or is not executable."""


class CommandRunner(Protocol):
    def __call__(self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> CommandOutput: ...


# Output beyond this is of no use to a status line and must not bloat the refresher.
MAX_OUTPUT_BYTES = 64 * 1024


def run_command(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> CommandOutput:
    """Run *argv* (no shell) for at most *timeout* seconds. Raises CommandNotFound."""
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        raise CommandNotFound(f"{argv[0]}: {exc.strerror or exc}") from None
    timed_out = False
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(child)
        try:
            out, err = child.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:
            # Something outside the group holds the pipes; give up on the output.
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
            child.wait(timeout=1.0)
            out, err = b"", b""
    return CommandOutput(
        argv=tuple(argv),
        returncode=None if timed_out else child.returncode,
        stdout=_decode(out),
        stderr=_decode(err),
        seconds=time.monotonic() - started,
        timed_out=timed_out,
    )


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        child.kill()


def _decode(data: bytes | None) -> str:
    return (data or b"")[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
