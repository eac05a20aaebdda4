"""Registering the hooks in Claude Code's settings.json: where, recognising our entries,
the merge (every foreign key and hook kept in order), the file writes and the doctor checks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aiki_hooks.install import settings as cs
from aiki_hooks.install.findings import FAIL, PASS, WARN
from aiki_hooks.install.settings import (
    SettingsError,
    check_settings,
    hook_entries,
    install_settings,
    is_ours,
    statusline_entry,
    uninstall_settings,
    with_our_hooks,
    without_our_hooks,
)
from tests.conftest import REPO

PY = "/opt/aiki/venv/bin/python"
HOOKS_DIR = "/home/me/.local/share/aiki-hooks/hooks"
OURS = hook_entries(PY, HOOKS_DIR)
SS_CMD = OURS["SessionStart"][0]["hooks"][0]["command"]
PTU_CMD = OURS["PreToolUse"][0]["hooks"][0]["command"]
USER_SS = {"matcher": "startup", "hooks": [{"type": "command", "command": "~/bin/session_start.py", "timeout": 9}]}
USER_PTU = {"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/local/bin/guard --strict"}]}
USER_STATUS = {"type": "command", "command": "~/.claude/statusline.sh", "padding": 1}


def install(settings, *, statusline=False, force=False, python=PY, hooks_dir=HOOKS_DIR):
    return with_our_hooks(settings, python, hooks_dir, statusline=statusline, force=force)


# -- is_ours ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    SS_CMD,
    PTU_CMD,
    "/usr/bin/python3 /home/me/.local/share/aiki-hooks/hooks/statusline.py",
    "python3 ~/.local/share/aiki-hooks/hooks/session_start.py",
    "'/home/a b/venv/bin/python' '/home/a b/.local/share/aiki-hooks/hooks/pre_tool_use.py'",
    "/x/venv/bin/python /home/me/src/aiki-hooks/hooks/session_start.py",  # the README's manual layout
    "/x/venv/bin/python /x/venv/lib/python3.12/site-packages/aiki_hooks/hooklib/pre_tool_use.py",
    "/x/venv/bin/python -m aiki_hooks.hooklib.session_start",
    "python3 -m aiki_hooks statusline",
    "/home/me/.local/share/aiki-hooks/venv/bin/aiki-hooks statusline",
    "aiki-hooks statusline",
    "$HOME/.local/share/aiki-hooks/hooks/session_start.py",
])
def test_is_ours(command):
    assert is_ours(command)


@pytest.mark.parametrize("command", [
    "~/bin/session_start.py",
    "python3 /home/me/bin/session_start.py",
    "python3 /home/me/hooks/pre_tool_use.py",
    "python3 /home/me/my-hooks/hooks/session_start.py",
    "python3 /home/me/aiki-hooks/hooks/other.py",
    "python3 /home/me/aiki-hooks/session_start.py",
    "echo aiki-hooks/hooks/session_start",
    "aiki-hooks status",
    "/usr/local/bin/guard --strict",
    "python3 -m mytool.aiki_hooks",
    "\"${CLAUDE_PLUGIN_ROOT}/hooks/plugin-run\" session_start",
    "",
    None,
    42,
])
def test_is_not_ours(command):
    assert not is_ours(command)


def test_unbalanced_quotes_do_not_raise():
    assert is_ours("python3 ~/.local/share/aiki-hooks/hooks/session_start.py '")
    assert not is_ours("echo 'oops")


# -- planning: install then uninstall gives the original back -----------------------------------

ORIGINALS = {
    "empty": {},
    "unrelated keys": {"model": "opus", "theme": "dark", "env": {"A": "1"}},
    "permissions": {"permissions": {"allow": ["Bash(git *)"], "deny": ["Read(./.env)"]}, "cleanupPeriodDays": 20},
    "user hooks on the same events": {
        "hooks": {"SessionStart": [USER_SS], "PreToolUse": [USER_PTU], "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]},
    },
    "user hooks on other events": {"hooks": {"PostToolUse": [USER_PTU]}, "model": "sonnet"},
    "user statusLine": {"statusLine": USER_STATUS},
    "unknown and nested": {
        "zzz": [1, {"deep": {"deeper": [None, True, 1.5, "ü"]}}],
        "enabledPlugins": {"other@mkt": True},
        "extraKnownMarketplaces": {"mkt": {"source": {"source": "directory", "path": "/x"}}},
        "a": None,
    },
    "user empty event list": {"hooks": {"Stop": []}},
}


@pytest.mark.parametrize("statusline", [False, True])
@pytest.mark.parametrize("name", list(ORIGINALS))
def test_install_then_uninstall_gives_the_original(name, statusline):
    original = ORIGINALS[name]
    frozen = json.dumps(original)
    installed, _ = install(original, statusline=statusline)
    assert json.dumps(original) == frozen  # not modified in place
    assert without_our_hooks(installed) == original
    assert json.dumps(without_our_hooks(installed)) == frozen  # key order too


@pytest.mark.parametrize("name", list(ORIGINALS))
def test_install_adds_ours_once_and_keeps_everything_else_in_order(name):
    original = ORIGINALS[name]
    installed, _ = install(original)
    assert list(installed)[: len(original)] == list(original)
    for key, value in original.items():
        if key != "hooks":
            assert installed[key] == value
    for event, groups in OURS.items():
        before = original.get("hooks", {}).get(event, [])
        assert installed["hooks"][event] == before + groups  # ours appended, exactly hook_entries
    for event, groups in original.get("hooks", {}).items():
        if event not in OURS:
            assert installed["hooks"][event] == groups
    assert list(installed["hooks"])[: len(original.get("hooks", {}))] == list(original.get("hooks", {}))


@pytest.mark.parametrize("statusline", [False, True])
@pytest.mark.parametrize("name", list(ORIGINALS))
def test_idempotent(name, statusline):
    once, _ = install(ORIGINALS[name], statusline=statusline)
    twice, _ = install(once, statusline=statusline)
    assert twice == once
    assert json.dumps(twice) == json.dumps(once)


def test_uninstall_without_ours_changes_nothing():
    for original in ORIGINALS.values():
        assert without_our_hooks(original) == original
    assert without_our_hooks({"hooks": {}}) == {"hooks": {}}


def test_stale_entry_with_old_path_and_timeout_is_replaced():
    stale = {"hooks": {
        "SessionStart": [USER_SS, {"matcher": "startup", "hooks": [
            {"type": "command", "command": "python3 /home/me/src/aiki-hooks/hooks/session_start.py", "timeout": 60}]}],
        "PreToolUse": [{"hooks": [{"type": "command", "command": "/old/python /home/me/src/aiki-hooks/hooks/pre_tool_use.py"}]},
                       USER_PTU],
        "PostToolUse": [{"hooks": [{"type": "command", "command": "/old/python /home/me/src/aiki-hooks/hooks/pre_tool_use.py"}]}],
    }}
    new, _ = install(stale)
    assert new == {"hooks": {"SessionStart": [USER_SS] + OURS["SessionStart"],
                             "PreToolUse": [USER_PTU] + OURS["PreToolUse"]}}


def test_a_correct_entry_stays_where_it_is():
    settings = {"hooks": {"PreToolUse": OURS["PreToolUse"] + [USER_PTU], "SessionStart": OURS["SessionStart"]}}
    new, _ = install(settings)
    assert json.dumps(new) == json.dumps(settings)


def test_duplicate_entries_of_ours_collapse_to_one():
    settings = {"hooks": {"PreToolUse": OURS["PreToolUse"] + [USER_PTU] + OURS["PreToolUse"]}}
    new, _ = install(settings)
    assert new["hooks"]["PreToolUse"] == [USER_PTU] + OURS["PreToolUse"]


def test_group_shared_with_a_foreign_handler():
    foreign = {"type": "command", "command": "~/bin/session_start.py"}
    old_ours = {"type": "command", "command": "python3 /srv/aiki-hooks/hooks/session_start.py", "timeout": 5}
    settings = {"hooks": {"SessionStart": [{"matcher": "startup", "hooks": [old_ours, foreign]}]}}
    new, _ = install(settings)
    assert new["hooks"]["SessionStart"] == [{"matcher": "startup", "hooks": [foreign]}] + OURS["SessionStart"]
    assert without_our_hooks(new) == {"hooks": {"SessionStart": [{"matcher": "startup", "hooks": [foreign]}], }}
    # uninstalling from the shared group directly keeps the group and its matcher
    assert without_our_hooks(settings) == {"hooks": {"SessionStart": [{"matcher": "startup", "hooks": [foreign]}]}}


def test_exec_form_args_are_recognised():
    settings = {"hooks": {"PreToolUse": [{"hooks": [
        {"type": "command", "command": "/x/python", "args": ["/home/me/.local/share/aiki-hooks/hooks/pre_tool_use.py"]}]}]}}
    assert without_our_hooks(settings) == {}


def test_hooks_dir_that_could_not_be_recognised_is_refused():
    with pytest.raises(ValueError, match="aiki-hooks/hooks"):
        install({}, hooks_dir="/tmp/somewhere/hooks")


@pytest.mark.parametrize("bad", [{"hooks": []}, {"hooks": {"PreToolUse": {}}}])
def test_malformed_hooks_refused(bad):
    with pytest.raises(SettingsError, match="nothing was written"):
        install(bad)


# -- statusLine ----------------------------------------------------------------------------------

def test_statusline_added_only_when_asked():
    assert "statusLine" not in install({})[0]
    new, warnings = install({}, statusline=True)
    assert new["statusLine"] == statusline_entry(PY, HOOKS_DIR)
    assert warnings == []


def test_foreign_statusline_kept_without_force():
    new, warnings = install({"statusLine": USER_STATUS}, statusline=True)
    assert new["statusLine"] == USER_STATUS
    assert any("--force" in w for w in warnings)
    new, warnings = install({"statusLine": USER_STATUS}, statusline=False)
    assert new["statusLine"] == USER_STATUS and warnings == []


def test_foreign_statusline_replaced_with_force_and_warned():
    new, warnings = install({"statusLine": USER_STATUS}, statusline=True, force=True)
    assert new["statusLine"] == statusline_entry(PY, HOOKS_DIR)
    assert any("replaced the statusLine" in w and "statusline.sh" in w for w in warnings)
    # uninstall removes ours; the foreign one lives on in the backup only
    assert "statusLine" not in without_our_hooks(new)


def test_our_statusline_is_updated_and_extra_keys_kept():
    old = {"type": "command", "command": "/old/venv/bin/aiki-hooks statusline", "padding": 2, "refreshInterval": 10}
    for wanted in (True, False):
        new, warnings = install({"statusLine": old}, statusline=wanted)
        assert new["statusLine"] == {**statusline_entry(PY, HOOKS_DIR), "refreshInterval": 10}
        assert warnings == []


# -- warnings ---------------------------------------------------------------------------------

def test_disable_all_hooks_warned():
    _, warnings = with_our_hooks({"disableAllHooks": True}, PY, HOOKS_DIR, statusline=False, force=False,
                                 source="/x/settings.json")
    assert warnings == ["hooks and the status line are disabled by disableAllHooks in /x/settings.json"]
    assert install({"disableAllHooks": False})[1] == []


def test_plugin_enabled_warned():
    _, warnings = install({"enabledPlugins": {"aiki-hooks@aiki-local": True, "other@x": True}})
    assert warnings == [("the aiki-hooks plugin is enabled too: its hooks stand down while these are here; keep one "
                        "(claude plugin disable aiki-hooks@aiki-local) or run install.sh --uninstall")]
    assert install({"enabledPlugins": {"aiki-hooks@aiki-local": False}})[1] == []


# -- settings_path ------------------------------------------------------------------------------

def test_settings_path():
    env = {"HOME": "/home/me"}
    assert cs.settings_path(env=env) == Path("/home/me/.claude/settings.json")
    assert cs.settings_path(env={**env, "CLAUDE_CONFIG_DIR": "/cfg"}) == Path("/cfg/settings.json")
    assert cs.settings_path(env={**env, "CLAUDE_CONFIG_DIR": "/a,/b"}) == Path("/a/settings.json")
    assert cs.settings_path(env={**env, "CLAUDE_CONFIG_DIR": "~/cc"}) == Path("/home/me/cc/settings.json")
    assert cs.settings_path(project="/p", env=env) == Path("/p/.claude/settings.json")
    assert cs.settings_path(project="/p", settings="/s.json", env=env) == Path("/s.json")


def test_claude_settings_files(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert cs.claude_settings_files(env=env) == [tmp_path / ".claude/settings.json"]
    assert cs.claude_settings_files(project=tmp_path / "p", env=env) == [
        tmp_path / ".claude/settings.json", tmp_path / "p/.claude/settings.json", tmp_path / "p/.claude/settings.local.json"]
    # the home directory as the project: its .claude/settings.json is the user's file, listed once
    assert cs.claude_settings_files(project=tmp_path, env=env) == [
        tmp_path / ".claude/settings.json", tmp_path / ".claude/settings.local.json"]


# -- hook scripts ------------------------------------------------------------------------------

@pytest.mark.parametrize("module", ["session_start", "pre_tool_use", "statusline"])
def test_repo_hook_scripts_are_the_template(module):
    assert (REPO / "hooks" / f"{module}.py").read_bytes() == cs.hook_script_text(module).encode("utf-8")


def test_install_hook_scripts(tmp_path):
    target = tmp_path / "share" / "aiki-hooks" / "hooks"
    written = cs.install_hook_scripts(target)
    assert set(written) == {"SessionStart", "PreToolUse", "statusLine"}
    for path in written.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
        assert path.read_bytes() == (REPO / "hooks" / path.name).read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    mtimes = {p: p.stat().st_mtime_ns for p in written.values()}
    os.chmod(written["PreToolUse"], 0o644)
    assert cs.install_hook_scripts(target) == written
    assert {p: p.stat().st_mtime_ns for p in written.values()} == mtimes  # same content: not rewritten
    assert stat.S_IMODE(written["PreToolUse"].stat().st_mode) == 0o755
    written["SessionStart"].write_text("old")
    cs.install_hook_scripts(target)
    assert written["SessionStart"].read_text() == cs.hook_script_text("session_start")
    assert not [p for p in target.iterdir() if p.name.endswith(".tmp")]
    # the commands we register for them are recognised as ours
    for groups in hook_entries(PY, target).values():
        assert is_ours(groups[0]["hooks"][0]["command"])


def test_unknown_hook_module():
    with pytest.raises(ValueError):
        cs.hook_script_text("nope")


# -- file operations ---------------------------------------------------------------------------

@pytest.fixture
def hooks_dir(tmp_path) -> Path:
    return tmp_path / "share" / "aiki-hooks" / "hooks"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fresh_file_is_0600_in_a_0700_dir(tmp_path, hooks_dir):
    path = tmp_path / "cfg" / "claude" / "settings.json"
    change = install_settings(path, PY, hooks_dir)
    assert change.changed and change.backup is None
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    text = path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "hooks": {\n    "SessionStart"')
    assert json.loads(text) == {"hooks": hook_entries(PY, hooks_dir)}
    assert not list(path.parent.glob("*.bak"))


def test_existing_mode_kept_backup_once_second_run_identical(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    original = b'{"model": "opus",   "env": {"X": "\xc3\xbc"}}'
    path.write_bytes(original)
    os.chmod(path, 0o640)
    change = install_settings(path, PY, hooks_dir, statusline=True)
    assert change.changed and change.backup == tmp_path / "settings.json.aiki-hooks.bak"
    assert change.backup.read_bytes() == original and mode(change.backup) == 0o600
    assert mode(path) == 0o640
    assert '"X": "ü"' in path.read_text(encoding="utf-8")  # ensure_ascii=False
    data = json.loads(path.read_text())
    assert list(data) == ["model", "env", "hooks", "statusLine"]

    first = path.read_bytes()
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    os.utime(change.backup, ns=(1_000_000_000, 1_000_000_000))
    again = install_settings(path, PY, hooks_dir, statusline=True)
    assert not again.changed and again.diff == "" and again.backup is None
    assert path.read_bytes() == first
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert change.backup.stat().st_mtime_ns == 1_000_000_000 and change.backup.read_bytes() == original
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_uninstall_round_trip_on_the_file(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    original = {"permissions": {"allow": ["Bash(ls)"]}, "hooks": {"PreToolUse": [USER_PTU]}}
    path.write_text(json.dumps(original, indent=2) + "\n")
    install_settings(path, PY, hooks_dir)
    change = uninstall_settings(path)
    assert change.changed and PTU_CMD not in path.read_text()
    assert json.loads(path.read_text()) == original
    assert not uninstall_settings(path).changed


def no_backup(path: Path) -> bool:
    return not path.with_name(path.name + ".aiki-hooks.bak").exists()


@pytest.mark.parametrize("original", [
    b'{\n    "model": "opus",\n    "hooks": {}\n}\n',  # the user's own indent and an empty hooks table
    b'{"hooks": {"SessionStart": []}, "env": {"X": "\xc3\xbc"}}',  # no newline at the end, non-ASCII
    b"",  # an empty file
    b"{}",
])
def test_uninstall_restores_the_original_bytes(tmp_path, hooks_dir, original):
    path = tmp_path / "settings.json"
    path.write_bytes(original)
    os.chmod(path, 0o640)
    install_settings(path, PY, hooks_dir, statusline=True)
    # An upgrade rewrites our entries: the backup must still be the user's original.
    upgraded = install_settings(path, "/new/venv/bin/python", hooks_dir, statusline=True)
    assert upgraded.changed and upgraded.backup is None
    change = uninstall_settings(path)
    assert change.changed and change.note == f"restored your original {path}"
    assert path.read_bytes() == original and mode(path) == 0o640
    assert no_backup(path)


def test_uninstall_removes_a_file_that_install_created(tmp_path, hooks_dir):
    path = tmp_path / "claude" / "settings.json"
    install_settings(path, PY, hooks_dir)
    dry = uninstall_settings(path, dry_run=True)
    assert dry.changed and "+++ /dev/null" in dry.diff and path.exists()
    change = uninstall_settings(path)
    assert change.changed and not path.exists() and sorted(path.parent.iterdir()) == []


def test_a_stale_backup_is_not_taken_for_the_original_of_a_new_file(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    path.with_name("settings.json.aiki-hooks.bak").write_text('{"theme": "old"}')
    install_settings(path, PY, hooks_dir)
    assert no_backup(path)
    uninstall_settings(path)
    assert not path.exists()


def test_uninstall_after_the_file_changed_removes_only_ours(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    path.write_text('{"hooks": {}, "theme": "dark", "permissions": {"allow": []}}')
    install_settings(path, PY, hooks_dir)
    edited = json.loads(path.read_text())
    edited["theme"] = "light"  # the user (or Claude Code) changed the file since
    edited["hooks"]["Stop"] = []
    path.write_text(json.dumps(edited, indent=2) + "\n")
    change = uninstall_settings(path)
    assert change.changed and change.note == ""
    assert json.loads(path.read_text()) == {"hooks": {"Stop": []}, "theme": "light", "permissions": {"allow": []}}
    assert no_backup(path)
    # Without the original, an emptied hooks key goes (we may have added it).
    path.write_text(json.dumps({"hooks": hook_entries(PY, hooks_dir), "theme": "x"}))
    uninstall_settings(path)
    assert json.loads(path.read_text()) == {"theme": "x"}


def test_a_backup_holding_our_entries_is_not_restored(tmp_path, hooks_dir):
    """A backup from an older version could hold our entries: restoring it would
    reinstall them."""
    path = tmp_path / "settings.json"
    ours = {"theme": "dark", "hooks": hook_entries("/old/python", hooks_dir)}
    path.with_name("settings.json.aiki-hooks.bak").write_text(json.dumps(ours))
    path.write_text(json.dumps(dict(ours, hooks=hook_entries(PY, hooks_dir))))
    uninstall_settings(path)
    assert json.loads(path.read_text()) == {"theme": "dark"} and no_backup(path)


def test_uninstall_missing_file_creates_nothing(tmp_path):
    path = tmp_path / "none" / "settings.json"
    change = uninstall_settings(path)
    assert not change.changed and not path.parent.exists()


@pytest.mark.parametrize("content, where", [
    (b'{"hooks": {\n  "a": 1,\n}', "line 3, column 1"),
    (b"{'single': 1}", "line 1, column 2"),
])
def test_invalid_json_refused_and_untouched(tmp_path, hooks_dir, content, where):
    path = tmp_path / "cfg" / "settings.json"
    path.parent.mkdir()
    path.write_bytes(content)
    before = path.stat().st_mtime_ns
    with pytest.raises(SettingsError) as err:
        install_settings(path, PY, hooks_dir)
    message = str(err.value)
    assert str(path) in message and where in message and "nothing was written" in message
    assert "\n" not in message
    assert path.read_bytes() == content and path.stat().st_mtime_ns == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]
    with pytest.raises(SettingsError):
        uninstall_settings(path)


def test_non_object_refused(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    path.write_text("[1, 2]")
    with pytest.raises(SettingsError, match="not an object; nothing was written"):
        install_settings(path, PY, hooks_dir)
    assert path.read_text() == "[1, 2]"


def test_dry_run_writes_nothing_and_returns_the_diff(tmp_path, hooks_dir):
    path = tmp_path / "cfg" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"model": "opus"}\n')
    change = install_settings(path, PY, hooks_dir, dry_run=True)
    assert change.changed and change.backup is None
    expected = hook_entries(PY, hooks_dir)["PreToolUse"][0]["hooks"][0]["command"]
    assert json.dumps(expected)[1:-1] in change.diff
    assert change.diff.startswith("---") and "\n+" in change.diff and '-{"model": "opus"}' in change.diff
    assert path.read_text() == '{"model": "opus"}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]
    missing = tmp_path / "new" / "settings.json"
    assert install_settings(missing, PY, hooks_dir, dry_run=True).changed
    assert not missing.parent.exists()


def test_warnings_name_the_file(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    path.write_text('{"disableAllHooks": true}')
    change = install_settings(path, PY, hooks_dir)
    assert change.warnings == [f"hooks and the status line are disabled by disableAllHooks in {path}"]


def test_symlinked_settings_stay_a_symlink(tmp_path, hooks_dir):
    real = tmp_path / "dotfiles" / "settings.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    install_settings(link, PY, hooks_dir)
    assert link.is_symlink() and "hooks" in json.loads(real.read_text())


# A real second writer (Claude Code rewriting settings.json): it reads the file, adds its
# own key and writes it back, in place or through a temp file and a rename.
WRITER = r"""
import json, os, sys, time
path, key, how, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0
for n in range(1, count + 1):
    time.sleep(pause)
    with open(path) as f:
        data = json.load(f)
    data.setdefault(key, []).append(n)
    text = json.dumps(data, indent=2)
    if how == "rename":
        temp = f"{path}.writer.tmp"
        with open(temp, "w") as f:
            f.write(text)
        os.replace(temp, path)
    else:
        with open(path, "r+") as f:
            f.truncate(0)
            f.write(text)
