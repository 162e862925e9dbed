"""Reading JSON request bodies the way Ollama's handlers do, within the server's limits.

Python's decoder is more lenient than Go's and fails differently; these are the differences a
client could otherwise turn into a 500: ``NaN`` and ``Infinity`` literals and numbers beyond float64
are refused as Go refuses them, a lone UTF-16 surrogate (``"\\ud800"``) becomes U+FFFD as Go's
decoder makes it, and nesting is bounded before anything recursive sees it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from pollama.errors import InvalidRequest
from pollama.server.metrics import note_model

__all__ = ["decode_json", "describe_validation_error", "read_body", "read_json"]

Body = TypeVar("Body", bound=BaseModel)

# Only a \u escape can put a surrogate into a decoded string (the raw body is checked UTF-8).
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


async def read_body(request: Request, model: type[Body]) -> Body:
    """Decode a JSON body into ``model``; the empty body and bad JSON are 400s, ``null`` is ``{}``."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("missing request body")
    data = decode_json(raw, _max_depth(request))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest(f"json: cannot unmarshal {_json_kind(data)} into a request object")
    note_model(request.scope, data.get("model"))
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InvalidRequest(describe_validation_error(err)) from None


async def read_json(request: Request) -> Any:
    """Any JSON value (the OpenAI and Anthropic routes check its shape themselves); empty means ``{}``."""
    raw = await request.body()
    data = decode_json(raw, _max_depth(request)) if raw.strip() else {}
    if isinstance(data, dict):
        note_model(request.scope, data.get("model"))
    return data


def decode_json(raw: bytes, max_depth: int) -> Any:
    """Decode a request body; ``InvalidRequest`` for anything Go's decoder or the depth limit refuses."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidRequest(_too_deep(max_depth)) from None
    except ValueError as err:
        raise InvalidRequest(f"invalid JSON: {err}") from None
    if _depth_exceeds(data, max_depth):
        raise InvalidRequest(_too_deep(max_depth))
    if _ESCAPED_SURROGATE.search(raw):
        data = _without_lone_surrogates(data)
    return data


def _max_depth(request: Request) -> int:
    return int(request.app.state.pollama.settings.limits.max_json_depth)


def _too_deep(max_depth: int) -> str:
    return f"invalid JSON: nested deeper than {max_depth} levels"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text} is out of range")
    return number


def _depth_exceeds(data: Any, max_depth: int) -> bool:
    # Iterative, so that checking a deep value cannot itself exhaust the stack.
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        # A valid pair was already joined by the decoder; what is left is alone.
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def describe_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"invalid value for '{location}': {first['msg']}" if location else first["msg"]
