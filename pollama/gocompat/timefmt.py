"""Timestamps as Go's ``time.Time`` marshals them: RFC 3339 with trimmed nanoseconds."""

from __future__ import annotations

import datetime as dt
import time

__all__ = ["parse_rfc3339", "rfc3339_nano"]


def rfc3339_nano(ns: int | None = None, *, utc: bool = False) -> str:
    """Format a Unix time in nanoseconds in local time (or UTC), e.g. ``2024-05-01T10:00:00.5+02:00``."""
    if ns is None:
        ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    if not utc:
        moment = moment.astimezone()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    offset = moment.utcoffset() or dt.timedelta(0)
    if offset == dt.timedelta(0):
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse what ``rfc3339_nano`` (or Go) writes; precision beyond microseconds is dropped."""
    main, _, rest = text.partition(".")
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
        text = f"{main}.{fraction[:6].ljust(6, '0')}{zone}"
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
