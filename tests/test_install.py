"""install.sh as a new user runs it: a fresh HOME, a real venv, a real pip install."""

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO


def _install(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "AIKI_HOOKS_", "PYTHON"))}
    env["HOME"] = str(home)
    return subprocess.run(["bash", str(REPO / "install.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_install_creates_a_self_contained_setup_and_shows_the_status(tmp_path):
    home = tmp_path / "newuser"
    home.mkdir()
    result = _install(home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "aiki-hooks on " in result.stdout and "Checks:" in result.stdout
    assert "disk:/" in result.stdout

    venv = home / ".local" / "share" / "aiki-hooks" / "venv"
    command = home / ".local" / "bin" / "aiki-hooks"
    assert command.is_symlink() and Path(os.readlink(command)) == venv / "bin" / "aiki-hooks"
    config = home / ".config" / "aiki-hooks" / "config.toml"
    assert "Detected when this file was written" in config.read_text()
    assert (home / ".local" / "state" / "aiki-hooks" / "system_health.json").exists()

    # Not an editable install: nothing in the venv points back into the clone.
    site = next(venv.glob("lib/python3*/site-packages"))
    assert (site / "aiki_hooks" / "cache.py").is_file()
    pointers = [p for p in site.iterdir() if p.suffix in (".pth", ".egg-link")]
    assert all(str(REPO) not in p.read_text() for p in pointers)

    # A second run upgrades in place and keeps the user's config.
    config.write_text("interval_seconds = 30\n")
    again = _install(home)
    assert again.returncode == 0, again.stderr
    assert f"keeping your config {config}" in again.stdout
    assert config.read_text() == "interval_seconds = 30\n"


def test_install_help_and_unknown_option(tmp_path):
    assert "Install aiki-hooks for this user" in _install(tmp_path, "--help").stdout
    bad = _install(tmp_path, "--bogus")
    assert bad.returncode == 2 and "unknown option '--bogus'" in bad.stderr
