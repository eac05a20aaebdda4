"""The hooks' little I/O: stdin, output, deadline, state dir (and whether to trust it),
per-session memory, and starting one detached refresh. Standard library only; nothing
here may raise into a hook. State is read and written only through aiki_hooks.paths
(no symlinks followed, nothing that blocks, bounded sizes, whole lines); the config file
is read as the library reads it (through a symlink), but never blocking and bounded."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from aiki_hooks import paths
from aiki_hooks.paths import lock_is_held

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
    """The library's answer (`[state] dir` of the config, then $AIKI_HOOKS_STATE_DIR,
    then ${XDG_STATE_HOME:-~/.local/state}/aiki-hooks), found without tomllib in the
    common case (see _configured_state_dir)."""
    env = os.environ if env is None else env
    return _configured_state_dir(env) or paths.unconfigured_state_dir(env)


# The config's `[state] dir` as the hooks last read it with tomllib, per config file and
# keyed by that file's identity, in ${XDG_CACHE_HOME:-~/.cache}/aiki-hooks (trusted like
# a state dir). Importing and running tomllib costs each hook about 0.4x the start-up of
# a bare interpreter; a config is edited rarely. Chosen over scanning the TOML by hand:
# a scan cheap enough to help would misread some valid file (quoted or escaped keys,
# dotted keys, inline tables, "[state]" inside a multi-line string), while a memo of
# tomllib's own answer cannot. The hooks write it themselves, so it needs no other writer.
CONFIG_MEMO_FILE = "config-state-dir.json"
CONFIG_MEMO_MAX_BYTES = 64 * 1024
CONFIG_MEMO_ENTRIES = 8  # config files remembered (AIKI_HOOKS_CONFIG may differ by session)
# A config changed less than this long ago is read but not remembered: a second write in
# the same timestamp tick (2 s on FAT) with the same size would keep its identity.
CONFIG_SETTLE_NS = 3 * 10**9


def _configured_state_dir(env) -> str | None:
    """The config file's `[state] dir`, expanded in this environment, or None (no config,
    no such key, not TOML, not an absolute path: the library refuses such a config)."""
    path = paths.config_file(env)
    found = _read_config(path)
    if found is None:
        return None
    raw, identity = found
    # Every spelling of the key "state" has these five bytes, unless a quoted key spells
    # it with escapes ("\u0073tate"), which need a backslash.
    if b"state" not in raw and b"\\" not in raw:
        return None
    if identity is None:  # changing: no memo can vouch for this content
        value = _state_dir_by_tomllib(raw)
    else:
        memo_dir = os.path.join(paths.xdg_base("XDG_CACHE_HOME", ".cache", env), paths.APP)
        memo = _load_config_memo(memo_dir)
        entry = memo.get(path)
        if (isinstance(entry, dict) and entry.get("identity") == identity
                and isinstance(entry.get("dir"), (str, type(None)))):
            value = entry["dir"]
        else:
            value = _state_dir_by_tomllib(raw)
            _save_config_memo(memo_dir, memo, path, identity, value)
    if value is None:
        return None
    expanded = os.path.expanduser(os.path.expandvars(value))
    return expanded if os.path.isabs(expanded) else None


def _read_config(path: str) -> tuple[bytes, list[int] | None] | None:
    """(content, identity) of the config file, identity None when the file may still be
    changing; None when there is no readable regular file of at most CONFIG_MAX_BYTES.
    Symlinks are followed, as the library does (dotfile managers link configs); O_NONBLOCK
    so a FIFO in its place cannot hang the hook."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or before.st_size > CONFIG_MAX_BYTES:
            return None
        raw = paths.read_at_most(fd, CONFIG_MAX_BYTES)
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(raw) > CONFIG_MAX_BYTES:
        return None
    identity = [after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns]
    changing = (identity != [before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns]
                or len(raw) != after.st_size
                or time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) < CONFIG_SETTLE_NS)
    return raw, None if changing else identity


def _state_dir_by_tomllib(raw: bytes) -> str | None:
    """`state.dir` of the TOML document *raw* when it is a string, else None."""
    try:
        import tomllib

        value = tomllib.loads(raw.decode("utf-8")).get("state", {}).get("dir")
    except (ValueError, UnicodeDecodeError, AttributeError, ImportError, RecursionError):
        return None  # ImportError: an interpreter older than 3.11 has no tomllib
    return value if isinstance(value, str) else None


def _load_config_memo(memo_dir: str) -> dict[str, Any]:
    """The memo's entries, {} when absent, unreadable or in a dir others could write."""
    if paths.check_private_dir(memo_dir):
        return {}
    try:
        memo = json.loads(paths.read_state_file(os.path.join(memo_dir, CONFIG_MEMO_FILE), CONFIG_MEMO_MAX_BYTES))
    except (OSError, ValueError, RecursionError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _save_config_memo(memo_dir: str, memo: dict[str, Any], path: str, identity: list[int],
                      value: str | None) -> None:
    """Remember *value* for *path* at *identity* (atomic replace, 0600 in a 0700 dir; the
    newest CONFIG_MEMO_ENTRIES configs). Failures are ignored: the next hook asks tomllib."""
    memo = {key: entry for key, entry in memo.items() if key != path}
    memo[path] = {"identity": identity, "dir": value}
    memo = dict(list(memo.items())[-CONFIG_MEMO_ENTRIES:])
    try:
        paths.make_private_dir(memo_dir)
        _write_json_atomically(os.path.join(memo_dir, CONFIG_MEMO_FILE), memo)
    except OSError:
        pass


def _write_json_atomically(path: str, value: Any) -> None:
    """*value* as compact JSON in *path*, replaced whole (paths.replace_state_file)."""
    paths.replace_state_file(path, json.dumps(value, separators=(",", ":")).encode("utf-8"))


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
        _write_json_atomically(path, memory)
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

        env = paths.put_package_on_path(dict(os.environ))
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
