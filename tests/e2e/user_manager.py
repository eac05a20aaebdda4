"""A real systemd user manager for the tests, from tests/e2e/user-manager.sh.

`UserManager.start(home)` starts the manager and journald in a private mount namespace
(the script's header says how) and returns once `systemctl --user` answers; `run()`
executes a command inside that namespace with nsenter, as a logged-in user would type it:
HOME=/home/aiki-tester (the throwaway *home* bind-mounted there), XDG_RUNTIME_DIR set.
`stop()` stops every unit and the manager.

Where no real systemd can run here (not root, no systemd, no unshare) `start` raises
`ManagerUnavailable`; the fixtures fail under CI=true and skip elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from aiki_hooks.proc import CommandRunner

SCRIPT = Path(__file__).resolve().parent / "user-manager.sh"
HOME = "/home/aiki-tester"
RUNTIME_DIR = "/run/user/0"
START_TIMEOUT = 900.0  # the lock may be held by another run (the script serialises them)


class ManagerUnavailable(Exception):
    """No real systemd user manager can run on this machine; the message says why."""


class UserManager:
    def __init__(self, process: subprocess.Popen, pid: int, home: Path, log: Path) -> None:
        self._process = process
        self.pid = pid
        self.home = home  # the throwaway home as the tests see it; HOME inside
        self.log = log

    @classmethod
    def start(cls, home: Path, *, log: Path | None = None) -> "UserManager":
        if shutil.which("nsenter") is None:
            raise ManagerUnavailable("nsenter not found (util-linux)")
        home.mkdir(parents=True, exist_ok=True)
        log = log or home.parent / "user-manager.log"
        env = dict(os.environ, USER_MANAGER_LOG=str(log))
        process = subprocess.Popen([str(SCRIPT), str(home)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=env, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until ready or the script gives up
        if not line.startswith("ready "):
            process.kill()
            _, err = process.communicate(timeout=30)
            raise ManagerUnavailable(err.strip() or f"user-manager.sh exited {process.returncode}")
        return cls(process, int(line.split()[1]), home, log)

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    # ----------------------------------------------------------------- inside

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A login-like environment: none of the test process's XDG/aiki variables."""
        env = {
            "HOME": HOME,
            "USER": "root",
            "LOGNAME": "root",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": RUNTIME_DIR,
        }
        for var in ("PIP_CACHE_DIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PYTHON",
                    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"):
            if var in os.environ:
                env[var] = os.environ[var]
        env.update(extra or {})
        return env

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120,
            cwd: str | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-m", "-t", str(self.pid), "--", *argv], env=self.env(env),
                              capture_output=True, text=True, timeout=timeout, cwd=cwd, input=input)

    def runner(self, extra: Mapping[str, str] | None = None) -> CommandRunner:
        """aiki_hooks.proc.run_command, executed inside: for library code that runs
        systemctl/journalctl through an injected runner. The argv it reports is the one asked."""
        from aiki_hooks.proc import CommandOutput, run_command

        def run(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> CommandOutput:
            output = run_command(["nsenter", "-m", "-t", str(self.pid), "--", *argv],
                                 env=self.env({**(extra or {}), **(env or {})}), timeout=timeout)
            return dataclasses.replace(output, argv=tuple(argv))

        return run

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(["sh", "-c", script], **kwargs)

    def systemctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run(["systemctl", "--user", *args], timeout=timeout)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.systemctl("show", unit, "--property=" + ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str, *args: str) -> list[dict]:
        """The unit's journal entries as JSON objects. Here they are in the system journal under
        _SYSTEMD_UNIT (the manager runs as root); a desktop's user journal has _SYSTEMD_USER_UNIT."""
        out = self.run(["journalctl", f"_SYSTEMD_USER_UNIT={unit}", "+", f"_SYSTEMD_UNIT={unit}", "-o", "json",
                        "--no-pager", *args]).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def write_unit(self, name: str, text: str) -> Path:
        """A unit of the user's own in ~/.config/systemd/user (daemon-reload is the caller's)."""
        path = self.home / ".config" / "systemd" / "user" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def wait_for(self, condition: Callable[[], object], *, timeout: float, what: str, step: float = 0.1) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(step)

    def __enter__(self) -> "UserManager":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
