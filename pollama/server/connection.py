"""Answers that stop the moment their client goes away: the work is cancelled, the status is 499."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

from fastapi import Request

from pollama.errors import Canceled
from pollama.server.cutoff import interrupted
from pollama.service.running import first

__all__ = ["ClientGone", "until_disconnected", "while_connected"]

Result = TypeVar("Result")
Item = TypeVar("Item")


class ClientGone(Canceled):
    def __init__(self) -> None:
        super().__init__("request canceled")


def until_disconnected(request: Request, items: AsyncIterator[Item]) -> AsyncIterator[Item]:
    """Pass ``items`` through until the client disconnects; then close them (cancelling the work), 499."""
    return interrupted(items, lambda: _disconnected(request), ClientGone)


async def while_connected(request: Request, items: AsyncGenerator[Result]) -> Result:
    """The one item of ``items`` (a whole non-streamed answer) unless the client leaves first: then cancel it, 499."""

    async def single() -> AsyncIterator[Result]:
        yield await first(items)

    async for result in until_disconnected(request, single()):
        return result
    raise ClientGone


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
