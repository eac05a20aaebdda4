"""The optional C scanner (aiki_hooks/costs/_scanner.c) against the Python path it speeds
up: the same transcripts must give the same rows, counts and offsets, line for line,
including every line the C code hands back to Python (escapes, invalid bytes, odd types).
The Python path is the reference: tests/test_costs.py checks it against hand-made totals."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys

import pytest

from aiki_hooks.costs import scan
from aiki_hooks.costs.prices import PriceBook
from aiki_hooks.costs.scan import parse_timestamp, read_file, transcript_files
from aiki_hooks.costs.store import loads_rows

from .conftest import REPO

# Without the C scanner there is nothing to compare (CI builds it: the first test).
pytestmark = pytest.mark.skipif(scan.scanner_backend() != "c" and not os.environ.get("CI"),
                                reason="the C scanner is not built here (no C compiler at install)")


def test_the_c_scanner_is_built_in_ci():
    """CI installs a compiler (.ci/run): a build that silently fell back to Python fails here."""
    if os.environ.get("CI"):
        assert scan.scanner_backend() == "c"
    else:
        assert scan.scanner_backend() in ("c", "python")


def _read(path: str, backend: str, monkeypatch) -> scan.FileRead:
    if backend == "python":
        monkeypatch.setattr(scan, "_scan_usage", None)
    try:
        return read_file(path, 7, 0, 0, PriceBook())
    finally:
        monkeypatch.undo()


def _compare(path: str, monkeypatch) -> scan.FileRead:
    c = _read(path, "c", monkeypatch)
    python = _read(path, "python", monkeypatch)
    assert c.rows == python.rows
    assert (c.usage_lines, c.bad_lines, c.oversized_lines, c.offset, c.session_costs) == (
        python.usage_lines, python.bad_lines, python.oversized_lines, python.offset, python.session_costs)
    # A worker's form: the rows written as JSON by the C scanner (and by Python after a
    # line it hands back), never as objects; read back, the same rows.
    as_json = read_file(path, 7, 0, 0, PriceBook(), as_json=True)
    assert as_json.rows == [] and loads_rows(as_json.rows_json) == [list(row) for row in python.rows]
    assert (as_json.usage_lines, as_json.bad_lines, as_json.offset) == (
        python.usage_lines, python.bad_lines, python.offset)
    return c


BASE = {"parentUuid": None, "isSidechain": False, "sessionId": "s1", "timestamp": "2026-11-20T10:00:00.123Z",
        "type": "assistant", "requestId": "req_1",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                    "content": [{"type": "text", "text": "hi"}],
                    "usage": {"input_tokens": 10, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 30,
                              "output_tokens": 5}}}


def variant(index: int, **changes) -> bytes:
    """BASE with its own ids and *changes* (dotted paths; None deletes)."""
    entry = json.loads(json.dumps(BASE))
    entry["requestId"] = f"req_{index}"
    entry["message"]["id"] = f"msg_{index}"
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = entry
        for name in parents:
            target = target[name]
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()


def odd_lines() -> list[bytes]:
    lines = [
        variant(1),
        variant(1),  # a repeat of a response: counted once
        variant(2, message__usage__cache_creation={"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 15}),
        variant(3, message__usage__cache_creation={"ephemeral_1h_input_tokens": 999}),  # more than written
        variant(4, message__usage__cache_creation=None, message__usage__cache_read_input_tokens=None),
        variant(5, isSidechain=True),
        variant(6, isSidechain=None),
        variant(7, isSidechain="yes"),
        variant(8, isSidechain=1),
        variant(9, message__model=None),
        variant(10, message__model=""),
        variant(11, message__model=7),
        variant(12, sessionId=None),
        variant(13, sessionId=123),
        variant(14, requestId=None),  # no request id: the line's own key
        variant(15, requestId="", requestRef="ref_15"),
        variant(16, requestId=None, requestRef="ref_16"),
        variant(17, message__id=None),
        variant(18, message__id=42),
        variant(19, message__usage__input_tokens=1.0),
        variant(20, message__usage__input_tokens=-1),
        variant(21, message__usage__output_tokens="5"),
        variant(22, message__usage__cache_creation_input_tokens=None),
        variant(23, message__usage__cache_read_input_tokens=2.5),
        variant(24, message__usage__input_tokens=0, message__usage__output_tokens=0,
                message__usage__cache_creation_input_tokens=0, message__usage__cache_read_input_tokens=0),
        variant(25, message__usage__input_tokens=123456789012345678901),  # beyond int64
        variant(26, timestamp="2026-11-20T10:00:00Z"),
        variant(27, timestamp="2026-11-20T10:00:00"),
        variant(28, timestamp="2026-11-20T10:00:00.5+02:00"),
        variant(29, timestamp="2026-11-20T10:00:00.1234567Z"),
        variant(30, timestamp="2026-11-20 10:00:00Z"),
        variant(31, timestamp="2026-02-30T10:00:00Z"),
        variant(32, timestamp="garbage"),
        variant(33, timestamp=1763632800),
        variant(34, timestamp=None),
        variant(35, type="user"),
        variant(36, message="not an object"),
        variant(37, message__usage=None),
        variant(38, message__usage=[1, 2]),
        variant(39, message__content=[{"type": "text", "text": "ünïcödé ✓ 𝄞 \u2028"}]),
        variant(40, message__content=[{"type": "tool_use", "id": "toolu_1", "name": "Task",
                                       "input": {"usage": {"output_tokens": 9}, "model": "x", "id": "y"}}]),
        variant(41, message__content=[{"type": "text", "text": "quote \" backslash \\ tab \t nl \n"}]),
        variant(42, message__usage__output_tokens=1e400 if False else 5, message__usage__extra=1e300),
        variant(43, message__usage__server_tool_use={"web_search_requests": 0}, message__usage__service_tier="x"),
        variant(44, message__id="msg_ünï"),
        variant(45, message__content=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
        # Hand-written: what json.dumps would not produce.
        variant(46).replace(b'"msg_46"', b'"msg_\\u0034\\u0036"'),  # an escaped id: the same id
        variant(47).replace(b'"type":"assistant"', b'"typ\\u0065":"assistant"'),
        variant(48).replace(b'"input_tokens":10', b'"input_tokens":10,"input_tokens":11'),  # duplicate: last wins
        variant(49).replace(b'"hi"', b'"\\ud83d\\ude00"'),  # a surrogate pair
        variant(50).replace(b'"hi"', b'"\\ud800"'),  # a lone surrogate: invalid
        variant(51).replace(b'"hi"', b'"\xff\xfe"'),  # invalid UTF-8: decoded with replacement
        variant(52).replace(b'"hi"', b'"\xed\xa0\x80"'),  # an encoded surrogate
        variant(53).replace(b'"hi"', b'"\xc0\xaf"'),  # an overlong encoding
        variant(54).replace(b'"hi"', b'"a\x01b"'),  # a raw control character
        variant(55).replace(b'"hi"', b'"\\x"'),  # a bad escape
        variant(56) + b"\r",  # CRLF
        b"  " + variant(57) + b"  ",
        b"\xef\xbb\xbf" + variant(58),  # a byte-order mark
        variant(59) + b" trailing",
        variant(60)[:-1],  # cut short
        b"[" + variant(61) + b"]",  # not an object
        variant(62).replace(b'"input_tokens":10', b'"input_tokens":010'),
        variant(63).replace(b'"input_tokens":10', b'"input_tokens":1e1'),
        variant(64).replace(b'"input_tokens":10', b'"input_tokens" : 10 '),
        variant(65).replace(b'"parentUuid":null', b'"parentUuid":nul'),
        variant(66).replace(b'"isSidechain":false', b'"isSidechain":true'),
        variant(67).replace(b'"hi"', b'"' + b"x" * 5000 + b'"'),
        variant(68, message__content=[{"type": "text", "text": "-0.5e-7 1E+3"}, -0.5e-7, 1e3, 0, -0, True, None]),
        variant(69, message__usage__cache_read_input_tokens=2**53 - 1),  # the largest count
        variant(70, message__usage__output_tokens=2**53),  # no count: a corrupt line
        b'{"type":"cost-state","sessionId":"s1","modelUsage":{"claude-x":{"costUSD":1.5}}}',
        b'{"type":"user","message":{"role":"user","content":"output_tokens"},"toolUseResult":'
        b'{"usage":{"input_tokens":900,"output_tokens":99}}}',
        b'{"output_tokens":',
    ]
    return lines


def test_odd_lines_give_the_same_rows_as_the_python_path(tmp_path, monkeypatch):
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join(odd_lines()) + b"\n" + variant(99)[:40])  # and a torn last line
    found = _compare(str(path), monkeypatch)
    keys = [row[0] for row in found.rows]
    # The ones that must have counted (and once): a sanity check that the comparison compares something.
    assert keys.count("msg_1:req_1") == 1 and "msg_46:req_46" in keys and "msg_15:ref_15" in keys
    assert found.bad_lines >= 8 and len(found.rows) > 40
    assert "msg_69:req_69" in keys and "msg_70:req_70" not in keys and "msg_25:req_25" not in keys


def test_each_odd_line_alone_is_judged_like_the_python_path(tmp_path, monkeypatch):
    """One file per line: a wrong verdict cannot hide behind another line's."""
    for index, text in enumerate(odd_lines()):
        path = tmp_path / f"{index}.jsonl"
        path.write_bytes(text + b"\n")
        _compare(str(path), monkeypatch)


