"""Pulling a model: manifest, missing blobs, then the manifest written last (spec A.11).

Progress events are Ollama's: ``pulling manifest``, ``pulling <12 hex>`` with
digest/total/completed every 60 ms, ``verifying sha256 digest``, ``writing
manifest``, ``removing unused layers`` (only when the replaced manifest had
layers the new one drops) and ``success``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pollama.registry.connection import Connection
from pollama.registry.errors import RegistryError
from pollama.registry.transfer import PROGRESS_INTERVAL, BlobDownload, Downloads, progress_event
from pollama.store import CorruptManifest, InvalidDigest, Manifest, MediaType, Store, gc, normalize_digest
from pollama.store.names import ModelName

__all__ = ["MANIFEST_ACCEPT", "fetch_manifest", "pull_model"]

MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"

Event = dict[str, Any]


async def fetch_manifest(connection: Connection) -> Manifest:
    """The registry's manifest for the name's tag, with its bytes kept verbatim."""
    response = await connection.send(
        "GET", connection.url("manifests", connection.name.tag), headers={"Accept": MANIFEST_ACCEPT}
    )
    try:
        return Manifest.parse(response.content)
    except CorruptManifest as err:
        raise RegistryError(f"invalid manifest: {err}") from None


async def _follow(download: BlobDownload, digest: str) -> AsyncIterator[Event]:
    while not download.done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(download.done.wait(), PROGRESS_INTERVAL)
        if download.total and not download.done.is_set():
            yield progress_event("pulling", digest, download.total, download.completed)
    if download.error is not None:
        raise download.error
    yield progress_event("pulling", digest, download.total, download.total)


async def pull_model(
    store: Store, name: ModelName, connection: Connection, downloads: Downloads, *, prune: bool
) -> AsyncIterator[Event]:
    previous = set(store.manifests.layer_digests(name))
    yield {"status": "pulling manifest"}
    try:
        manifest = await fetch_manifest(connection)
    except RegistryError as err:
        raise RegistryError(f"pull model manifest: {err}") from None
    layers = manifest.all_layers()
    if any(layer.media_type == MediaType.TENSOR for layer in layers):
        raise RegistryError("this model requires MLX support, but the MLX runtime is not available")
    for layer in layers:
        try:
            normalize_digest(layer.digest)
        except InvalidDigest:
            raise RegistryError(f"{connection.name.repository}: invalid layer digest {layer.digest!r}") from None

    for layer in layers:
        if store.blobs.exists(layer.digest):
            size = store.blobs.size(layer.digest)
            yield progress_event("pulling", layer.digest, size, size)
            continue
        download = downloads.join(store.blobs, layer.digest, connection)
        try:
            async for event in _follow(download, layer.digest):
                yield event
        finally:
            download.release()

    # Every downloaded blob was hashed before it was renamed into place.
    yield {"status": "verifying sha256 digest"}
    yield {"status": "writing manifest"}
    async with store.lock:
        missing = [layer.digest for layer in layers if not store.blobs.exists(layer.digest)]
        if missing:
            raise RegistryError(f"blob {missing[0]} was removed during the pull; pull again")
        await asyncio.to_thread(store.manifests.write, name, manifest)
    unused = previous - {layer.digest for layer in layers}
    if prune and unused:
        yield {"status": "removing unused layers"}
        async with store.lock:
            await asyncio.to_thread(gc.remove_unused, store, unused)
    yield {"status": "success"}
