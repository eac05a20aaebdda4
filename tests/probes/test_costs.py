"""The cost probe over time and at its edges: unpriced tokens in every figure and budget,
incremental updates and the day rollover, the block budget and boundary, unreadable files,
non-UTF-8 lines, the external tracker's output, pruning, per-session figures."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from aiki_hooks.config.load import parse_config
from aiki_hooks.costs import report
from aiki_hooks.costs.prices import PriceBook
from aiki_hooks.costs.scan import ChangeWatch, Scanner, transcript_files
from aiki_hooks.costs.store import CostStore
from aiki_hooks.hooklib import text
from aiki_hooks.model.status import Status
from aiki_hooks.probes.costs import KEEP_DAYS, CostsProbe

from tests.costs import test_report as test_costs
from tests.costs.test_report import DAY, assistant, line, msg

corpus = test_costs.corpus  # the fixture, shared

NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc).timestamp()
HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def probe_for(tmp_path, corpus, clock=None, **costs) -> CostsProbe:
    config = parse_config({"costs": {"timezone": "UTC", "claude_config_dirs": [str(corpus.root / "claude")],
                                     **costs}}).costs
    return CostsProbe(config, tmp_path / "state", clock=clock or (lambda: NOON))


def cost_state(session: str, model: str, usd: float) -> str:
    return line({"type": "cost-state", "sessionId": session, "totalCostUSD": usd,
                 "modelUsage": {model: {"inputTokens": 1, "outputTokens": 1, "costUSD": usd}}})


def status_data(*results) -> dict:
    return {"status": "OK", "issues": [], "probes": [r.to_dict() for r in results]}


# --------------------------------------------------------------------------- unpriced tokens (item 3)


def test_a_day_of_only_unpriced_use_is_never_shown_as_zero(tmp_path, corpus):
    corpus.file("a.jsonl").write_text(
        assistant("m1", "r1", model="claude-opus-4-9", input=1000, output=234, ts=f"{DAY}T11:00:00Z")
        + cost_state("s1", "claude-opus-4-9", 0.5))
    (result,) = probe_for(tmp_path, corpus).check()
    assert "today $0.00, + 1,234 tokens unpriced (opus-4-9, $0.50 by Claude Code's own count)" in result.summary
    assert "block $0.00 + 1,234 tokens unpriced ($0.50 by Claude Code's own count) until" in result.summary
    assert "7 d $0.00 + 1,234 tokens unpriced ($0.50 by Claude Code's own count)" in result.summary
    values = result.values
    assert (values["today_unpriced_tokens"], values["block_unpriced_tokens"], values["week_unpriced_tokens"]) == (
        1234, 1234, 1234)
    assert values["block_unpriced_usd_claude_code"] == pytest.approx(0.5)
    assert values["week_unpriced_usd_claude_code"] == pytest.approx(0.5)
    assert values["session_unpriced_tokens"] == {"s1": 1234}

    line_text = text.status_line(status_data(result), state="fresh", age=1, session_cost_usd=None, columns=200,
                                 color=False)
    assert "today $0.00 + 1.2k tok unpriced (CC $0.50)" in line_text
    block = text.costs_line([result.to_dict()])
    assert "Claude today $0.00 + 1,234 tokens unpriced ($0.50 by Claude Code's count)" in block
    assert "block $0.00 + 1,234 tokens unpriced" in block


def test_the_status_line_names_unpriced_tokens_without_claude_codes_figure(tmp_path, corpus):
    corpus.file("a.jsonl").write_text(assistant(model="claude-nova-9", input=2_500_000, output=0,
                                                ts=f"{DAY}T11:00:00Z"))
    (result,) = probe_for(tmp_path, corpus).check()
    line_text = text.status_line(status_data(result), state="fresh", age=1, session_cost_usd=None, columns=200,
                                 color=False)
    assert "today $0.00 + 2.5M tok unpriced" in line_text and "CC" not in line_text


@pytest.mark.parametrize("claude_code_usd, status", [(0.45, Status.WARNING), (None, Status.OK)])
def test_budgets_count_claude_codes_price_for_unpriced_models(tmp_path, corpus, claude_code_usd, status):
    body = assistant("m1", "r1", model="claude-nova-9", input=1000, output=234, ts=f"{DAY}T11:00:00Z")
    if claude_code_usd is not None:
        body += cost_state("s1", "claude-nova-9", claude_code_usd)
    corpus.file("a.jsonl").write_text(body)
    (result,) = probe_for(tmp_path, corpus, daily_usd=0.5, block_usd=0.5).check()
    assert result.status is status
    by_id = {f.id: f for f in result.findings}
    assert set(by_id) == {"costs:today", "costs:block"}
    if claude_code_usd is not None:
        assert by_id["costs:today"].summary == (
            "Claude spend today $0.45, 90% of the $0.50 budget (with $0.45 by Claude Code's own count for 1,234 "
            "unpriced tokens)")
        assert by_id["costs:block"].status is Status.WARNING
    else:
        assert by_id["costs:today"].summary.endswith("0% of the $0.50 budget, plus 1,234 unpriced tokens not counted")


# --------------------------------------------------------------------------- block (items 6, 9)


@pytest.mark.parametrize("spent, status", [(0.79, Status.OK), (0.80, Status.WARNING), (1.0, Status.CRITICAL)])
def test_block_budget_becomes_an_issue(tmp_path, corpus, spent, status):
    # claude-opus-4-5: $25 per million output tokens. Yesterday's spend is in no block of today.
    corpus.file("a.jsonl").write_text(
        assistant("old", "r0", model="claude-opus-4-5", input=0, output=1_000_000, ts="2026-11-19T09:00:00Z")
        + assistant("m1", "r1", model="claude-opus-4-5", input=0, output=int(spent / 25 * 1e6),
                    ts=f"{DAY}T10:30:00Z"))
    (result,) = probe_for(tmp_path, corpus, block_usd=1).check()
    assert result.status is status
    assert result.values["block_usd"] == pytest.approx(spent)
    (finding,) = result.findings
    assert finding.id == "costs:block" and finding.status is status
    assert finding.summary.startswith(f"Claude spend this 5-hour block ${spent:.2f}, ")


def test_a_block_ends_only_more_than_five_hours_after_its_start():
    base = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    exactly = [msg(base), msg(base + 5 * HOUR)]
    assert [b.breakdown.total.messages for b in report.blocks(exactly)] == [2]
    assert report.block_starts([m.ts for m in exactly]) == [0]
    after = [msg(base), msg(base + 5 * HOUR + 1)]
    assert [(b.start - base) / HOUR for b in report.blocks(after)] == [0.0, 5.0]
    # The current block of the figures follows the same rule.
    window = report.Window(days=7, tz=report.zone("UTC"), now=base + 4 * HOUR)
    window.add(exactly)
    block = window.current_block(base + 4 * HOUR)
    assert block.start == base and block.breakdown.total.messages == 2
    window = report.Window(days=7, tz=report.zone("UTC"), now=base + 5.5 * HOUR)
    window.add(after)
    block = window.current_block(base + 5.5 * HOUR)
    assert block.start == base + 5 * HOUR and block.breakdown.total.messages == 1


# --------------------------------------------------------------------------- over time (item 9)


def test_incremental_update_then_a_new_day_rebuilds_the_figures(tmp_path, corpus):
    clock = Clock(NOON)
    path = corpus.file("a.jsonl")
    path.write_text(assistant("m1", "r1", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:00:00Z"))
    probe = probe_for(tmp_path, corpus, clock)
    (first,) = probe.check()
    assert first.values["today_usd"] == pytest.approx(1.0)
    window = probe._window
    with path.open("a") as file:
        file.write(assistant("m2", "r2", model="claude-opus-4-5", input=0, output=80_000, ts=f"{DAY}T11:30:00Z"))
    (second,) = probe.check()
    assert probe._window is window  # fed the new message only, not rebuilt
    assert second.values["today_usd"] == pytest.approx(3.0) and second.values["week_usd"] == pytest.approx(3.0)

    clock.now = NOON + 12.5 * HOUR  # 00:30 the next day
    (third,) = probe.check()
    assert probe._window is not window
    assert third.values["today_usd"] == 0 and third.values["week_usd"] == pytest.approx(3.0)
    with path.open("a") as file:
        file.write(assistant("m3", "r3", model="claude-opus-4-5", input=0, output=40_000,
                             ts="2026-11-21T00:20:00Z"))
    (fourth,) = probe.check()
    assert fourth.values["today_usd"] == pytest.approx(1.0) and fourth.values["week_usd"] == pytest.approx(4.0)
    figures = probe.figures()
    assert {day: round(b.total.cost, 6) for day, b in figures["daily"].items()} == {DAY: 3.0, "2026-11-21": 1.0}


# --------------------------------------------------------------------------- files and lines (items 4, 5)


def test_an_unreadable_transcript_is_skipped_and_the_rest_counts(corpus):
    good = corpus.file("a.jsonl")
    good.write_text(assistant("m1", "r1", input=10, output=1))
    broken = corpus.file("b.jsonl")
    broken.mkdir()  # a directory under a transcript's name: open() fails with EISDIR
    files = transcript_files([str(corpus.root / "claude")]) + [str(broken)]
    scanner = Scanner(corpus.store, corpus.prices)
    stats = scanner.refresh(sorted(files))
    assert stats.unreadable == 1 and "b.jsonl" in stats.errors[0]
    assert corpus.totals()[:2] == (10, 1)  # the refresh was committed
    # Once it is readable, the next refresh reads it.
    broken.rmdir()
    broken.write_text(assistant("m2", "r2", input=5, output=5))
    stats = scanner.refresh(sorted(files))
    assert stats.unreadable == 0 and corpus.totals()[:2] == (15, 6)


def test_a_line_with_invalid_utf8_keeps_its_tokens(corpus):
    raw = assistant("m1", "r1", input=7, output=3, text="MARK").encode().replace(b"MARK", b"caf\xe9 \xff\xfe")
    corpus.file("a.jsonl").write_bytes(raw + assistant("m2", "r2", input=1, output=1).encode())
    stats = corpus.scan()
    assert stats.bad_lines == 0
    assert corpus.totals()[:2] == (8, 4)


# --------------------------------------------------------------------------- external tracker (item 7)


def test_the_trackers_output_never_reaches_the_summary(tmp_path, corpus):
    script = tmp_path / "tracker.sh"
    script.write_text("#!/bin/sh\necho 'token=sk-live-SECRET' >&2\necho 'Authorization: SECRET'\nexit 3\n")
    script.chmod(0o755)
    _, tracker = probe_for(tmp_path, corpus, external={"command": [str(script)]}).check()
    assert tracker.status is Status.UNKNOWN
    assert tracker.summary == "tracker: exited with code 3"
    assert "SECRET" not in repr(tracker.to_dict())
    _, missing = probe_for(tmp_path, corpus, external={"command": [str(tmp_path / "nope")]}).check()
    assert missing.summary == "tracker: command not found"


@pytest.mark.parametrize(("command", "expected"), [
    pytest.param(["yes"], "tracker: stopped after printing more than 1 MiB", id="flood"),
    pytest.param(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' ' '; echo '{\"today_usd\": 1}'"],
                 "tracker: printed more than 64 KiB (a JSON answer is a few bytes)", id="too-long"),
])
def test_a_tracker_printing_too_much_is_cut_short_and_says_so(tmp_path, corpus, command, expected):
    """Issue 13 item 4: its output is read as it comes, and no more than is kept."""
    started = time.monotonic()
    _, tracker = probe_for(tmp_path, corpus, external={"command": command, "timeout_seconds": 10}).check()
    assert time.monotonic() - started < 5  # not read until the timeout
    assert (tracker.status, tracker.summary) == (Status.UNKNOWN, expected)


# --------------------------------------------------------------------------- pruning (item 8)


def test_old_rows_are_pruned_and_a_longer_report_reads_them_again(tmp_path, corpus):
    old_day = dt.datetime.fromtimestamp(NOON - (KEEP_DAYS + 20) * 86400, dt.timezone.utc)
    old_ts = old_day.strftime("%Y-%m-%dT10:00:00Z")
    corpus.file("old.jsonl").write_text(assistant("m0", "r0", model="claude-opus-4-5", input=0, output=40_000,
                                                  ts=old_ts))
    # A response whose copies straddle the horizon is kept whole.
    corpus.file("a.jsonl").write_text(
        assistant("m1", "r1", model="claude-opus-4-5", input=0, output=40_000, ts=old_ts)
        + assistant("m2", "r2", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:00:00Z"))
    corpus.file("b.jsonl").write_text(assistant("m1", "r1", model="claude-opus-4-5", input=0, output=40_000,
                                                ts=f"{DAY}T09:00:00Z"))
    probe = probe_for(tmp_path, corpus)
    (result,) = probe.check()
    assert result.values["today_usd"] == pytest.approx(1.0)
    store = CostStore(str(tmp_path / "state" / "costs.sqlite"))
    keys = sorted(row[0] for _, row in store.stored_rows())
    assert keys == ["m1:r1", "m1:r1", "m2:r2"]  # m0:r0 (only old copies) is gone
    assert store.kept_since() >= NOON - (KEEP_DAYS + 1) * 86400
    store.close()
    # Asking for more days than the index keeps reads the transcripts again.
    figures = probe.figures(days=KEEP_DAYS + 30)
    # m0 and m1, whose first copy (a.jsonl is read before b.jsonl) is the old one.
    assert figures["daily"][old_day.date().isoformat()].total.messages == 2
    assert figures["week"].total.cost == pytest.approx(3.0)


# --------------------------------------------------------------------------- sessions (item 10)


def test_a_session_figure_is_its_whole_cost_not_its_last_24_hours(tmp_path, corpus):
    corpus.file("a.jsonl").write_text(
        assistant("m1", "r1", model="claude-opus-4-5", input=0, output=40_000, ts="2026-11-19T06:00:00Z",
                  session="long")
        + assistant("m2", "r2", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T11:00:00Z",
                    session="long")
        + assistant("m3", "r3", model="claude-opus-4-5", input=0, output=40_000, ts="2026-11-19T06:00:00Z",
                    session="yesterday-only"))
    (result,) = probe_for(tmp_path, corpus).check()
    assert result.values["session_usd"] == {"long": pytest.approx(2.0)}


def test_only_the_costliest_sessions_are_listed_and_none_as_zero(tmp_path, corpus):
    body = "".join(assistant(f"m{i}", f"r{i}", model="claude-opus-4-5", input=0, output=4_000 * (i + 1),
                             ts=f"{DAY}T11:00:00Z", session=f"s{i:02d}") for i in range(21))
    corpus.file("a.jsonl").write_text(body)
    (result,) = probe_for(tmp_path, corpus).check()
    sessions = result.values["session_usd"]
    assert len(sessions) == 20 and "s00" not in sessions  # the cheapest is left out, not shown as $0
    assert sessions["s20"] == pytest.approx(21 * 0.1)


def test_store_prune_keeps_rows_inside_the_window(tmp_path):
    store = CostStore(str(tmp_path / "c.sqlite"))
    store.begin()
    file_id = store.add_file("/x.jsonl", 1)
    rows = [(f"k{ts}", ts, "s", "claude-opus-4-5", 0, 1, 1, 0, 0, 0, 0.1) for ts in (100.0, 200.0, 300.0)]
    store.add_rows(file_id, rows)
    store.commit()
    store.begin()
    assert store.prune(250.0) == 2
    store.commit()
    assert [m.ts for m in store.messages_since(0)] == [300.0] and store.kept_since() == 250.0
    assert os.stat(tmp_path / "c.sqlite").st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- no new bytes


def count_stats(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = os.stat

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    return calls


@pytest.mark.skipif(ChangeWatch()._fd is None, reason="needs Linux inotify")
def test_a_quiet_refresh_makes_no_stat_and_every_change_is_seen(tmp_path, corpus, monkeypatch):
    path = corpus.file("a.jsonl")
    path.write_text(assistant("m1", "r1", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:00:00Z"))
    probe = probe_for(tmp_path, corpus)
    probe.check()
    probe.check()  # the first watches are in place after this full check
    calls = count_stats(monkeypatch)
    (quiet,) = probe.check()
    assert calls == [] and quiet.values["today_usd"] == pytest.approx(1.0) and quiet.values["files"] == 1
    with path.open("a") as file:  # an append
        file.write(assistant("m2", "r2", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:10:00Z"))
    assert probe.check()[0].values["today_usd"] == pytest.approx(2.0)
    # A new project folder: its file counts now, and a write to it right after its first
    # check (before its watch could report anything) is not missed either.
    other = corpus.root / "claude" / "projects" / "other"
    other.mkdir()
    (other / "b.jsonl").write_text(assistant("m3", "r3", model="claude-opus-4-5", input=0, output=40_000,
                                             ts=f"{DAY}T10:20:00Z"))
    assert probe.check()[0].values["today_usd"] == pytest.approx(3.0)
    with (other / "b.jsonl").open("a") as file:
        file.write(assistant("m4", "r4", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:30:00Z"))
    assert probe.check()[0].values["today_usd"] == pytest.approx(4.0)
    # The folder replaced by another of the same name.
    (other / "b.jsonl").unlink()
    other.rmdir()
    other.mkdir()
    (other / "c.jsonl").write_text(assistant("m5", "r5", model="claude-opus-4-5", input=0, output=40_000,
                                             ts=f"{DAY}T10:40:00Z"))
    assert probe.check()[0].values["today_usd"] == pytest.approx(3.0)
    probe.check()
    with (other / "c.jsonl").open("a") as file:
        file.write(assistant("m6", "r6", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:50:00Z"))
    assert probe.check()[0].values["today_usd"] == pytest.approx(4.0)


def test_a_projects_folder_created_later_is_found(tmp_path, corpus):
    probe = probe_for(tmp_path, corpus)
    probe.check()
    probe.check()
    corpus.file("a.jsonl").write_text(assistant(model="claude-opus-4-5", input=0, output=40_000,
                                                ts=f"{DAY}T10:00:00Z"))
    assert probe.check()[0].values["today_usd"] == pytest.approx(1.0)


def test_without_inotify_the_stats_decide(tmp_path, corpus, monkeypatch):
    path = corpus.file("a.jsonl")
    path.write_text(assistant(model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:00:00Z"))
    probe = probe_for(tmp_path, corpus)
    probe.check()
    probe._watch.close()
    probe.check()
    calls = count_stats(monkeypatch)
    probe.check()
    assert "a.jsonl" in calls  # each file is looked at (by name, relative to its open folder)
    with path.open("a") as file:
        file.write(assistant("m2", "r2", model="claude-opus-4-5", input=0, output=40_000, ts=f"{DAY}T10:10:00Z"))
    assert probe.check()[0].values["today_usd"] == pytest.approx(2.0)


def test_repeats_skipped_unparsed_are_only_true_repeats(corpus):
    first = assistant("msg_1", "req_1", input=10, output=1, text="a")
    repeat = assistant("msg_1", "req_1", input=10, output=1, text="b")  # the next content block
    # Another response whose tool input holds ids of the first, and one whose message
    # object does not start with its id: both are parsed and count.
    nested = line({"type": "assistant", "timestamp": f"{DAY}T10:00:01Z", "sessionId": "s1", "message": {
        "id": "msg_2", "model": "claude-sonnet-4-5", "content": [{"type": "tool_use", "input": {
            "message": {"id": "msg_1"}, "requestId": "req_1"}}],
        "usage": {"input_tokens": 20, "output_tokens": 2}}, "requestId": "req_2"})
    reordered = line({"type": "assistant", "timestamp": f"{DAY}T10:00:02Z", "sessionId": "s1", "message": {
        "model": "claude-sonnet-4-5", "id": "msg_3", "usage": {"input_tokens": 30, "output_tokens": 3}},
        "requestId": "req_1"})
    corpus.file("a.jsonl").write_text(first + repeat + nested + repeat + reordered)
    stats = corpus.scan()
    assert stats.usage_lines == 5
    assert corpus.totals()[:2] == (60, 6)


@pytest.mark.skipif(ChangeWatch()._fd is None, reason="needs Linux inotify")
def test_a_watch_that_cannot_be_added_gives_way_to_the_stats(tmp_path):
    import ctypes

    watch = ChangeWatch()
    watch.watch([str(tmp_path / "gone")], True)  # ENOENT: not armed, still usable
    assert watch._fd is not None and not watch.quiet()
    watch.watch([str(tmp_path)], True)
    watch.watch([str(tmp_path)], True)
    assert watch.quiet()
    (tmp_path / "x.jsonl").write_text("{}\n")
    assert not watch.quiet()

    def out_of_watches(fd, path, mask):
        ctypes.set_errno(28)  # ENOSPC
        return -1

    watch._add = out_of_watches
    watch.watch([str(tmp_path / "another")], True)
    assert watch._fd is None and not watch.quiet()  # its watches given back; the stats decide


def test_a_first_scan_and_a_scan_in_slices_store_the_same_rows(tmp_path):
    """A cold scan stores one chunk per file; the same transcripts read as they grew store
    several per file: the rows (and each key once per file) are the same."""
    import subprocess
    import sys

    from tests.conftest import REPO

    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(out), "--size-mib", "2",
                    "--seed", "4", "--now", "2026-11-20T12:00:00+00:00"], check=True, capture_output=True)
    files = transcript_files([str(out)])
    cold = CostStore(str(tmp_path / "cold.sqlite"))
    Scanner(cold, PriceBook()).refresh(files)

    grown = tmp_path / "grown"
    sliced = CostStore(str(tmp_path / "sliced.sqlite"))
    scanner = Scanner(sliced, PriceBook())
    for part in (3, 2, 1):  # each file a third, two thirds, then whole (lines cut anywhere)
        copies = []
        for source in files:
            data = Path(source).read_bytes()
            target = grown / Path(source).relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "ab") as file:
                file.write(data[target.stat().st_size if target.exists() else 0:len(data) * (4 - part) // 3])
            copies.append(str(target))
        scanner.refresh(sorted(copies))

    def by_file(store):
        paths = {state.id: os.path.basename(path) for path, state in store.files().items()}
        return sorted((paths[file_id], tuple(row)) for file_id, row in store.stored_rows())

    assert by_file(cold) == by_file(sliced) and len(by_file(cold)) > 100
    chunks = lambda store: store.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]  # noqa: E731
    assert chunks(cold) <= len(files) < chunks(sliced)
    assert report.breakdown(cold.messages_since(0)).total.tokens == report.breakdown(
        sliced.messages_since(0)).total.tokens


@pytest.mark.parametrize("workers", [1, 2])
def test_a_first_fills_window_fed_as_files_are_read_is_the_one_the_index_gives(tmp_path, monkeypatch, workers):
    """A first fill sums each file's rows into the figures as they arrive (from the
    workers, in file order, duplicates across files dropped); a probe that builds its
    figures from the filled index must find exactly the same."""
    import subprocess
    import sys

    from aiki_hooks.costs import scan
    from tests.conftest import REPO

    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(out), "--size-mib", "3",
                    "--seed", "6", "--now", "2026-11-20T12:00:00+00:00"], check=True, capture_output=True)
    # A session resumed elsewhere: every message of one transcript again, in another
    # file, then one of its own.
    source = max(transcript_files([str(out)]), key=os.path.getsize)
    (out / "projects" / "resumed").mkdir()
    (out / "projects" / "resumed" / "copy.jsonl").write_bytes(
        Path(source).read_bytes() + assistant("msg_resumed", "req_resumed").encode())
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)
    config = parse_config({"costs": {"timezone": "UTC", "claude_config_dirs": [str(out)]}}).costs
    fed_adds = []
    real_add = report.Window.add

    def counting_add(self, rows, **kwargs):
        fed_adds.append(kwargs.get("unordered", False))
        return real_add(self, rows, **kwargs)

    monkeypatch.setattr(report.Window, "add", counting_add)
    first = CostsProbe(config, tmp_path / "state", clock=lambda: NOON, workers=workers, one_shot=True)
    cold = first.figures(days=90)
    assert cold["stats"].index_was_empty and fed_adds.count(True) > 10  # fed file by file
    first.close()
    fed_adds.clear()
    again = CostsProbe(config, tmp_path / "state", clock=lambda: NOON)
    rebuilt = again.figures(days=90)
    assert not rebuilt["stats"].index_was_empty and True not in fed_adds  # built from the index

    def plain(figures):
        block = figures["block"]
        return (
            {day: (b.total.as_dict(), {m: t.as_dict() for m, t in b.by_model.items()})
             for day, b in figures["daily"].items()},
            figures["today"].total.as_dict(), figures["week"].total.as_dict(),
            (block.start, block.end, block.breakdown.total.as_dict()) if block else None,
            {s: t.as_dict() for s, t in figures["sessions"].items()},
        )

    assert plain(cold) == plain(rebuilt)
    assert sum(b.total.messages for b in cold["daily"].values()) > 100
