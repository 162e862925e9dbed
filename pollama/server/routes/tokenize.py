"""``/api/tokenize`` and ``/api/detokenize`` — beyond Ollama (ollama#12031): the model's own tokenizer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from pollama.api.native import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from pollama.errors import APIError
from pollama.runtime.process import RunnerError
from pollama.server.bodies import read_body
from pollama.server.inference import find_model, keep_alive_of, use_runner
from pollama.server.responses import JSON
from pollama.server.state import state

router = APIRouter()


@router.post("/api/tokenize")
async def tokenize(request: Request) -> JSON:
    body = await read_body(request, TokenizeRequest)
    st = state(request)
    if not body.model:
        raise APIError(400, "model is required")
    model = await find_model(st, body.model)
    async with use_runner(st, model, body.options, keep_alive_of(body.keep_alive)) as (runner, _resolved):
        try:
            tokens = await runner.process.tokenize(body.content, add_special=body.add_special)
        except RunnerError as error:
            raise APIError(error.status, error.message) from None
    return JSON(TokenizeResponse(model=body.model, tokens=tokens).dump())


@router.post("/api/detokenize")
async def detokenize(request: Request) -> JSON:
    body = await read_body(request, DetokenizeRequest)
    st = state(request)
    if not body.model:
        raise APIError(400, "model is required")
    model = await find_model(st, body.model)
    async with use_runner(st, model, body.options, keep_alive_of(body.keep_alive)) as (runner, _resolved):
        try:
            content = await runner.process.detokenize(body.tokens)
        except RunnerError as error:
            raise APIError(error.status, error.message) from None
    return JSON(DetokenizeResponse(model=body.model, content=content).dump())
