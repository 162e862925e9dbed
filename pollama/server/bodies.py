"""Reading JSON request bodies the way Ollama's handlers do."""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from pollama.errors import APIError

__all__ = ["describe_validation_error", "read_body"]

Body = TypeVar("Body", bound=BaseModel)


async def read_body(request: Request, model: type[Body]) -> Body:
    """Decode a JSON body into ``model``; the empty body and bad JSON are 400s, ``null`` is ``{}``."""
    raw = await request.body()
    if not raw.strip():
        raise APIError(400, "missing request body")
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise APIError(400, f"invalid JSON: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise APIError(400, f"json: cannot unmarshal {_json_kind(data)} into a request object")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise APIError(400, describe_validation_error(err)) from None


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
