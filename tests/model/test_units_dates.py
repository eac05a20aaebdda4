"""The one definition of each format: sizes, durations (compact and in words), latencies,
and our UTC timestamps (format and parse)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from aiki_hooks.model.dates import clock, clock_or_date, local_minute, parse_utc, utc_iso
from aiki_hooks.model.units import (
    finite_number,
    fmt_bytes,
    fmt_duration,
    fmt_duration_words,
    fmt_latency,
    fmt_ratio,
    fmt_seconds,
    fmt_time_left,
    fmt_timeout,
    gib_figure,
)
from tests.conftest import REPO


class _Ratio(float):
    pass


@pytest.mark.parametrize("value, number", [
    (0, 0.0), (-3, -3.0), (1.5, 1.5), (-0.0, -0.0), (10**300, 1e300), (5e-324, 5e-324), (_Ratio(0.25), 0.25),
    (True, None), (False, None),  # a bool is an int to Python, never a number here
    (float("nan"), None), (float("inf"), None), (float("-inf"), None),
    ("1", None), ("nan", None), (None, None), ([], None), ({}, None), (b"1", None),
    (10**400, None), (-(10**400), None),  # digits JSON may hold, too large for a float
])
def test_finite_number_takes_real_finite_ints_and_floats_only(value, number):
    found = finite_number(value)
    assert found == number and (found is None or type(found) is float)
    if number == 0:
        assert str(found) == str(number)  # -0.0 stays -0.0


def test_finite_number_is_defined_once():
    """The hooks' text, the metrics exporter and the resources history read the same one
    (statusline reads it as text.finite_number)."""
    from aiki_hooks.hooklib import text
    from aiki_hooks.outputs import metrics
    from aiki_hooks.probes import resources

    assert text.finite_number is metrics.finite_number is resources.finite_number is finite_number


@pytest.mark.parametrize(
    "value, text",
    [(0, "0 B"), (1536, "1.5 KiB"), (512 * 1024**2, "512.0 MiB"), (18.2 * 1024**3, "18.2 GiB"),
     (3 * 1024**4, "3.0 TiB")],
)
def test_fmt_bytes(value, text):
    assert fmt_bytes(value) == text


@pytest.mark.parametrize(
    "seconds, text", [(-5, "0s"), (45, "45s"), (14 * 60 + 5, "14m"), (3 * 3600 + 300, "3h05m"), (3 * 86400 + 1, "3d")]
)
def test_fmt_duration_is_compact(seconds, text):
    assert fmt_duration(seconds) == text


@pytest.mark.parametrize("seconds, text", [(-5, "0 s"), (5, "5 s"), (59, "59 s"), (60, "1 min"), (725, "12 min"),
                                           (3600, "1 h"), (5400, "1 h 30 min"), (86400 * 2 + 3600, "2 d 1 h")])
def test_fmt_duration_words_reads_in_a_sentence(seconds, text):
    assert fmt_duration_words(seconds) == text


@pytest.mark.parametrize("seconds, text", [
    (59, "~1 min"), (40 * 60, "~40 min"), (90 * 60, "~90 min"), (5 * 3600 + 600, "~5 h"),
    (47 * 3600, "~47 h"), (3 * 86400 + 7200, "~3 days"),
])
def test_time_left_reads_as_a_forecast(seconds, text):
    assert fmt_time_left(seconds) == text


@pytest.mark.parametrize("seconds, text", [(0.0004, "0.4 ms"), (0.012, "12 ms"), (0.45, "450 ms"), (1.25, "1.2 s")])
def test_latency_keeps_a_decimal_below_10_ms(seconds, text):
    assert fmt_latency(seconds) == text
    if seconds >= 0.01:
        assert fmt_seconds(seconds) == text


def test_small_formats():
    assert fmt_timeout(5.0) == "5 s" and fmt_timeout(0.5) == "0.5 s"
    assert fmt_ratio(0.912) == "91%"
    assert gib_figure(6.1 * 1024**3) == "6.1"


@pytest.mark.parametrize("epoch", [0.0, 1_700_000_000.123, 1_790_000_000.999])
def test_utc_iso_round_trips_to_the_millisecond(epoch):
    text = utc_iso(epoch)
    assert text.endswith("Z") and "+" not in text
    assert parse_utc(text) == pytest.approx(epoch, abs=0.0005)


@pytest.mark.parametrize("text, epoch", [
    pytest.param("2023-11-14T22:13:20.000Z", 1_700_000_000.0, id="ours"),
    pytest.param("2023-11-14T22:13:20", 1_700_000_000.0, id="naive-is-utc-not-local"),
    pytest.param("2023-11-15T00:13:20+02:00", 1_700_000_000.0, id="offset-honoured"),
])
def test_parse_utc(text, epoch):
    assert parse_utc(text) == epoch


def test_our_format_matches_datetime_to_the_millisecond():
    # utc_iso and parse_utc handle their own format without datetime (the hooks' start-up):
    # the same text and the same instant as datetime for any instant, fraction and rounding.
    import datetime as dt
    import random

    def reference_iso(epoch: float) -> str:
        return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"

    rng = random.Random(7)
    instants = [rng.uniform(-2e9, 4.1e9) for _ in range(20000)] + [rng.randrange(10**12) / 1000 for _ in range(5000)]
    instants += [1_700_000_000.9999996, 1_700_000_000.0004999, -0.0005, 951_782_400.0]  # rounding, 2000-02-29
    for epoch in instants:
        text = utc_iso(epoch)
        assert text == reference_iso(epoch), epoch
        assert parse_utc(text) == dt.datetime.fromisoformat(text[:-1] + "+00:00").timestamp(), text


@pytest.mark.parametrize("text", ["2023-02-29T00:00:00.000Z", "2023-13-01T00:00:00.000Z", "2023-00-10T00:00:00.000Z",
                                  "2023-01-01T24:00:00.000Z", "2023-01-01T23:59:60.000Z", "0000-01-01T00:00:00.000Z",
                                  "2023-01-0１T00:00:00.000Z"])
def test_a_date_that_does_not_exist_in_our_format_is_refused(text):
    with pytest.raises(ValueError):
        parse_utc(text)


@pytest.mark.parametrize("text", ["", "yesterday", "2023-13-01T00:00:00Z"])
def test_parse_utc_rejects_what_is_not_a_timestamp(text):
    with pytest.raises(ValueError):
        parse_utc(text)


def test_local_times_in_a_fixed_zone():
    # A child with TZ set: the clock functions read the machine's local zone.
    code = ("from aiki_hooks.model.dates import clock, clock_or_date, local_minute\n"
            "t = 1_700_000_000.0\n"
            "print(clock(t), clock(t, seconds=True), local_minute(t), clock_or_date(t, t + 60),"
            " clock_or_date(t, t + 86400), sep='|')")
    env = {**os.environ, "TZ": "UTC-2", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "00:13|00:13:20|2023-11-15 00:13|00:13|2023-11-15 00:13"


def test_local_minute_in_a_given_zone():
    import datetime as dt

    assert local_minute(1_700_000_000.0, dt.timezone(dt.timedelta(hours=-5))) == "2023-11-14 17:13"
    assert clock(time.time()) == time.strftime("%H:%M")
    assert clock_or_date(1_700_000_000.0, 1_700_000_000.0 + 3 * 86400).startswith("2023-11-1")


def test_clock_or_date_in_a_given_zone():
    # 2023-11-14 17:13 at UTC-5 (22:13 UTC): "today" is the date in that zone, not in UTC
    # and not "less than a day ago".
    import datetime as dt

    t, minus_5 = 1_700_000_000.0, dt.timezone(dt.timedelta(hours=-5))
    assert clock_or_date(t, t + 6 * 3600, minus_5) == "17:13"  # 23:13 there; past midnight in UTC
    assert clock_or_date(t, t + 7 * 3600, minus_5) == "2023-11-14 17:13"  # 00:13 the next day there
    assert clock_or_date(t, t + 6 * 3600, dt.timezone.utc) == "2023-11-14 22:13"
    assert clock_or_date(t, t + 3600, dt.timezone.utc) == "22:13"


def test_units_and_dates_import_nothing_heavy():
    code = ("import sys; before = set(sys.modules)\n"
            "import aiki_hooks.model.units, aiki_hooks.model.dates, aiki_hooks.model.severity\n"
            "aiki_hooks.model.dates.parse_utc(aiki_hooks.model.dates.utc_iso(1.7e9))\n"
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, check=True).stdout
    # time is built in, __future__ tiny; datetime, typing and enum stay out until a date is formatted
    # other than ours
    assert set(out.split()) - {"time", "__future__"} == {"aiki_hooks", "aiki_hooks.model", "aiki_hooks.model.dates",
                                          "aiki_hooks.model.severity", "aiki_hooks.model.units"}
