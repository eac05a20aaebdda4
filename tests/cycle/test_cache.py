import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from aiki_hooks.cycle.cache import atomic_write_bytes, read_cache, write_cache
from aiki_hooks.model.result import utc_iso
from aiki_hooks.paths import UntrustedStateError
from tests.conftest import REPO


def snapshot_dict(generated_at: float, interval: float = 60, **extra):
    data = {"schema_version": 1, "generated_at": utc_iso(generated_at), "interval_seconds": interval,
            "host": "h", "status": "OK", "probes": [], "issues": []}
    data.update(extra)
    return data


def test_publish_creates_private_dir_and_file(tmp_path):
    path = tmp_path / "state" / "system_health.json"
    write_cache(path, snapshot_dict(time.time()))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_publish_tightens_a_dir_others_can_read(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    write_cache(state / "system_health.json", snapshot_dict(time.time()))
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_publish_refuses_a_dir_others_can_write(tmp_path, mode):
    """Others may have planted files in it already: refused, not tightened."""
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, mode)
    with pytest.raises(UntrustedStateError, match=r"state is writable by .*expected 700"):
        write_cache(state / "system_health.json", snapshot_dict(time.time()))
    assert not (state / "system_health.json").exists()
    assert stat.S_IMODE(state.stat().st_mode) == mode


def test_atomic_write_with_a_replace_of_its_own(tmp_path):
    """*replace* takes os.replace's place: declining leaves the file as it was, raising
    too, and what it leaves at the temp name (an exchange's displaced file) is removed."""
    (tmp_path / "dir").mkdir()
    path = tmp_path / "dir" / "settings.json"
    path.write_bytes(b"old")
    seen = []

    def decline(temp, target):
        seen.append((os.path.basename(temp), stat.S_IMODE(os.stat(temp).st_mode), open(temp, "rb").read()))
        return False

    assert atomic_write_bytes(path, b"new", mode=0o640, replace=decline) is False
    ((name, mode, content),) = seen
    assert name.startswith(".settings.json.") and name.endswith(".tmp") and (mode, content) == (0o640, b"new")

    def swap(temp, target):  # a stand-in for an exchange: the old file ends up at the temp name
        os.rename(target, temp + ".old")
        os.rename(temp, target)
        os.rename(temp + ".old", temp)
        return True

    assert atomic_write_bytes(path, b"new", mode=0o640, replace=swap) is True
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o640

    def fail(temp, target):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(path, b"newer", replace=fail)
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["settings.json"]
    assert atomic_write_bytes(path, b"plain") is True and path.read_bytes() == b"plain"


@pytest.mark.parametrize(
    "content, state",
    [
        pytest.param(None, "missing", id="missing"),
        pytest.param(b'{"schema_version": 1, "generated_', "corrupt", id="truncated"),
        pytest.param(b"\xff\xfe garbage", "corrupt", id="binary"),
        pytest.param(b"[1, 2]", "corrupt", id="not-an-object"),
        pytest.param(b'{"schema_version": 99}', "unknown_schema", id="future-schema"),
        pytest.param(b'{"schema_version": 1, "generated_at": "yesterday"}', "corrupt", id="bad-fields"),
    ],
)
def test_reader_classifies_bad_files(tmp_path, content, state):
    path = tmp_path / "system_health.json"
    if content is not None:
        path.write_bytes(content)
    read = read_cache(path)
    assert read.state == state
    assert read.reason
    assert not read.usable


def test_reader_fresh_then_stale_after_three_intervals(tmp_path):
    path = tmp_path / "system_health.json"
    write_cache(path, snapshot_dict(1_000_000.0, interval=60))
    fresh = read_cache(path, now=1_000_000.0 + 179)
    assert (fresh.state, round(fresh.age_seconds)) == ("fresh", 179)
    stale = read_cache(path, now=1_000_000.0 + 181)
    assert stale.state == "stale" and stale.reason == "refresher not running" and stale.usable


def test_reader_does_not_wait_for_a_writer_holding_the_lock(tmp_path):
    from filelock import FileLock

    path = tmp_path / "system_health.json"
    write_cache(path, snapshot_dict(time.time()))
    with FileLock(str(path) + ".lock"):
        started = time.monotonic()
        read = read_cache(path)
        waited = time.monotonic() - started
    assert read.state == "fresh"
    assert waited < 0.05


READER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from aiki_hooks.cycle.cache import read_cache
    path, stop = sys.argv[2], sys.argv[3]
    import os
    good = bad = 0
    seen = set()
    while not os.path.exists(stop):
        read = read_cache(path)
        if read.state == "missing":
            continue
        if read.state != "fresh" or len(read.data["pad"]) != read.data["pad_len"]:
            bad += 1
        else:
            good += 1
            seen.add(read.data["seq"])
    print(json.dumps({"good": good, "bad": bad, "distinct": len(seen)}))
    """
)

WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from aiki_hooks.cycle.cache import write_cache
    from aiki_hooks.model.result import utc_iso
    path, count, tag = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    # Two writers publishing back to back is far past real use (one refresher per state
    # dir, a cycle a minute): filelock polls, so the other writer can lose the race for
    # seconds on a loaded machine. This test is about readers, so writers wait as long as needed.
    for seq in range(count):
        size = 1000 + (seq * 7919) % 120_000  # varying sizes make torn reads visible
        write_cache(path, {"schema_version": 1, "generated_at": utc_iso(time.time()), "interval_seconds": 60,
                           "host": tag, "status": "OK", "probes": [], "issues": [],
                           "seq": f"{tag}{seq}", "pad": "x" * size, "pad_len": size},
                    lock_timeout=200)
    """
)


@pytest.mark.slow
def test_concurrent_readers_never_see_a_partial_file(tmp_path):
    """Three reader processes in a tight loop while two writer processes publish 1,500
    snapshots each (3,000 in all, 1-120 KB): zero partial or invalid reads."""
    path = tmp_path / "state" / "system_health.json"
    stop = tmp_path / "stop"
    (tmp_path / "reader.py").write_text(READER)
    (tmp_path / "writer.py").write_text(WRITER)
    readers = [
        subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(REPO), str(path), str(stop)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    writers = [
        subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), str(REPO), str(path), "1500", tag])
        for tag in ("a", "b")
    ]
    try:
        for writer in writers:
            assert writer.wait(timeout=240) == 0
    finally:
        stop.touch()
    reports = [json.loads(reader.communicate(timeout=30)[0]) for reader in readers]
    assert all(r["bad"] == 0 for r in reports), reports
    assert all(r["good"] > 100 and r["distinct"] > 10 for r in reports), reports
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert json.loads(path.read_text())["seq"] in {"a1499", "b1499"}
