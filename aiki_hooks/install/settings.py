"""The Claude Code settings entries that register our hooks.

One definition, used by the installer and by the end-to-end tests, so the tests run the
hooks exactly as users get them: an absolute interpreter path (a pyenv shim would cost
~100 ms per call) and a `timeout` in seconds.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import shlex
import stat
import time
from pathlib import Path

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are lazy
if TYPE_CHECKING:
    from typing import Callable

# Every `source` SessionStart reports (claude-code-hooks reference): fork is a new session
# branched from another, which needs the block like startup.
SESSION_START_MATCHER = "startup|resume|clear|compact|fork"
SESSION_START_TIMEOUT_SECONDS = 5
PRE_TOOL_USE_TIMEOUT_SECONDS = 2
HOOK_SCRIPTS = {"SessionStart": "session_start.py", "PreToolUse": "pre_tool_use.py"}


def hook_command(python: str | Path, script: str | Path) -> str:
    return f"{shlex.quote(str(python))} {shlex.quote(str(script))}"


def hook_entries(python: str | Path, hooks_dir: str | Path) -> dict[str, list[dict]]:
    """The value of settings.json's "hooks" key for our two hooks."""
    hooks_dir = Path(hooks_dir)
    return {
        "SessionStart": [{
            "matcher": SESSION_START_MATCHER,
            "hooks": [{"type": "command", "command": hook_command(python, hooks_dir / HOOK_SCRIPTS["SessionStart"]),
                       "timeout": SESSION_START_TIMEOUT_SECONDS}],
        }],
        "PreToolUse": [{
            "hooks": [{"type": "command", "command": hook_command(python, hooks_dir / HOOK_SCRIPTS["PreToolUse"]),
                       "timeout": PRE_TOOL_USE_TIMEOUT_SECONDS}],
        }],
    }


