"""Go's ``strconv`` rules for the values Ollama parses from text: ints, bools, float32s, quoting.

Python's own parsers accept more (spaces, Unicode digits, ``inf`` spellings) or less (hex floats,
digit-separating underscores), and Ollama's answers depend on exactly what Go accepts.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

import numpy as np

__all__ = ["format_float", "parse_bool", "parse_float32", "parse_int", "quote"]

_DECIMAL_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_int(text: str, bits: int = 64) -> int | None:
    """``strconv.ParseInt(text, 10, bits)``; None where Go returns an error."""
    if not _DECIMAL_INT.fullmatch(text):
        return None
    value = int(text)
    limit = 1 << (bits - 1)
    return value if -limit <= value < limit else None


def parse_bool(text: str) -> bool | None:
    """``strconv.ParseBool``; None where Go returns an error."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _underscores_ok(text: str) -> bool:
    # Go allows an underscore only between digits, or between a base prefix and a digit.
    body = text.lstrip("+-")
    hexadecimal = body[:2].lower() == "0x"
    digits = set("0123456789abcdefABCDEF" if hexadecimal else "0123456789")
    body = body[2:] if hexadecimal else body
    previous = "x" if hexadecimal else "^"
    for index, char in enumerate(body):
        if char == "_":
            following = body[index + 1] if index + 1 < len(body) else "$"
            if (previous not in digits and previous != "x") or following not in digits:
                return False
        previous = char
    return True


def parse_float32(text: str) -> float | None:
    """``strconv.ParseFloat(text, 32)`` for finite values; None for errors, overflow and non-finite values."""
    if not text.isascii() or ("_" in text and not _underscores_ok(text)):
        return None
    plain = text.replace("_", "")
    if _HEX_FLOAT.fullmatch(plain):
        value = float.fromhex(plain)
    elif _DECIMAL_FLOAT.fullmatch(plain):
        value = float(plain)
    else:
        return None
    with np.errstate(over="ignore"):
        single = np.float32(value)
    if not math.isfinite(single):
        return None
    return float(str(single))  # the shortest decimal that prints as this float32


def quote(text: str) -> str:
    """``strconv.Quote``: double quotes, Go's escapes for control and non-printable characters."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code > 0x7F and not char.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def format_float(value: float, *, threshold: int = 6) -> str:
    """``strconv.FormatFloat(v, 'g', -1, 64)``: shortest digits, exponent form outside [1e-4, 1e``threshold``)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # position of the decimal point in the digit string
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= threshold:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"
