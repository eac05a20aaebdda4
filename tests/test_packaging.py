"""Packaging facts that must stay true: every extra a message names exists, the version
is written in one place, and the hot path's modules do not need an extra."""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib

from aiki_hooks import __version__
from aiki_hooks.install.plugin import build_plugin

from .conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_extra_named_anywhere_exists():
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    texts = [p for p in (REPO / "aiki_hooks").rglob("*.py")] + [REPO / "install.sh", REPO / "README.md",
                                                                  *(REPO / "docs").glob("*.md")]
    named = {(path.name, extra) for path in texts
             for extra in re.findall(r"aiki-hooks\[([a-z0-9_,-]+)\]", path.read_text())}
    assert named, "no message names an extra: the check below would pass on nothing"
    for where, extra in named:
        assert set(extra.split(",")) <= extras, f"{where} names aiki-hooks[{extra}], which pyproject.toml lacks"


def test_mem0_is_an_extra_not_a_dependency():
    core = " ".join(PYPROJECT["project"]["dependencies"])
    assert "mem0ai" not in core and "requests" not in core and "httpx" not in core
    assert any(dep.startswith("mem0ai") for dep in PYPROJECT["project"]["optional-dependencies"]["mem0"])


def test_the_version_is_written_once(tmp_path):
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert importlib.metadata.version("aiki-hooks") == __version__
    assert "version" not in json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    plugin = build_plugin(REPO, tmp_path / "market")
    assert json.loads((plugin / ".claude-plugin" / "plugin.json").read_text())["version"] == __version__