def resolve_interpreter(value: str | Path, *, must_exist: bool = True, run=None) -> str:
    """The interpreter path to register for `--python VALUE`: absolute, never a PATH
    lookup at hook time (a pyenv shim costs ~100 ms per call).

    A bare name (`python3`) is looked up on PATH now and replaced by the interpreter's
    own sys.executable (past any shim); a relative path is made absolute (not resolved
    further: a venv's bin/python is a symlink whose target has no venv). *must_exist*
    False accepts an absolute path that does not exist yet (install.sh's dry run, before
    the venv). ValueError, one line, when it cannot be used."""
    import shutil
    import subprocess

    text = str(value)
    if not text.strip():
        raise ValueError("--python is empty; give the interpreter's absolute path")
    if "/" not in text and os.sep not in text:
        found = shutil.which(text)
        if found is None:
            raise ValueError(f"--python {text}: not found on PATH; give the interpreter's absolute path")
        try:
            out = (run or subprocess.run)([found, "-c", "import sys; print(sys.executable)"], capture_output=True,
                                          text=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ValueError(f"--python {text} ({found}) did not run: {exc}") from None
        resolved = out.stdout.strip()
        if out.returncode != 0 or not os.path.isabs(resolved):
            raise ValueError(f"--python {text} ({found}) is not a working Python; give the interpreter's absolute path")
        return resolved
    path = os.path.abspath(os.path.expanduser(text))
    if must_exist and not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ValueError(f"--python {text}: {path} is not an executable file")
    return path


def statusline_entry(python: str | Path, hooks_dir: str | Path) -> dict:
    return {"type": "command", "command": hook_command(python, Path(hooks_dir) / "statusline.py"), "padding": 0}


# ---------------------------------------------------------------------------------------
# Installing into settings.json: where, the scripts, recognising our entries, the merge.
#
# Only small standard modules here (ctypes and fcntl when writing): `aiki-hooks
# install-hooks` should start fast and the hooks never import this module.

SCRIPT_MODULES = {"SessionStart": "session_start", "PreToolUse": "pre_tool_use", "statusLine": "statusline"}
OUR_SCRIPT_NAMES = frozenset(f"{module}.py" for module in SCRIPT_MODULES.values())
BACKUP_SUFFIX = ".aiki-hooks.bak"
PLUGIN_NAME = "aiki-hooks"

HOOK_SCRIPT_TEMPLATE = '''#!/usr/bin/env python3
"""Claude Code hook entry point: runs aiki_hooks.hooklib.{module}. Always exits 0.

Registered with an absolute interpreter path (see the README). When the package is not
importable (running from a checkout or a plugin folder), the folder above this one is used.
"""
import os
import sys

try:
    try:
        from aiki_hooks.hooklib.{module} import main
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from aiki_hooks.hooklib.{module} import main
except BaseException as exc:  # noqa: BLE001 - a hook must never break Claude Code
    sys.stderr.write(f"aiki-hooks: cannot load the hook: {{exc}}\\n")
    sys.exit(0)
sys.exit(main())
'''


class SettingsError(Exception):
    """settings.json cannot be used as it is; the message is one line and says nothing was written."""


class SettingsChange:
    """What install_settings / uninstall_settings did (or, with dry_run, would do)."""

    __slots__ = ("backup", "changed", "diff", "note", "path", "warnings")

    def __init__(self, path: Path, changed: bool, diff: str = "", warnings: list[str] | None = None,
                 backup: Path | None = None, note: str = "") -> None:
        self.path = path
        self.changed = changed
        self.diff = diff
        self.warnings = list(warnings or [])
        self.backup = backup
        self.note = note  # what happened, when more than "updated": restored, removed

    def __repr__(self) -> str:
        return (f"SettingsChange(path={self.path!r}, changed={self.changed!r}, warnings={self.warnings!r}, "
                f"backup={self.backup!r})")


# -- locations --------------------------------------------------------------------------

def _home(env) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def _expand(value: str, env) -> Path:
    if value == "~" or value.startswith("~/"):
        return _home(env) / value[2:]
    return Path(value).expanduser()


def claude_config_dir(env=None) -> Path:
    """`${CLAUDE_CONFIG_DIR:-~/.claude}`; a comma-separated list means its first entry."""
    env = os.environ if env is None else env
    value = (env.get("CLAUDE_CONFIG_DIR") or "").split(",")[0].strip()
    return _expand(value, env) if value else _home(env) / ".claude"


def settings_path(*, project: str | None = None, settings: str | None = None, env=None) -> Path:
    """The file install-hooks edits: `--settings FILE`, else `--project DIR` ->
    DIR/.claude/settings.json, else the user's `${CLAUDE_CONFIG_DIR:-~/.claude}/settings.json`."""
    env = os.environ if env is None else env
    if settings:
        return _expand(str(settings), env)
    if project:
        return _expand(str(project), env) / ".claude" / "settings.json"
    return claude_config_dir(env) / "settings.json"


def claude_settings_files(project: str | Path | None = None, env=None) -> list[Path]:
    """The settings files Claude Code reads for *project*, lowest precedence first: the
    user's file, then DIR/.claude/settings.json and DIR/.claude/settings.local.json
    (the same file is listed once, e.g. when the project is the home directory)."""
    env = os.environ if env is None else env
    files = [claude_config_dir(env) / "settings.json"]
    if project is not None:
        base = _expand(str(project), env) / ".claude"
        files += [base / "settings.json", base / "settings.local.json"]
    unique: list[Path] = []
    seen: set[str] = set()
    for file in files:
        key = os.path.realpath(file)
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique


def default_hooks_dir(env=None) -> Path:
    """Where the installer copies the hook scripts: `${XDG_DATA_HOME:-~/.local/share}/aiki-hooks/hooks`."""
    from aiki_hooks.paths import data_dir

    return data_dir(env) / "hooks"


# -- the hook scripts ---------------------------------------------------------------------

def hook_script_text(module: str) -> str:
    """The thin entry script for aiki_hooks.hooklib.<module> (hooks/<module>.py is exactly this)."""
    if module not in SCRIPT_MODULES.values():
        raise ValueError(f"unknown hook module {module!r}; expected one of {sorted(SCRIPT_MODULES.values())}")
    return HOOK_SCRIPT_TEMPLATE.format(module=module)


def _atomic_write(path: Path, payload: bytes, mode: int) -> None:
    """cache.atomic_write_bytes (for our own files: the hook scripts, the backup)."""
    from aiki_hooks.cycle.cache import atomic_write_bytes

    atomic_write_bytes(path, payload, mode=mode)


def _read_seen(path: Path) -> tuple[bytes | None, tuple | None]:
    """The bytes of *path* and the identity of the file they were read from (device,
    inode, size, mtime), both None when it is missing. Never blocks (a FIFO put in its
    place is refused, not waited on); SettingsError for what is not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SettingsError(f"{path}: not a regular file; nothing was written")
        raw = file.read()
        info = os.fstat(fd)  # after reading: a write while we read changes the mtime
    return raw, (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _read_bytes(path: Path) -> bytes | None:
    return _read_seen(path)[0]


def install_hook_scripts(target_dir: str | Path) -> dict[str, Path]:
    """Write session_start.py, pre_tool_use.py and statusline.py into *target_dir*
    (created 0700 if missing): atomically, mode 0755, and only when the content differs.
    Returns {"SessionStart": path, "PreToolUse": path, "statusLine": path}."""
    target = Path(target_dir)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for event, module in SCRIPT_MODULES.items():
        path = target / f"{module}.py"
        payload = hook_script_text(module).encode("utf-8")
        if _read_bytes(path) != payload:
            _atomic_write(path, payload, 0o755)
        elif (os.stat(path).st_mode & 0o777) != 0o755:
            os.chmod(path, 0o755)
        written[event] = path
    return written


# -- recognising our entries --------------------------------------------------------------

def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def is_ours(command) -> bool:
    """True when *command* runs one of our entry scripts from an `aiki-hooks/hooks/`
    directory (the installed layout, or a clone named aiki-hooks), a script inside the
    `aiki_hooks` package, `python -m aiki_hooks...`, or `aiki-hooks statusline`.
    A user's own `~/bin/session_start.py` is not ours."""
    if not isinstance(command, str) or not command.strip():
        return False
    tokens = _tokens(command)
    for index, token in enumerate(tokens):
        parts = [part for part in token.replace("\\", "/").split("/") if part]
        if not parts:
            continue
        name = parts[-1]
        if name in OUR_SCRIPT_NAMES:
            if len(parts) >= 3 and parts[-2] == "hooks" and parts[-3] == "aiki-hooks":
                return True
            if "aiki_hooks" in parts[:-1]:
                return True
        if index > 0 and tokens[index - 1] == "-m" and (token == "aiki_hooks" or token.startswith("aiki_hooks.")):
            return True
        if name == "aiki-hooks" and index + 1 < len(tokens) and tokens[index + 1] == "statusline":
            return True
    return False


def _handler_is_ours(handler) -> bool:
    if not isinstance(handler, dict):
        return False
    command = handler.get("command")
    if not isinstance(command, str):
        return False
    args = handler.get("args")
    if isinstance(args, list) and all(isinstance(arg, str) for arg in args):
        command = " ".join([shlex.quote(command)] + [shlex.quote(arg) for arg in args])
    return is_ours(command)


# -- planning (pure functions over parsed settings) ---------------------------------------

def _clone(value):
    return json.loads(json.dumps(value))


def _hooks_table(settings: dict, source: str) -> dict | None:
    hooks = settings.get("hooks")
    if hooks is None:
        return None
    if not isinstance(hooks, dict):
        raise SettingsError(f"{source}: \"hooks\" is not an object; nothing was written")
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            raise SettingsError(f"{source}: \"hooks\".\"{event}\" is not a list; nothing was written")
    return hooks


def _strip_ours(hooks: dict, keep_empty: frozenset = frozenset()) -> None:
    """Remove our handlers; drop the groups and event lists that this left empty (and
    only those: an empty group or list the user wrote stays, and so do the events in
    *keep_empty*, which the user's original file had as empty lists)."""
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept = []
        dropped_group = False
        for group in groups:
            inner = group.get("hooks") if isinstance(group, dict) else None
            if isinstance(inner, list) and any(_handler_is_ours(h) for h in inner):
                group["hooks"] = [h for h in inner if not _handler_is_ours(h)]
                if not group["hooks"]:
                    dropped_group = True
                    continue
            kept.append(group)
        if dropped_group and not kept and event not in keep_empty:
            del hooks[event]
        else:
            hooks[event] = kept


def _ours_in(groups: list) -> list[tuple[dict, dict]]:
    found = []
    for group in groups:
        inner = group.get("hooks") if isinstance(group, dict) else None
        if isinstance(inner, list):
            found += [(group, h) for h in inner if _handler_is_ours(h)]
    return found


def _enabled_plugins(settings: dict) -> list[str]:
    plugins = settings.get("enabledPlugins")
    if not isinstance(plugins, dict):
        return []
    return [key for key, on in plugins.items() if isinstance(key, str) and key.startswith(f"{PLUGIN_NAME}@") and on is True]


def _common_warnings(settings: dict, source: str) -> list[str]:
    warnings = []
    if settings.get("disableAllHooks") is True:
        warnings.append(f"hooks and the status line are disabled by disableAllHooks in {source}")
    for key in _enabled_plugins(settings):
        warnings.append("the aiki-hooks plugin is enabled too: its hooks stand down while these are here; keep one "
                        f"(claude plugin disable {key}) or run install.sh --uninstall")
    return warnings


def with_our_hooks(settings: dict, python: str | Path, hooks_dir: str | Path, *, statusline: bool, force: bool,
                   source: str = "settings.json") -> tuple[dict, list[str]]:
    """*settings* with our entries exactly once (as `hook_entries` makes them), every other
    key and foreign hook kept in order. Returns (new settings, warnings); *settings* is not
    modified. *source* names the file in warnings and errors."""
    if not isinstance(settings, dict):
        raise SettingsError(f"{source}: not a JSON object; nothing was written")
    wanted = hook_entries(python, hooks_dir)
    wanted_status = statusline_entry(python, hooks_dir)
    if not all(is_ours(g["hooks"][0]["command"]) for gs in wanted.values() for g in gs):
        raise ValueError(f"hooks_dir {hooks_dir} must be an aiki-hooks/hooks directory, or the entries "
                         "could not be recognised (and removed) later")
    new = _clone(settings)
    warnings = _common_warnings(new, source)

    hooks = _hooks_table(new, source)
    if hooks is None:
        hooks = new["hooks"] = {}
    stale = {event: groups for event, groups in hooks.items() if event not in wanted}
    _strip_ours(stale)  # ours under an event we no longer use
    for event in [event for event in hooks if event not in wanted]:
        if event in stale:
            hooks[event] = stale[event]
        else:
            del hooks[event]
    for event, groups in wanted.items():
        current = hooks.get(event, [])
        ours = _ours_in(current)
        if len(ours) == 1 and ours[0][0] == groups[0]:
            continue  # already right: leave it where it is
        if ours:
            single = {event: current}
            _strip_ours(single)
            current = single.get(event, [])
        hooks[event] = current + _clone(groups)

    status = new.get("statusLine")
    if isinstance(status, dict) and is_ours(status.get("command")):
        if any(status.get(key) != value for key, value in wanted_status.items()):
            status.update(wanted_status)  # keeps the user's extra keys (refreshInterval, ...)
    elif statusline:
        if status is None:
            new["statusLine"] = wanted_status
        elif force:
            old = status.get("command") if isinstance(status, dict) else status
            new["statusLine"] = wanted_status
            warnings.append(f"replaced the statusLine ({old}) in {source}")
        else:
            old = status.get("command") if isinstance(status, dict) else status
            warnings.append(f"kept your statusLine ({old}) in {source}; use --force to replace it with ours")
    return new, warnings


def without_our_hooks(settings: dict, original: dict | None = None) -> dict:
    """*settings* without our hook entries and our statusLine; foreign entries untouched.
    The `hooks` key (or an event's list) goes only when removing ours left it empty and
    *original*, the file before we first changed it when known, did not have it."""
    if not isinstance(settings, dict):
        raise SettingsError("settings: not a JSON object; nothing was written")
    new = _clone(settings)
    hooks = new.get("hooks")
    if isinstance(hooks, dict):
        had = original.get("hooks") if isinstance(original, dict) else None
        keep_empty = frozenset(event for event, groups in had.items() if groups == []) if isinstance(had, dict) \
            else frozenset()
        before = len(hooks)
        _strip_ours(hooks, keep_empty)
        if not hooks and before and not isinstance(had, dict):
            del new["hooks"]
    status = new.get("statusLine")
    if isinstance(status, dict) and is_ours(status.get("command")):
        del new["statusLine"]
    return new


# -- file operations ------------------------------------------------------------------------

def render_settings(settings: dict) -> str:
    """The JSON text we write: 2-space indent like Claude Code, UTF-8 kept, trailing newline."""
    return json.dumps(settings, indent=2, ensure_ascii=False) + "\n"


def _encode(path: Path, settings: dict, old: dict) -> bytes:
    """render_settings as UTF-8 bytes; SettingsError naming what cannot be written: a
    lone UTF-16 surrogate ("\\ud800" escaped in the file, valid JSON but no UTF-8 exists
    for it), or an interpreter or hooks path that is not UTF-8."""
    text = render_settings(settings)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = f"\\u{ord(text[exc.start]):04x}" if len(text[exc.start:exc.end]) == 1 else "?"
        try:
            render_settings(old).encode("utf-8")
        except UnicodeEncodeError:
            raise SettingsError(f"{path}: a string in it holds a lone UTF-16 surrogate ({bad}), which cannot be "
                                "written back as UTF-8; fix that string, nothing was written") from None
        raise SettingsError(f"the hook command for {path} is not UTF-8 text ({bad} in the --python or "
                            "--hooks-dir path); nothing was written") from None


def _parse(path: Path, raw: bytes | None) -> dict:
    if raw is None:
        return {}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start}); nothing was written") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
                            "nothing was written") from None
    except RecursionError:
        raise SettingsError(f"{path}: nested too deeply to read; nothing was written") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: the top level is a JSON {type(data).__name__}, not an object; "
                            "nothing was written")
    return data


