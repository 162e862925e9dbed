"""``/api/embed`` (normalized, batched) and the legacy ``/api/embeddings``."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request

from pollama.api.native import EmbeddingsRequest, EmbeddingsResponse, EmbedRequest, EmbedResponse
from pollama.errors import Failed, InvalidRequest
from pollama.runtime.process import RunnerProcess
from pollama.server.bodies import read_body
from pollama.server.inference import (
    find_model,
    first,
    keep_alive_of,
    on_runner,
    retry_after_crash,
    use_runner,
    while_connected,
)
from pollama.server.responses import JSON
from pollama.server.state import state

router = APIRouter()


def _not_found(name: str) -> str:
    return f'model "{name}" not found, try pulling it first'


def _inputs(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidRequest("invalid input type")


def normalize(vector: list[float]) -> list[float]:
    """Scale to unit length; Ollama refuses vectors with NaN or Inf rather than return them."""
    if not all(math.isfinite(value) for value in vector):
        raise Failed("embedding contains NaN or Inf values")
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm > 0 else list(vector)


@router.post("/api/embed")
async def embed(request: Request) -> JSON:
    started = time.perf_counter_ns()
    return await run_embed(request, await read_body(request, EmbedRequest), started)


async def run_embed(request: Request, body: EmbedRequest, started: int) -> JSON:
    """Embed the request's inputs; also behind ``/v1/embeddings``."""
    st = state(request)
    inputs = _inputs(body.input)
    if not body.model:
        raise InvalidRequest("model is required")
    model = await find_model(st, body.model, missing=_not_found(body.model))
    keep_alive = keep_alive_of(body.keep_alive)

    async def run() -> AsyncGenerator[tuple[int, list[dict[str, Any]]]]:
        async with use_runner(st, model, body.options, keep_alive) as (runner, _resolved):
            load_ns = time.perf_counter_ns() - started
            truncate = body.truncate is not False
            jobs = (runner.process.embed(text, truncate=truncate) for text in inputs)
            yield load_ns, list(await asyncio.gather(*jobs))

    load_ns, results = await while_connected(request, first(retry_after_crash(run)))
    if not inputs:
        return JSON(EmbedResponse(model=body.model, embeddings=[]).dump())
    embeddings = []
    for result in results:
        vector = normalize(result["embedding"])
        if body.dimensions and 0 < body.dimensions < len(vector):
            vector = normalize(vector[: body.dimensions])
        embeddings.append(vector)
    response = EmbedResponse(
        model=body.model,
        embeddings=embeddings,
        total_duration=time.perf_counter_ns() - started,
        load_duration=load_ns,
        prompt_eval_count=sum(result["prompt_eval_count"] for result in results),
    )
    return JSON(response.dump())


@router.post("/api/embeddings")
async def embeddings(request: Request) -> JSON:
    body = await read_body(request, EmbeddingsRequest)

    async def embed_prompt(runner: RunnerProcess) -> list[float]:
        return (await runner.embed(body.prompt))["embedding"] if body.prompt else []

    vector = await on_runner(request, body, embed_prompt, missing=_not_found(body.model), input_errors_fail=True)
    return JSON(EmbeddingsResponse(embedding=vector).dump())
