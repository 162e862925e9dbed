"""``/api/pull`` and ``/api/push`` (spec A.11): registry transfers reported as NDJSON progress.

What the client got wrong (a bad name, a model that is not here to push) is answered with its own
status before any progress; registry failures come after, as Ollama words them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from pollama.api.native import PullRequest, PushRequest
from pollama.errors import Failed, InvalidRequest, NotFound, os_error_reason
from pollama.gocompat.gostrconv import quote as go_quote
from pollama.registry import RegistryError, pull_model, push_model
from pollama.server.bodies import read_body
from pollama.server.state import ServerState, state
from pollama.server.streaming import progress_response
from pollama.store import CorruptManifest, Manifest
from pollama.store.names import ConflictingModelSource, ModelName, parse_model_ref

router = APIRouter()

log = logging.getLogger(__name__)


async def _reported(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Registry failures become error lines with Ollama's wording; nothing else is expected."""
    try:
        async for event in events:
            yield event
    except RegistryError as err:
        raise Failed(err.message) from None
    except OSError as err:
        log.warning("registry transfer failed: %s", err)  # the path is for the log, not the client
        raise Failed(os_error_reason(err)) from None


def _pull_name(server: ServerState, text: str) -> ModelName:
    try:
        name = parse_model_ref(text)
    except ConflictingModelSource as err:
        raise InvalidRequest(str(err)) from None
    except ValueError:
        raise InvalidRequest("invalid model name") from None
    return server.store.manifests.resolve(name)


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    body = await read_body(request, PullRequest)
    server = state(request)
    name = _pull_name(server, body.model or body.name)

    async def events() -> AsyncIterator[dict[str, Any]]:
        connection = server.registry.connect(name, insecure=body.insecure)
        async for event in pull_model(
            server.store, name, connection, server.downloads, prune=not server.settings.noprune
        ):
            yield event

    return await progress_response(_reported(events()), stream=body.stream is not False, shutdown=server.shutdown)


def _local_manifest(server: ServerState, name: ModelName, requested: str) -> Manifest:
    try:
        return server.store.manifests.read(name).manifest
    except FileNotFoundError:
        raise NotFound(f"model {go_quote(requested)} not found") from None
    except CorruptManifest as err:
        raise Failed(str(err)) from None
    except OSError as err:
        log.warning("couldn't read the manifest of %s: %s", requested, err)
        raise Failed(f"read manifest: {os_error_reason(err)}") from None


@router.post("/api/push")
async def push(request: Request) -> Response:
    body = await read_body(request, PushRequest)
    requested = body.model or body.name
    if not requested:
        raise InvalidRequest("model is required")
    server = state(request)
    name = ModelName.parse(requested)
    if not name.is_valid():
        raise InvalidRequest("invalid model name")
    name = server.store.manifests.resolve(name)
    manifest = await run_in_threadpool(_local_manifest, server, name, requested)
    connect = functools.partial(server.registry.connect, name, insecure=body.insecure)
    events = push_model(server.store, name, manifest, connect, server.downloads.tuning)
    return await progress_response(_reported(events), stream=body.stream is not False, shutdown=server.shutdown)
