"""How numbers with a unit read, each format defined once: sizes, percentages, seconds,
latencies and durations. Values come in base units (bytes, seconds, ratios 0..1).

Durations have three styles for three audiences: `fmt_duration` is compact ("3h05m") for
the status line, the `status` table and probe summaries; `fmt_duration_words` ("3 h 05
min") is for sentences (the agent's status block, journal and mem0 records, output
issues); `fmt_time_left` ("~40 min", "~3 days") is for forecasts, rounded as a guess
deserves (the resources probe's "full in ~5 h").

`finite_number` says whether a value read from JSON is a number at all, for the hooks,
the metrics exporter and the resources history alike.

No imports: the hooks use it on every tool call.
"""

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4


def finite_number(value: object) -> float | None:
    """*value* as a float if it is a real, finite number: an int or a float (subclasses too),
    not a bool, a string, NaN or an infinity, nor an int too large for a float (a JSON
    file may hold 1e400 written out as digits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if number - number == 0 else None  # NaN and the infinities fail (no math import)


def fmt_bytes(value: float) -> str:
    """Human size in binary units: 18.2 GiB, 512.0 MiB, 900.0 KiB, 12 B."""
    for unit, size in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_gib(value: float) -> str:
    """A value already in GiB (a configured level): "10 GiB", "0.5 GiB"."""
    return f"{value:g} GiB"


def gib_figure(value: float) -> str:
    """Bytes as a bare GiB figure with one decimal, for "mem 6.1/15.6 GiB"."""
    return f"{value / GIB:.1f}"


def fmt_percent(value: float) -> str:
    """A value already in percent: "91%"."""
    return f"{value:.0f}%"


def fmt_ratio(value: float) -> str:
    """A ratio 0..1 as percent: "91%"."""
    return f"{value * 100:.0f}%"


def fmt_seconds(value: float) -> str:
    """"450 ms" below a second, else "1.2 s"."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"


def fmt_latency(seconds: float) -> str:
    """Latency as "12 ms" or "1.2 s"; below 10 ms, where loopback answers live, with a
    decimal ("0.4 ms") rather than a misleading "0 ms"."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return fmt_seconds(seconds)


def fmt_timeout(seconds: float) -> str:
    """A configured number of seconds as given: "5 s", "0.5 s"."""
    return f"{seconds:g} s"


def round_seconds(value: float | None) -> float | None:
    """Seconds to microsecond precision: finer digits are noise in a JSON cache."""
    return None if value is None else round(value, 6)


def fmt_duration(seconds: float) -> str:
    """Compact duration, whole units: 45s, 14m, 3h05m, 3d."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m"
    return f"{seconds // 86400}d"


def fmt_duration_words(seconds: float) -> str:
    """Duration for a sentence: 45 s, 14 min, 3 h, 3 h 05 min, 2 d 3 h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h {rest // 60:02d} min" if rest >= 60 else f"{hours} h"
    return f"{seconds // 86400} d {(seconds % 86400) // 3600} h"


def fmt_time_left(seconds: float) -> str:
    """A forecast's time, rounded as a forecast deserves: "~40 min", "~5 h", "~3 days"."""
    if seconds < 2 * 3600:
        return f"~{max(1, round(seconds / 60))} min"
    if seconds < 48 * 3600:
        return f"~{round(seconds / 3600)} h"
    return f"~{round(seconds / 86400)} days"
