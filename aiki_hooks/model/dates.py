"""Our timestamps: one format for UTC instants (ISO 8601, milliseconds, trailing Z, as in
the cache, the journal and every JSON output), one parse for them, and the local clock
times the texts show.

Standard library only and cheap to import: the hooks use it on every tool call.
`datetime` is imported inside the functions, so a path that formats no date never pays
for it.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing costs milliseconds on every hook call; annotations are lazy
if TYPE_CHECKING:
    import datetime


def utc_iso(epoch: float) -> str:
    """ISO 8601 UTC with millisecond precision and a trailing Z: 2026-11-24T14:05:00.000Z."""
    import datetime as dt

    moment = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> float:
    """Epoch seconds from an ISO 8601 timestamp as `utc_iso` writes it; any other offset
    is honoured, and a timestamp without one is taken as UTC (never as local time).
    Raises ValueError for text that is not such a timestamp."""
    import datetime as dt

    moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
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
