"""What a stream does when the server is told to stop (SIGTERM, SIGINT).

Answers in flight get ``grace`` seconds to finish; one that does not ends with an error line
(a non-streamed one with a 503) before the server closes its connection, so a client never sees a
stream that just stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from pollama.errors import Busy
from pollama.server.cutoff import interrupted

__all__ = ["GRACE", "SHUTTING_DOWN", "Shutdown"]

Item = TypeVar("Item")

SHUTTING_DOWN = "the server is shutting down"
GRACE = 5.0  # seconds an answer in flight may still take once a shutdown began


class Shutdown:
    def __init__(self, grace: float = GRACE) -> None:
        self.grace = grace
        self._begun = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the server runs on; ``begin`` may then be called from a signal handler."""
        self._loop = loop

    def begin(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._begun.set)

    @property
    def begun(self) -> bool:
        return self._begun.is_set()

    def bounded(self, items: AsyncIterator[Item]) -> AsyncIterator[Item]:
        """``items`` until the grace period after a shutdown began; then ``Busy``."""
        return interrupted(items, self._grace_over, lambda: Busy(SHUTTING_DOWN))

    async def _grace_over(self) -> None:
        await self._begun.wait()
        await asyncio.sleep(self.grace)
