"""The probe kind registry: every built-in kind complete, and a third-party kind found
through its entry point by the real command line.

The plugin is the worked example of docs/probes.md, cut out of the doc itself (so the doc
cannot rot): its module and its pyproject.toml, built by the real setuptools and installed
by the real pip into a directory put on PYTHONPATH, where importlib.metadata finds its
dist-info as it would in site-packages.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiki_hooks.paths import CACHE_NAME
from aiki_hooks.config.load import ConfigError, effective_config_toml, parse_config
from aiki_hooks.config.validators import Reader
from aiki_hooks.probes import registry
from aiki_hooks.probes.registry import BuildContext, ProbeKind
from tests.conftest import REPO, cli_env, quiet_config, run_cli

DOC = REPO / "docs" / "probes.md"


def doc_block(label: str, language: str) -> str:
    """The fenced block of *language* that follows the line "`label`:" in docs/probes.md."""
    match = re.search(rf"^`{re.escape(label)}`[^\n]*:\n\n```{language}\n(.*?)^```", DOC.read_text(), re.M | re.S)
    assert match, f"docs/probes.md has no {language} block after `{label}`"
    return match.group(1)


def source_tree(out: Path, pyproject: str, modules: dict[str, str]) -> Path:
    """A project directory: *pyproject* and one file per module, as a plugin author has it."""
    out.mkdir(parents=True)
    (out / "pyproject.toml").write_text(pyproject)
    for module, source in modules.items():
        (out / f"{module}.py").write_text(source)
    return out


def pip_install(target: Path, *projects: Path) -> None:
    """Install *projects* into *target* with the real pip and the real setuptools backend,
    offline: no build isolation (the test extra brings a setuptools that builds wheels)."""
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                             "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
                             *map(str, projects)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def package(out: Path, name: str, module: str, source: str, entry_points: dict[str, str]) -> Path:
    """A project of one module registering *entry_points* in aiki_hooks.probes."""
    points = "".join(f'{key} = "{value}"\n' for key, value in entry_points.items())
    pyproject = (f'[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
                 f'[project]\nname = "{name}"\nversion = "1.0"\n\n'
                 f'[project.entry-points."aiki_hooks.probes"]\n{points}')
    return source_tree(out / name, pyproject, {module: source})


@pytest.fixture(scope="module")
def plugins_dir(tmp_path_factory) -> Path:
    """The doc's file_age package and two broken ones, installed into one directory."""
    base = tmp_path_factory.mktemp("plugins")
    example = source_tree(base / "src" / "aiki-file-age", doc_block("pyproject.toml", "toml"),
                          {"aiki_file_age": doc_block("aiki_file_age.py", "python")})
    broken = package(base / "src", "aiki-broken", "aiki_broken",
                     "import a_module_that_is_not_installed\n", {"broken_kind": "aiki_broken:KIND"})
    not_a_kind = package(base / "src", "aiki-not-a-kind", "aiki_not_a_kind",
                         "KIND = {'name': 'dict_kind'}\n", {"dict_kind": "aiki_not_a_kind:KIND"})
    target = base / "site"
    pip_install(target, example, broken, not_a_kind)
    return target


def plugin_env(plugins_dir: Path) -> dict[str, str]:
    env = cli_env()
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{plugins_dir}"
    return env


def aiki_hooks(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("aiki-hooks")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)


def results(state: Path) -> dict[str, dict]:
    cache = json.loads((state / CACHE_NAME).read_text())
    return {probe["name"]: probe for probe in cache["probes"]}


# --------------------------------------------------------------------------- (a) the doc's example


def test_the_docs_example_runs_through_the_real_cli(tmp_path, plugins_dir):
    fresh, stale = tmp_path / "fresh.tar", tmp_path / "stale.tar"
    fresh.write_text("x")
    stale.write_text("x")
    hours_ago = time.time() - 3 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    state = tmp_path / "state"
    config = quiet_config(tmp_path / "config.toml", state, interval=60, extra=f"""
[[probes.file_age]]
name = "fresh"
path = "{fresh}"
warn_seconds = 3600
crit_seconds = 7200

[[probes.file_age]]
name = "stale"
path = "{stale}"
warn_seconds = 3600
crit_seconds = 7200

[[probes.file_age]]
name = "gone"
path = "{tmp_path / 'missing.tar'}"

[[probes.command]]
name = "builtin"
command = ["true"]
""")
    env = plugin_env(plugins_dir)
    refreshed = aiki_hooks("--config", str(config), "refresh", env=env)
    assert "Traceback" not in refreshed.stderr, refreshed.stderr
    found = results(state)
    assert (found["fresh"]["kind"], found["fresh"]["status"]) == ("file_age", "OK")
    assert found["fresh"]["values"]["age_seconds"] < 60
    assert found["stale"]["status"] == "CRITICAL" and found["stale"]["summary"].startswith(f"{stale} is 10")
    assert (found["gone"]["status"], found["gone"]["error_kind"]) == ("UNKNOWN", "unreadable")
    assert found["builtin"]["status"] == "OK"

    status = aiki_hooks("--config", str(config), "status", env=env)
    assert "stale" in status.stdout and "CRITICAL" in status.stdout, status.stdout
    printed = aiki_hooks("--config", str(config), "config", env=env)
    assert printed.returncode == 0, printed.stderr
    assert f'path = "{stale}"' in printed.stdout and "[[probes.file_age]]" in printed.stdout


