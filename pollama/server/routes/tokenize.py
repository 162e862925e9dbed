"""``/api/tokenize`` and ``/api/detokenize`` — beyond Ollama (ollama#12031): the model's own tokenizer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pollama.api.native import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from pollama.server.bodies import read_body
from pollama.server.inference import on_runner
from pollama.server.responses import JSON

router = APIRouter()


@router.post("/api/tokenize")
async def tokenize(request: Request) -> JSON:
    body = await read_body(request, TokenizeRequest)
    tokens = await on_runner(request, body, lambda runner: runner.tokenize(body.content, add_special=body.add_special))
    return JSON(TokenizeResponse(model=body.model, tokens=tokens).dump())


@router.post("/api/detokenize")
async def detokenize(request: Request) -> JSON:
    body = await read_body(request, DetokenizeRequest)
    content = await on_runner(request, body, lambda runner: runner.detokenize(body.tokens))
    return JSON(DetokenizeResponse(model=body.model, content=content).dump())
