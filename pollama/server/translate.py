"""Running a translated request through the native handlers: their NDJSON answer read back as objects.

The OpenAI and Anthropic routes build a native request, call the native handler, and re-encode
what it answers; these are the pieces they share.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Response
from fastapi.responses import StreamingResponse

from pollama.errors import Busy, Canceled, Failed, InvalidRequest, NotFound, PollamaError

__all__ = ["first_line", "merged", "named_event", "native_lines"]

_KINDS: dict[int, type[PollamaError]] = {400: InvalidRequest, 404: NotFound, 499: Canceled, 503: Busy}


def named_event(kind: str, data: dict[str, Any]) -> bytes:
    """One server-sent event with its name (``event: <kind>``), as the Responses and Anthropic APIs stream."""
    return f"event: {kind}\ndata: ".encode() + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


async def native_lines(response: Response) -> AsyncIterator[dict[str, Any]]:
    """The native handler's answer as objects; an error response or error line raises a domain error."""
    if not isinstance(response, StreamingResponse):
        data = json.loads(bytes(response.body))
        if response.status_code >= 400:
            raise _KINDS.get(response.status_code, Failed)(data.get("error", "error"))
        yield data
        return
    async for raw in response.body_iterator:
        for text in (raw if isinstance(raw, bytes) else raw.encode()).splitlines():
            if text.strip():
                line = json.loads(text)
                if "error" in line:
                    raise Failed(line["error"])
                yield line


async def first_line(lines: AsyncIterator[dict[str, Any]]) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]]:
    """The first line now (so errors before any output are HTTP errors), and the rest to come."""
    first = await anext(lines)

    async def rest() -> AsyncIterator[dict[str, Any]]:
        yield first
        async for line in lines:
            yield line

    return first, rest()


async def merged(streams: list[AsyncIterator[dict[str, Any]]]) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Lines of several answers as they come, tagged with their answer's index."""
    queue: asyncio.Queue[tuple[int, dict[str, Any] | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for line in stream:
                await queue.put((index, line))
            await queue.put((index, None))
        except BaseException as err:  # noqa: BLE001 - handed to the reader
            await queue.put((index, err))

    tasks = [asyncio.create_task(pump(index, stream)) for index, stream in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()

