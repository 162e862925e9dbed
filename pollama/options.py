"""Model options (Modelfile ``PARAMETER``s and API ``options``): names, types, parsing.

One table describes every option Ollama knows. Two entry points read values
into it: ``parse_parameter`` for Modelfile text (Ollama's ``FormatParams``
rules) and ``coerce_option`` for JSON values from the API.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = [
    "DEPRECATED_PARAMETERS",
    "OPTIONS",
    "OptionError",
    "OptionKind",
    "coerce_option",
    "coerce_options",
    "format_go_syntax",
    "format_go_value",
    "go_quote",
    "merge_parameter",
    "parse_parameter",
]


class OptionKind(enum.Enum):
    INT = "integer"
    FLOAT = "float32"
    BOOL = "boolean"
    STRINGS = "array"


@dataclass(frozen=True)
class OptionSpec:
    kind: OptionKind
    load_time: bool = False  # changing it means reloading the model


OPTIONS: dict[str, OptionSpec] = {
    "num_keep": OptionSpec(OptionKind.INT),
    "seed": OptionSpec(OptionKind.INT),
    "num_predict": OptionSpec(OptionKind.INT),
    "top_k": OptionSpec(OptionKind.INT),
    "top_p": OptionSpec(OptionKind.FLOAT),
    "min_p": OptionSpec(OptionKind.FLOAT),
    "typical_p": OptionSpec(OptionKind.FLOAT),
    "repeat_last_n": OptionSpec(OptionKind.INT),
    "temperature": OptionSpec(OptionKind.FLOAT),
    "repeat_penalty": OptionSpec(OptionKind.FLOAT),
    "presence_penalty": OptionSpec(OptionKind.FLOAT),
    "frequency_penalty": OptionSpec(OptionKind.FLOAT),
    "stop": OptionSpec(OptionKind.STRINGS),
    "num_ctx": OptionSpec(OptionKind.INT, load_time=True),
    "num_batch": OptionSpec(OptionKind.INT, load_time=True),
    "num_gpu": OptionSpec(OptionKind.INT, load_time=True),
    "main_gpu": OptionSpec(OptionKind.INT, load_time=True),
    "use_mmap": OptionSpec(OptionKind.BOOL, load_time=True),
    "num_thread": OptionSpec(OptionKind.INT, load_time=True),
    "draft_num_predict": OptionSpec(OptionKind.INT, load_time=True),
}

# Accepted in a Modelfile with a warning, and ignored.
DEPRECATED_PARAMETERS = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)

_INT64 = (-(1 << 63), (1 << 63) - 1)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class OptionError(ValueError):
    pass


def _float32(value: float) -> float:
    """Round to float32 and back to the shortest decimal that float32 prints as, like Go."""
    return float(str(np.float32(value)))


def parse_parameter(name: str, text: str) -> Any:
    """Type one Modelfile ``PARAMETER`` value; raise ``OptionError`` with Ollama's message."""
    spec = OPTIONS.get(name)
    if spec is None:
        raise OptionError(f"unknown parameter '{name}'")
    if spec.kind is OptionKind.STRINGS:
        return [text]
    if spec.kind is OptionKind.INT:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or "_" in text or not _INT64[0] <= value <= _INT64[1]:
            raise OptionError(f"invalid int value [{text}]")
        return value
    if spec.kind is OptionKind.FLOAT:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        # Go's ParseFloat(s, 32) rejects what Python accepts beyond it: padding, underscores,
        # values out of float32 range; non-finite values cannot be stored as JSON at all.
        if "_" in text or text.strip() != text or not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise OptionError(f"invalid float value [{text}]")
        return _float32(value)
    parsed = {
        "1": True,
        "t": True,
        "T": True,
        "TRUE": True,
        "true": True,
        "True": True,
        "0": False,
        "f": False,
        "F": False,
        "FALSE": False,
        "false": False,
        "False": False,
    }.get(text)
    if parsed is None:
        raise OptionError(f"invalid bool value [{text}]")
    return parsed


def merge_parameter(params: dict[str, Any], name: str, value: Any) -> None:
    """Add a parsed value to a parameter map; repeated list parameters (``stop``) accumulate."""
    if isinstance(value, list) and isinstance(params.get(name), list):
        params[name] = [*params[name], *value]
    else:
        params[name] = value


def coerce_option(name: str, value: Any) -> Any:
    """Check a JSON option value against its declared type, as Ollama's ``Options.FromMap`` does.

    Raises ``KeyError`` for unknown names and ``OptionError`` (Ollama's message) for a wrong type.
    """
    spec = OPTIONS[name]
    if value is None:
        return None
    if spec.kind is OptionKind.INT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f'option "{name}" must be of type integer')
        if isinstance(value, float):
            if not math.isfinite(value):
                raise OptionError(f'option "{name}" must be of type integer')
            value = int(value)
        return value
    if spec.kind is OptionKind.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f'option "{name}" must be of type float32')
        return value
    if spec.kind is OptionKind.BOOL:
        if not isinstance(value, bool):
            raise OptionError(f'option "{name}" must be of type boolean')
        return value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OptionError(f'option "{name}" must be of an array of strings')
    return list(value)


def coerce_options(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Coerce a map of options; return the typed map and the names that are not options."""
    typed: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in values.items():
        if name in OPTIONS:
            typed[name] = coerce_option(name, value)
        else:
            unknown.append(name)
    return typed, unknown


def format_go_value(value: Any) -> str:
    """A parameter value as Go's ``%v`` prints it (Modelfile lines)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def format_go_syntax(value: Any) -> str:
    """A parameter value as Go's ``%#v`` prints it (``/api/show`` parameters)."""
    if isinstance(value, str):
        return go_quote(value)
    return format_go_value(value)


def _go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form below 1e-4 and from 1e6 up."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    scientific_exponent = len(text) - 1 + int(exponent)
    prefix = "-" if sign else ""
    if scientific_exponent < -4 or scientific_exponent >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        exp_sign = "-" if scientific_exponent < 0 else "+"
        return f"{prefix}{mantissa}e{exp_sign}{abs(scientific_exponent):02d}"
    return prefix + format(Decimal(repr(abs(value))).normalize(), "f")


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: double quotes, with Go's escapes for control characters."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code > 0x7F:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
