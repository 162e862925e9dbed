"""What every API translation shares when it reads a request: one error type, and type checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

__all__ = [
    "TranslationError",
    "client_errors",
    "expect_list",
    "expect_object",
    "expect_str",
    "optional_list",
    "optional_number",
    "optional_object",
    "optional_str",
]


class TranslationError(Exception):
    """A request the translation refuses: its HTTP status and message, put in the API's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Converter = TypeVar("Converter", bound=Callable[..., Any])


def client_errors(convert: Converter) -> Converter:
    """Make the native model's refusal of a converted request the client's 400.

    Only pydantic's ``ValidationError``: the converters check the shapes they read themselves (the
    helpers below), so any other exception is a bug in a converter and must surface as a 500.
    """

    @functools.wraps(convert)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return convert(*args, **kwargs)
        except ValidationError as err:
            raise TranslationError(400, f"invalid request: {err}") from None

    return wrapper  # type: ignore[return-value]


def expect_object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TranslationError(400, f"invalid {what}")
    return data


def optional_object(data: Any, what: str) -> dict[str, Any]:
    """An object, or ``{}`` where the field is absent (``None``)."""
    return {} if data is None else expect_object(data, what)


def expect_list(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise TranslationError(400, f"invalid {what}: expected an array")
    return data


def optional_list(data: Any, what: str) -> list[Any]:
    """A list, or ``[]`` where the field is absent (``None``)."""
    return [] if data is None else expect_list(data, what)


def expect_str(data: Any, what: str) -> str:
    if not isinstance(data, str):
        raise TranslationError(400, f"invalid {what}: expected a string")
    return data


def optional_str(data: Any, what: str, default: str = "") -> str:
    """A string, or ``default`` where the field is absent (``None``)."""
    return default if data is None else expect_str(data, what)


def optional_number(data: Any, what: str, default: float = 0) -> float:
    """A number (not a boolean), or ``default`` where the field is absent (``None``).

    The native model checks the number further (an integer field refuses ``2.5``).
    """
    if data is None:
        return default
    if not isinstance(data, int | float) or isinstance(data, bool):
        raise TranslationError(400, f"invalid {what}: expected a number")
    return data