def load_settings(path: str | Path, *, for_writing: bool = False) -> dict:
    """Parsed settings; {} when the file is missing or empty; SettingsError when unusable,
    or, *for_writing*, when it is read-only (see _refuse_read_only) or holds what cannot
    be written back (see _encode)."""
    path = Path(path)
    target = _target(path)
    try:
        raw, identity = _read_seen(target)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it ({exc.strerror or exc}); nothing was written") from None
    if for_writing and identity is not None:
        _refuse_read_only(path, target)
    settings = _parse(path, raw)
    if for_writing:
        _encode(path, settings, settings)  # what we could not write back stops us before anything is written
    return settings


def _diff(path: Path, raw: bytes | None, new_raw: bytes | None) -> str:
    old_text = raw.decode("utf-8-sig") if raw is not None else ""
    new_text = new_raw.decode("utf-8-sig") if new_raw is not None else ""
    return "".join(difflib.unified_diff(old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                        fromfile=f"{path} (before)" if raw is not None else "/dev/null",
                                        tofile=str(path) if new_raw is not None else "/dev/null"))


def _target(path: Path) -> Path:
    # Write through a symlink (dotfile managers link settings.json): replace its target.
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _read_target(path: Path, target: Path, *, settle: bool = False) -> tuple[bytes | None, tuple | None]:
    """_read_seen, a read error as SettingsError. *settle*: an empty file is read again a
    few times first: a writer that saves in place empties the file before it writes it,
    and merging into that moment's "{}" would replace what it is writing."""
    try:
        seen = _read_seen(target)
        for _ in range(EMPTY_RETRIES if settle else 0):
            if seen[0] is None or seen[0].strip():
                break
            time.sleep(EMPTY_RETRY_SECONDS)
            seen = _read_seen(target)
        return seen
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read it ({exc.strerror or exc}); nothing was written") from None


