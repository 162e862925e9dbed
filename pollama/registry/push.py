"""Pushing a model: every blob the registry lacks, then the manifest (spec A.11, E.5 "Push").

Blobs go up as an upload session: ``POST .../blobs/uploads/`` (a cross-repository
mount when the layer names the model it came from), ``PATCH`` parts with
``Content-Range``, and ``PUT ?digest=``. A registry that answers a ``PATCH``
with ``307`` (registry.ollama.ai) gets that part ``PUT`` to the storage URL it
names, in parallel; a stock registry (``202``) takes the parts in order. The
manifest is pushed with the stored bytes, so its digest is the same on both sides.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pollama.registry.connection import Connection
from pollama.registry.errors import RegistryError
from pollama.registry.transfer import PROGRESS_INTERVAL, Part, TransferTuning, plan_parts, progress_event
from pollama.store import Layer, Manifest, Store
from pollama.store.layers import MANIFEST_MEDIA_TYPE
from pollama.store.names import ModelName

__all__ = ["push_model"]

_READ_SIZE = 1 << 20
_OCTETS = "application/octet-stream"

Event = dict[str, Any]


@dataclass
class _Upload:
    """One blob's upload session: where to send next, and how much of each part has gone."""

    connection: Connection
    digest: str
    path: Path
    parts: list[Part]
    location: httpx.URL
    tuning: TransferTuning
    sent: dict[int, int] = field(default_factory=dict)
    md5s: dict[int, bytes] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        return sum(self.sent.values())

    def body(self, part: Part) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            self.sent[part.n] = 0
            md5 = hashlib.md5(usedforsecurity=False)
            with self.path.open("rb") as handle:
                handle.seek(part.offset)
                remaining = part.size
                while remaining:
                    chunk = await asyncio.to_thread(handle.read, min(_READ_SIZE, remaining))
                    if not chunk:
                        raise RegistryError(f"blob {self.digest} is shorter than its manifest says")
                    remaining -= len(chunk)
                    md5.update(chunk)
                    self.sent[part.n] += len(chunk)
                    yield chunk
            self.md5s[part.n] = md5.digest()

        return chunks()

    def headers(self, part: Part, *, patch: bool) -> dict[str, str]:
        headers = {"Content-Type": _OCTETS, "Content-Length": str(part.size)}
        if patch:
            headers["X-Redirect-Uploads"] = "1"
            headers["Content-Range"] = f"{part.offset}-{part.stop - 1}"
        return headers

    async def run(self) -> None:
        stored: list[asyncio.Task[None]] = []
        limit = asyncio.Semaphore(self.tuning.max_parts)
        try:
            for part in self.parts:
                response = await self.connection.send(
                    "PATCH", self.location, headers=self.headers(part, patch=True),
                    body=functools.partial(self.body, part), allow=(307,),
                )  # fmt: skip
                upload_url = response.headers.get("docker-upload-location") or response.headers.get("location")
                if response.status_code == 307:
                    self.sent[part.n] = 0  # the registry took no bytes: they go to storage
                    storage = response.url.join(response.headers.get("location", ""))
                    stored.append(asyncio.create_task(self._to_storage(part, storage, limit)))
                if not upload_url:
                    raise RegistryError(f"{response.status_code}: upload answer without a Location")
                self.location = response.url.join(upload_url)
            await asyncio.gather(*stored)
        finally:
            for task in stored:
                task.cancel()
        await self._commit()

    async def _to_storage(self, part: Part, url: httpx.URL, limit: asyncio.Semaphore) -> None:
        async with limit:
            for attempt in range(self.tuning.max_retries):
                try:
                    response = await self.connection.http.put(
                        url, headers=self.headers(part, patch=False), content=self.body(part)
                    )
                    if response.status_code < 400:
                        return
                    error = f"{response.status_code}: {response.text.strip()}"
                except httpx.HTTPError as err:
                    error = str(err) or err.__class__.__name__
                self.sent[part.n] = 0
                await asyncio.sleep(self.tuning.retry_base_seconds * 2**attempt)
            raise RegistryError(f"max retries exceeded: {error}")

    async def _commit(self) -> None:
        etag = hashlib.md5(usedforsecurity=False)
        for part in self.parts:
            etag.update(self.md5s.get(part.n, b""))
        url = self.location.copy_merge_params({"digest": self.digest, "etag": f"{etag.hexdigest()}-{len(self.parts)}"})
        await self.connection.send(
            "PUT", url, headers={"Content-Type": _OCTETS, "Content-Length": "0"}, body=lambda: b""
        )


async def _push_blob(
    store: Store, connection: Connection, layer: Layer, tuning: TransferTuning
) -> AsyncIterator[Event]:
    head = await connection.send("HEAD", connection.url("blobs", layer.digest), allow=(404,))
    if head.status_code < 300:
        yield progress_event("pushing", layer.digest, layer.size, layer.size)
        return
    url = httpx.URL(connection.url("blobs", "uploads") + "/")
    if layer.source:
        url = url.copy_merge_params({"mount": layer.digest, "from": ModelName.parse(layer.source).repository})
    started = await connection.send("POST", url, headers={"Content-Length": "0"}, body=lambda: b"")
    if started.status_code == 201:
        yield progress_event("pushing", layer.digest, layer.size, layer.size)
        return
    location = started.headers.get("docker-upload-location") or started.headers.get("location")
    if not location:
        raise RegistryError(f"{started.status_code}: upload answer without a Location")
    path = store.blobs.path(layer.digest)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RegistryError(f'blob "{layer.digest}" not found') from None
    parts = plan_parts(size, tuning.part_size(size))
    upload = _Upload(connection, layer.digest, path, parts, started.url.join(location), tuning)
    task = asyncio.create_task(upload.run())
    try:
        while not task.done():
            await asyncio.wait([task], timeout=PROGRESS_INTERVAL)
            if not task.done():
                yield progress_event("pushing", layer.digest, size, upload.completed)
        task.result()
    finally:
        task.cancel()
    yield progress_event("pushing", layer.digest, size, size)


async def push_model(
    store: Store, name: ModelName, manifest: Manifest, connect: Callable[[], Connection], tuning: TransferTuning
) -> AsyncIterator[Event]:
    """Push ``manifest``, read from the store under ``name`` (so that a missing model is refused first)."""
    yield {"status": "retrieving manifest"}
    connection = connect()
    for layer in manifest.all_layers():
        async for event in _push_blob(store, connection, layer, tuning):
            yield event
    yield {"status": "pushing manifest"}
    await connection.send(
        "PUT", connection.url("manifests", name.tag),
        headers={"Content-Type": manifest.media_type or MANIFEST_MEDIA_TYPE}, body=lambda: manifest.raw,
    )  # fmt: skip
    yield {"status": "success"}