"""


def _write_once(path: Path, key: str, how: str) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(path), key, how, "1"], check=True, timeout=30)


class _FirstWindow:
    """An in_window hook: the writer saves its settings right between our last check and
    our replace, the first time only; counts the windows."""

    def __init__(self, path: Path, how: str) -> None:
        self.path, self.how, self.count = path, how, 0

    def __call__(self) -> None:
        if not self.count:
            _write_once(self.path, "claude", self.how)
        self.count += 1


@pytest.mark.parametrize("how", ["in-place", "rename"])
def test_a_write_in_the_window_before_the_replace_is_not_lost(tmp_path, hooks_dir, how):
    path = tmp_path / "settings.json"
    path.write_text('{"model": "opus"}')
    window = _FirstWindow(path, how)
    change = install_settings(path, PY, hooks_dir, in_window=window)
    data = json.loads(path.read_text())
    assert data["claude"] == [1] and data["model"] == "opus"  # the writer's update is kept ...
    assert set(data["hooks"]) == {"SessionStart", "PreToolUse"}  # ... and ours is merged into it
    assert change.changed and window.count == 2  # the merge was made again from the writer's version
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left

    window = _FirstWindow(path, how)
    change = uninstall_settings(path, in_window=window)
    data = json.loads(path.read_text())
    assert data["claude"] == [1, 1] and "hooks" not in data and change.changed and window.count == 2


def test_a_file_created_in_the_window_is_not_overwritten(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    created = []

    def create():
        if not created:
            path.write_text('{"claude": [1]}')
            created.append(1)

    install_settings(path, PY, hooks_dir, in_window=create)
    data = json.loads(path.read_text())
    assert data["claude"] == [1] and "hooks" in data


def test_a_file_that_keeps_changing_is_refused_with_nothing_lost(tmp_path, hooks_dir):
    path = tmp_path / "settings.json"
    path.write_text('{"model": "opus"}')
    with pytest.raises(SettingsError, match=r"kept changing while aiki-hooks was updating it \(5 tries\); nothing"):
        install_settings(path, PY, hooks_dir, in_window=lambda: _write_once(path, "claude", "rename"))
    data = json.loads(path.read_text())
    assert data == {"model": "opus", "claude": [1] * 5}  # each of the writer's five saves


def test_installs_racing_a_real_writer_lose_none_of_its_updates(tmp_path, hooks_dir):
    # The writer saves atomically (temp file, rename) every 2 ms, while installs and
    # uninstalls run back to back: many of its saves land between our read and our
    # replace. (A writer that saves in place can still lose a save it makes while we
    # replace the file: its descriptor then points at the file we displaced; and one
    # saving twice within microseconds may read our merge in between. Both are left.)
    path = tmp_path / "settings.json"
    path.write_text('{"model": "opus"}')
    # 20 ms apart: under a loaded CI machine, 2 ms apart made two of the writer's own saves fall
    # within one of our merges now and then, the case left open above.
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "claude", "rename", "200", "0.02"])
    changes = 0
    try:
        while writer.poll() is None:
            for operation in (lambda: install_settings(path, PY, hooks_dir), lambda: uninstall_settings(path)):
                try:
                    changes += operation().changed
                except SettingsError as exc:
                    assert "kept changing" in str(exc) or "changed twice" in str(exc)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0 and changes >= 10  # we did write while it wrote
    # Every update the writer made reached the file: none was replaced by a stale merge.
    assert json.loads(path.read_text())["claude"] == list(range(1, 201))


def test_a_read_only_settings_file_is_refused_and_left_alone(tmp_path):
    from tests.conftest import run_cli

    settings = tmp_path / "settings.json"
    settings.write_text('{"model": "opus"}\n')
    settings.chmod(0o444)
    hooks_dir = tmp_path / "aiki-hooks" / "hooks"
    done = run_cli("install-hooks", "--settings", str(settings), "--hooks-dir", str(hooks_dir))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"aiki-hooks: {settings}: it is read-only (mode 0444); nothing was written (make it "
                           "writable if aiki-hooks should change it)\n")
    assert settings.read_text() == '{"model": "opus"}\n' and mode(settings) == 0o444
    assert not hooks_dir.exists() and not (tmp_path / "settings.json.aiki-hooks.bak").exists()

    dry = run_cli("install-hooks", "--dry-run", "--settings", str(settings), "--hooks-dir", str(hooks_dir))
    assert dry.returncode == 0 and "a real run would refuse" in dry.stderr

    settings.chmod(0o644)
    assert run_cli("install-hooks", "--settings", str(settings), "--hooks-dir", str(hooks_dir)).returncode == 0
    installed = settings.read_bytes()
    settings.chmod(0o400)
    undone = run_cli("uninstall-hooks", "--settings", str(settings))
    assert undone.returncode == 1 and "it is read-only (mode 0400)" in undone.stderr
    assert settings.read_bytes() == installed


def test_a_lone_surrogate_is_a_clear_error_naming_the_file(tmp_path, hooks_dir):
    from tests.conftest import run_cli

    settings = tmp_path / "settings.json"
    settings.write_text('{"note": "\\ud800 half an emoji"}\n')
    before = settings.read_bytes()
    for args in (["install-hooks"], ["install-hooks", "--dry-run"]):
        done = run_cli(*args, "--settings", str(settings), "--hooks-dir", str(hooks_dir))
        assert done.returncode == 1 and "Traceback" not in done.stderr and "UnicodeEncodeError" not in done.stderr
        assert done.stderr == (f"aiki-hooks: {settings}: a string in it holds a lone UTF-16 surrogate (\\ud800), "
                               "which cannot be written back as UTF-8; fix that string, nothing was written\n")
    assert settings.read_bytes() == before and not hooks_dir.exists()
    settings.write_bytes(b'{"note": "caf\xe9"}')  # Latin-1, not UTF-8
    done = run_cli("install-hooks", "--settings", str(settings), "--hooks-dir", str(hooks_dir))
    assert done.returncode == 1 and f"{settings}: not UTF-8 text (byte 13); nothing was written" in done.stderr


def test_a_fifo_in_place_of_the_settings_is_refused_without_waiting(tmp_path, hooks_dir):
    settings = tmp_path / "settings.json"
    os.mkfifo(settings)
    with pytest.raises(SettingsError, match="not a regular file"):
        install_settings(settings, PY, hooks_dir)


# -- doctor ------------------------------------------------------------------------------------

def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def levels(findings):
    return [(f.level, f.what) for f in findings]


def test_check_settings_all_good(tmp_path):
    hooks_dir = tmp_path / "aiki-hooks" / "hooks"
    cs.install_hook_scripts(hooks_dir)
    user = tmp_path / "user" / "settings.json"
    install_settings(user, sys.executable, hooks_dir, statusline=True)
    findings = check_settings([user, tmp_path / "p/.claude/settings.json"])
    assert {f.level for f in findings} == {PASS}, levels(findings)
    assert any("SessionStart hook registered" in f.what for f in findings)


def test_check_settings_missing_everywhere(tmp_path):
    user = write_json(tmp_path / "settings.json", {"model": "opus"})
    findings = check_settings([user, tmp_path / "nope.json"])
    assert levels(findings) == [(FAIL, "hooks missing (Claude Code may have rewritten settings.json)")]
    assert "aiki-hooks install-hooks" in findings[0].fix


def test_check_settings_one_missing_and_paths(tmp_path):
    settings = {"hooks": {"SessionStart": hook_entries("/no/python", tmp_path / "aiki-hooks" / "hooks")["SessionStart"]}}
    user = write_json(tmp_path / "settings.json", settings)
    findings = check_settings([user])
    whats = levels(findings)
    assert (FAIL, "PreToolUse hook missing (Claude Code may have rewritten settings.json)") in whats
    assert any(level == FAIL and "/no/python" in what for level, what in whats)
    assert any(level == FAIL and str(tmp_path / "aiki-hooks/hooks/session_start.py") in what for level, what in whats)
    relaxed = check_settings([user], python_must_exist=False)
    assert not any("/no/python" in f.what for f in relaxed)


def test_check_settings_disabled_plugin_invalid(tmp_path):
    hooks_dir = tmp_path / "aiki-hooks" / "hooks"
    cs.install_hook_scripts(hooks_dir)
    user = write_json(tmp_path / "user.json", {"hooks": hook_entries(sys.executable, hooks_dir),
                                               "enabledPlugins": {"aiki-hooks@aiki-local": True}})
    project = write_json(tmp_path / "p/.claude/settings.json", {"disableAllHooks": True})
    local = tmp_path / "p/.claude/settings.local.json"
    local.write_text("{oops")
    findings = check_settings([user, project, local])
    whats = levels(findings)
    assert (FAIL, f"hooks and the status line are disabled by disableAllHooks in {project}") in whats
    assert any(level == WARN and "aiki-hooks@aiki-local is enabled too" in what for level, what in whats)
    assert any(level == FAIL and str(local) in what and "invalid JSON" in what for level, what in whats)


def test_check_settings_precedence_and_plugin_only(tmp_path):
    user = write_json(tmp_path / "user.json", {"disableAllHooks": True, "enabledPlugins": {"aiki-hooks@m": True}})
    local = write_json(tmp_path / "local.json", {"disableAllHooks": False})
    findings = check_settings([user, local])
    assert levels(findings) == [(PASS, "hooks provided by the plugin aiki-hooks@m")]


def test_check_settings_registered_twice(tmp_path):
    hooks_dir = tmp_path / "aiki-hooks" / "hooks"
    cs.install_hook_scripts(hooks_dir)
    a = write_json(tmp_path / "a.json", {"hooks": hook_entries(sys.executable, hooks_dir)})
    b = write_json(tmp_path / "b.json", {"hooks": hook_entries(sys.executable, hooks_dir)})
    findings = check_settings([a, b])
    assert any(f.level == WARN and "registered in 2 files" in f.what for f in findings)


# -- the SessionStart matcher ------------------------------------------------------------------

# Every `source` SessionStart reports (the Claude Code hooks reference).
SESSION_START_SOURCES = ("startup", "resume", "clear", "compact", "fork")


def test_session_start_matcher_covers_every_source_for_the_installer_and_the_plugin():
    import re

    (plugin_group,) = json.loads((REPO / "hooks" / "hooks.json").read_text())["hooks"]["SessionStart"]
    assert plugin_group["matcher"] == cs.SESSION_START_MATCHER == OURS["SessionStart"][0]["matcher"]
    for source in SESSION_START_SOURCES:
        assert re.fullmatch(cs.SESSION_START_MATCHER, source), source
    assert not re.fullmatch(cs.SESSION_START_MATCHER, "startupx")


def test_an_entry_with_the_old_matcher_is_upgraded_in_place_of_a_second_one():
    old = {"hooks": {"SessionStart": [dict(OURS["SessionStart"][0], matcher="startup|resume|clear|compact")],
                     "PreToolUse": OURS["PreToolUse"]}}
    new, _ = install(old)
    assert new["hooks"]["SessionStart"] == OURS["SessionStart"]


# -- --python: always an absolute interpreter path ----------------------------------------------

def test_resolve_interpreter_bare_name_goes_past_a_shim(tmp_path, monkeypatch):
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # like pyenv's: a script that execs the real one
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    resolved = cs.resolve_interpreter("python3")
    assert resolved == sys.executable and resolved != str(shim)
    with pytest.raises(ValueError, match="not found on PATH"):
        cs.resolve_interpreter("no-such-python-here")


def test_resolve_interpreter_relative_and_missing(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    os.symlink(sys.executable, venv_bin / "python")
    monkeypatch.chdir(tmp_path)
    # Absolute, but the venv's symlink is kept (its target has no venv).
    assert cs.resolve_interpreter("venv/bin/python") == str(venv_bin / "python")
    with pytest.raises(ValueError, match="is not an executable file"):
        cs.resolve_interpreter("venv/bin/python4")
    assert cs.resolve_interpreter(str(venv_bin / "python4"), must_exist=False) == str(venv_bin / "python4")
    with pytest.raises(ValueError):
        cs.resolve_interpreter("")


def test_install_hooks_cli_registers_an_absolute_interpreter(tmp_path):
    from tests.conftest import run_cli

    settings = tmp_path / "settings.json"
    hooks_dir = tmp_path / "aiki-hooks" / "hooks"
    done = run_cli("install-hooks", "--settings", str(settings), "--python", "python3", "--hooks-dir", str(hooks_dir))
    assert done.returncode == 0, done.stderr
    command = json.loads(settings.read_text())["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
    program = command.split()[0]
    assert os.path.isabs(program) and os.access(program, os.X_OK)
    refused = run_cli("install-hooks", "--settings", str(tmp_path / "other.json"), "--python", "./nope",
                      "--hooks-dir", str(hooks_dir))
    assert refused.returncode != 0 and "is not an executable file" in refused.stderr
    assert not (tmp_path / "other.json").exists()


def test_install_hooks_cli_writes_no_scripts_when_the_settings_are_invalid(tmp_path):
    from tests.conftest import run_cli

    settings = tmp_path / "settings.json"
    settings.write_text("{nope")
    hooks_dir = tmp_path / "aiki-hooks" / "hooks"
    done = run_cli("install-hooks", "--settings", str(settings), "--hooks-dir", str(hooks_dir))
    assert done.returncode == 1 and "invalid JSON" in done.stderr and "nothing was written" in done.stderr
    assert not hooks_dir.exists() and settings.read_text() == "{nope"


# -- the plugin enabled in another settings file --------------------------------------------------

def test_plugin_enabled_in_any_file_claude_code_reads_is_warned(tmp_path, hooks_dir):
    user = tmp_path / "claude" / "settings.json"
    project = tmp_path / "proj"
    files = cs.claude_settings_files(project, env={"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": str(user.parent)})
    assert files == [user, project / ".claude" / "settings.json", project / ".claude" / "settings.local.json"]
    write_json(files[2], {"enabledPlugins": {"aiki-hooks@aiki-local": True}})
    change = install_settings(user, PY, hooks_dir, read_too=files)
    assert change.warnings == [f"the aiki-hooks plugin is enabled in {files[2]} too: its hooks stand down while "
                               "these are here; keep one (claude plugin disable aiki-hooks@aiki-local) or run install.sh --uninstall"]
    # Enabled for the user, disabled by the project: not enabled here.
    write_json(files[2], {"enabledPlugins": {"aiki-hooks@aiki-local": False}})
    write_json(user, {"enabledPlugins": {"aiki-hooks@aiki-local": True}})
    assert cs.plugin_enabled_in(files) == {}
    # Enabled in the file being edited: said once.
    write_json(files[2], {})
    assert len(install_settings(user, PY, hooks_dir, read_too=files).warnings) == 1