# --------------------------------------------------------------------------- (b) a bad value


def test_a_bad_value_in_a_plugins_table_is_one_line_naming_file_key_and_expectation(tmp_path, plugins_dir):
    config = quiet_config(tmp_path / "config.toml", tmp_path / "state", interval=60, extra="""
[[probes.file_age]]
name = "backup"
path = "/var/backups/last.tar"
warn_seconds = "soon"
""")
    result = aiki_hooks("--config", str(config), "status", env=plugin_env(plugins_dir))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith(f'invalid config {config}: probes.file_age[0].warn_seconds = "soon": '
                             f"expected a number >= 0"), lines[0]


def test_a_missing_required_key_of_a_plugins_table(tmp_path, plugins_dir):
    config = quiet_config(tmp_path / "config.toml", tmp_path / "state", interval=60,
                          extra='[[probes.file_age]]\nname = "backup"\n')
    result = aiki_hooks("--config", str(config), "config", env=plugin_env(plugins_dir))
    assert result.returncode != 0 and "probes.file_age[0].path: missing (required)" in result.stderr


def test_an_unknown_kind_lists_the_kinds_there_are(tmp_path, plugins_dir):
    config = quiet_config(tmp_path / "config.toml", tmp_path / "state", interval=60,
                          extra='[[probes.file_agee]]\nname = "backup"\n')
    result = aiki_hooks("--config", str(config), "config", env=plugin_env(plugins_dir))
    assert result.returncode != 0
    assert ("probes.file_agee: unknown probe kind (known kinds: systemd, http, tcp, command, broken_kind, "
            "dict_kind, file_age; a plugin adds others)") in result.stderr


# --------------------------------------------------------------------------- (c) broken plugins


def test_a_broken_plugin_is_reported_and_the_others_still_run(tmp_path, plugins_dir):
    state = tmp_path / "state"
    config = quiet_config(tmp_path / "config.toml", state, interval=60, extra=f"""
[[probes.broken_kind]]
name = "wanted"
anything = "is accepted: nothing can check it"

[[probes.dict_kind]]
name = "also-wanted"

[[probes.command]]
name = "builtin"
command = ["true"]

[[probes.file_age]]
name = "here"
path = "{DOC}"
warn_seconds = 1e12
crit_seconds = 1e12
""")
    env = plugin_env(plugins_dir)
    refreshed = aiki_hooks("--config", str(config), "refresh", env=env)
    assert "Traceback" not in refreshed.stderr + refreshed.stdout, refreshed.stderr
    found = results(state)
    assert found["builtin"]["status"] == "OK" and found["here"]["status"] == "OK"
    wanted = found["wanted"]
    assert (wanted["kind"], wanted["status"], wanted["error_kind"]) == ("broken_kind", "UNKNOWN", "plugin_broken")
    assert wanted["summary"] == (
        "probe kind plugin entry point broken_kind = aiki_broken:KIND (distribution aiki-broken 1.0) cannot be "
        "loaded: ModuleNotFoundError: No module named 'a_module_that_is_not_installed'")
    assert found["also-wanted"]["summary"] == (
        "probe kind plugin entry point dict_kind = aiki_not_a_kind:KIND (distribution aiki-not-a-kind 1.0) is not "
        "a ProbeKind (it is a dict)")

    doctor = aiki_hooks("--config", str(config), "doctor", env=env)
    assert "Traceback" not in doctor.stderr
    assert "probe kind plugin file_age loaded" in doctor.stdout
    assert "aiki-broken 1.0) cannot be loaded: ModuleNotFoundError" in doctor.stdout