def test_the_generated_corpus_gives_the_same_rows(tmp_path, monkeypatch):
    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(out), "--size-mib", "4",
                    "--seed", "5", "--now", "2026-11-20T12:00:00+00:00"], check=True, capture_output=True)
    files = transcript_files([str(out)])
    assert len(files) > 5
    rows = 0
    for path in files:
        rows += len(_compare(path, monkeypatch).rows)
    assert rows > 100


def test_small_chunks_and_long_lines_give_the_same_rows(tmp_path, monkeypatch):
    path = tmp_path / "long.jsonl"
    path.write_bytes(b"\n".join([variant(1), variant(2).replace(b'"hi"', b'"' + b"y" * 70_000 + b'"'),
                                 variant(3).replace(b'"hi"', b'"' + b"z" * 20_000 + b'"'), variant(4)]) + b"\n")
    monkeypatch.setattr(scan, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(scan, "MAX_LINE_BYTES", 50_000)
    for backend in ("c", "python"):
        if backend == "python":
            monkeypatch.setattr(scan, "_scan_usage", None)
        found = read_file(str(path), 1, 0, 0, PriceBook())
        assert [row[0] for row in found.rows] == ["msg_1:req_1", "msg_3:req_3", "msg_4:req_4"], backend
        assert found.oversized_lines == 1 and found.offset == path.stat().st_size


def _c_timestamp(text: str):
    line = variant(1, timestamp=text) + b"\n"
    items = _scanner_module().scan_usage(line, len(line), scan.USAGE_MARK)
    return items[0][4] if items and items[0][2] == _scanner_module().ROW else "fallback"


def _scanner_module():
    from aiki_hooks.costs import _scanner as module

    return module


def test_timestamps_read_in_c_equal_datetime_timestamp():
    if scan.scanner_backend() != "c":
        pytest.skip("the C scanner is not built here")
    rng = random.Random(4)
    zones = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]
    checked = 0
    for _ in range(3000):
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            microseconds=rng.randrange(0, 130 * 365 * 86400 * 10**6))
        moment = moment.astimezone(rng.choice(zones))
        for text in (moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                     moment.isoformat(timespec="microseconds"), moment.isoformat(timespec="seconds"),
                     moment.replace(tzinfo=None).isoformat(timespec="milliseconds")):
            ours = _c_timestamp(text)
            assert type(ours) is float, text
            assert ours == parse_timestamp(text), text
            checked += 1
    # Forms left to Python come back as text (priced_row parses them).
    for text in ("2026-11-20 10:00:00Z", "2026-11-20T10:00:00.1234567Z", "2026-02-29T00:00:00Z", "20261120T100000Z",
                 "2026-11-20T24:00:00Z", "2026-11-20T10:00:00+0200"):
        assert _c_timestamp(text) == text
    assert _c_timestamp("2024-02-29T00:00:00Z") == parse_timestamp("2024-02-29T00:00:00Z")
    assert checked == 12000
    # A worker writes them into the rows' JSON from whole microseconds: read back, the
    # same doubles.
    texts = []
    for _ in range(2000):
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            microseconds=rng.randrange(0, 130 * 365 * 86400 * 10**6))
        texts.append(moment.isoformat(timespec=rng.choice(["seconds", "milliseconds", "microseconds"])))
    data = b"".join(variant(i, timestamp=text) + b"\n" for i, text in enumerate(texts))
    rows = bytearray(b"[")
    module = _scanner_module()
    book = PriceBook()
    module.scan_usage(data, len(data), scan.USAGE_MARK, scan.COST_STATE_MARK, set(), rows, 1, 0, book.schedules,
                      book.schedule)
    rows[-1] = ord("]")
    assert [row[1] for row in loads_rows(bytes(rows))] == [parse_timestamp(text) for text in texts]


