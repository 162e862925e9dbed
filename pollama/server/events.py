"""What the OpenAI and Anthropic routes share when they stream the service's chunks as events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import Request

from pollama.server.connection import until_disconnected
from pollama.server.state import state
from pollama.service import Answer, Chunk

__all__ = ["merged", "named_event", "started_chunks"]

Item = TypeVar("Item")


def named_event(kind: str, data: dict[str, Any]) -> bytes:
    """One server-sent event with its name (``event: <kind>``), as the Responses and Anthropic APIs stream."""
    return f"event: {kind}\ndata: ".encode() + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


async def started_chunks(request: Request, answer: Answer) -> AsyncIterator[Chunk]:
    """The answer's chunks, its first one already read (so errors before any output are HTTP errors),
    cut short when the client leaves or the server shuts down."""
    chunks = state(request).shutdown.bounded(until_disconnected(request, answer.chunks))
    first = await anext(chunks)

    async def rest() -> AsyncIterator[Chunk]:
        yield first
        async for chunk in chunks:
            yield chunk

    return rest()


async def merged(streams: list[AsyncIterator[Item]]) -> AsyncIterator[tuple[int, Item]]:
    """Items of several streams as they come, tagged with their stream's index."""
    queue: asyncio.Queue[tuple[int, Item | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[Item]) -> None:
        try:
            async for item in stream:
                await queue.put((index, item))
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
