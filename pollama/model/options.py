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
from typing import Any

from pollama.gocompat import gostrconv

__all__ = [
    "DEPRECATED_PARAMETERS",
    "MIROSTAT_MODES",
    "OPTIONS",
    "OptionError",
    "OptionKind",
    "UNSUPPORTED_OPTIONS",
    "check_sampling",
    "coerce_option",
    "coerce_options",
    "format_go_syntax",
    "format_go_value",
    "merge_parameter",
    "parse_parameter",
]


class OptionKind(enum.Enum):
    INT = "integer"
    FLOAT = "float32"
    BOOL = "boolean"
    STRINGS = "array"
    THINK = "think"  # true/false or a level: beyond Ollama, a model's default for ``think`` (ollama#10961)


THINK_LEVELS = ("high", "medium", "low", "max")


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
    # Beyond Ollama, which lists them in its Modelfile docs but ignores them: llama.cpp has both Mirostats.
    "mirostat": OptionSpec(OptionKind.INT),
    "mirostat_tau": OptionSpec(OptionKind.FLOAT),
    "mirostat_eta": OptionSpec(OptionKind.FLOAT),
    "stop": OptionSpec(OptionKind.STRINGS),
    "num_ctx": OptionSpec(OptionKind.INT, load_time=True),
    "num_batch": OptionSpec(OptionKind.INT, load_time=True),
    "num_gpu": OptionSpec(OptionKind.INT, load_time=True),
    "main_gpu": OptionSpec(OptionKind.INT, load_time=True),
    "use_mmap": OptionSpec(OptionKind.BOOL, load_time=True),
    "num_thread": OptionSpec(OptionKind.INT, load_time=True),
    "draft_num_predict": OptionSpec(OptionKind.INT, load_time=True),
    # Beyond Ollama (ollama#8842): parallel sequences for this model, over OLLAMA_NUM_PARALLEL.
    "num_parallel": OptionSpec(OptionKind.INT, load_time=True),
    "think": OptionSpec(OptionKind.THINK),
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
    }
)

MIROSTAT_MODES = (0, 1, 2)
# Go's types for option values: a number beyond them is an error, not a wrapped or infinite value.
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FLOAT32_MAX = 3.4028234663852886e38

# Options Ollama once had that llama.cpp can no longer honour: a request that sets one to anything but
# its neutral value is refused, since ignoring it would answer differently from what was asked.
UNSUPPORTED_OPTIONS: dict[str, tuple[float, str]] = {
    "tfs_z": (1.0, "tail-free sampling was removed from llama.cpp; use min_p or top_p instead"),
}


class OptionError(ValueError):
    pass


def check_sampling(values: Mapping[str, Any]) -> None:
    """Refuse option values the engine cannot honour (``OptionError`` with the reason)."""
    for name, (neutral, reason) in UNSUPPORTED_OPTIONS.items():
        if name in values and values[name] is not None and values[name] != neutral:
            raise OptionError(f'option "{name}" is not supported: {reason}')
    mirostat = values.get("mirostat")
    if mirostat is not None and mirostat not in MIROSTAT_MODES:
        raise OptionError(f'option "mirostat" must be 0 (off), 1 or 2, not {mirostat}')


def parse_parameter(name: str, text: str) -> Any:
    """Type one Modelfile ``PARAMETER`` value; raise ``OptionError`` with Ollama's message."""
    spec = OPTIONS.get(name)
    if spec is None:
        raise OptionError(f"unknown parameter '{name}'")
    if spec.kind is OptionKind.STRINGS:
        return [text]
    if spec.kind is OptionKind.INT:
        value = gostrconv.parse_int(text)
        if value is None:
            raise OptionError(f"invalid int value [{text}]")
        return value
    if spec.kind is OptionKind.FLOAT:
        number = gostrconv.parse_float32(text)
        if number is None:
            raise OptionError(f"invalid float value [{text}]")
        return number
    parsed = gostrconv.parse_bool(text)
    if spec.kind is OptionKind.THINK and parsed is None:
        if text not in THINK_LEVELS:
            raise OptionError(f"invalid think value [{text}] (must be true, false, low, medium, high or max)")
        return text
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
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise OptionError(f'option "{name}" is out of range for an integer')
        return value
    if spec.kind is OptionKind.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f'option "{name}" must be of type float32')
        if not -_FLOAT32_MAX <= value <= _FLOAT32_MAX:  # False for NaN too
            raise OptionError(f'option "{name}" is out of range for a float32')
        return value
    if spec.kind is OptionKind.BOOL:
        if not isinstance(value, bool):
            raise OptionError(f'option "{name}" must be of type boolean')
        return value
    if spec.kind is OptionKind.THINK:
        if not isinstance(value, bool) and value not in THINK_LEVELS:
            raise OptionError(f'option "{name}" must be true, false, "low", "medium", "high" or "max"')
        return value
    if not isinstance(value, list):
        raise OptionError(f'option "{name}" must be of type array')
    if not all(isinstance(item, str) for item in value):
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
        return gostrconv.format_float(value)
    return str(value)


def format_go_syntax(value: Any) -> str:
    """A parameter value as Go's ``%#v`` prints it (``/api/show`` parameters)."""
    if isinstance(value, str):
        return gostrconv.quote(value)
    return format_go_value(value)
