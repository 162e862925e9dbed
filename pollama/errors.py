"""What can go wrong, said as what went wrong; each API's edge decides the status and the shape.

The domain (store, templates, create, scheduler, the answering service) raises these and never an
HTTP status; ``pollama.server.errors`` maps them for the native API, and the OpenAI and Anthropic
routes put the same status into their own error objects. Anything else that escapes is a bug: a 500
with a log line, never disguised as the client's fault.
"""

from __future__ import annotations

import os

__all__ = [
    "Busy",
    "Canceled",
    "Failed",
    "InvalidRequest",
    "NotFound",
    "PollamaError",
    "RequestTimeout",
    "StorageFull",
    "TooLarge",
    "os_error_reason",
]


class PollamaError(Exception):
    """A request that could not be done; ``message`` is what the client reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(PollamaError):
    """The request asks for something malformed, unsupported by the model, or out of range."""


class NotFound(PollamaError):
    """The model, blob or other thing the request names does not exist."""


class Busy(PollamaError):
    """The server cannot take the request now (queue full, shutting down); it may be tried again."""


class Canceled(PollamaError):
    """The client went away before its answer was done."""


class TooLarge(PollamaError):
    """The request's body is larger than the server accepts."""


class RequestTimeout(PollamaError):
    """The client stopped sending its request before it was whole."""


class StorageFull(PollamaError):
    """The store could not be written because the disk is full."""


class Failed(PollamaError):
    """The server could not do what was asked for a reason of its own (a model that does not load, a
    runner that crashed, a registry that failed); Ollama answers these as 500 with the reason."""


def os_error_reason(err: OSError) -> str:
    """What went wrong, as Go words it (``no space left on device``), naming no path: the server's
    file system layout is none of its clients' business."""
    text = err.strerror or (os.strerror(err.errno) if err.errno else str(err))
    return text[:1].lower() + text[1:]
