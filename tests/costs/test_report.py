"""Claude cost accounting on small hand-made transcripts whose totals are computed by hand."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiki_hooks.config.load import parse_config
from aiki_hooks.costs import report
from aiki_hooks.costs.prices import PriceBook, Rates, normalise_model
from aiki_hooks.costs.scan import Scanner, ScanStats, claude_config_dirs, parse_timestamp, transcript_files
from aiki_hooks.costs.store import CostStore, Message
from aiki_hooks.model.status import Status
from aiki_hooks.probes.costs import CostsProbe, judge_costs
from tests.conftest import REPO, cli_env

DAY = "2026-11-20"


def line(obj) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


def assistant(message_id="msg_1", request_id="req_1", *, ts=f"{DAY}T10:00:00.000Z", model="claude-sonnet-4-5-20250929",
              input=100, output=50, cache_write=0, cache_read=0, one_hour=None, session="s1", sidechain=False,
              text="hi") -> str:
    usage = {"input_tokens": input, "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read,
             "output_tokens": output}
    if one_hour is not None:
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": cache_write - one_hour,
                                   "ephemeral_1h_input_tokens": one_hour}
    entry = {"parentUuid": None, "isSidechain": sidechain, "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}], "usage": usage}, "type": "assistant", "uuid": "u",
        "timestamp": ts, "sessionId": session}
    if request_id is not None:
        entry["requestId"] = request_id
    return line(entry)


def user_with_task_usage(ts=f"{DAY}T10:00:05Z") -> str:
    # A Task tool result carries a "usage" object too: it is not a model call of this session.
    return line({"type": "user", "timestamp": ts, "sessionId": "s1", "message": {"role": "user", "content": "x"},
                 "toolUseResult": {"totalTokens": 999, "usage": {"input_tokens": 900, "output_tokens": 99}}})


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.store = CostStore(str(self.state / "costs.sqlite"))
        self.prices = PriceBook()

    def file(self, name: str) -> Path:
        path = self.root / "claude" / "projects" / "proj" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def scan(self):
        files = transcript_files([str(self.root / "claude")])
        return Scanner(self.store, self.prices).refresh(files)

    def totals(self, model=None) -> tuple[int, int, int, int]:
        messages = self.store.messages_since(0)
        t = report.breakdown(messages)
        chosen = t.by_model.get(model, report.Totals()) if model else t.total
        return chosen.input, chosen.output, chosen.cache_write, chosen.cache_read


@pytest.fixture
def corpus(tmp_path) -> Corpus:
    return Corpus(tmp_path)


# --------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    "model, tokens, expected",
    [
        pytest.param("claude-sonnet-4-5-20250929", dict(input=100_000), 0.3, id="dated-id"),
        pytest.param("us.anthropic.claude-sonnet-4-5-20250929-v1:0", dict(input=100_000), 0.3, id="bedrock-id"),
        pytest.param("claude-opus-5-5[1m]", dict(input=1_000_000, cache_read=1_000_000), 4.2, id="context-suffix"),
        pytest.param("claude-opus-4-5-20251101", dict(output=1_000_000), 25.0, id="opus-4-5-not-opus-4"),
        pytest.param("claude-opus-4-20250514", dict(output=1_000_000), 75.0, id="opus-4"),
        pytest.param("claude-haiku-4-5-20251001", dict(cache_write_5m=1_000_000, cache_write_1h=1_000_000), 3.25,
                     id="cache-write-ttls"),
        # Above 200k prompt tokens, every token of that request is billed at the long-context rate.
        pytest.param("claude-sonnet-4-5", dict(input=150_000, cache_read=60_000, output=10_000),
                     (150_000 * 6 + 60_000 * 0.6 + 10_000 * 22.5) / 1e6, id="sonnet-long-context"),
        pytest.param("claude-sonnet-4-5", dict(input=150_000, cache_read=50_000, output=10_000),
                     (150_000 * 3 + 50_000 * 0.3 + 10_000 * 15) / 1e6, id="sonnet-at-200k-exactly"),
        pytest.param("claude-haiku-5-5", dict(input=100_001, output=1_000), (100_001 * 0.5 + 1_000 * 2.5) / 1e6,
                     id="haiku-5-5-upper-tier"),
        pytest.param("claude-sonnet-4-6", dict(input=300_000), 0.9, id="sonnet-4-6-no-tier"),
    ],
)
def test_prices(model, tokens, expected):
    full = {**dict(input=0, output=0, cache_write_5m=0, cache_write_1h=0, cache_read=0), **tokens}
    assert PriceBook().cost(model, 1.8e9, **full) == pytest.approx(expected)


def test_price_changes_on_its_date():
    book = PriceBook()
    before = dt.datetime(2026, 10, 6, 23, tzinfo=dt.timezone.utc).timestamp()
    after = dt.datetime(2026, 10, 7, 1, tzinfo=dt.timezone.utc).timestamp()
    read = dict(input=0, output=0, cache_write_5m=0, cache_write_1h=0, cache_read=1_000_000)
    assert book.cost("claude-sonnet-5-5", before, **read) == pytest.approx(0.20)
    assert book.cost("claude-sonnet-5-5", after, **read) == pytest.approx(0.10)


def test_unknown_model_is_unpriced_and_overrides_win():
    zero = dict(input=1_000_000, output=0, cache_write_5m=0, cache_write_1h=0, cache_read=0)
    assert PriceBook().cost("claude-nova-9", 0, **zero) is None
    assert PriceBook().cost("gpt-4o", 0, **zero) is None
    book = PriceBook({"claude-nova-9": Rates(input=7, cache_write_5m=8, cache_write_1h=9, cache_read=1, output=30),
                      "claude-sonnet-4-5": Rates(input=1, cache_write_5m=1, cache_write_1h=1, cache_read=1, output=1)})
    assert book.cost("claude-nova-9-20270101", 0, **zero) == 7
    assert book.cost("claude-sonnet-4-5-20250929", 0, **zero) == 1
    assert normalise_model("anthropic.claude-3-haiku-20240307-v1:0") == "claude-3-haiku-20240307-v1:0"


# --------------------------------------------------------------------------- scanning


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-20T10:00:00.123Z", 1_795_168_800.123),
        ("2026-11-20T10:00:00Z", 1_795_168_800.0),
        ("2026-11-20T10:00:00.123456Z", 1_795_168_800.123456),
        ("2026-11-20T11:00:00+01:00", 1_795_168_800.0),
        ("yesterday", None),
        (1763632800, None),
    ],
)
def test_parse_timestamp(text, expected):
    result = parse_timestamp(text)
    assert result == (pytest.approx(expected) if expected is not None else None)


def test_counts_each_response_once_and_skips_what_is_not_a_model_call(corpus):
    corpus.file("a.jsonl").write_text(
        line({"type": "summary", "summary": "x"})
        + assistant(text="block 1") + assistant(text="block 2") + assistant(text="block 3")  # one response, 3 lines
        + user_with_task_usage()
        + assistant("msg_2", "req_2", input=10, output=5, cache_write=1000, one_hour=400, cache_read=2000,
                    ts=f"{DAY}T10:01:00Z", sidechain=True)  # a subagent turn counts
        + assistant("msg_3", None, input=1, output=1) + assistant("msg_3", None, input=1, output=1)  # no requestId
        + line({"type": "cost-state", "sessionId": "s1", "totalCostUSD": 1.0, "modelUsage": {}})
    )
    stats = corpus.scan()
    assert stats.usage_lines == 6  # before deduplication
    assert corpus.totals() == (100 + 10 + 2, 50 + 5 + 2, 1000, 2000)
    (sidechain,) = [m for m in corpus.store.messages_since(0) if m.sidechain]
    assert (sidechain.cache_write_5m, sidechain.cache_write_1h) == (600, 400)


def test_torn_last_line_waits_until_complete(corpus):
    path = corpus.file("a.jsonl")
    whole = assistant("msg_2", "req_2", input=7, output=3)
    path.write_text(assistant() + whole[: len(whole) // 2])
    corpus.scan()
    assert corpus.totals() == (100, 50, 0, 0)
    with path.open("a") as file:
        file.write(whole[len(whole) // 2:])
    stats = corpus.scan()
    assert corpus.totals() == (107, 53, 0, 0)
    assert stats.bytes_read < len(whole) + 10  # only the new bytes (and the torn half) were read again


def test_corrupt_and_non_utf8_and_huge_lines_are_survived(corpus, monkeypatch):
    import aiki_hooks.costs.scan as scan

    monkeypatch.setattr(scan, "MAX_LINE_BYTES", 64 * 1024)
    monkeypatch.setattr(scan, "CHUNK_BYTES", 16 * 1024)
    huge = assistant("msg_big", "req_big", text="x" * 200_000)
    corpus.file("a.jsonl").write_bytes(
        b'{"type":"assistant","output_tokens":' + b"\xff\xfe broken\n"
        + assistant("msg_ok", "req_ok", input=1, output=2).encode()
        + b'{"message":{"usage":{"output_tokens":5}}, truncated garbage\n'
        + huge.encode()
        + assistant("msg_after", "req_after", input=3, output=4).encode()
    )
    stats = corpus.scan()
    assert corpus.totals() == (4, 6, 0, 0)
    assert stats.bad_lines == 2 and stats.oversized_lines == 1


def test_incremental_refresh_equals_a_cold_scan(corpus, tmp_path):
    """The generator's corpus, appended in slices, gives the same totals as one cold scan."""
    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(out), "--size-mib", "3",
                    "--seed", "3", "--now", "2026-11-20T12:00:00+00:00"], check=True, capture_output=True)
    cold = Corpus(tmp_path / "cold")
    cold.store = CostStore(str(tmp_path / "cold.sqlite"))
    Scanner(cold.store, cold.prices).refresh(transcript_files([str(out)]))
    expected = report.breakdown(cold.store.messages_since(0))

    # Replay every file in three slices cut at arbitrary bytes (torn lines included).
    replay = tmp_path / "replay"
    sources = transcript_files([str(out)])
    store = CostStore(str(tmp_path / "warm.sqlite"))
    for part in range(1, 4):
        for source in sources:
            data = Path(source).read_bytes()
            target = replay / Path(source).relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[: len(data) * part // 3])
        Scanner(store, PriceBook()).refresh(transcript_files([str(replay)]))
    got = report.breakdown(store.messages_since(0))
    assert got.total.tokens == expected.total.tokens > 0
    assert got.total.cost == pytest.approx(expected.total.cost)
    assert {m: t.tokens for m, t in got.by_model.items()} == {m: t.tokens for m, t in expected.by_model.items()}


def test_truncated_replaced_and_deleted_files_are_recomputed(corpus):
    a, b = corpus.file("a.jsonl"), corpus.file("b.jsonl")
    a.write_text(assistant("m1", "r1", input=10, output=1) + assistant("m2", "r2", input=20, output=2))
    b.write_text(assistant("m9", "r9", input=1000, output=100))
    corpus.scan()
    assert corpus.totals()[:2] == (1030, 103)
    a.write_text(assistant("m1", "r1", input=10, output=1))  # truncated (smaller)
    assert corpus.scan().files_forgotten == 1
    assert corpus.totals()[:2] == (1010, 101)
    replacement = corpus.root / "new.jsonl"
    replacement.write_text(assistant("m5", "r5", input=40, output=4))
    os.replace(replacement, a)  # a new inode
    corpus.scan()
    assert corpus.totals()[:2] == (1040, 104)
    b.unlink()
    corpus.scan()
    assert corpus.totals()[:2] == (40, 4)


def test_a_duplicate_in_another_file_takes_over_when_the_first_goes(corpus):
    first, resumed = corpus.file("a.jsonl"), corpus.file("b.jsonl")
    first.write_text(assistant("m1", "r1", input=10, output=1))
    resumed.write_text(assistant("m1", "r1", input=10, output=1) + assistant("m2", "r2", input=5, output=5))
    corpus.scan()
    assert corpus.totals()[:2] == (15, 6)
    first.unlink()
    corpus.scan()
    assert corpus.totals()[:2] == (15, 6)


def test_a_file_vanishing_mid_scan_is_not_an_error(corpus):
    path = corpus.file("a.jsonl")
    path.write_text(assistant())
    files = transcript_files([str(corpus.root / "claude")])
    path.unlink()
    stats = Scanner(corpus.store, corpus.prices).refresh(files)
    assert stats.vanished == 1 and corpus.totals() == (0, 0, 0, 0)


def test_config_dirs_from_env_and_subagent_folders(tmp_path):
    assert claude_config_dirs(env={"CLAUDE_CONFIG_DIR": "/a, /b", "HOME": "/h"}) == ["/a", "/b"]
    assert claude_config_dirs(env={"HOME": "/h"}) == ["/h/.claude", "/h/.config/claude"]
    nested = tmp_path / "c" / "projects" / "p" / "sess" / "subagents" / "agent-1.jsonl"
    nested.parent.mkdir(parents=True)
    nested.write_text("")
    assert transcript_files([str(tmp_path / "c")]) == [str(nested)]


# --------------------------------------------------------------------------- figures


def msg(ts: float, cost: float | None = 1.0, session="s", model="claude-sonnet-4-5", tokens=10) -> Message:
    return Message(key=f"k{ts}", ts=ts, session=session, model=model, sidechain=False, input=tokens, output=0,
                   cache_write_5m=0, cache_write_1h=0, cache_read=0, cost=cost)


def test_blocks_follow_ccusage_rule():
    h = 3600.0
    base = 1_763_632_800.0  # 10:00 UTC
    messages = [msg(base + 0.5 * h), msg(base + 4.9 * h), msg(base + 5.2 * h),  # 10:30, 14:54, 15:12
                msg(base + 11 * h)]  # after a gap of >= 5 h
    blocks = report.blocks(messages)
    assert [(b.start - base) / h for b in blocks] == [0.0, 5.0, 11.0]
    assert [b.breakdown.total.messages for b in blocks] == [2, 1, 1]
    assert blocks[-1].active(base + 12 * h) and not blocks[-1].active(base + 16.5 * h)


def test_days_follow_the_configured_time_zone():
    berlin = report.zone("Europe/Berlin")
    late = dt.datetime(2026, 11, 20, 23, 30, tzinfo=dt.timezone.utc).timestamp()  # 00:30 on the 21st in Berlin
    assert list(report.daily([msg(late)], berlin)) == ["2026-11-21"]
    assert list(report.daily([msg(late)], report.zone("UTC"))) == ["2026-11-20"]


def test_unpriced_tokens_get_claude_codes_own_price_shared_by_tokens():
    todays = [msg(1, cost=None, session="a", model="claude-nova", tokens=30)]
    estimate = report.estimate_unpriced(todays, {("a", "claude-nova"): 2.0}, {("a", "claude-nova"): 120})
    assert estimate == pytest.approx(0.5)
    assert report.estimate_unpriced(todays, {}, {}) is None


def probe_in(tmp_path, corpus_dir, **costs) -> CostsProbe:
    config = parse_config({"costs": {"timezone": "UTC", "claude_config_dirs": [str(corpus_dir)], **costs}}).costs
    now = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    return CostsProbe(config, tmp_path / "state", clock=lambda: now)


@pytest.mark.parametrize("spent, status", [(7.9, Status.OK), (8.0, Status.WARNING), (10.0, Status.CRITICAL)])
def test_daily_budget_becomes_an_issue(corpus, tmp_path, spent, status):
    # claude-opus-4-5: $25 per million output tokens.
    corpus.file("a.jsonl").write_text(assistant(model="claude-opus-4-5", input=0, output=int(spent / 25 * 1e6),
                                                ts=f"{DAY}T11:00:00Z"))
    probe = probe_in(tmp_path, corpus.root / "claude", daily_usd=10)
    (result,) = probe.check()
    assert result.status is status
    assert result.values["today_usd"] == pytest.approx(spent)
    if status is not Status.OK:
        (finding,) = result.issue_findings()
        assert finding.id == "costs:today" and "of the $10.00 budget" in finding.summary


def test_summary_names_unpriced_tokens_never_zero_dollars(corpus, tmp_path):
    corpus.file("a.jsonl").write_text(
        assistant("m1", "r1", model="claude-nova-9", input=1000, output=234, ts=f"{DAY}T11:00:00Z")
        + line({"type": "cost-state", "sessionId": "s1", "totalCostUSD": 0.5,
                "modelUsage": {"claude-nova-9": {"inputTokens": 1000, "outputTokens": 234, "costUSD": 0.5}}}))
    (result,) = probe_in(tmp_path, corpus.root / "claude").check()
    assert "+ 1,234 tokens unpriced (nova-9, $0.50 by Claude Code's own count)" in result.summary
    assert result.values["today_unpriced_tokens"] == 1234


def test_external_tracker_sources(tmp_path, corpus):
    good = tmp_path / "tracker.sh"
    good.write_text('#!/bin/sh\necho \'{"today_usd": 3.9}\'\n')
    good.chmod(0o755)
    probe = probe_in(tmp_path, corpus.root / "claude", external={"command": [str(good)], "label": "mem0 tracker"})
    claude, tracker = probe.check()
    assert (tracker.name, tracker.status, tracker.summary) == ("cost-tracker", Status.OK, "mem0 tracker today $3.90")
    bad_file = tmp_path / "tracker.json"
    bad_file.write_text('{"total": 1}')
    probe = probe_in(tmp_path, corpus.root / "claude", external={"json_file": str(bad_file)})
    _, tracker = probe.check()
    assert tracker.status is Status.UNKNOWN and 'no number "today_usd"' in tracker.summary


def test_costs_cli_table_and_json(tmp_path, corpus):
    corpus.file("a.jsonl").write_text(
        assistant("m1", "r1", model="claude-haiku-4-5", input=1_000_000, output=0, ts=f"{DAY}T09:00:00Z")
        + assistant("m2", "r2", model="claude-opus-4-5", input=0, output=1_000_000, ts="2026-11-19T09:00:00Z"))
    config = tmp_path / "aiki.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "st"}"\n[costs]\ntimezone = "UTC"\n'
                      f'claude_config_dirs = ["{corpus.root / "claude"}"]\n')
    env = cli_env(AIKI_HOOKS_CONFIG=str(config))
    table = subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "costs", "--days", "3650"], capture_output=True,
                           text=True, env=env, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "2026-11-19  opus-4-5" in table.stdout and "$25.00" in table.stdout
    assert "2026-11-20  haiku-4-5" in table.stdout and "$1.00" in table.stdout
    data = json.loads(subprocess.run([sys.executable, "-m", "aiki_hooks.cli", "costs", "--json", "--days", "3650"],
                                     capture_output=True, text=True, env=env, timeout=60).stdout)
    assert [(d["date"], d["cost_usd"]) for d in data["daily"]] == [("2026-11-19", 25.0), ("2026-11-20", 1.0)]
    assert data["totals"]["input_tokens"] == 1_000_000 and data["totals"]["output_tokens"] == 1_000_000