EMPTY_RETRIES = 3
EMPTY_RETRY_SECONDS = 0.05


def _read_only_reason(target: Path) -> str | None:
    """Why we may not replace *target* although the directory would let us: its owner
    made it read-only (no write bit: root's os.access ignores that), or this user may
    not write it. None when it may be replaced."""
    info = os.stat(target)
    if not info.st_mode & stat.S_IWUSR:
        return f"it is read-only (mode {stat.S_IMODE(info.st_mode):04o})"
    if not os.access(target, os.W_OK):
        return "this user may not write it"
    return None


def _refuse_read_only(path: Path, target: Path) -> None:
    reason = _read_only_reason(target)
    if reason:
        raise SettingsError(f"{path}: {reason}; nothing was written (make it writable if aiki-hooks should "
                            "change it)")


# Tries before giving up on a file that changes under us again and again.
WRITE_ATTEMPTS = 5
LOCK_TIMEOUT_SECONDS = 10.0


@contextlib.contextmanager
def _locked(directory: Path):
    """flock on *directory* itself: aiki-hooks processes updating a settings file in it
    take turns (Claude Code takes no lock, hence the checks in _put). A directory, not a
    lock file: nothing is left behind in the user's config dir."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SettingsError(f"another aiki-hooks has been updating the settings in {directory} for "
                                        f"{LOCK_TIMEOUT_SECONDS:g} s; nothing was written, run again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """renameat2(2) with *flags*; False where the system or the filesystem cannot do it
    (no such call in libc, ENOSYS, EINVAL). Other errors raise OSError."""
    import ctypes
    import errno

    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    call.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    if call(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(target))


def _put(target: Path, payload: bytes | None, mode: int, raw: bytes | None, identity: tuple | None,
         in_window: Callable[[], None] | None = None) -> bool:
    """Replace *target* with *payload* (None: remove it) only if it is still the file read
    as (*raw*, *identity*); False, with nothing changed, when another writer got there
    first (the caller reads again and retries).

    The usual check-then-rename leaves a window in which a write is lost. Here the
    replacement is an exchange (renameat2 RENAME_EXCHANGE): what was displaced is kept
    and compared with what was read; if another writer came in between, it is put back.
    A file created meanwhile is never overwritten (RENAME_NOREPLACE, or link). Where
    the filesystem cannot exchange, the check is right before a plain rename. The temp
    file beside *target* (mode *mode*), the fsyncs and the removal of what is left at the
    temp name are cache.atomic_write_bytes's; the exchange is its *replace*.
    *in_window*, for tests, runs between the check and the replacement."""
    if payload is None:
        return _remove(target, raw, identity, in_window)
    from aiki_hooks.cycle.cache import atomic_write_bytes

    def exchange(temp_name: str, _target: str) -> bool:
        temp = Path(temp_name)
        if _read_seen(target) != (raw, identity):
            return False
        if in_window is not None:
            in_window()
        if identity is None:
            try:
                if not _renameat2(temp, target, _RENAME_NOREPLACE):
                    os.link(temp, target)  # fails, as wanted, if the file exists by now
            except FileExistsError:
                return False
        elif not _renameat2(temp, target, _RENAME_EXCHANGE):
            os.replace(temp, target)
        elif _read_seen(temp) != (raw, identity):
            # Someone wrote between our check and the exchange: theirs goes back.
            _renameat2(temp, target, _RENAME_EXCHANGE)
            if _read_seen(temp)[0] != payload:
                # And wrote again in between, over ours: that newest version goes back
                # too, and the one before it is kept aside rather than deleted.
                _renameat2(temp, target, _RENAME_EXCHANGE)
                kept = target.with_name(f"{target.name}.aiki-hooks.conflict")
                os.replace(temp, kept)
                raise SettingsError(f"{target} changed twice while aiki-hooks was updating it; nothing of ours is "
                                    f"in it, the version before its latest is kept in {kept}; run again")
            return False
        return True  # what is left at the temp name (the version we read and replaced) is removed

    return atomic_write_bytes(target, payload, mode=mode, replace=exchange)


def _remove(target: Path, raw: bytes | None, identity: tuple | None,
            in_window: Callable[[], None] | None) -> bool:
    """_put's removal: the file is moved aside, compared, and only then deleted."""
    from aiki_hooks.cycle.cache import fsync_dir

    aside = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.removed")
    if _read_seen(target) != (raw, identity):
        return False
    if in_window is not None:
        in_window()
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        return False
    if _read_seen(aside) != (raw, identity):
        try:
            os.link(aside, target)  # put theirs back, unless a newer one is there already
        except FileExistsError:
            pass
        aside.unlink()
        return False
    aside.unlink()
    fsync_dir(target.parent)
    return True


