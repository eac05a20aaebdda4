"""The hooks' little I/O: stdin, output, deadline, state dir (and whether to trust it),
per-session memory, and starting one detached refresh. Standard library only; nothing
here may raise into a hook. State is read and written only through aiki_hooks.paths
(no symlinks followed, nothing that blocks, bounded sizes, whole lines)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from aiki_hooks import paths

TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    from typing import Any

MAX_STDIN_BYTES = 1024 * 1024
DEADLINE_SECONDS = 0.5
EVENTS_MAX_BYTES = 1024 * 1024  # hook_events.jsonl is rotated to .1 past this
SESSION_MEMORY_DAYS = 7
SESSIONS_DIR = "sessions"
EVENTS_FILE = "hook_events.jsonl"
ONESHOT_LOCK = "oneshot.lock"
REFRESHER_LOCK = paths.REFRESHER_LOCK_NAME
# Held (flock) by the hook that starts a background refresh, and by that refresh for as
# long as it runs (the child inherits the descriptor): one at a time, whatever the burst.
SPAWN_LOCK = "refresh.spawn.lock"
SESSION_MAX_BYTES = 1024 * 1024
RESTART_MAX_BYTES = 64 * 1024
CONFIG_MAX_BYTES = 256 * 1024
RESTART_FILE = "refresher.restart.json"  # aiki_hooks.install.daemon.RESTART_NAME


def install_deadline(seconds: float = DEADLINE_SECONDS) -> None:
    """Exit 0, silently, if the hook is still running after *seconds*.

    Output is written once at the very end, so an exit before that prints nothing, which
    Claude Code treats as "nothing to add". A hook runs single-threaded, so a timer
    signal is the cheapest watchdog.
    """

    global _deadline_at

    def give_up(_signum, _frame):
        os._exit(0)

    signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    _deadline_at = time.monotonic() + seconds


_deadline_at: float | None = None


def disarm_deadline() -> None:
    """Called just before the answer is written: a timer firing mid-write would leave
    half a JSON object on stdout."""
    signal.setitimer(signal.ITIMER_REAL, 0)


def end_deadline() -> None:
    """Called when the hook is done: stop the timer and ignore a SIGALRM already on its
    way. The timer must not outlive the hook's code: during interpreter shutdown CPython
    puts SIGALRM back to its default action (kill the process), so a deadline firing
    there ended a hook that had answered with status 142, and Claude Code drops the
    answer of a hook that exits non-zero (seen with 50 hooks at once on 2 cores).
    Shutdown leaves an ignored signal ignored."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)


def rearm_deadline() -> None:
    """After the answer is out, what is left (bookkeeping) runs on the rest of the budget."""
    if _deadline_at is not None:
        signal.setitimer(signal.ITIMER_REAL, max(_deadline_at - time.monotonic(), 0.01))


def guarded(event: str, run) -> int:
    """Run a hook under its deadline; whatever happens, exit 0: a hook must never break
    Claude Code."""
    install_deadline()
    try:
        run()
    except BaseException as exc:  # noqa: BLE001 - nothing may escape a hook
        note_failure(event, exc)
    finally:
        end_deadline()
    return 0


def note_failure(event: str, exc: BaseException) -> None:
    """A hook that exits 0 has its stderr in Claude Code's debug log only: say it there."""
    try:
        sys.stderr.write(f"aiki-hooks {event}: {type(exc).__name__}: {exc}\n")
    except (OSError, ValueError):
        pass


def read_input(stream=None) -> dict[str, Any]:
    """The hook's JSON input, or {} when it is missing, too large or not an object."""
    stream = sys.stdin if stream is None else stream
    try:
        raw = stream.buffer.read(MAX_STDIN_BYTES + 1) if hasattr(stream, "buffer") else stream.read()
    except (OSError, ValueError):
        return {}
    if not raw or len(raw) > MAX_STDIN_BYTES:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def emit(payload: dict[str, Any]) -> None:
    """Write the whole JSON answer in one go (never a partial object). ASCII escapes, so
    a non-UTF-8 locale on stdout cannot make the write fail."""
    text = json.dumps(payload, ensure_ascii=True)
    disarm_deadline()
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    rearm_deadline()


def state_dir(env=None) -> str:
    """Same answer as the library's config (`[state] dir`, then $AIKI_HOOKS_STATE_DIR,
    then XDG), without importing tomllib unless the config has a [state] table."""
    env = os.environ if env is None else env
    configured = _configured_state_dir(env)
    if configured:
        return configured
    if env.get("AIKI_HOOKS_STATE_DIR"):
        return os.path.expanduser(env["AIKI_HOOKS_STATE_DIR"])
    base = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "aiki-hooks")


def _configured_state_dir(env) -> str | None:
    path = env.get("AIKI_HOOKS_CONFIG")
    if not path:
        base = env.get("XDG_CONFIG_HOME", "")
        if not os.path.isabs(base):
            base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
        path = os.path.join(base, "aiki-hooks", "config.toml")
    try:
        raw = paths.read_state_file(os.path.expanduser(path), CONFIG_MAX_BYTES)
    except OSError:
        return None
    if b"[state]" not in raw:
        return None
    try:
        import tomllib

        value = tomllib.loads(raw.decode("utf-8")).get("state", {}).get("dir")
    except (ValueError, UnicodeDecodeError, AttributeError, ImportError):
        return None  # ImportError: an interpreter older than 3.11 has no tomllib
    if isinstance(value, str) and value.strip():
        return os.path.expanduser(os.path.expandvars(value))
    return None


