"""Numbers, sizes and times for people, exactly as Ollama's ``format`` package writes them."""

from __future__ import annotations

import datetime as dt
import math

__all__ = ["human_bytes", "human_bytes2", "round_half_away", "human_duration", "human_number", "human_time"]

_BYTE_UNITS = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3))


def human_number(count: int) -> str:
    """Parameter counts: ``7B``, ``7.6B``, ``135M``, ``22.57M``, ``123K``."""
    if count >= 1_000_000_000:
        value = count / 1_000_000_000
        return f"{value:.0f}B" if value == math.floor(value) else f"{value:.1f}B"
    if count >= 1_000_000:
        value = count / 1_000_000
        return f"{value:.0f}M" if value == math.floor(value) else f"{value:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}K"
    return str(count)


def human_bytes(size: int) -> str:
    """Decimal units: ``42 GB``, ``4.7 GB``, ``4 GB``, ``512 B``."""
    scaled = next(((size / scale, unit) for unit, scale in _BYTE_UNITS if size >= scale), None)
    if scaled is None:
        return f"{size} B"
    value, unit = scaled
    if value >= 10 or value == math.trunc(value):
        return f"{int(value)} {unit}"
    return f"{value:.1f} {unit}"


def human_bytes2(size: int) -> str:
    """Binary units with one decimal, Ollama's ``format.HumanBytes2``: ``1.5 GiB``, ``92.1 MiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def human_duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round_half_away(delta.total_seconds() / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(delta.total_seconds() // 3600) // 24 // 365} years"


def human_time(moment: dt.datetime | None, zero: str = "Never", *, now: dt.datetime | None = None) -> str:
    """``2 weeks ago``, ``4 minutes from now``, ``Forever`` (over 20 years ahead)."""
    if moment is None:
        return zero
    now = now or dt.datetime.now(dt.UTC)
    delta = now - moment
    if _years_truncated(delta) < -20:
        return "Forever"
    if delta < dt.timedelta(0):
        return human_duration(-delta) + " from now"
    return human_duration(delta) + " ago"


def _years_truncated(delta: dt.timedelta) -> int:
    # Go's integer division truncates toward zero, which matters for negative deltas.
    hours = int(delta.total_seconds() / 3600)
    return int(int(hours / 24) / 365)


def round_half_away(value: float) -> int:
    """Go's ``math.Round``: halves away from zero (Python's ``round`` goes to even)."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))
