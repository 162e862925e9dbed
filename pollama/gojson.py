"""JSON encoded the way Go's ``encoding/json`` writes it.

Compact separators, UTF-8 kept as is, and ``<``, ``>``, ``&``, U+2028 and
U+2029 escaped, so what we store matches what Ollama stores.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps"]

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_TRANSLATION = str.maketrans(_ESCAPES)


def dumps(value: Any, *, newline: bool = False) -> bytes:
    """Encode like ``json.Marshal`` (or ``json.Encoder.Encode`` with ``newline=True``)."""
    # The escaped characters can only occur inside JSON strings, so translating the output is safe.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    text = text.translate(_TRANSLATION)
    return (text + "\n" if newline else text).encode("utf-8")
