"""Reading what a request names and asks: the model, keep_alive, think."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from pollama.errors import InvalidRequest, NotFound
from pollama.gocompat.durations import parse_keep_alive
from pollama.model.options import THINK_LEVELS
from pollama.store import CorruptManifest, Store
from pollama.store.models import StoredModel, load_model
from pollama.store.names import InvalidModelName, ModelName, parse_model_ref

__all__ = ["find_model", "keep_alive_of", "parse_name", "validate_think"]


def parse_name(text: str, invalid_message: str | None = None) -> ModelName:
    """A request's model reference; ``InvalidRequest`` with Ollama's message when it is not a name."""
    try:
        return parse_model_ref(text)
    except InvalidModelName:
        raise InvalidRequest(invalid_message or "invalid model name") from None
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


async def find_model(store: Store, text: str, *, missing: str | None = None) -> StoredModel:
    """The stored model a request names; ``NotFound`` with ``missing`` (or Ollama's usual text) when absent."""
    name = parse_name(text)
    try:
        return await run_in_threadpool(load_model, store, name)
    except (FileNotFoundError, CorruptManifest):
        raise NotFound(missing or f"model '{text}' not found") from None


def keep_alive_of(value: Any) -> int | None:
    try:
        return parse_keep_alive(value)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def validate_think(name: str, think: Any, capabilities: list[str], default: Any = None) -> bool | str | None:
    """The request's ``think``, checked against the model (``name`` as the request gave it) as Ollama does.

    Without one, a thinking model thinks; beyond Ollama, a ``PARAMETER think`` (``default``) decides instead.
    """
    if think is None:
        if "thinking" not in capabilities:
            return None
        return True if default is None else bool(default) if isinstance(default, bool) else str(default)
    if not isinstance(think, bool) and think not in THINK_LEVELS:
        shown = f'"{think}"' if isinstance(think, str) else str(think)
        raise InvalidRequest(f'invalid think value: {shown} (must be "high", "medium", "low", "max", true, or false)')
    if think and "thinking" not in capabilities:
        raise InvalidRequest(f'"{name}" does not support thinking')
    return bool(think) if isinstance(think, bool) else str(think)