def _backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def _has_ours(settings: dict) -> bool:
    return without_our_hooks(settings) != settings


def plugin_enabled_in(paths) -> dict[str, Path]:
    """{key: the file that enables it} for our plugin (aiki-hooks@<marketplace>) in the
    settings files *paths*, lowest precedence first: a later file's value wins, as in
    Claude Code. Unusable files are skipped (doctor reports them)."""
    state: dict[str, tuple[Path, bool]] = {}
    for path in map(Path, paths):
        try:
            settings = load_settings(path)
        except SettingsError:
            continue
        plugins = settings.get("enabledPlugins")
        if isinstance(plugins, dict):
            for key, on in plugins.items():
                if isinstance(key, str) and key.startswith(f"{PLUGIN_NAME}@"):
                    state[key] = (path, on is True)
    return {key: where for key, (where, on) in state.items() if on}


def _changed_under_us(path: Path) -> SettingsError:
    return SettingsError(f"{path} kept changing while aiki-hooks was updating it ({WRITE_ATTEMPTS} tries); "
                         "nothing was written, run again")


def install_settings(path: str | Path, python: str | Path, hooks_dir: str | Path, *, statusline: bool = False,
                     force: bool = False, dry_run: bool = False, read_too=(),
                     in_window: Callable[[], None] | None = None) -> SettingsChange:
    """Merge our entries into the settings file at *path* (see with_our_hooks).

    *read_too*: the other settings files Claude Code reads beside it (claude_settings_files,
    lowest precedence first): our plugin enabled in any of them is warned about too (every
    hook would run twice, were it not that the plugin's hooks stand down; one should go).

    The backup (`<file>.aiki-hooks.bak`) keeps the user's file as it was before we first
    changed it: it is written when the file holds none of our entries, and otherwise only
    if there is none yet (an upgrade must not replace the original with our own output).
    uninstall_settings restores it.

    A read-only file is refused (SettingsError; a dry run warns). The file is replaced
    only if it still is what the merge was made from (see _put); when another writer
    (Claude Code) changed it meanwhile, the merge is made again from its version, up to
    WRITE_ATTEMPTS times. *in_window*: see _put."""
    path = Path(path)
    target = _target(path)

    def plan(raw: bytes | None) -> tuple[dict, dict, list[str]]:
        old = _parse(path, raw)
        new, warnings = with_our_hooks(old, python, hooks_dir, statusline=statusline, force=force, source=str(path))
        files = [Path(p) for p in read_too]
        if not any(os.path.realpath(p) == os.path.realpath(path) for p in files):
            files.append(path)
        for key, where in plugin_enabled_in(files).items():
            if os.path.realpath(where) != os.path.realpath(path):  # the file itself: with_our_hooks said it
                warnings.append(f"the aiki-hooks plugin is enabled in {where} too: its hooks stand down while "
                                f"these are here; keep one (claude plugin disable {key}) or run install.sh --uninstall")
        return old, new, warnings

    if dry_run:
        raw, identity = _read_target(path, target)
        old, new, warnings = plan(raw)
        if new == old:
            return SettingsChange(path, False, "", warnings)
        new_raw = _encode(path, new, old)
        reason = _read_only_reason(target) if identity is not None else None
        if reason:
            warnings.append(f"{path}: {reason}; a real run would refuse to change it")
        return SettingsChange(path, True, _diff(path, raw, new_raw), warnings)

    if not target.parent.is_dir():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(target.parent):
        for _attempt in range(WRITE_ATTEMPTS):
            raw, identity = _read_target(path, target, settle=True)
            if identity is not None:
                _refuse_read_only(path, target)
            old, new, warnings = plan(raw)
            if new == old:
                return SettingsChange(path, False, "", warnings)
            new_raw = _encode(path, new, old)
            backup = None
            backup_path = _backup_path(path)
            if raw is None:
                mode = 0o600
                # A backup left from a file that has since gone is not this file's original.
                backup_path.unlink(missing_ok=True)
            else:
                mode = stat.S_IMODE(os.stat(target).st_mode)
                if not _has_ours(old) or not backup_path.exists():
                    backup = backup_path
                    _atomic_write(backup, raw, 0o600)
            if _put(target, new_raw, mode, raw, identity, in_window):
                return SettingsChange(path, True, _diff(path, raw, new_raw), warnings, backup)
        raise _changed_under_us(path)


