"""Creating models: ``/api/blobs/:digest`` uploads and ``/api/create`` (spec A.5, A.6).

Uploads no model uses yet are remembered (``pollama.store.uploads``): a create claims those it
names while it runs, and removes them when it fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from pollama.api.native import CreateRequest
from pollama.errors import InvalidRequest
from pollama.model.create import create_model, named_blobs, validate_create_request
from pollama.server.bodies import read_body
from pollama.server.responses import error_response
from pollama.server.state import ServerState, state
from pollama.server.streaming import progress_response
from pollama.store import DigestMismatch, InvalidDigest, normalize_digest
from pollama.store.blobs import BlobStore

router = APIRouter()

_WRITE_BATCH = 4 << 20  # hand the disk work to a thread in 4 MiB pieces


def _checked_digest(digest: str) -> str:
    try:
        return normalize_digest(digest)
    except InvalidDigest as err:
        raise InvalidRequest(str(err)) from None


@router.head("/api/blobs/{digest}")
async def blob_exists(request: Request, digest: str) -> Response:
    _checked_digest(digest)
    store = state(request).store
    if not store.blobs.exists(digest):
        return error_response(404, f'blob "{digest}" not found')
    store.uploads.asked(digest)
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def upload_blob(request: Request, digest: str) -> Response:
    _checked_digest(digest)
    server = state(request)
    store = server.store
    if not server.settings.noprune:
        await store.uploads.remove_stale(store)
    if store.blobs.exists(digest):
        store.uploads.arrived(digest)
        return Response(status_code=200)
    with store.uploads.receiving():
        status = await _receive(request, store.blobs, digest)
    if status == 201:
        store.uploads.arrived(digest)
    return Response(status_code=status)


async def _receive(request: Request, blobs: BlobStore, digest: str) -> int:
    """Write the request body as the blob ``digest``; the status to answer with."""
    writer = await run_in_threadpool(blobs.writer)
    try:
        pending: list[bytes] = []
        pending_size = 0
        async for chunk in request.stream():
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _WRITE_BATCH:
                await run_in_threadpool(writer.write, b"".join(pending))
                pending, pending_size = [], 0
        await run_in_threadpool(writer.write, b"".join(pending))
        await run_in_threadpool(writer.commit, digest)
    except DigestMismatch as err:
        raise InvalidRequest(str(err)) from None
    except ClientDisconnect:
        return 499
    finally:
        writer.abort()
    return 201


@router.post("/api/create")
async def create(request: Request) -> Response:
    body = await read_body(request, CreateRequest)
    server = state(request)
    return await progress_response(_create(body, server), stream=body.stream is not False, shutdown=server.shutdown)


async def _create(body: CreateRequest, server: ServerState) -> AsyncIterator[dict[str, Any]]:
    """The create's progress; a failure before the first event is answered with its own status."""
    store = server.store
    prune = not server.settings.noprune
    if prune:
        await store.uploads.remove_stale(store)
    claim = store.uploads.claim(named_blobs(body))
    try:
        target = validate_create_request(body, store)
        async for event in create_model(body, target, store, prune=prune):
            yield event
    except BaseException:
        store.uploads.release(claim, used=False)
        if prune:
            await store.uploads.remove_abandoned(store, claim)
        raise
    store.uploads.release(claim, used=True)
