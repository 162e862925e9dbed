"""``/api/embed`` (normalized, batched) and the legacy ``/api/embeddings``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from pollama.api.native import EmbeddingsRequest, EmbeddingsResponse, EmbedRequest, EmbedResponse
from pollama.runner.messages import EmbedResult
from pollama.runtime.process import RunnerProcess
from pollama.server.bodies import read_body
from pollama.server.connection import while_connected
from pollama.server.responses import JSON
from pollama.server.state import state
from pollama.service.embed import embed as embed_inputs
from pollama.service.embed import not_found

router = APIRouter()


@router.post("/api/embed")
async def embed(request: Request) -> JSON:
    started = time.perf_counter_ns()
    body = await read_body(request, EmbedRequest)
    result = await while_connected(request, embed_inputs(state(request).service, body, started))
    if not result.vectors:
        return JSON(EmbedResponse(model=body.model, embeddings=[]).dump())
    response = EmbedResponse(
        model=body.model,
        embeddings=result.vectors,
        total_duration=result.total_duration,
        load_duration=result.load_duration,
        prompt_eval_count=result.prompt_eval_count,
    )
    return JSON(response.dump())


@router.post("/api/embeddings")
async def embeddings(request: Request) -> JSON:
    body = await read_body(request, EmbeddingsRequest)

    async def embed_prompt(runner: RunnerProcess) -> EmbedResult | None:
        return await runner.embed(body.prompt) if body.prompt else None

    calls = state(request).service.on_runner(
        body.model, body.options, body.keep_alive, embed_prompt, missing=not_found(body.model), input_errors_fail=True,
        prompt_tokens=lambda result: result.prompt_eval_count if result is not None else 0,
    )  # fmt: skip
    result = await while_connected(request, calls)
    return JSON(EmbeddingsResponse(embedding=list(result.embedding) if result is not None else []).dump())
