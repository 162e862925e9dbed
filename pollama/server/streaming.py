"""NDJSON progress streams, with Ollama's rule for errors.

An error raised before the first line is written becomes a normal error
response with its status; after that it becomes a final ``{"error": ...}``
line (the status is already 200).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import Response, StreamingResponse

from pollama.server.errors import failure
from pollama.server.responses import JSON, error_response
from pollama.server.shutdown import Shutdown

__all__ = ["NDJSON", "STREAM_HEADERS", "progress_response"]

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
# Tells nginx (and proxies that copy it) to pass a stream on as it comes, whatever its buffering settings.
STREAM_HEADERS = {"X-Accel-Buffering": "no"}


def _line(item: dict[str, Any]) -> bytes:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


Combine = Callable[[list[dict[str, Any]]], dict[str, Any]]


def _last(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1] if events else {}


async def progress_response(
    events: AsyncIterator[dict[str, Any]], *, stream: bool, shutdown: Shutdown, combine: Combine = _last
) -> Response:
    """Answer with a stream of events, or (``stream=False``) with one object ``combine`` makes of them all.

    A server shutdown cuts the answer short after its grace period, with an error (``Shutdown``).
    """
    events = shutdown.bounded(events)
    if not stream:
        collected: list[dict[str, Any]] = []
        try:
            async for event in events:
                collected.append(event)
        except Exception as err:  # noqa: BLE001 - every failure becomes an error response
            return error_response(*failure(err))
        return JSON(combine(collected))

    try:
        first = await anext(events)
    except StopAsyncIteration:
        return Response(b"", media_type=NDJSON)
    except Exception as err:  # noqa: BLE001
        return error_response(*failure(err))

    async def body() -> AsyncIterator[bytes]:
        yield _line(first)
        try:
            async for event in events:
                yield _line(event)
        except Exception as err:  # noqa: BLE001
            yield _line({"error": failure(err)[1]})

    return StreamingResponse(body(), media_type=NDJSON, headers=STREAM_HEADERS)