def test_judge_costs_is_pure():
    figures = {"now": 0, "today": report.breakdown([msg(1, cost=2.5)]), "week": report.breakdown([msg(1, cost=2.5)]),
               "block": None, "sessions": {}, "stats": ScanStats(files=1)}
    config = parse_config({"costs": {"daily_usd": 2}}).costs
    result = judge_costs(figures, config)
    assert result.status is Status.CRITICAL and result.summary.startswith("today $2.50, 125% of the $2.00 budget")


def test_parallel_first_scan_equals_serial(tmp_path, monkeypatch):
    import aiki_hooks.costs.scan as scan

    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(out), "--size-mib", "2",
                    "--seed", "9", "--now", "2026-11-20T12:00:00+00:00"], check=True, capture_output=True)
    files = transcript_files([str(out)])
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan.os, "sched_getaffinity", lambda pid: {0, 1, 2})  # forks even on one CPU
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(scan.os, "fork", lambda: forks.append(1) or real_fork())

    def scan_with(workers: int, name: str):
        store = CostStore(str(tmp_path / f"{name}.sqlite"))
        stats = Scanner(store, PriceBook(), workers=workers).refresh(files)
        totals = report.breakdown(store.messages_since(0))
        stored = sorted(tuple(row) for _, row in store.stored_rows())
        return (stats.usage_lines, stats.files_read, [tuple(row) for row in stats.new_rows], totals.total.tokens,
                round(totals.total.cost, 6), stored)

    serial = scan_with(1, "serial")
    assert not forks and serial[3] > 0
    assert scan_with(3, "parallel") == serial and len(forks) == 3

    # A worker that dies (here: all of them, at once) leaves its files to the parent,
    # whether they die before the parent has filled their queue or after.
    monkeypatch.setattr(scan, "_worker_start", lambda: os._exit(1))
    assert scan_with(2, "died") == serial and len(forks) == 5
    real_select = __import__("select").select

    def late_select(*args):  # the parent fills the queue only once both are surely gone
        time.sleep(0.2)
        return real_select(*args)

    monkeypatch.setattr("select.select", late_select)
    assert scan_with(2, "died-late") == serial and len(forks) == 7