def _original(backup_raw: bytes | None) -> dict | None:
    """The user's file before our first install, from our backup; None when there is no
    usable one (missing, unreadable, or holding our entries: from an older version)."""
    if backup_raw is None:
        return None
    try:
        original = _parse(Path("backup"), backup_raw)
    except SettingsError:
        return None
    return None if _has_ours(original) else original


def uninstall_settings(path: str | Path, *, dry_run: bool = False,
                       in_window: Callable[[], None] | None = None) -> SettingsChange:
    """Remove our entries from the settings file at *path*, and our backup.

    When the file holds nothing but what our install added to the user's original (the
    backup), the original comes back byte for byte; when the file did not exist before
    (no backup) and holds only ours, it is removed. Otherwise (the user or Claude Code
    changed it since) only our entries go, see without_our_hooks. A missing file stays
    missing. A read-only file and concurrent writers are handled as in install_settings."""
    path = Path(path)
    target = _target(path)
    backup_path = _backup_path(path)

    def plan(raw: bytes | None) -> tuple[dict, dict, bytes | None, bytes | None, str]:
        old = _parse(path, raw)
        try:
            backup_raw = _read_bytes(backup_path)
        except (OSError, SettingsError):
            backup_raw = None
        original = _original(backup_raw)
        stripped = without_our_hooks(old, original)
        if stripped == old:
            return old, stripped, backup_raw, None, ""
        if original is not None and stripped == original:
            return old, stripped, backup_raw, backup_raw, f"restored your original {path}"
        if backup_raw is None and not stripped and not path.is_symlink():
            return old, stripped, backup_raw, None, f"removed {path}: aiki-hooks created it"
        return old, stripped, backup_raw, _encode(path, stripped, old), ""

    if dry_run:
        raw, _identity = _read_target(path, target)
        old, stripped, _backup_raw, new_raw, note = plan(raw)
        if stripped == old:
            return SettingsChange(path, False, "", [])
        return SettingsChange(path, True, _diff(path, raw, new_raw), note=note)

    with _locked(target.parent) if target.parent.is_dir() else contextlib.nullcontext():
        for _attempt in range(WRITE_ATTEMPTS):
            raw, identity = _read_target(path, target, settle=True)
            old, stripped, backup_raw, new_raw, note = plan(raw)
            if stripped == old:
                if backup_raw is not None and raw is not None:
                    backup_path.unlink(missing_ok=True)  # nothing of ours left to undo
                return SettingsChange(path, False, "", [])
            _refuse_read_only(path, target)
            if _put(target, new_raw, stat.S_IMODE(os.stat(target).st_mode), raw, identity, in_window):
                backup_path.unlink(missing_ok=True)
                return SettingsChange(path, True, _diff(path, raw, new_raw), note=note)
        raise _changed_under_us(path)


