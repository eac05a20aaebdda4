"""Where things live, following the XDG base directory spec. Standard library only:
the hooks import this on every tool call."""

from __future__ import annotations

import os
import stat
from pathlib import Path

APP = "aiki-hooks"
CACHE_NAME = "system_health.json"


def _xdg(var: str, fallback: str, env: os._Environ | dict | None = None) -> Path:
    env = os.environ if env is None else env
    value = env.get(var, "")
    # The spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path(env.get("HOME") or os.path.expanduser("~")) / fallback


def config_path(env=None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("AIKI_HOOKS_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg("XDG_CONFIG_HOME", ".config", env) / APP / "config.toml"


def default_state_dir(env=None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("AIKI_HOOKS_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg("XDG_STATE_HOME", ".local/state", env) / APP


def data_dir(env=None) -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share", env) / APP


def ensure_private_dir(path: Path | str) -> Path:
    """Create *path* (and parents) with mode 0700 and tighten it if it is looser.

    Refuses a directory owned by someone else: our state must not live where another
    user can swap files under us.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} is owned by uid {info.st_uid}, not by this user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path
