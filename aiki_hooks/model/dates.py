"""Our timestamps: one format for UTC instants (ISO 8601, milliseconds, trailing Z, as in
the cache, the journal and every JSON output), one parse for them, and the local clock
times the texts show.

Standard library only and cheap to import: the hooks use it on every tool call.
Our own format is written and read with the `time` module and integer arithmetic: every
hook reads the cache's `generated_at`, and importing `datetime` for it cost ~2.5 ms of a
~45 ms hook. Anything else (another offset, no fraction) goes to `datetime`, imported
inside the functions.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    import datetime


def utc_iso(epoch: float) -> str:
    """ISO 8601 UTC with millisecond precision and a trailing Z: 2026-11-24T14:05:00.000Z.
    (Rounded to the microsecond, then cut to the millisecond, as datetime's isoformat
    does.)"""
    seconds = int(epoch // 1)
    micros = round((epoch - seconds) * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros // 1000:03d}Z"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468


def parse_utc(text: str) -> float:
    """Epoch seconds from an ISO 8601 timestamp as `utc_iso` writes it; any other offset
    is honoured, and a timestamp without one is taken as UTC (never as local time).
    Raises ValueError for text that is not such a timestamp."""
    text = str(text)
    # utc_iso's own shape, 2026-11-24T14:05:00.000Z, without datetime; a date that does
    # not exist (Feb 30) fails the gmtime check and goes on to datetime, which says so.
    if len(text) == 24 and text[4] == "-" and text[7] == "-" and text[10] == "T" and text[13] == ":" \
            and text[16] == ":" and text[19] == "." and text[23] == "Z":
        digits = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19], text[20:23])
        if all(part.isascii() and part.isdigit() for part in digits):
            year, month, day, hour, minute, second, millis = map(int, digits)
            seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
            if year >= 1 and 1 <= month <= 12 and time.gmtime(seconds)[:6] == (year, month, day, hour, minute, second):
                return (seconds * 1000 + millis) / 1000  # one rounding, as datetime's
    import datetime as dt

    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def clock(epoch: float, *, seconds: bool = False) -> str:
    """Local wall-clock time: "14:05", or "14:05:09" with *seconds*."""
    return time.strftime("%H:%M:%S" if seconds else "%H:%M", time.localtime(epoch))


def local_minute(epoch: float, tz: datetime.tzinfo | None = None) -> str:
    """Date and minute, in *tz* or the machine's local time: "2026-11-24 14:05"."""
    if tz is None:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%d %H:%M")


def clock_or_date(epoch: float, now: float, tz: datetime.tzinfo | None = None) -> str:
    """"14:05" for a time on *now*'s date, else "2026-11-24 14:05"; in *tz* or the
    machine's local time."""
    if tz is None:
        local = time.localtime(epoch)
        today = time.localtime(now)[:3] == local[:3]
        return time.strftime("%H:%M" if today else "%Y-%m-%d %H:%M", local)
    import datetime as dt

    moment = dt.datetime.fromtimestamp(epoch, tz)
    today = dt.datetime.fromtimestamp(now, tz).date() == moment.date()
    return moment.strftime("%H:%M" if today else "%Y-%m-%d %H:%M")
