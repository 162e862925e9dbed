"""``/api/tokenize`` and ``/api/detokenize`` — beyond Ollama (ollama#12031): the model's own tokenizer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pollama.api.native import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from pollama.server.bodies import read_body
from pollama.server.connection import while_connected
from pollama.server.responses import JSON
from pollama.server.state import state

router = APIRouter()


@router.post("/api/tokenize")
async def tokenize(request: Request) -> JSON:
    body = await read_body(request, TokenizeRequest)
    calls = state(request).service.on_runner(
        body.model,
        body.options,
        body.keep_alive,
        lambda runner: runner.tokenize(body.content, add_special=body.add_special),
    )
    tokens = await while_connected(request, calls)
    return JSON(TokenizeResponse(model=body.model, tokens=tokens).dump())


@router.post("/api/detokenize")
async def detokenize(request: Request) -> JSON:
    body = await read_body(request, DetokenizeRequest)
    calls = state(request).service.on_runner(
        body.model, body.options, body.keep_alive, lambda runner: runner.detokenize(body.tokens)
    )
    content = await while_connected(request, calls)
    return JSON(DetokenizeResponse(model=body.model, content=content).dump())
