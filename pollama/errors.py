"""Errors that carry the HTTP status the API answers them with."""

from __future__ import annotations

import os

__all__ = ["APIError", "os_error_reason"]


class APIError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def os_error_reason(err: OSError) -> str:
    """What went wrong, as Go words it (``no space left on device``), naming no path: the server's
    file system layout is none of its clients' business."""
    text = err.strerror or (os.strerror(err.errno) if err.errno else str(err))
    return text[:1].lower() + text[1:]
