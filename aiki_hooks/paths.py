"""Where things live (XDG base directories), and the one check of whether state found
there can be trusted and read without harm.

Every reader and writer of the state dir goes through the functions here, the hooks
included: `check_private_dir` (is the directory ours and closed to others?),
`make_private_dir` / `ensure_private_dir` (create it so, or refuse), `open_state_file` /
`read_state_file` (no symlinks, no FIFOs or devices, bounded size, never blocking),
`append_whole` (a line lands whole or not at all), `StateLock`, `lock_is_held` and
`holder_pid` (which refresher holds the state dir).

Standard library only and cheap to import (os and stat; pathlib only where a Path is
asked for, errno and fcntl where used): the hooks import this on every tool call.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

APP = "aiki-hooks"
# The directory that holds the package (a checkout, or site-packages): children we start put
# it on PYTHONPATH so they import this very copy.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def put_package_on_path(env: dict[str, str]) -> dict[str, str]:
    """*env* (changed in place, and returned) with PACKAGE_PARENT first on PYTHONPATH."""
    env["PYTHONPATH"] = PACKAGE_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
CACHE_NAME = "system_health.json"
REFRESHER_LOCK_NAME = "refresher.lock"  # aiki_hooks.cycle.refresher.LOCK_NAME
# State files are small: the cache of a few hundred probes is ~100 KiB, the small JSON
# files a few KiB. 8 MiB leaves room for thousands of probes, and bounds what a planted or
# runaway file can cost a reader (a hook must not read 2 GB to find it is not a cache).
STATE_FILE_MAX_BYTES = 8 * 1024 * 1024


def xdg_base(var: str, fallback: str, env: Mapping[str, str] | None = None) -> str:
    """$var, or ~/*fallback* when it is unset or relative (the spec says relative values
    are invalid and must be ignored). A str: the hooks call this without pathlib."""
    env = os.environ if env is None else env
    value = env.get(var, "")
    if value and os.path.isabs(value):
        return value
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), fallback)


def _xdg(var: str, fallback: str, env: Mapping[str, str] | None = None) -> Path:
    from pathlib import Path

    return Path(xdg_base(var, fallback, env))


def config_file(env=None) -> str:
    """$AIKI_HOOKS_CONFIG, else ${XDG_CONFIG_HOME:-~/.config}/aiki-hooks/config.toml."""
    env = os.environ if env is None else env
    explicit = env.get("AIKI_HOOKS_CONFIG")
    if explicit:
        return os.path.expanduser(explicit)
    return os.path.join(xdg_base("XDG_CONFIG_HOME", ".config", env), APP, "config.toml")


def config_path(env=None) -> Path:
    from pathlib import Path

    return Path(config_file(env))


def unconfigured_state_dir(env=None) -> str:
    """The state dir when the config names none: $AIKI_HOOKS_STATE_DIR, else
    ${XDG_STATE_HOME:-~/.local/state}/aiki-hooks."""
    env = os.environ if env is None else env
    explicit = env.get("AIKI_HOOKS_STATE_DIR")
    if explicit:
        return os.path.expanduser(explicit)
    return os.path.join(xdg_base("XDG_STATE_HOME", ".local/state", env), APP)


def default_state_dir(env=None) -> Path:
    from pathlib import Path

    return Path(unconfigured_state_dir(env))


def user_unit_dir(env=None) -> Path:
    """${XDG_CONFIG_HOME:-~/.config}/systemd/user: where the user's own units live."""
    return _xdg("XDG_CONFIG_HOME", ".config", env) / "systemd" / "user"


def data_dir(env=None) -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share", env) / APP


# --------------------------------------------------------------------------- trust


class UntrustedStateError(PermissionError):
    """A state dir we must not use (another owner, open to others, a symlink); str() is
    one line naming the directory and what is wrong."""


class StateFileError(OSError):
    """A state file that is not a regular file of ours, or too large; str() is one line
    ("system_health.json is a FIFO, not a regular file")."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def judge_private_dir(path: str, info: os.stat_result | None, *, uid: int | None = None) -> str | None:
    """Pure: None when *info* (an lstat of *path*, None if absent) is a directory this
    user can trust, else a one-line reason."""
    if info is None:
        return f"{path} does not exist"
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link, not a directory"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    uid = os.getuid() if uid is None else uid
    if info.st_uid != uid:
        return f"{path} is owned by uid {info.st_uid}, not by this user (uid {uid})"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        who = "group and others" if mode & 0o022 == 0o022 else "others" if mode & 0o002 else "its group"
        return f"{path} is writable by {who} (mode {mode:o}; expected 700)"
    return None


def check_private_dir(path: str | os.PathLike, *, missing_ok: bool = False) -> str | None:
    """None when the state dir *path* can be trusted, else a one-line reason.

    Trusted: a real directory (lstat: not a symlink), owned by this uid, not writable by
    its group or others; anyone else who can add, swap or link files in it could plant
    commands, context or guard rules, or redirect our writes. With *missing_ok*, a
    directory that does not exist yet is fine (whoever creates it goes through
    `make_private_dir`)."""
    path = _strip_slashes(os.fspath(path))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None if missing_ok else judge_private_dir(path, None)
    except OSError as exc:
        return f"{path} cannot be examined: {exc.strerror or exc}"
    return judge_private_dir(path, info)


def make_private_dir(path: str | os.PathLike) -> None:
    """Create *path* (and parents) with mode 0700 unless it exists; raise
    UntrustedStateError unless it passes `check_private_dir`. A trusted one that others may
    read is tightened to 0700 (privacy; a dir others could write is refused, not fixed:
    they may have planted files already)."""
    path = _strip_slashes(os.fspath(path))
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass  # something that is not a directory (or a dangling link): judged below
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    reason = judge_private_dir(path, info)
    if reason or info is None:  # judge_private_dir gives a reason for a missing dir
        raise UntrustedStateError(reason)
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)


def ensure_private_dir(path: str | os.PathLike) -> Path:
    """`make_private_dir`, returning *path* as a Path."""
    from pathlib import Path

    make_private_dir(path)
    return Path(path)


def _strip_slashes(path: str) -> str:
    # lstat("link/") follows the link: judge the name itself.
    stripped = path.rstrip("/")
    return stripped or "/"


# --------------------------------------------------------------------------- state files

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_state_file(path: str | os.PathLike, flags: int = os.O_RDONLY, mode: int = 0o600) -> int:
    """Open a file of the state dir and return its fd (close-on-exec).

    Never through a symlink (O_NOFOLLOW), never waiting (O_NONBLOCK: a FIFO or device put
    in a file's place would block open() or read() for ever), regular files only, owned by
    this user or root. Raises FileNotFoundError when absent, StateFileError (one line)
    when the file is not usable, other OSErrors as they come."""
    return _open_checked(path, flags, mode)[0]


def _open_checked(path: str | os.PathLike, flags: int = os.O_RDONLY, mode: int = 0o600) -> tuple[int, os.stat_result]:
    """open_state_file, and the fstat it checked."""
    import errno

    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR, errno.EOPNOTSUPP):
            # A link (ELOOP), a FIFO without reader or a socket (ENXIO), a directory...
            try:
                kind = _kind(os.lstat(path).st_mode)
            except OSError:
                kind = "not a regular file"
            raise StateFileError(exc.errno, f"{name} is {kind}, not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateFileError(errno.EINVAL, f"{name} is {_kind(info.st_mode)}, not a regular file")
        if info.st_uid not in (os.getuid(), 0):
            raise StateFileError(errno.EPERM, f"{name} is owned by uid {info.st_uid}, not by this user")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_state_file(path: str | os.PathLike, max_bytes: int = STATE_FILE_MAX_BYTES) -> bytes:
    """The whole content of a state file, read at most *max_bytes* + 1 bytes: larger is a
    StateFileError, like anything `open_state_file` refuses."""
    return read_state(path, max_bytes)[0]


def read_state(path: str | os.PathLike, max_bytes: int = STATE_FILE_MAX_BYTES) -> tuple[bytes, os.stat_result]:
    """`read_state_file` and the fstat of the file read."""
    import errno

    name = os.path.basename(os.fspath(path))
    fd, info = _open_checked(path)
    try:
        if info.st_size > max_bytes:
            raise StateFileError(errno.EFBIG, too_large(name, info.st_size, max_bytes))
        data = read_at_most(fd, max_bytes)
        if len(data) > max_bytes:  # it grew after the fstat
            raise StateFileError(errno.EFBIG, too_large(name, len(data), max_bytes))
        return data, info
    finally:
        os.close(fd)


def read_at_most(fd: int, max_bytes: int) -> bytes:
    """What *fd* holds, read to its end but never more than *max_bytes* + 1 bytes (so a
    caller can tell a file that is too large from one that is exactly at the limit)."""
    chunks = []
    got = 0
    while got <= max_bytes:
        chunk = os.read(fd, max_bytes + 1 - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def too_large(name: str, size: int, limit: int) -> str:
    from aiki_hooks.model.units import fmt_bytes  # imports nothing; only a too-large file pays for it

    return f"{name} is {fmt_bytes(size)}, more than the {fmt_bytes(limit)} a state file may hold"


def replace_state_file(path: str, data: bytes) -> None:
    """*data* in the state file *path*, replaced whole through a temp file beside it
    (opened by open_state_file: 0600, no link followed), so a reader never sees half a
    file; the temp file goes when the write fails. No fsync: for small files that are
    cheap to lose (session memory, memos, the journal's counters)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = open_state_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def append_whole(fd: int, data: bytes, *, sync: bool = False) -> None:
    """Append *data* to the O_APPEND file *fd* whole or not at all: one write(); on a
    short or failed write (a full disk) or a failed fsync the file is cut back to its
    size before, and OSError is raised. The caller must hold the file's lock, else the
    cut could take another writer's line with it."""
    import errno

    before = os.fstat(fd).st_size
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes): the disk is probably full")
        if sync:
            os.fsync(fd)
    except BaseException:
        try:
            os.ftruncate(fd, before)
        except OSError:
            pass  # readers skip a partial line; the next writer ends it before its own
        raise


def holder_pid(state_dir: str | os.PathLike) -> int | None:
    """Pid of the refresher holding *state_dir*'s lock (-1 when its pid cannot be read),
    or None if none holds it. Raises OSError for a lock file that is not usable."""
    import fcntl

    try:
        fd = open_state_file(os.path.join(os.fspath(state_dir), REFRESHER_LOCK_NAME))
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isascii() and text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def lock_is_held(path: str | os.PathLike) -> bool:
    """True when another process holds an flock on *path* (a refresher, a one-shot). Never
    waits, never creates the file; a missing or unusable file is not held."""
    import fcntl

    try:
        fd = open_state_file(path)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


class StateLock:
    """An exclusive flock on a lock file of the state dir (created 0600, never through a
    symlink), polled every 10 ms up to *timeout* seconds (None: wait as long as it takes),
    so a stuck holder makes the caller fail with *busy* (an OSError class), never hang."""

    def __init__(self, path: str | os.PathLike, *, timeout: float | None = None,
                 busy: type[OSError] = TimeoutError) -> None:
        self.path, self.timeout, self.busy, self.fd = os.fspath(path), timeout, busy, -1

    def __enter__(self) -> StateLock:
        import errno
        import fcntl
        import time

        fd = open_state_file(self.path, os.O_RDWR | os.O_CREAT)
        try:
            if self.timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + self.timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise self.busy(errno.EAGAIN, f"lock {self.path} held for over {self.timeout:g} s") from None
                        time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing releases the flock
            self.fd = -1
