"""How the hooks find the state dir: the library's answer for every valid config (the
config's `[state] dir`, then $AIKI_HOOKS_STATE_DIR, then XDG), tomllib only when the
config changed since a hook last read it (runtime's memo), and an untrusted memo ignored."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiki_hooks.config.load import load_config
from aiki_hooks.cycle.cache import write_cache
from aiki_hooks.hooklib import runtime
from tests.conftest import REPO
from tests.hooklib.test_hooks import issue, snapshot

HOOKS = REPO / "hooks"
SETTLE_SECONDS = runtime.CONFIG_SETTLE_NS / 1e9 + 0.2


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIKI_HOOKS_", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), **extra)
    return env


def memo_path(home: Path) -> Path:
    return home / ".cache" / "aiki-hooks" / runtime.CONFIG_MEMO_FILE


def write_config(home: Path, text: str) -> Path:
    path = home / ".config" / "aiki-hooks" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- in-process: the answer

SPELLINGS = [
    '[state]\ndir = "{d}"\n',
    '[ state ]\ndir = "{d}"\n',
    'state.dir = "{d}"\n',
    'state . dir = "{d}"\n',
    'state = {{ dir = "{d}" }}\n',
    "[\"state\"]\n'dir' = '{d}'\n",
    '"\\u0073tate".dir = "{d}"\n',
    '[state]\ndir = """{d}"""\n',
    'interval_seconds = 30\n\n[[probes.tcp]]\nname = "pg"\nhost = "127.0.0.1"\nport = 5432\n\n[state]\ndir = "{d}"\n',
    '[state]\n# where it lives\ndir = "{d}"   # [state] dir = "/elsewhere"\n',
]


@pytest.mark.parametrize("document", SPELLINGS, ids=range(len(SPELLINGS)))
def test_every_spelling_of_state_dir_gives_the_librarys_answer_with_and_without_the_memo(
        tmp_path, monkeypatch, document):
    wanted = tmp_path / "wanted-state"
    config = write_config(tmp_path, document.format(d=wanted))
    env = clean_env(tmp_path, AIKI_HOOKS_STATE_DIR=str(tmp_path / "from-env"))
    assert str(load_config(config, env=env).state_dir) == str(wanted)
    monkeypatch.setattr(runtime, "CONFIG_SETTLE_NS", -10**12)  # remember at once
    assert runtime.state_dir(env) == str(wanted)
    assert memo_path(tmp_path).exists()

    def no_tomllib(raw: bytes) -> None:
        raise AssertionError("tomllib asked although the memo knows this config")

    monkeypatch.setattr(runtime, "_state_dir_by_tomllib", no_tomllib)
    assert runtime.state_dir(env) == str(wanted)


NO_STATE_DIR: dict[str, str | bytes] = {
    "no state key": 'interval_seconds = 60\n[resources]\ndisk_paths = ["/"]\n',
    "state only in a comment": "# [state] dir is not set here\ninterval_seconds = 60\n",
    "state only in a string": 'interval_seconds = 60\n[[probes.command]]\nname = "x"\n'
                              'command = ["/bin/echo", """\n[state]\ndir = "/wrong"\n"""]\n',
    "sub-table only": '[state.extra]\ndir = "/wrong"\n',
    "not TOML": '[state\ndir = "/wrong"\n',
    "not UTF-8": b'[state]\ndir = "/wr\xffong"\n',
    "relative dir": '[state]\ndir = "relative/state"\n',
    "not a string": "[state]\ndir = 42\n",
    "state not a table": 'state = "/wrong"\n',
    "escaped other key": '"\\u0073tuff".dir = "/wrong"\n',
}


@pytest.mark.parametrize("name", list(NO_STATE_DIR))
@pytest.mark.parametrize("remembered", [False, True])
def test_a_config_without_a_usable_state_dir_leaves_the_env_or_xdg_answer(tmp_path, monkeypatch, name, remembered):
    document = NO_STATE_DIR[name]
    config = tmp_path / "config.toml"
    config.write_bytes(document if isinstance(document, bytes) else document.encode())
    if remembered:
        monkeypatch.setattr(runtime, "CONFIG_SETTLE_NS", -10**12)
    env = clean_env(tmp_path, AIKI_HOOKS_CONFIG=str(config))
    assert runtime.state_dir(env) == str(tmp_path / ".local" / "state" / "aiki-hooks")
    env["AIKI_HOOKS_STATE_DIR"] = str(tmp_path / "from-env")
    assert runtime.state_dir(env) == str(tmp_path / "from-env")  # a second call: the memo, if any


def test_no_config_missing_config_and_odd_files_in_its_place(tmp_path):
    xdg = str(tmp_path / ".local" / "state" / "aiki-hooks")
    assert runtime.state_dir(clean_env(tmp_path)) == xdg
    assert runtime.state_dir(clean_env(tmp_path, AIKI_HOOKS_CONFIG=str(tmp_path / "absent.toml"))) == xdg
    (tmp_path / "a-dir.toml").mkdir()
    assert runtime.state_dir(clean_env(tmp_path, AIKI_HOOKS_CONFIG=str(tmp_path / "a-dir.toml"))) == xdg
    os.mkfifo(tmp_path / "fifo.toml")  # must not block: nobody ever writes to it
    assert runtime.state_dir(clean_env(tmp_path, AIKI_HOOKS_CONFIG=str(tmp_path / "fifo.toml"))) == xdg
    huge = tmp_path / "huge.toml"
    huge.write_text(f'[state]\ndir = "{tmp_path / "s"}"\n' + "# padding\n" * 30_000)
    assert runtime.state_dir(clean_env(tmp_path, AIKI_HOOKS_CONFIG=str(huge))) == xdg
    assert runtime.state_dir(clean_env(tmp_path, XDG_STATE_HOME="relative")) == xdg


def test_a_symlinked_config_is_followed_as_the_library_does(tmp_path):
    target = tmp_path / "dotfiles" / "aiki.toml"
    target.parent.mkdir()
    target.write_text(f'[state]\ndir = "{tmp_path / "linked-state"}"\n')
    link = tmp_path / ".config" / "aiki-hooks" / "config.toml"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    env = clean_env(tmp_path)
    assert runtime.state_dir(env) == str(load_config(env=env).state_dir) == str(tmp_path / "linked-state")


def test_a_config_changed_moments_ago_is_read_but_not_remembered(tmp_path, monkeypatch):
    """A second write in the same timestamp tick could keep the file's identity: only a
    config that has not changed for CONFIG_SETTLE_NS is remembered."""
    write_config(tmp_path, f'[state]\ndir = "{tmp_path / "s"}"\n')
    env = clean_env(tmp_path)
    assert runtime.state_dir(env) == str(tmp_path / "s")
    assert not memo_path(tmp_path).exists()
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + runtime.CONFIG_SETTLE_NS + 10**9)
    assert runtime.state_dir(env) == str(tmp_path / "s")
    assert memo_path(tmp_path).exists()
    assert stat.S_IMODE(memo_path(tmp_path).stat().st_mode) == 0o600
    assert stat.S_IMODE(memo_path(tmp_path).parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("edit", ["same size, in place", "longer", "replaced by rename"])
def test_a_remembered_config_that_changed_is_read_again(tmp_path, monkeypatch, edit):
    """Even once the edit has settled: the memo is keyed by the file's identity (device,
    inode, size, mtime, ctime), so its old answer no longer applies."""
    config = write_config(tmp_path, f'[state]\ndir = "{tmp_path / "state-1"}"\n')
    env = clean_env(tmp_path)
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + runtime.CONFIG_SETTLE_NS + 10**9)
    assert runtime.state_dir(env) == str(tmp_path / "state-1")
    assert memo_path(tmp_path).exists()
    time.sleep(0.1)  # past the filesystem's timestamp tick
    new = f'[state]\ndir = "{tmp_path / "state-2"}"\n'
    if edit == "same size, in place":
        with open(config, "r+") as handle:
            handle.write(new)
    elif edit == "longer":
        config.write_text(new + "# and a comment\n")
    else:
        (config.parent / "new.toml").write_text(new)
        os.replace(config.parent / "new.toml", config)
    assert runtime.state_dir(env) == str(tmp_path / "state-2")


def test_a_symlinked_memo_is_not_read(tmp_path, monkeypatch):
    config = write_config(tmp_path, f'[state]\ndir = "{tmp_path / "right"}"\n')
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps({str(config): {"identity": identity_of(config), "dir": str(tmp_path / "wrong")}}))
    memo_path(tmp_path).parent.mkdir(parents=True, mode=0o700)
    memo_path(tmp_path).symlink_to(planted)
    monkeypatch.setattr(runtime, "CONFIG_SETTLE_NS", -10**12)
    assert runtime.state_dir(clean_env(tmp_path)) == str(tmp_path / "right")


def identity_of(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


# --------------------------------------------------------------------------- real hooks


def run_hook(name: str, payload: dict, env: dict[str, str], *, importtime: bool = False) -> subprocess.CompletedProcess:
    argv = [sys.executable] + (["-X", "importtime"] if importtime else []) + [str(HOOKS / f"{name}.py")]
    return subprocess.run(argv, input=json.dumps(payload).encode(), capture_output=True, env=env, timeout=20)


def imported_tomllib(result: subprocess.CompletedProcess) -> bool:
    return any(line.rstrip().endswith(" tomllib") for line in result.stderr.decode().splitlines())


def session_context(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    return data["hookSpecificOutput"]["additionalContext"]


def assert_valid_answers(env: dict[str, str]) -> None:
    """Each hook exits 0 with one JSON object (or nothing), the status line with one line."""
    for name, payload in (("session_start", {"session_id": "v", "source": "startup"}),
                          ("pre_tool_use", {"session_id": "v", "tool_name": "Bash", "tool_input": {}})):
        result = run_hook(name, payload, env)
        assert result.returncode == 0 and b"Traceback" not in result.stderr, result
        if result.stdout.strip():
            assert isinstance(json.loads(result.stdout), dict)
    status = run_hook("statusline", {"session_id": "v"}, env)
    assert status.returncode == 0 and status.stdout.decode().count("\n") == 1, status


def test_hooks_with_a_state_dir_config_skip_tomllib_once_remembered_and_follow_an_edit(tmp_path):
    """The common case: the config's [state] dir, unchanged since a hook last read it. Then
    an in-place edit of the same size (same inode): the next hook uses the new dir."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    first, second = tmp_path / "state-1", tmp_path / "state-2"
    write_cache(first / "system_health.json", snapshot())
    write_cache(second / "system_health.json", snapshot(issues=[issue("http:qdrant")]))
    config = write_config(home, f'interval_seconds = 60\n\n[state]\ndir = "{first}"\n')
    env = clean_env(home, AIKI_HOOKS_STATE_DIR=str(tmp_path / "unused"))
    time.sleep(SETTLE_SECONDS)

    start = {"session_id": "s", "source": "startup"}
    result = run_hook("session_start", start, env, importtime=True)
    assert imported_tomllib(result), "the first hook must read the config with tomllib"
    assert ": OK." in session_context(result)
    assert memo_path(home).exists()

    result = run_hook("session_start", start, env, importtime=True)
    assert not imported_tomllib(result)
    assert ": OK." in session_context(result)
    for name, payload in (("pre_tool_use", {"session_id": "s", "tool_name": "Bash", "tool_input": {}}),
                          ("statusline", {"session_id": "s"})):
        result = run_hook(name, payload, env, importtime=True)
        assert result.returncode == 0 and not imported_tomllib(result), result
    assert "OK" in run_hook("statusline", {"session_id": "s"}, env).stdout.decode()

    before = config.stat()
    with open(config, "r+b") as handle:  # same size, same inode: only the timestamps tell
        content = handle.read()
        handle.seek(0)
        handle.write(content.replace(b"state-1", b"state-2"))
    assert (config.stat().st_ino, config.stat().st_size) == (before.st_ino, before.st_size)
    assert "CRITICAL" in session_context(run_hook("session_start", start, env))
    assert "CRITICAL" in run_hook("statusline", {"session_id": "s"}, env).stdout.decode()
    assert_valid_answers(env)


