"""Go `time.Duration` parsing and formatting, which Ollama's settings and API inherit.

Durations are integer nanoseconds, as in Go. ``FOREVER`` is Go's largest duration,
which Ollama uses for "never expire".
"""

from __future__ import annotations

__all__ = ["FOREVER", "NANOSECOND", "SECOND", "format_go_duration", "parse_go_duration", "parse_keep_alive"]

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
FOREVER = (1 << 63) - 1

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}


def parse_go_duration(text: str) -> int:
    """Parse like Go's ``time.ParseDuration``; raise ``ValueError`` with Go's message."""
    quoted = _quote(text)
    invalid = ValueError(f"time: invalid duration {quoted}")
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not _starts_number(s[0]):
            raise invalid
        digits = _leading_digits(s)
        whole = int(digits) if digits else 0
        s = s[len(digits) :]
        fraction, scale, had_fraction = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            fraction_digits = _leading_digits(s)
            s = s[len(fraction_digits) :]
            had_fraction = bool(fraction_digits)
            fraction, scale = _fraction(fraction_digits)
        if not digits and not had_fraction:
            raise invalid
        unit_end = 0
        while unit_end < len(s) and not _starts_number(s[unit_end]):
            unit_end += 1
        if unit_end == 0:
            raise ValueError(f"time: missing unit in duration {quoted}")
        unit_name, s = s[:unit_end], s[unit_end:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(unit_name)} in duration {quoted}")
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
        total += value
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > FOREVER:
        raise invalid
    return total


def _quote(text: str) -> str:
    """Go's ``time.quote``: escape quotes and backslashes, write other than printable ASCII as bytes."""
    out: list[str] = []
    for char in text:
        if char < " " or char >= "\x80":
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", errors="surrogatepass"))
        else:
            out.append("\\" + char if char in ('"', "\\") else char)
    return '"' + "".join(out) + '"'


def _starts_number(ch: str) -> bool:
    return ch == "." or ch.isascii() and ch.isdigit()


def _leading_digits(s: str) -> str:
    end = 0
    while end < len(s) and s[end].isascii() and s[end].isdigit():
        end += 1
    return s[:end]


def _fraction(digits: str) -> tuple[int, float]:
    # Like Go's leadingFraction: stop accumulating precision once it would overflow.
    value, scale, overflow = 0, 1.0, False
    for ch in digits:
        if overflow:
            continue
        if value > ((1 << 63) - 1) // 10:
            overflow = True
            continue
        value = value * 10 + int(ch)
        scale *= 10
    return value, scale


def format_go_duration(nanoseconds: int) -> str:
    """Format like Go's ``Duration.String`` (e.g. ``1.234s``, ``2m0.5s``, ``350ms``)."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    n = abs(nanoseconds)
    if n < SECOND:
        for unit, size in (("ns", 1), ("µs", MICROSECOND), ("ms", MILLISECOND)):
            if n < size * 1000:
                return sign + _decimal(n, size) + unit
    hours, rest = divmod(n, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    text = _decimal(rest, SECOND) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, size: int) -> str:
    whole, frac = divmod(value, size)
    if not frac:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}.{str(frac).rjust(width, '0').rstrip('0')}"


def parse_keep_alive(value: object) -> int | None:
    """A request's ``keep_alive`` as Ollama's ``Duration.UnmarshalJSON`` reads it, in nanoseconds.

    None when absent. Numbers are seconds, strings Go durations; negative means forever.
    Raises ``ValueError`` with Ollama's message for anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        kind = (
            "bool"
            if isinstance(value, bool)
            else "[]interface {}"
            if isinstance(value, list)
            else "map[string]interface {}"
        )
        raise ValueError(f"Unsupported type: '{kind}'")
    if isinstance(value, str):
        nanoseconds: int | float = parse_go_duration(value)
    else:
        nanoseconds = value * SECOND  # a float may overflow to infinity here: that is forever too
        if nanoseconds != nanoseconds:
            raise ValueError("time: invalid duration NaN")
    return FOREVER if nanoseconds < 0 or nanoseconds > FOREVER else int(nanoseconds)
