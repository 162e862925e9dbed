"""Ending a stream of items early when something outside it happens (a client leaves, the server stops)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

__all__ = ["interrupted"]

Item = TypeVar("Item")


async def interrupted(
    items: AsyncIterator[Item], trigger: Callable[[], Awaitable[None]], error: Callable[[], Exception]
) -> AsyncIterator[Item]:
    """Pass ``items`` through until ``trigger()`` completes; then close them, cancelling the work, and raise.

    One watcher task per stream cancels whichever task is waiting for the next item — the handler
    while the first line or a whole answer is pending, the response while it streams — so the work
    stops at once, even mid-prompt. No per-item tasks: this sits on every token's path.
    """
    waiting: asyncio.Task[object] | None = None
    fired = False

    async def watch() -> None:
        nonlocal fired
        await trigger()
        fired = True
        if waiting is not None:
            waiting.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        while not fired:
            waiting = asyncio.current_task()
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if fired and waiting is not None:
                    waiting.uncancel()
                    raise error() from None
                raise
            finally:
                waiting = None
            yield item
        raise error()
    finally:
        watcher.cancel()
        with contextlib.suppress(RuntimeError):
            await items.aclose()  # type: ignore[attr-defined]
