"""What every API translation shares when it reads a request: one error type, and type checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["TranslationError", "client_errors", "expect_object"]


class TranslationError(Exception):
    """A request the translation refuses: its HTTP status and message, put in the API's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Converter = TypeVar("Converter", bound=Callable[..., Any])


def client_errors(convert: Converter) -> Converter:
    """Make a request converter's type slips (a string where an object belongs...) the client's 400."""

    @functools.wraps(convert)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return convert(*args, **kwargs)
        except (AttributeError, TypeError, ValueError) as err:
            raise TranslationError(400, f"invalid request: {err}") from None

    return wrapper  # type: ignore[return-value]


def expect_object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TranslationError(400, f"invalid {what}")
    return data
