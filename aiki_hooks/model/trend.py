"""Pure trend arithmetic: a short history of free bytes -> how fast it is shrinking.

A series is a list of `(timestamp, free_bytes)` pairs, oldest first, wall-clock seconds
(they outlive the process). `add_sample` keeps it bounded: samples at least
`window / max_samples` apart over the last `window` seconds, the newest one always
replaced by a fresher one until that spacing is reached. `forecast` fits a least-squares
line through the window and says the series is shrinking only when the fit says so
beyond its noise (slope at least two standard errors from zero); a window shorter than
`min_span` says nothing, never a misleading rate.

Free, not used, is tracked: "full" is free reaching zero, and on filesystems whose total
floats (btrfs, ZFS) or with a root reserve only free space tells. No I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

WINDOW_SECONDS = 3600.0  # "at the last hour's rate"
MIN_SPAN_SECONDS = 600.0  # a shorter window is too short to call a trend
MAX_SAMPLES = 120  # per series: one every 30 s over the hour at most
MIN_SAMPLES = 3  # two points always fit a line exactly: no noise estimate
SIGNIFICANCE = 2.0  # slope / its standard error: below this, noise could explain the slope

Point = tuple[float, float]  # (wall-clock seconds, free bytes)


@dataclass(frozen=True, kw_only=True)
class Trend:
    """The least-squares rate at which free bytes change over the window."""

    growth_bytes_per_second: float  # consumption: minus the slope of free; < 0 when freeing
    span_seconds: float
    samples: int
    shrinking: bool  # free is going down beyond the noise: a forecast can be made

    @property
    def growth_bytes_per_hour(self) -> float:
        return self.growth_bytes_per_second * 3600.0

    def seconds_until_full(self, free_bytes: float) -> float | None:
        """When free reaches zero at this rate, or None when it is not shrinking."""
        if not self.shrinking or self.growth_bytes_per_second <= 0:
            return None
        return max(0.0, free_bytes) / self.growth_bytes_per_second


def add_sample(series: list[Point], point: Point, *, window_seconds: float = WINDOW_SECONDS,
               max_samples: int = MAX_SAMPLES) -> bool:
    """Add *point* to *series* in place, keeping it bounded; True when it was kept as a
    new sample (worth saving), False when it replaced the newest one.

    Samples dated after *point* (the wall clock went back) are dropped, and so are those
    older than the window."""
    now = point[0]
    spacing = window_seconds / max_samples
    series[:] = [p for p in series if now - window_seconds <= p[0] < now]
    if len(series) >= 2 and series[-1][0] - series[-2][0] < spacing:
        series[-1] = point  # too close to the one before: the newest stands for both
        added = False
    else:
        series.append(point)
        added = True
    del series[:-max_samples]
    return added


def forecast(series: Sequence[Point], now: float, *, window_seconds: float = WINDOW_SECONDS,
             min_span_seconds: float = MIN_SPAN_SECONDS) -> Trend | None:
    """The trend of free bytes over the last *window_seconds* before *now*, or None when
    the samples in it span less than *min_span_seconds* (or are fewer than 3)."""
    points = [(t, free) for t, free in series if now - window_seconds <= t <= now]
    if len(points) < MIN_SAMPLES:
        return None
    span = points[-1][0] - points[0][0]
    if span < min_span_seconds or span <= 0:
        return None
    count = len(points)
    # Centred on the means: epoch seconds squared would lose the digits that matter.
    mean_t = sum(t for t, _ in points) / count
    mean_free = sum(free for _, free in points) / count
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    sxy = sum((t - mean_t) * (free - mean_free) for t, free in points)
    syy = sum((free - mean_free) ** 2 for _, free in points)
    slope = sxy / sxx
    residual = max(0.0, syy - slope * sxy) / (count - 2)
    standard_error = math.sqrt(residual / sxx)
    shrinking = slope < 0 and -slope >= SIGNIFICANCE * standard_error
    return Trend(growth_bytes_per_second=-slope, span_seconds=span, samples=count, shrinking=shrinking)