def test_a_damaged_index_is_built_again(corpus, tmp_path):
    """The index is derived data (its first fill runs without fsync): a file that is not
    a database, or a damaged one, is replaced at open and filled from the transcripts."""
    corpus.file("a.jsonl").write_text(assistant("m1", "r1", input=7, output=3))
    corpus.scan()
    index = tmp_path / "broken.sqlite"
    index.write_bytes(b"this is not a database" * 100)
    store = CostStore(str(index))
    Scanner(store, PriceBook()).refresh(transcript_files([str(corpus.root / "claude")]))
    assert sum(m.input for m in store.messages_since(0)) == 7
    assert int(store.db.execute("PRAGMA synchronous").fetchone()[0]) == 1  # NORMAL again after the first fill
    assert oct(index.stat().st_mode & 0o777) == "0o600"


def test_new_and_changed_files_in_one_refresh_and_a_file_listed_twice(corpus, tmp_path):
    """New files' rows are plain INSERTs, changed files' replace theirs: both in one
    refresh give the files table the scanner then trusts; a path listed twice (a config
    dir given twice) is read once, not refused by the table's unique path."""
    corpus.file("a.jsonl").write_text(assistant("m1", "r1", input=7, output=3))
    store = CostStore(str(tmp_path / "index.sqlite"))
    scanner = Scanner(store, PriceBook())
    files = transcript_files([str(corpus.root / "claude")])
    scanner.refresh(files + files)
    with corpus.file("a.jsonl").open("a") as grown:
        grown.write(assistant("m2", "r2", input=5, output=1))
    corpus.file("b.jsonl").write_text(assistant("m3", "r3", input=2, output=2))
    files = transcript_files([str(corpus.root / "claude")])
    stats = scanner.refresh(files + files[:1])
    assert stats.files_read == 2
    rows = {row[1]: row for row in store.db.execute("SELECT id, path, inode, size, offset FROM files")}
    assert sorted(rows) == sorted(files)
    for path in files:
        info = os.stat(path)
        assert rows[path][2:] == (info.st_ino, info.st_size, info.st_size)
    assert sorted(m.input for m in store.messages_since(0)) == [2, 5, 7]
    assert scanner.refresh(files).files_read == 0  # as the table says: nothing new


