"""Blobs uploaded through ``/api/blobs`` that no model uses yet, so that a failed create leaves none.

``pollama create`` uploads a model's files, then asks for the model. Start-up pruning spares blobs
younger than an hour (they may be such uploads), so a failed create's uploads would stay until a
restart an hour later. Instead the server remembers what it received, and removes:

* right after a create fails, the uploads it named;
* once no upload has been received for ``UNCLAIMED_SECONDS``, the uploads no create has claimed.

An upload is spared while a create in flight names it, and by a failed create when someone sent it
again or asked for it (``HEAD``) after that create began: they may be about to use it. Removal holds
the store lock, under which manifests are written, and reads the manifests again there: a blob a
model uses is never removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pollama.store.blobs import InvalidDigest, normalize_digest
from pollama.store.gc import remove_unreferenced

if TYPE_CHECKING:
    from pollama.store import Store

__all__ = ["UNCLAIMED_SECONDS", "Claim", "Uploads"]

log = logging.getLogger(__name__)

# Long enough for someone to upload by hand and then write the create request.
UNCLAIMED_SECONDS = 15 * 60


@dataclass(frozen=True)
class Claim:
    """The uploaded blobs one create names, and when it began."""

    digests: frozenset[str]
    began: float


class Uploads:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}  # normalized digest -> when last sent or asked about
        self._claims: Counter[str] = Counter()
        self._receiving = 0
        self._quiet_since = clock()
        self._removals: set[asyncio.Task[None]] = set()

    @contextlib.contextmanager
    def receiving(self) -> Iterator[None]:
        """Around an upload's transfer: while one runs (a model's next file), no upload is stale."""
        self._receiving += 1
        try:
            yield
        finally:
            self._receiving -= 1
            self._quiet_since = self._clock()

    def arrived(self, digest: str) -> None:
        """A blob was uploaded, or sent again while present: remember it until a create uses it."""
        self._seen[normalize_digest(digest)] = self._clock()

    def asked(self, digest: str) -> None:
        """Someone checked that a blob is there, to use it: a create failing now must spare it."""
        key = normalize_digest(digest)
        if key in self._seen:
            self._seen[key] = self._clock()

    def claim(self, digests: Iterable[str]) -> Claim:
        """Mark the blobs a create names as in use by it, until ``release``."""
        claimed = set()
        for digest in digests:
            with contextlib.suppress(InvalidDigest):  # the create itself refuses it
                claimed.add(normalize_digest(digest))
        self._claims.update(claimed)
        return Claim(frozenset(claimed), self._clock())

    def release(self, claim: Claim, *, used: bool) -> None:
        """The create is over; ``used``: it succeeded, so its manifest now keeps those blobs."""
        self._claims.subtract(claim.digests)
        self._claims = +self._claims  # drop the zero counts
        if used:
            for digest in claim.digests:
                self._seen.pop(digest, None)

    async def remove_abandoned(self, store: Store, claim: Claim) -> None:
        """After a failed (released) create: remove the uploads it named that nobody else may want."""

        def abandoned() -> list[str]:
            return [
                digest
                for digest in claim.digests
                if digest in self._seen and self._seen[digest] <= claim.began and not self._claims[digest]
            ]

        await self._remove(store, abandoned)

    async def remove_stale(self, store: Store) -> None:
        """Remove the uploads no create has claimed since uploads went quiet ``UNCLAIMED_SECONDS`` ago."""
        if self._stale():
            await self._remove(store, self._stale)

    def _stale(self) -> list[str]:
        cutoff = self._clock() - UNCLAIMED_SECONDS
        if self._receiving or self._quiet_since > cutoff:
            return []
        return [digest for digest, seen in self._seen.items() if seen <= cutoff and not self._claims[digest]]

    async def _remove(self, store: Store, choose: Callable[[], list[str]]) -> None:
        # A task of its own, so that it completes even when a client's disconnect cancels the create.
        task = asyncio.ensure_future(self._remove_locked(store, choose))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)
        await asyncio.shield(task)

    async def _remove_locked(self, store: Store, choose: Callable[[], list[str]]) -> None:
        async with store.lock:
            # Chosen and removed without yielding to the event loop, so no create claims one meanwhile.
            digests = choose()
            if not digests:
                return
            removed = remove_unreferenced(store, digests)
            if removed is None:
                log.warning("keeping %d unused uploaded blobs: a manifest is corrupt", len(digests))
                return
            for digest in digests:
                self._seen.pop(digest, None)  # removed, or used by a model now
            if removed:
                log.info("removed %d uploaded blobs no model uses", len(removed))
