"""JSON encoded the way Go's ``encoding/json`` writes it.

Compact separators; strings with UTF-8 kept and ``<``, ``>``, ``&``, U+2028 and
U+2029 escaped; floats in Go's format (``0.00001``, ``4096``, ``1e-7``, ``1e+21``).
What we store then matches what Ollama stores, byte for byte.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["dumps"]

_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dumps(value: Any, *, newline: bool = False) -> bytes:
    """Encode like ``json.Marshal`` (or ``json.Encoder.Encode`` with ``newline=True``)."""
    text = "".join(_encode(value))
    return (text + "\n" if newline else text).encode("utf-8")


def _encode(value: Any) -> Any:
    if value is None:
        yield "null"
    elif value is True:
        yield "true"
    elif value is False:
        yield "false"
    elif isinstance(value, str):
        yield json.dumps(value, ensure_ascii=False).translate(_ESCAPES)
    elif isinstance(value, int):
        yield str(value)
    elif isinstance(value, float):
        yield _float(value)
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ("," if index else "") + json.dumps(str(key), ensure_ascii=False).translate(_ESCAPES) + ":"
            yield from _encode(item)
        yield "}"
    elif isinstance(value, list | tuple):
        if value and all(type(item) is float for item in value):
            yield "[" + ",".join(map(_float, value)) + "]"  # an embedding: one join, not a generator per number
            return
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _encode(item)
        yield "]"
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _float(value: float) -> str:
    """Go's float encoder: shortest digits, exponent form below 1e-6 and from 1e21 up."""
    if not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {value}")
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    text = repr(value)  # the shortest digits that read back, as Go's; positional from 1e-4 up to 1e16
    if "e" not in text:
        return text.removesuffix(".0")
    return _float_from_digits(value)


def _float_from_digits(value: float) -> str:
    """Any finite, non-zero float in Go's format, from its shortest decimal digits."""
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    prefix = "-" if sign else ""
    if 1e-6 <= abs(value) < 1e21:
        return prefix + format(Decimal(repr(abs(value))).normalize(), "f")
    text = "".join(map(str, digits))
    power = len(text) - 1 + int(exponent)
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    # strconv writes at least two exponent digits; Go's encoder then trims "e-07" to "e-7".
    exponent_text = f"-{-power}" if power < 0 else f"+{power:02d}"
    return f"{prefix}{mantissa}e{exponent_text}"