def test_a_plugin_may_not_take_a_built_in_kinds_name(tmp_path):
    target = tmp_path / "site"
    clash = package(tmp_path / "dist", "aiki-clash", "aiki_clash",
                    doc_block("aiki_file_age.py", "python").replace('name="file_age"', 'name="http"'),
                    {"http": "aiki_clash:FILE_AGE"})
    pip_install(target, clash)
    state = tmp_path / "state"
    config = quiet_config(tmp_path / "config.toml", state, interval=60, extra="""
[[probes.http]]
name = "web"
url = "http://127.0.0.1:9/"
timeout_seconds = 1
""")
    env = plugin_env(target)
    refreshed = aiki_hooks("--config", str(config), "refresh", env=env)
    assert results(state)["web"]["kind"] == "http" and "url" not in refreshed.stderr
    # Doctor reads every entry point: the clash is refused and said so.
    result = aiki_hooks("--config", str(config), "doctor", env=env)
    assert ("probe kind plugin entry point http = aiki_clash:FILE_AGE (distribution aiki-clash 1.0) clashes with "
            "the built-in kind 'http', so it is ignored") in result.stdout


# --------------------------------------------------------------------------- (d) built-in kinds complete


@pytest.mark.parametrize("name", registry.BUILTIN_NAMES)
def test_every_built_in_kind_is_complete(name):
    kind = registry.builtin_kind(name)
    assert isinstance(kind, ProbeKind) and kind.name == name
    fields = {f.name: f for f in dataclasses.fields(kind.config_type)}
    assert {"name", "timeout_seconds"} <= set(fields), "every record has a name and a timeout"
    assert set(kind.spec) <= set(fields), "every key of the spec lands in the record"
    assert set(kind.required) <= set(kind.spec)
    assert kind.hints, "doctor has something to say about a failing probe of this kind"
    # A minimal table of the kind loads, builds a probe of the kind, prints and loads back.
    minimal = {key: MINIMAL_VALUES[key] for key in kind.required}
    config = parse_config({"probes": {name: [minimal]}}, env={})
    (record,) = config.entries(name)
    assert isinstance(record, kind.config_type)
    assert config.max_probe_timeout >= record.timeout_seconds
    probes = kind.build([record], BuildContext(env={}, state_dir=Path("/nonexistent")))
    assert probes and all(p.kind == name and record.name in p.names for p in probes)
    import tomllib

    reparsed = parse_config(tomllib.loads(effective_config_toml(config, env={})), env={})
    assert reparsed.entries(name) == (record,)
    # Its values are checked: each key refuses a value of the wrong type, with a message.
    for key, (check, _) in kind.spec.items():
        assert check(object()), f"{name}.{key} accepts anything"


MINIMAL_VALUES = {"unit": "qdrant.service", "name": "svc", "url": "http://127.0.0.1:6333", "host": "127.0.0.1",
                  "port": 6333, "command": ["true"]}


def test_built_in_kinds_are_imported_only_when_configured():
    # A fresh interpreter: loading a config without [[probes.http]] must not import the
    # HTTP probe, nor read entry points (importlib.metadata weighs ~7 MiB).
    code = ("import sys; from aiki_hooks.config.load import parse_config; "
            "parse_config({'probes': {'tcp': [{'name': 't', 'host': 'h', 'port': 1}]}}, env={}); "
            "print(sorted(m for m in ('aiki_hooks.probes.http', 'aiki_hooks.probes.tcp', 'importlib.metadata') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); {code}"],
                            capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "['aiki_hooks.probes.tcp']"


def test_a_plugin_kinds_spec_is_applied_like_a_built_in_one():
    # Through the same Reader: the message format is the loader's, for any kind.
    kind = registry.builtin_kind("tcp")
    reader = Reader()
    reader.table({"name": "db", "host": "h", "port": 70000}, "probes.tcp[0]", kind.spec, required=kind.required)
    assert reader.problems == ["probes.tcp[0].port = 70000: expected a whole number from 1 to 65535"]
    with pytest.raises(ConfigError, match=r"probes\.tcp\[0\]\.port = 70000"):
        parse_config({"probes": {"tcp": [{"name": "db", "host": "h", "port": 70000}]}}, env={})


def test_run_cli_finds_no_plugins_without_them(tmp_path):
    # Without the plugin installed, the kind is unknown and the message says how to get more.
    config = quiet_config(tmp_path / "config.toml", tmp_path / "state", interval=60,
                          extra='[[probes.file_age]]\nname = "b"\npath = "/"\n')
    result = run_cli("--config", str(config), "config")
    assert result.returncode != 0
    assert "probes.file_age: unknown probe kind (known kinds: systemd, http, tcp, command" in result.stderr