def test_a_new_index_has_16_kib_pages_and_an_old_one_keeps_its_own(tmp_path):
    """Bigger pages halve the time a first scan spends writing its chunks to the WAL and
    checkpointing them; the WAL is still checkpointed at 4 MiB."""
    import sqlite3

    from aiki_hooks.costs import store as store_module

    new = CostStore(str(tmp_path / "new.sqlite"))
    assert new.db.execute("PRAGMA page_size").fetchone()[0] == store_module.PAGE_SIZE == 16384
    assert new.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 256
    new.close()
    old_path = tmp_path / "old.sqlite"
    old = sqlite3.connect(old_path)
    old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")  # made with 4 KiB pages
    old.commit()
    old.close()
    reopened = CostStore(str(old_path))
    assert reopened.db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert reopened.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1024
    reopened.close()


def test_parallel_scan_of_more_files_than_one_queue_write(tmp_path, monkeypatch):
    """1,500 files: the workers' queue (4 bytes a file) outgrows one pipe write and is
    topped up as it drains; every file is read once and the rows are the serial ones."""
    import aiki_hooks.costs.scan as scan

    root = tmp_path / "claude" / "projects" / "p"
    root.mkdir(parents=True)
    for index in range(1500):
        (root / f"{index:04}.jsonl").write_text(assistant(f"m{index}", f"r{index % 700}", input=index, output=1))
    files = transcript_files([str(tmp_path / "claude")])
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(scan.os, "sched_getaffinity", lambda pid: {0, 1})
    found = {}
    for workers in (1, 2):
        store = CostStore(str(tmp_path / f"{workers}.sqlite"))
        stats = Scanner(store, PriceBook(), workers=workers).refresh(files)
        found[workers] = (stats.files_read, sorted(tuple(row) for _, row in store.stored_rows()))
    assert found[1] == found[2] and found[1][0] == 1500 and len(found[1][1]) == 1500
