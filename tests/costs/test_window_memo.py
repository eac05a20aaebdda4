"""The window memo: a one-shot `aiki-hooks costs` leaves its window's figures in the index,
and the next one with nothing new to read takes them from there instead of decoding and
summing every stored message. It must give exactly the figures a rebuild gives, at any
later time of the same day, and go the moment anything it came from changes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time

import pytest

from aiki_hooks.config.load import parse_config
from aiki_hooks.costs.prices import PriceBook, Rates
from aiki_hooks.costs.store import CostStore
from aiki_hooks.probes.costs import CostsProbe
from tests.conftest import REPO
from tests.costs.test_report import assistant, line

NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc).timestamp()
HOUR = 3600.0
UNPRICED = "claude-opus-4-9"  # not in the price book


def at(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def cost_state(session: str, model: str, usd: float) -> str:
    return line({"type": "cost-state", "sessionId": session, "totalCostUSD": usd,
                 "modelUsage": {model: {"inputTokens": 1, "outputTokens": 1, "costUSD": usd}}})


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory):
    """Three weeks of generated transcripts, and by hand: a session active this morning that
    began four days ago, one that went quiet three days ago, unpriced use with Claude Code's
    own price (in a session still active and in one that is not), and the messages of a
    block still open at NOON, one of them without a session id."""
    root = tmp_path_factory.mktemp("memo")
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(root), "--size-mib", "2",
                    "--seed", "5", "--days", "20", "--now", at(NOON - 30 * HOUR)], check=True, capture_output=True)
    project = root / "projects" / "by-hand"
    project.mkdir(parents=True)
    (project / "long.jsonl").write_text(
        assistant("l1", "rl1", ts=at(NOON - 96 * HOUR), session="long", input=7000)
        + assistant("l2", "rl2", ts=at(NOON - 2 * HOUR), session="long", input=300))
    (project / "quiet.jsonl").write_text(assistant("q1", "rq1", ts=at(NOON - 72 * HOUR), session="quiet", input=900))
    (project / "unpriced.jsonl").write_text(
        assistant("u1", "ru1", ts=at(NOON - 30 * HOUR), session="odd", model=UNPRICED, input=1000, output=200)
        + assistant("u2", "ru2", ts=at(NOON - 90 * 60), session="odd", model=UNPRICED, input=500, output=100)
        + cost_state("odd", UNPRICED, 0.9)
        + assistant("u3", "ru3", ts=at(NOON - 50 * HOUR), session="odd-old", model=UNPRICED, input=40, output=10)
        + cost_state("odd-old", UNPRICED, 0.2))
    (project / "block.jsonl").write_text(
        assistant("b1", "rb1", ts=at(NOON - 100 * 60), session="blk", input=2000, output=400)
        + assistant("b2", "rb2", ts=at(NOON - 20 * 60), session="blk", input=3000, output=500)
        + assistant("b0", "rb0", ts=at(NOON - 10 * 60), session="", input=11, output=1))  # no session id
    return root


def probe(transcripts, state, now: float, *, one_shot: bool) -> CostsProbe:
    config = parse_config({"costs": {"timezone": "UTC", "claude_config_dirs": [str(transcripts)]}}).costs
    return CostsProbe(config, state, clock=lambda: now, one_shot=one_shot)


def plain(figures) -> tuple:
    """Everything the figures say, as plain values."""
    block = figures["block"]
    return (
        {day: (b.total.as_dict(), {m: t.as_dict() for m, t in b.by_model.items()})
         for day, b in figures["daily"].items()},
        figures["today"].total.as_dict(), figures["week"].total.as_dict(),
        (block.start, block.end, block.last_activity, block.first_activity, block.breakdown.total.as_dict())
        if block else None,
        {s: t.as_dict() for s, t in sorted(figures["sessions"].items())},
        figures["unpriced_today_estimate"], figures["unpriced_block_estimate"], figures["unpriced_week_estimate"],
    )


def figures_of(transcripts, state, now: float, *, one_shot: bool, days: int = 7) -> dict:
    source = probe(transcripts, state, now, one_shot=one_shot)
    try:
        return source.figures(days=days)
    finally:
        source.close()


def memo_count(state) -> int:
    store = CostStore(str(state / "costs.sqlite"))
    try:
        return store.db.execute("SELECT COUNT(*) FROM window_memo").fetchone()[0]
    finally:
        store.close()


def count_row_reads(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = CostStore.rows_since

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CostStore, "rows_since", counting)
    return calls


@pytest.mark.parametrize("days", [1, 7, 30])
def test_the_memo_gives_the_rebuilt_figures_at_any_later_time_of_the_day(transcripts, tmp_path, monkeypatch, days):
    state = tmp_path / "state"
    figures_of(transcripts, state, NOON, one_shot=True, days=days)  # fills the index (a first fill leaves no memo)
    first = figures_of(transcripts, state, NOON, one_shot=True, days=days)  # from the index; leaves a memo
    assert first["block"] is not None and first["unpriced_block_estimate"] == pytest.approx(0.9 * 600 / 1800)
    if days >= 7:
        assert first["unpriced_week_estimate"] == pytest.approx(0.9 + 0.2)
    assert {"long", "blk", "odd"} <= set(first["sessions"]) and "quiet" not in first["sessions"]
    # A session counts from its start (back to the window's look-back), not its last day.
    assert first["sessions"]["long"].input == (300 if days == 1 else 7300)
    assert memo_count(state) == 1
    reads = count_row_reads(monkeypatch)
    # The block ends at 15:00; the unpriced session goes quiet at 10:30 the next day (after
    # midnight: a new day is a new window anyway).
    for now in (NOON, NOON + HOUR, NOON + 3.5 * HOUR, NOON + 11.9 * HOUR):
        reads.clear()
        from_memo = figures_of(transcripts, state, now, one_shot=True, days=days)
        assert reads == []  # nothing decoded: the memo
        rebuilt = figures_of(transcripts, state, now, one_shot=False, days=days)
        assert reads  # (the rows, and the unpriced sessions' tokens)
        assert plain(from_memo) == plain(rebuilt)
    assert from_memo["block"] is None  # the memo's block ended, as the rebuilt one did


def test_the_memo_goes_when_a_transcript_grows(transcripts, tmp_path, monkeypatch):
    state = tmp_path / "state"
    figures_of(transcripts, state, NOON, one_shot=True)
    before_figures = figures_of(transcripts, state, NOON, one_shot=True)
    assert memo_count(state) == 1
    grown = transcripts / "projects" / "by-hand" / "block.jsonl"
    before = grown.read_text()
    try:
        with grown.open("a") as out:
            out.write(assistant("b3", "rb3", ts=at(NOON - 5 * 60), session="blk", input=10_000, output=1))
        reads = count_row_reads(monkeypatch)
        after = figures_of(transcripts, state, NOON, one_shot=True)
        assert reads  # read again from the index, not from the memo
        assert after["block"].breakdown.total.input == before_figures["block"].breakdown.total.input + 10_000
        assert memo_count(state) == 1  # and a new memo left
        assert plain(figures_of(transcripts, state, NOON, one_shot=True)) == plain(after)
    finally:
        grown.write_text(before)


def stored(tmp_path) -> CostStore:
    store = CostStore(str(tmp_path / "costs.sqlite"))
    store.begin()
    file_id = store.add_file("/t/a.jsonl", 1)
    store.add_rows(file_id, [("k1", NOON, "s", "claude-sonnet-4-5", 0, 10, 1, 0, 0, 0, 0.5)], new_file=True)
    store.set_session_costs(file_id, "s", {"claude-sonnet-4-5": 0.5})
    store.commit()
    return store


def keep_memo(store: CostStore) -> None:
    assert store.save_window_memo("key", b"{}", store.data_version())
    assert store.window_memo("key") == b"{}"


@pytest.mark.parametrize("change", ["rows", "session costs", "forget file", "reprice", "prune", "reset"])
def test_every_write_to_the_messages_clears_the_memo(tmp_path, change):
    store = stored(tmp_path)
    keep_memo(store)
    store.begin()
    if change == "rows":
        store.add_rows(1, [("k2", NOON + 1, "s", "claude-sonnet-4-5", 0, 1, 1, 0, 0, 0, 0.1)])
    elif change == "session costs":
        store.set_session_costs(1, "s", {"claude-sonnet-4-5": 0.7})
    elif change == "forget file":
        store.forget_file(1)
    elif change == "reprice":
        assert store.reprice(PriceBook(overrides={"claude-sonnet-4-5": Rates(input=1000.0, cache_write_5m=0.0, cache_write_1h=0.0, cache_read=0.0,
                                                                        output=1000.0)})) == 1
    elif change == "prune":
        assert store.prune(NOON + 10) == 1
    else:
        store.reset()
    store.commit()
    assert store.window_memo("key") is None
    store.close()


def test_a_memo_is_not_kept_when_another_connection_wrote_since_the_rows_were_read(tmp_path):
    store = stored(tmp_path)
    read_at = store.data_version()
    other = CostStore(store.path)
    other.begin()
    other.add_rows(1, [("k9", NOON + 5, "s", "claude-sonnet-4-5", 0, 1, 1, 0, 0, 0, 0.1)])
    other.commit()
    assert not store.save_window_memo("key", b"{}", read_at)  # it would describe the rows before k9
    assert store.window_memo("key") is None
    keep_memo(store)  # read again: kept
    store.close()
    other.close()


def test_saving_a_memo_never_waits_for_a_writer(tmp_path):
    store = stored(tmp_path)
    writer = CostStore(store.path)
    writer.begin()  # holds the write lock, as a long first scan does
    started = time.monotonic()
    assert not store.save_window_memo("key", b"{}", store.data_version())
    assert time.monotonic() - started < 1.0  # (the connection's busy timeout is 10 s)
    writer.rollback()
    keep_memo(store)  # and the connection waits for locks again as before
    holder = threading.Timer(0.3, writer.rollback)
    writer.begin()
    holder.start()
    store.begin()  # waits for the writer (0.3 s), not refused
    store.rollback()
    holder.join()
    store.close()
    writer.close()