def untrusted(directory: str) -> str | None:
    """Why the state dir must not be used (one line), or None: the check every state
    reader and writer makes (paths.check_private_dir). A dir not created yet is fine."""
    return paths.check_private_dir(directory, missing_ok=True)


# --------------------------------------------------------------------------- session memory


def _session_file(directory: str, session_id: str) -> str | None:
    # Session ids are UUIDs; anything else must not become a path.
    safe = "".join(ch for ch in str(session_id) if ch.isalnum() or ch in "-_")[:128]
    if not safe:
        return None
    return os.path.join(directory, SESSIONS_DIR, safe + ".json")


def load_session(directory: str, session_id: str) -> dict[str, Any] | None:
    path = _session_file(directory, session_id)
    if path is None:
        return None
    try:
        data = json.loads(paths.read_state_file(path, SESSION_MAX_BYTES))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def save_session(directory: str, session_id: str, memory: dict[str, Any]) -> None:
    """Atomic replace, 0600 in a 0700 dir; failures are ignored (worst case: a repeat)."""
    path = _session_file(directory, session_id)
    if path is None:
        return
    try:
        paths.make_private_dir(directory)
        paths.make_private_dir(os.path.dirname(path))
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = paths.open_state_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            data = json.dumps(memory, separators=(",", ":")).encode("utf-8")
            if os.write(fd, data) != len(data):
                raise OSError("short write")
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        pass


def prune_sessions(directory: str, *, now: float, days: float = SESSION_MEMORY_DAYS) -> int:
    """Forget sessions not seen for *days* (SessionStart does this, once per session)."""
    folder = os.path.join(directory, SESSIONS_DIR)
    removed = 0
    try:
        entries = os.listdir(folder)
    except OSError:
        return 0
    for entry in entries:
        path = os.path.join(folder, entry)
        try:
            if now - os.lstat(path).st_mtime > days * 86400:
                os.unlink(path)
                removed += 1
        except OSError:
            continue
    return removed


def record_told(directory: str, session_id: str, event: str, text: str, *, now: float) -> None:
    """Note what the agent was told, word for word, one JSON line per message in
    `hook_events.jsonl` (0600, rotated to `.1` past 1 MiB). A line lands whole or not at
    all (paths.append_whole, under an flock on the file: concurrent hooks append to it).
    The issue journal gets the issues themselves (hooklib.journaling)."""
    import fcntl

    line = json.dumps({"at": now, "session_id": session_id, "event": event, "text": text}, ensure_ascii=False)
    path = os.path.join(directory, EVENTS_FILE)
    try:
        paths.make_private_dir(directory)
        fd = paths.open_state_file(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            paths.append_whole(fd, (line + "\n").encode("utf-8"))
            info = os.fstat(fd)
            # Bounded: the newest ~1 MiB plus one older file. Only if the name still points
            # at this file: another hook may have rotated it while we waited for the lock.
            if info.st_size > EVENTS_MAX_BYTES and os.lstat(path).st_ino == info.st_ino:
                os.replace(path, path + ".1")
        finally:
            os.close(fd)
    except OSError:
        pass


# --------------------------------------------------------------------------- self-healing


def lock_is_held(path: str) -> bool:
    return paths.lock_is_held(path)


def restart_command(directory: str) -> list[str] | None:
    """The `refresher --daemon` command a detached refresher left for us (see
    aiki_hooks.install.daemon.RESTART_NAME), or None: then a one-shot refresh is all we start."""
    try:
        argv = json.loads(paths.read_state_file(os.path.join(directory, RESTART_FILE), RESTART_MAX_BYTES)).get("argv")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    if (isinstance(argv, list) and argv and all(isinstance(a, str) and "\0" not in a for a in argv)
            and os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK)):
        return argv
    return None


def start_background_refresh(directory: str, seen: tuple[int, int, int] | None) -> bool:
    """Start ONE fully detached refresh (new session, stdio on /dev/null) unless a
    refresher or another refresh runs; never waits. Where a detached refresher was
    installed (no systemd) that refresher is restarted; otherwise one
    `aiki-hooks refresh --if-idle` runs.

    One, however many hooks ask at once: the hook takes the spawn lock without waiting
    (else another hook is starting one, or its refresh still runs) and the child inherits
    it, holding it until it exits. *seen* is the stamp of the cache this hook read
    (CacheRead.stamp, None if there was none): if the cache has been replaced since, a
    refresh just finished (its lock is free again) and nothing is started."""
    if lock_is_held(os.path.join(directory, REFRESHER_LOCK)):
        return False
    import fcntl

    try:
        paths.make_private_dir(directory)
        fd = paths.open_state_file(os.path.join(directory, SPAWN_LOCK), os.O_RDWR | os.O_CREAT)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        if lock_is_held(os.path.join(directory, ONESHOT_LOCK)) or lock_is_held(os.path.join(directory, REFRESHER_LOCK)):
            return False
        if _cache_stamp(directory) != seen:
            return False
        import subprocess

        package_root = paths.PACKAGE_PARENT
        env = dict(os.environ)
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        argv = restart_command(directory) or [sys.executable, "-m", "aiki_hooks.cli", "refresh", "--if-idle"]
        try:
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, pass_fds=(fd,), env=env, cwd="/",
            )
        except (OSError, ValueError):
            return False
        return True
    finally:
        os.close(fd)  # the child's copy keeps the lock


def _cache_stamp(directory: str) -> tuple[int, int, int] | None:
    from aiki_hooks.cycle.cache import cache_path, path_stamp

    return path_stamp(cache_path(directory))


def now() -> float:
    return time.time()