def test_window_sums_in_c_equal_the_python_sums(tmp_path, monkeypatch):
    """report.Window.add hands many rows to the C add_cells: the same cells (the same
    additions, so the same float sums) as its Python loop, days across a DST change."""
    from aiki_hooks.costs import report

    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(out), "--size-mib", "3",
                    "--seed", "8", "--now", "2026-11-20T12:00:00+00:00"], check=True, capture_output=True)
    rows = [row for path in transcript_files([str(out)]) for row in read_file(path, 1, 0, 0, PriceBook()).rows]
    rows += [("late", dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc).timestamp(), "s", "claude-x", 0, 1, 2, 3, 4, 5,
              None)]  # after "today": left to Python
    now = dt.datetime(2026, 11, 20, 18, tzinfo=dt.timezone.utc).timestamp()
    zone = report.zone("Europe/Berlin")  # the 2026-10-25 change is inside the window
    windows = []
    for use_c in (True, False):
        if not use_c:
            monkeypatch.setattr(report, "_add_cells", None)
        window = report.Window(days=40, tz=zone, now=now)
        window.add(rows)
        windows.append(window)
    assert windows[0]._cells == windows[1]._cells and len(windows[0]._cells) >= 8
    assert windows[0].daily_sorted().keys() == windows[1].daily_sorted().keys()


