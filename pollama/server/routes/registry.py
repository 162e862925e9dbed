"""``/api/pull`` and ``/api/push`` (spec A.11): registry transfers reported as NDJSON progress."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response

from pollama.api.native import PullRequest, PushRequest
from pollama.errors import APIError
from pollama.names import ConflictingModelSource, ModelName, parse_model_ref
from pollama.registry import RegistryError, pull_model, push_model
from pollama.server.bodies import read_body
from pollama.server.state import ServerState, state
from pollama.server.streaming import progress_response

router = APIRouter()


async def _reported(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Registry failures become error lines with Ollama's wording; nothing else is expected."""
    try:
        async for event in events:
            yield event
    except RegistryError as err:
        raise APIError(500, err.message) from None
    except OSError as err:
        raise APIError(500, f"{err.filename}: {err.strerror}" if err.filename else str(err)) from None


def _pull_name(server: ServerState, text: str) -> ModelName:
    try:
        name = parse_model_ref(text)
    except ConflictingModelSource as err:
        raise APIError(400, str(err)) from None
    except ValueError:
        raise APIError(400, "invalid model name") from None
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

    return await progress_response(_reported(events()), stream=body.stream is not False)


@router.post("/api/push")
async def push(request: Request) -> Response:
    body = await read_body(request, PushRequest)
    requested = body.model or body.name
    if not requested:
        raise APIError(400, "model is required")
    server = state(request)

    async def events() -> AsyncIterator[dict[str, Any]]:
        name = server.store.manifests.resolve(ModelName.parse(requested))
        if not name.is_valid():
            raise RegistryError("invalid model name")
        connect = functools.partial(server.registry.connect, name, insecure=body.insecure)
        async for event in push_model(server.store, name, connect, server.downloads.tuning):
            yield event

    return await progress_response(_reported(events()), stream=body.stream is not False)
