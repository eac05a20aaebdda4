"""The pure trend arithmetic: series of (time, free bytes) in, rate and time until full out."""

import random

import pytest

from aiki_hooks.model.thresholds import Threshold, judge_time_left
from aiki_hooks.model.status import Status
from aiki_hooks.model.trend import MAX_SAMPLES, add_sample, forecast

GIB = 1024**3
NOW = 1_764_763_200.0  # epoch seconds: the arithmetic must keep its digits at this size


def series(rate_gib_per_hour: float, *, minutes: float = 60, step: float = 60, free_gib: float = 50,
           noise_gib: float = 0.0, seed: int = 0) -> list[tuple[float, float]]:
    """Free bytes sampled every *step* seconds over the last *minutes*, ending at NOW
    with *free_gib*, consumed at *rate_gib_per_hour*."""
    rng = random.Random(seed)
    points = []
    count = int(minutes * 60 // step)
    for i in range(count + 1):
        age = (count - i) * step
        free = free_gib + rate_gib_per_hour * age / 3600 + rng.uniform(-noise_gib, noise_gib)
        points.append((NOW - age, free * GIB))
    return points


def test_steady_growth_gives_its_rate_and_the_time_until_full():
    trend = forecast(series(2.0, free_gib=10), NOW)
    assert trend is not None and trend.shrinking
    assert trend.growth_bytes_per_hour == pytest.approx(2 * GIB)
    assert trend.seconds_until_full(10 * GIB) == pytest.approx(5 * 3600)
    assert trend.span_seconds == 3600 and trend.samples == 61


def test_flat_series_says_nothing():
    trend = forecast(series(0.0), NOW)
    assert trend is not None and not trend.shrinking
    assert trend.growth_bytes_per_hour == 0
    assert trend.seconds_until_full(50 * GIB) is None


def test_freeing_space_says_nothing_but_its_rate():
    trend = forecast(series(-3.0), NOW)
    assert trend is not None and not trend.shrinking
    assert trend.growth_bytes_per_hour == pytest.approx(-3 * GIB)
    assert trend.seconds_until_full(50 * GIB) is None


@pytest.mark.parametrize("points", [
    pytest.param(series(5.0, minutes=9), id="nine-minutes"),
    pytest.param(series(5.0)[-2:], id="two-samples"),
    pytest.param([], id="empty"),
])
def test_too_short_a_history_gives_no_trend(points):
    assert forecast(points, NOW) is None


def test_samples_outside_the_hour_do_not_count():
    # A steep fall two hours ago, flat since: the last hour's rate is 0.
    old = [(NOW - 7200 + i * 60, (100 - i) * GIB) for i in range(30)]
    assert forecast(old + series(0.0), NOW).growth_bytes_per_hour == pytest.approx(0)
    # Ten minutes of the hour are enough; 9 are not.
    assert forecast(series(1.0, minutes=10), NOW).shrinking


def test_noisy_growth_is_found_with_a_fair_rate():
    trend = forecast(series(2.0, noise_gib=0.3, seed=7), NOW)
    assert trend.shrinking
    assert trend.growth_bytes_per_hour == pytest.approx(2 * GIB, rel=0.15)


@pytest.mark.parametrize("seed", [0, 5, 6, 9, 14])  # seeds whose fitted slope happens to point down
def test_noise_alone_is_not_a_trend(seed):
    """Half a GiB of jitter with no drift: a fitted slope exists, but the noise explains it."""
    trend = forecast(series(0.0, noise_gib=0.5, seed=seed), NOW)
    assert trend.growth_bytes_per_hour > 0
    assert not trend.shrinking, trend
    assert trend.seconds_until_full(50 * GIB) is None


def test_a_slow_real_trend_under_heavy_noise_is_not_claimed():
    trend = forecast(series(0.05, noise_gib=2.0, seed=5), NOW)
    assert trend.growth_bytes_per_hour > 0.5 * GIB  # the fit alone would claim 0.7 GiB/h
    assert not trend.shrinking


def test_history_stays_bounded_and_spaced_at_one_sample_a_second():
    kept: list[tuple[float, float]] = []
    new_samples = 0
    for second in range(3 * 3600):
        new_samples += add_sample(kept, (NOW + second, 1e9 - second))
    assert len(kept) <= MAX_SAMPLES
    assert kept[-1] == (NOW + 3 * 3600 - 1, 1e9 - (3 * 3600 - 1))  # the newest is always there
    assert kept[-1][0] - kept[0][0] <= 3600
    assert kept[-1][0] - kept[0][0] >= 3600 - 60  # and it still covers the hour
    gaps = [b[0] - a[0] for a, b in zip(kept[:-2], kept[1:-1], strict=True)]
    assert min(gaps) >= 30
    assert new_samples <= 3 * 3600 / 30 + 2  # so it is saved at most every 30 s
    trend = forecast(kept, NOW + 3 * 3600 - 1)
    assert trend.growth_bytes_per_second == pytest.approx(1.0)


def test_a_clock_that_went_back_drops_the_samples_from_the_future():
    kept = [(NOW + 100, 5.0), (NOW + 200, 4.0)]
    assert add_sample(kept, (NOW, 9.0))
    assert kept == [(NOW, 9.0)]


@pytest.mark.parametrize("hours, status, why", [
    (30, Status.OK, ""), (24, Status.WARNING, "warn within 24 h"), (5, Status.WARNING, "warn within 24 h"),
    (1.5, Status.CRITICAL, "crit within 2 h"), (None, Status.OK, ""),
])
def test_time_left_is_judged_lower_is_worse(hours, status, why):
    levels = Threshold(warn=24, crit=2, higher_is_worse=False)
    assert judge_time_left(None if hours is None else hours * 3600, levels) == (status, why)


def test_a_level_turned_off_is_never_crossed():
    assert judge_time_left(60, Threshold(warn=24, crit=None, higher_is_worse=False)) == (
        Status.WARNING, "warn within 24 h")
    assert judge_time_left(60, Threshold(warn=None, crit=None, higher_is_worse=False)) == (Status.OK, "")
