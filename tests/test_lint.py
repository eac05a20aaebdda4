"""ruff, as pyproject.toml configures it, finds nothing in the package and the hook scripts:
part of the README's test command, so of CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def _ruff() -> str:
    beside = Path(sys.executable).parent / "ruff"  # the test venv's (the test extra installs it)
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff not found: install the test extra (pip install -e '.[test]')")
    return found


def test_ruff_finds_nothing():
    result = subprocess.run([_ruff(), "check", "--no-cache", "aiki_hooks", "hooks"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
