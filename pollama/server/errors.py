"""The one place that turns domain errors into HTTP statuses; every API's edge asks it."""

from __future__ import annotations

import logging

from pollama.errors import (
    Busy,
    Canceled,
    Failed,
    InvalidRequest,
    NotFound,
    PollamaError,
    RequestTimeout,
    StorageFull,
    TooLarge,
)

__all__ = ["CLIENT_GONE", "failure", "status_of"]

log = logging.getLogger(__name__)

CLIENT_GONE = 499  # nginx's and Ollama's code for a client that went away; nobody reads it

_STATUS: dict[type[PollamaError], int] = {
    InvalidRequest: 400,
    NotFound: 404,
    RequestTimeout: 408,
    TooLarge: 413,
    Canceled: CLIENT_GONE,
    Failed: 500,
    Busy: 503,
    StorageFull: 507,
}


def status_of(err: PollamaError) -> int:
    """The HTTP status Ollama answers ``err`` with."""
    for kind in type(err).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 500


def failure(err: BaseException) -> tuple[int, str]:
    """Status and message for any error that ends a request; one that is not a domain error is a bug,
    logged with its traceback and answered as a 500."""
    if isinstance(err, PollamaError):
        return status_of(err), err.message
    log.error("request failed", exc_info=err)
    return 500, str(err) or err.__class__.__name__
