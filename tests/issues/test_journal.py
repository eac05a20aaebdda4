"""The journal: seq under concurrency, rotation, permissions, corrupt lines, session
events once per session and occurrence, and a stdlib-only import for the hooks."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
import time

import pytest

from aiki_hooks.issues import journal
from aiki_hooks.model.result import utc_iso
from tests.conftest import REPO

WRITERS = 4
RECORDS_PER_WRITER = 200


def record(n: int = 0, **fields) -> dict:
    return journal.make_record(at=1000.0 + n, kind="transition", record_id=f"occ{n}:opened",
                               occurrence_id=f"occ{n}", issue_id="http:qdrant", transition="opened",
                               severity="CRITICAL", summary="connection refused", host="box", **fields)


def lines_of(path) -> list[str]:
    return path.read_text().splitlines()


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_append_assigns_increasing_seq_and_read_returns_them(tmp_path):
    state = tmp_path / "state"
    first = journal.append(str(state), [record(1), record(2)])
    second = journal.append(str(state), [record(3)])
    assert [r["seq"] for r in first + second] == [1, 2, 3]
    assert [r["record_id"] for r in journal.read(str(state))] == ["occ1:opened", "occ2:opened", "occ3:opened"]
    assert journal.read(str(state)) == first + second
    assert (state / journal.SEQ_NAME).read_text().strip() == "3"


def test_lines_are_compact_json_in_schema_order(tmp_path):
    journal.append(str(tmp_path), [record(1)])
    line = lines_of(tmp_path / journal.JOURNAL_NAME)[0]
    assert ", " not in line and '": ' not in line
    assert list(json.loads(line)) == list(journal.FIELDS)


def test_files_are_private(tmp_path):
    state = tmp_path / "new" / "state"
    journal.append(str(state), [record(1)])
    journal.session_event(str(state), session_id="s1", cwd="/p", open_issues=[cache_issue("occA")],
                          now=2000.0, host="box")
    assert mode(state) == 0o700
    for name in (journal.JOURNAL_NAME, journal.LOCK_NAME, journal.SEQ_NAME, journal.SESSIONS_TOLD_NAME):
        assert mode(state / name) == 0o600, name


def test_read_with_since_filters_on_at(tmp_path):
    journal.append(str(tmp_path), [record(1), record(5), record(9)])
    assert [r["at"] for r in journal.read(str(tmp_path), since=1005.0)] == [1005.0, 1009.0]


def test_read_of_an_empty_state_dir_is_empty(tmp_path):
    assert journal.read(str(tmp_path / "never-written")) == []


def test_corrupt_and_partial_lines_are_skipped(tmp_path):
    journal.append(str(tmp_path), [record(1)])
    with open(tmp_path / journal.JOURNAL_NAME, "a") as file:
        file.write("not json\n[1, 2]\n{\"seq\": \"7\"}\n\n")
    journal.append(str(tmp_path), [record(2)])
    with open(tmp_path / journal.JOURNAL_NAME, "a") as file:
        file.write('{"seq": 99, "at": 5')  # a writer killed mid-line
    assert [r["seq"] for r in journal.read(str(tmp_path))] == [1, 2]


def test_an_append_after_a_torn_last_line_starts_on_a_new_line(tmp_path):
    journal.append(str(tmp_path), [record(1)])
    with open(tmp_path / journal.JOURNAL_NAME, "a") as file:
        file.write('{"seq": 2, "at"')  # a writer killed mid-line
    journal.append(str(tmp_path), [record(3)])
    assert [(r["seq"], r["record_id"]) for r in journal.read(str(tmp_path))] == [(1, "occ1:opened"), (2, "occ3:opened")]


def test_seq_continues_from_the_journal_when_the_seq_file_is_lost_or_behind(tmp_path):
    journal.append(str(tmp_path), [record(1), record(2), record(3)])
    (tmp_path / journal.SEQ_NAME).unlink()
    assert journal.append(str(tmp_path), [record(4)])[0]["seq"] == 4
    (tmp_path / journal.SEQ_NAME).write_text("1\n")  # a crash between journal and seq file
    assert journal.append(str(tmp_path), [record(5)])[0]["seq"] == 5


def test_rotation_keeps_keep_files_rotated_files_and_seq_runs_on(tmp_path):
    line_bytes = len(json.dumps({"seq": 1, **record(1)}, separators=(",", ":"))) + 1
    for n in range(40):
        journal.append(str(tmp_path), [record(n)], max_bytes=line_bytes * 3, keep_files=2)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(journal.JOURNAL_NAME))
    assert names == [journal.JOURNAL_NAME, journal.JOURNAL_NAME + ".1", journal.JOURNAL_NAME + ".2"]
    for name in names:
        assert os.path.getsize(tmp_path / name) <= line_bytes * 3 + 8
        assert mode(tmp_path / name) == 0o600
    seqs = [r["seq"] for r in journal.read(str(tmp_path))]
    assert seqs == list(range(seqs[0], 41)) and seqs[-1] == 40 and len(seqs) < 40


def test_rotation_drops_files_left_from_a_larger_keep_files(tmp_path):
    for n in range(10):
        journal.append(str(tmp_path), [record(n)], max_bytes=200, keep_files=5)
    assert (tmp_path / (journal.JOURNAL_NAME + ".5")).exists()
    journal.append(str(tmp_path), [record(11)], max_bytes=200, keep_files=2)
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(journal.JOURNAL_NAME + "."))
    assert rotated == [journal.JOURNAL_NAME + ".1", journal.JOURNAL_NAME + ".2"]


def _writer(state_dir: str, writer: int, count: int, max_bytes: int) -> None:
    for n in range(count):
        journal.append(state_dir, [record(writer * 1000 + n)], max_bytes=max_bytes, keep_files=1000)


def test_concurrent_writers_never_lose_or_repeat_a_seq(tmp_path):
    state = str(tmp_path)
    # Small files so rotations happen while the others wait on the lock.
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(state, w, RECORDS_PER_WRITER, 16 * 1024))
               for w in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    raw_lines = [line for path in tmp_path.iterdir() if path.name.startswith(journal.JOURNAL_NAME)
                 for line in path.read_text().splitlines()]
    assert len(raw_lines) == WRITERS * RECORDS_PER_WRITER
    assert all(isinstance(json.loads(line), dict) for line in raw_lines)
    records = journal.read(state)
    assert [r["seq"] for r in records] == list(range(1, WRITERS * RECORDS_PER_WRITER + 1))
    assert len({r["record_id"] for r in records}) == WRITERS * RECORDS_PER_WRITER
    # Each writer's own records come out in the order it wrote them.
    for w in range(WRITERS):
        mine = [int(r["occurrence_id"][3:]) - w * 1000 for r in records
                if int(r["occurrence_id"][3:]) // 1000 == w]
        assert mine == list(range(RECORDS_PER_WRITER))


def test_make_record_rejects_unknown_fields_and_seq():
    with pytest.raises(ValueError):
        journal.make_record(at=1.0, colour="red")
    with pytest.raises(ValueError):
        journal.make_record(seq=3)
    assert journal.make_record(at=1.0)["cwd"] is None


# --------------------------------------------------------------------------- session events


def cache_issue(occurrence_id: str | None, issue_id: str = "http:qdrant", since: float = 0.0) -> dict:
    since = since or time.mktime((2026, 11, 24, 14, 5, 0, 0, 0, -1))
    return {"id": issue_id, "severity": "CRITICAL", "summary": "connection refused", "since": utc_iso(since),
            "probe": issue_id.split(":")[-1], "occurrence_id": occurrence_id}


def test_session_event_records_each_open_occurrence_once_per_session(tmp_path):
    issues = [cache_issue("occA"), cache_issue("occB", "tcp:postgres"), cache_issue(None, "disk:/")]
    first = journal.session_event(str(tmp_path), session_id="1a2b3c4d-aaaa", cwd="/home/me/proj",
                                  open_issues=issues, now=5000.0, host="box")
    assert [r["record_id"] for r in first] == ["session:1a2b3c4d-aaaa:occA", "session:1a2b3c4d-aaaa:occB"]
    again = journal.session_event(str(tmp_path), session_id="1a2b3c4d-aaaa", cwd="/home/me/proj",
                                  open_issues=issues, now=5060.0, host="box")
    assert again == []
    other = journal.session_event(str(tmp_path), session_id="ffff0000", cwd="/x",
                                  open_issues=issues[:1], now=5100.0, host="box")
    assert [r["record_id"] for r in other] == ["session:ffff0000:occA"]
    assert [r["seq"] for r in journal.read(str(tmp_path))] == [1, 2, 3]


def test_session_record_fields_and_sentence(tmp_path):
    since = time.mktime((2026, 11, 24, 14, 5, 0, 0, 0, -1))
    [rec] = journal.session_event(str(tmp_path), session_id="1a2b3c4d-5e6f", cwd="/home/me/proj",
                                  open_issues=[cache_issue("occA", since=since)], now=since + 600, host="box")
    assert rec["sentence"] == ("Claude Code session 1a2b3c4d in /home/me/proj began while qdrant (http:qdrant) "
                               "was CRITICAL: connection refused (since 14:05).")
    assert rec["kind"] == "session" and rec["transition"] == "session_began"
    assert rec["started_at"] == pytest.approx(since)
    assert (rec["occurrence_id"], rec["issue_id"], rec["cwd"], rec["host"], rec["duration_seconds"]) == (
        "occA", "http:qdrant", "/home/me/proj", "box", None)


def test_session_event_without_occurrences_writes_nothing(tmp_path):
    assert journal.session_event(str(tmp_path), session_id="s1", cwd=None, open_issues=[cache_issue(None)],
                                 now=1.0, host="box") == []
    assert not (tmp_path / journal.JOURNAL_NAME).exists()


def test_session_told_index_forgets_old_sessions(tmp_path):
    journal.session_event(str(tmp_path), session_id="old", cwd=None, open_issues=[cache_issue("occA")],
                          now=1000.0, host="box")
    later = 1000.0 + (journal.SESSIONS_TOLD_DAYS + 1) * 86400
    journal.session_event(str(tmp_path), session_id="new", cwd=None, open_issues=[cache_issue("occA")],
                          now=later, host="box")
    told = json.loads((tmp_path / journal.SESSIONS_TOLD_NAME).read_text())
    assert list(told) == ["session:new:occA"]


IMPORT_CHECK = """
import sys, json
sys.path.insert(0, {repo!r})
before = set(sys.modules)
import aiki_hooks.issues.journal
added = set(sys.modules) - before
print(json.dumps(sorted(added)))
"""


def test_journal_imports_only_cheap_standard_library_modules():
    # -S: no site (.pth files there import typing and more before our code runs).
    result = subprocess.run([sys.executable, "-S", "-c", IMPORT_CHECK.format(repo=str(REPO))],
                            capture_output=True, text=True, timeout=10, check=True)
    added = set(json.loads(result.stdout))
    assert "aiki_hooks.issues.journal" in added
    third_party = {name.split(".")[0] for name in added} - set(sys.stdlib_module_names) - {"aiki_hooks"}
    assert third_party == set()
    assert added & {"dataclasses", "typing", "pathlib", "tempfile"} == set()


def test_records_after_reads_backwards_across_rotated_files(tmp_path):
    line_bytes = len(json.dumps({"seq": 1, **record(1)}, separators=(",", ":"))) + 1
    for n in range(20):
        journal.append(str(tmp_path), [record(n)], max_bytes=line_bytes * 3, keep_files=5)
    with open(tmp_path / journal.JOURNAL_NAME, "ab") as file:
        file.write(b'{"seq": 21, "torn')  # a writer killed mid-line
    found, left_out = journal.records_after(str(tmp_path), 12)
    assert [r["seq"] for r in found] == list(range(13, 21)) and left_out == 0
    found, left_out = journal.records_after(str(tmp_path), 12, limit=3, lock=False)
    assert [r["seq"] for r in found] == [18, 19, 20] and left_out == 5
    assert journal.records_after(str(tmp_path), 20) == ([], 0)
    assert journal.last_seq(str(tmp_path)) == 20


def test_records_after_reads_lines_longer_than_a_chunk(tmp_path):
    journal.append(str(tmp_path), [record(1, sentence="x" * 200_000), record(2, sentence="short"),
                                   record(3, sentence="y" * 70_000)])
    found, _ = journal.records_after(str(tmp_path), 0)
    assert [(r["seq"], len(r["sentence"])) for r in found] == [(1, 200_000), (2, 5), (3, 70_000)]


@pytest.mark.parametrize("at", ["middle", "end"])
def test_a_line_longer_than_any_record_is_skipped_without_being_held(tmp_path, at):
    """A planted or broken stretch with no newline (here 3 MiB) costs a reader bounded
    memory: it is skipped, forwards and backwards; the records around it are all read."""
    journal.append(str(tmp_path), [record(1), record(2)])
    garbage = b"z" * (3 * journal.MAX_LINE_BYTES)
    with open(tmp_path / journal.JOURNAL_NAME, "ab") as file:
        file.write(garbage + (b"\n" if at == "middle" else b""))
    if at == "middle":
        journal.append(str(tmp_path), [record(3)])
    expected = [1, 2, 3] if at == "middle" else [1, 2]
    assert [r["seq"] for r in journal.read(str(tmp_path))] == expected
    assert [r["seq"] for r in journal.records_after(str(tmp_path), 0)[0]] == expected
    assert journal.last_seq(str(tmp_path)) == expected[-1]
    assert journal.append(str(tmp_path), [record(9)])[0]["seq"] == expected[-1] + 1
    name = str(tmp_path / journal.JOURNAL_NAME)
    longest = max(max(map(len, journal._lines(name))), max(map(len, journal._lines_backwards(name))))
    assert longest < journal.MAX_LINE_BYTES
