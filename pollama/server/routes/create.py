"""Creating models: ``/api/blobs/:digest`` uploads and ``/api/create`` (spec A.5, A.6)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from pollama.api.native import CreateRequest
from pollama.create import create_model, validate_create_request
from pollama.errors import APIError
from pollama.server.bodies import read_body
from pollama.server.responses import error_response
from pollama.server.state import state
from pollama.server.streaming import progress_response
from pollama.store import DigestMismatch, InvalidDigest, normalize_digest

router = APIRouter()

_WRITE_BATCH = 4 << 20  # hand the disk work to a thread in 4 MiB pieces


def _checked_digest(digest: str) -> str:
    try:
        return normalize_digest(digest)
    except InvalidDigest as err:
        raise APIError(400, str(err)) from None


@router.head("/api/blobs/{digest}")
async def blob_exists(request: Request, digest: str) -> Response:
    _checked_digest(digest)
    if not state(request).store.blobs.exists(digest):
        return error_response(404, f'blob "{digest}" not found')
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def upload_blob(request: Request, digest: str) -> Response:
    _checked_digest(digest)
    blobs = state(request).store.blobs
    if blobs.exists(digest):
        return Response(status_code=200)
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
        raise APIError(400, str(err)) from None
    except ClientDisconnect:
        return Response(status_code=499)
    finally:
        writer.abort()
    return Response(status_code=201)


@router.post("/api/create")
async def create(request: Request) -> Response:
    body = await read_body(request, CreateRequest)
    server = state(request)
    target = validate_create_request(body, server.store)
    events = create_model(body, target, server.store, prune=not server.settings.noprune)
    return await progress_response(events, stream=body.stream is not False)