def test_the_16_byte_search_finds_what_the_32_byte_one_does(tmp_path):
    """Where the CPU has AVX2 the marks are searched 32 bytes at a time, else 16: both
    must find the same lines (AIKI_HOOKS_SCANNER_SSE2 forces the 16-byte path)."""
    out = tmp_path / "generated"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_transcripts.py"), str(out), "--size-mib", "3",
                    "--seed", "12", "--now", "2026-11-20T12:00:00+00:00"], check=True, capture_output=True)
    (out / "projects" / "edge.jsonl").write_bytes(b"\n".join(odd_lines()) + b"\n")
    code = ("import sys, json; from aiki_hooks.costs.scan import read_file, transcript_files; "
            "from aiki_hooks.costs.prices import PriceBook; "
            "print(json.dumps([[list(r) for r in read_file(p, 1, 0, 0, PriceBook()).rows] "
            "for p in transcript_files([sys.argv[1]])]))")
    found = []
    for extra in ({}, {"AIKI_HOOKS_SCANNER_SSE2": "1"}):
        done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, cwd=REPO,
                              env=dict(os.environ, **extra), timeout=120)
        assert done.returncode == 0, done.stderr
        found.append(json.loads(done.stdout))
    assert found[0] == found[1] and sum(len(rows) for rows in found[0]) > 100