# -- doctor ---------------------------------------------------------------------------------

def _command_paths(command: str) -> tuple[str | None, list[str]]:
    """(the program, the script paths) of one of our commands."""
    tokens = _tokens(command)
    program = tokens[0] if tokens else None
    scripts = [t for t in tokens[1:] if t.endswith(".py") and ("/" in t or "\\" in t)]
    return program, scripts


def check_settings(paths, *, python_must_exist: bool = True) -> list:
    """Findings for `aiki-hooks doctor` about the Claude Code settings files *paths*
    (lowest precedence first, as claude_settings_files returns them)."""
    from aiki_hooks.install.findings import FAIL, PASS, WARN, Finding

    findings: list = []
    registered: dict[str, list[Path]] = {event: [] for event in HOOK_SCRIPTS}
    disabled: tuple[Path, bool] | None = None
    plugins: dict[str, tuple[Path, bool]] = {}
    commands: list[tuple[Path, str, dict]] = []
    for path in map(Path, paths):
        try:
            settings = load_settings(path)
        except SettingsError as exc:
            message = str(exc).replace("; nothing was written", "")
            findings.append(Finding(FAIL, message, f"fix {path} by hand: Claude Code cannot use it either"))
            continue
        if "disableAllHooks" in settings:
            disabled = (path, settings["disableAllHooks"] is True)
        enabled = settings.get("enabledPlugins")
        if isinstance(enabled, dict):
            for key, on in enabled.items():
                if isinstance(key, str) and key.startswith(f"{PLUGIN_NAME}@"):
                    plugins[key] = (path, on is True)
        hooks = settings.get("hooks")
        if isinstance(hooks, dict):
            for event, groups in hooks.items():
                if not isinstance(groups, list):
                    continue
                for _group, handler in _ours_in(groups):
                    commands.append((path, event, handler))
                    if event in registered and path not in registered[event]:
                        registered[event].append(path)
        status = settings.get("statusLine")
        if isinstance(status, dict) and is_ours(status.get("command")):
            commands.append((path, "statusLine", status))

    plugin_on = sorted(key for key, (_path, on) in plugins.items() if on)
    missing = [event for event, files in registered.items() if not files]
    fix_install = "run `aiki-hooks install-hooks`"
    if len(missing) == len(registered):
        if plugin_on:
            findings.append(Finding(PASS, f"hooks provided by the plugin {', '.join(plugin_on)}"))
        else:
            findings.append(Finding(FAIL, "hooks missing (Claude Code may have rewritten settings.json)", fix_install))
    else:
        for event in missing:
            findings.append(Finding(FAIL, f"{event} hook missing (Claude Code may have rewritten settings.json)",
                                    fix_install))
        for event, files in registered.items():
            if len(files) > 1:
                findings.append(Finding(WARN, f"{event} hook registered in {len(files)} files "
                                        f"({', '.join(map(str, files))}): it runs once per file",
                                        "keep one: `aiki-hooks uninstall-hooks --settings FILE` for the others"))
            elif files:
                findings.append(Finding(PASS, f"{event} hook registered in {files[0]}"))
        if plugin_on:
            findings.append(Finding(WARN, f"the plugin {', '.join(plugin_on)} is enabled too (its hooks stand down)",
                                    f"claude plugin disable {plugin_on[0]}, or `aiki-hooks uninstall-hooks`"))

    for path, event, handler in commands:
        program, scripts = _command_paths(handler.get("command", ""))
        if program and python_must_exist:
            if "/" not in program:
                findings.append(Finding(WARN, f"{event} command in {path} runs `{program}` through PATH",
                                        f"{fix_install} to register an absolute interpreter path"))
            elif not os.path.exists(os.path.expanduser(program)):
                findings.append(Finding(FAIL, f"{event} interpreter {program} (in {path}) does not exist",
                                        fix_install))
        for script in scripts:
            if not os.path.exists(os.path.expanduser(script)):
                findings.append(Finding(FAIL, f"{event} script {script} (in {path}) does not exist", fix_install))
        if event != "statusLine" and not isinstance(handler.get("timeout"), (int, float)):
            findings.append(Finding(WARN, f"{event} hook in {path} has no timeout (Claude Code's default is 600 s)",
                                    fix_install))

    if disabled is not None and disabled[1]:
        findings.append(Finding(FAIL, f"hooks and the status line are disabled by disableAllHooks in {disabled[0]}",
                                f"remove \"disableAllHooks\" from {disabled[0]}"))
    return findings