def test_a_memo_in_a_dir_others_can_write_is_ignored(tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    right, planted = tmp_path / "right", tmp_path / "planted"
    write_cache(right / "system_health.json", snapshot())
    write_cache(planted / "system_health.json", snapshot(issues=[issue("http:qdrant")]))
    config = write_config(home, f'[state]\ndir = "{right}"\n')
    time.sleep(SETTLE_SECONDS)
    memo = memo_path(home)
    memo.parent.mkdir(parents=True)
    memo.parent.chmod(0o777)
    memo.write_text(json.dumps({str(config): {"identity": identity_of(config), "dir": str(planted)}}))
    memo.chmod(0o600)
    env = clean_env(home)
    start = {"session_id": "u", "source": "startup"}
    assert ": OK." in session_context(run_hook("session_start", start, env))
    assert json.loads(memo.read_text())[str(config)]["dir"] == str(planted)  # and not rewritten there
    assert_valid_answers(env)

    memo.parent.chmod(0o700)  # the same memo in a private dir is believed: the check above is what saved us
    assert "CRITICAL" in session_context(run_hook("session_start", start, env))


@pytest.mark.parametrize("config_text", [None, '[state\ndir = "/wrong"\n', '[state]\ndir = "relative"\n',
                                         "[state]\ndir = 7\n"], ids=["missing", "not TOML", "relative", "not text"])
def test_hooks_answer_from_the_env_state_dir_when_the_config_gives_none(tmp_path, config_text):
    state = tmp_path / "env-state"
    write_cache(state / "system_health.json", snapshot())
    config = tmp_path / "config.toml"
    if config_text is not None:
        config.write_text(config_text)
    env = clean_env(tmp_path, AIKI_HOOKS_STATE_DIR=str(state), AIKI_HOOKS_CONFIG=str(config))
    assert ": OK." in session_context(run_hook("session_start", {"session_id": "m", "source": "startup"}, env))
    assert_valid_answers(env)
