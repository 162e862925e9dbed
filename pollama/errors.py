"""Errors that carry the HTTP status the API answers them with."""

from __future__ import annotations

__all__ = ["APIError"]


class APIError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