def _general_loads(data: bytes):
    from aiki_hooks.costs import store

    return store._loads(data)  # orjson, or json: what loads_rows falls back to


def test_the_c_chunk_reader_gives_what_a_json_parser_gives():
    from aiki_hooks.costs._scanner import load_rows

    rng = random.Random(5)
    sessions = [f"{rng.getrandbits(128):032x}" for _ in range(3)] + ["", "séance-é"]
    models = ["claude-opus-4-5", "claude-sonnet-5-5", "unknown", "modèle"]
    rows = []
    for index in range(3000):
        cost = rng.choice([None, 0.0, rng.random() * 10, rng.random() / 1e6, float(rng.randrange(100))])
        ts = rng.choice([1794756712.326, 1.7e9 + rng.random() * 1e8, float(rng.randrange(2**31)), 1e-7])
        rows.append([f"msg_{index}:req_{rng.getrandbits(64):x}", ts, rng.choice(sessions), rng.choice(models),
                     rng.randrange(2), *(rng.choice([0, 1, rng.randrange(10**6), 2**53 - 1]) for _ in range(5)),
                     cost])
    for data in (json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode(), scan.dumps_rows(rows)):
        loaded = load_rows(data)
        assert loaded == _general_loads(data) == rows
        assert [[type(v) for v in row] for row in loaded] == [[type(v) for v in row] for row in rows]
    assert load_rows(b"[]") == []
    assert load_rows(b'[[true,false,null,-3,1E-7,"x"]]') == [[True, False, None, -3, 1e-07, "x"]]


@pytest.mark.parametrize("data", [
    b' []', b'[[1] ]', b'[["a\\n"]]', b'[["\\u00e9"]]', b'[[[1]]]', b'[[{"a":1}]]', b'[["\xff"]]', b'[[1]]x',
    b'[[1],]', b'[[1,]]', b'[', b'[[1]', b'', b'[["a]]', b'[[12345678901234567890]]', b'[[1e400]]', b'[[01]]',
    b'[[nul]]', b'[1]', b'{}', b'[[' + b'1,' * 20 + b'1]]',
], ids=lambda d: repr(d)[:30])
def test_the_c_chunk_reader_leaves_anything_else_to_a_json_parser(data):
    """None (never a different value): loads_rows then reads it, or fails, as a JSON parser does."""
    from aiki_hooks.costs._scanner import load_rows

    assert load_rows(data) is None
    try:
        expected = _general_loads(data)
    except ValueError:
        with pytest.raises(ValueError):
            loads_rows(data)
    else:
        assert loads_rows(data) == expected


def test_the_c_chunk_reader_reads_every_float_to_the_same_double():
    """Its fast path (m / 10**k) against the general parser, bit for bit: timestamps as the
    scanner writes them (S.ffffff), reprs, fixed widths and the limits of 2**53 and 10**22."""
    import struct

    from aiki_hooks.costs._scanner import load_rows

    rng = random.Random(9)
    texts = ["9007199254740993.0", "9007199254740992.0", "0.9007199254740993", "1.00000000000000000000001",
             "123456789012345678.5", "0.0", "0.1", "1794756712.326"]
    for _ in range(20000):
        value = struct.unpack("d", struct.pack("Q", rng.getrandbits(52) | (rng.randrange(900, 1100) << 52)))[0]
        stamp = f"{rng.randrange(2 * 10**9)}.{rng.randrange(10**6):06d}".rstrip("0")
        texts += [repr(value), stamp + "0" if stamp.endswith(".") else stamp, f"{value:.{rng.randrange(1, 23)}f}"]
    for text in texts:
        data = f"[[{text}]]".encode()
        ours, reference = load_rows(data), _general_loads(data)
        assert ours is None or struct.pack("d", ours[0][0]) == struct.pack("d", reference[0][0]), text
