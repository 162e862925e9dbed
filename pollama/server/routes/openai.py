"""The OpenAI-compatible API (spec B.1–B.4): ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models``. Each request runs on the answering service; its chunks become OpenAI's objects.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from pollama.compat import openai as oai
from pollama.compat import responses as oai_responses
from pollama.errors import PollamaError
from pollama.gocompat.timefmt import parse_rfc3339
from pollama.server.bodies import describe_validation_error, read_json
from pollama.server.connection import while_connected
from pollama.server.errors import status_of
from pollama.server.events import merged, named_event, started_chunks
from pollama.server.state import state
from pollama.server.streaming import STREAM_HEADERS
from pollama.service import Chunk
from pollama.service.embed import embed
from pollama.store.names import ModelName

router = APIRouter()

Route = TypeVar("Route", bound=Callable[..., Awaitable[Response]])


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(oai.error_body(status, message), status_code=status)


def _answers_errors(route: Route) -> Route:
    """Errors become OpenAI's error object with their status, so the SDK raises its typed exceptions."""

    @functools.wraps(route)
    async def answered(*args: Any, **kwargs: Any) -> Response:
        try:
            return await route(*args, **kwargs)
        except oai.OpenAIError as err:
            return _error(err.status, err.message)
        except ValidationError as err:
            return _error(400, describe_validation_error(err))
        except PollamaError as err:
            return _error(status_of(err), err.message)

    return answered  # type: ignore[return-value]


def _sse(events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"
        except PollamaError as err:
            yield b"data: " + json.dumps(oai.error_body(status_of(err), err.message)).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.post("/v1/chat/completions")
@_answers_errors
async def chat_completions(request: Request) -> Response:
    started = time.perf_counter_ns()
    conversion = oai.chat_request(await read_json(request))
    if not conversion.body.model:
        raise oai.OpenAIError(400, "model is required")
    service = state(request).service

    async def choice(index: int) -> AsyncIterator[Chunk]:
        body = conversion.body
        if index and body.options and "seed" in body.options:  # n choices from one seed would be n copies
            body = body.model_copy(update={"options": {**body.options, "seed": body.options["seed"] + index}})
        answer = await service.chat(
            body, started, forced_tools=conversion.forced_tools, runner_options=conversion.extra_options
        )
        return await started_chunks(request, answer)

    model = conversion.body.model
    first = await choice(0)

    async def another(index: int) -> AsyncIterator[Chunk]:
        async for chunk in await choice(index):
            yield chunk

    # The other choices start as they are read: each holds a runner slot until its answer is drained.
    streams = [first, *(another(index) for index in range(1, conversion.choices))]
    if not conversion.stream:
        collected: list[list[Chunk]] = [[] for _ in streams]
        async for index, chunk in merged(streams):
            collected[index].append(chunk)
        return JSONResponse(oai.chat_completion(model, collected))

    completion_id, created = oai.new_id("chatcmpl"), int(time.time())
    choices = [oai.ChatStream(model, completion_id, created, index) for index in range(len(streams))]

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for index, chunk in merged(streams):
            for event in choices[index].feed(chunk):
                yield event
        if conversion.include_usage:
            finals = [choice.final or Chunk() for choice in choices]
            usage = oai.usage_of(finals[0])
            for final in finals[1:]:
                usage["completion_tokens"] += oai.usage_of(final)["completion_tokens"]
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            yield choices[0].usage_chunk(usage)

    return _sse(events())


@router.post("/v1/responses")
@_answers_errors
async def responses(request: Request) -> Response:
    started = time.perf_counter_ns()
    conversion = oai_responses.response_request(await read_json(request))
    if not conversion.body.model:
        raise oai.OpenAIError(400, "model is required")
    answer = await state(request).service.chat(conversion.body, started, forced_tools=conversion.forced_tools)
    chunks = await started_chunks(request, answer)
    model = conversion.body.model
    if not conversion.stream:
        return JSONResponse(oai_responses.response_object(model, conversion.echo, [chunk async for chunk in chunks]))
    stream = oai_responses.ResponseStream(model, conversion.echo)

    async def events() -> AsyncIterator[bytes]:
        try:
            for event in stream.start():
                yield named_event(event["type"], event)
            async for chunk in chunks:
                for event in stream.feed(chunk):
                    yield named_event(event["type"], event)
        except PollamaError as err:
            failed = {**stream.shell, "status": "failed", "error": {"code": "server_error", "message": err.message}}
            failure = {"type": "response.failed", "sequence_number": stream.sequence, "response": failed}
            yield named_event("response.failed", failure)

    return StreamingResponse(events(), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.post("/v1/completions")
@_answers_errors
async def completions(request: Request) -> Response:
    started = time.perf_counter_ns()
    body, stream, include_usage = oai.completion_request(await read_json(request))
    chunks = await started_chunks(request, await state(request).service.generate(body, started))
    if not stream:
        return JSONResponse(oai.completion(body.model, [chunk async for chunk in chunks]))
    converter = oai.CompletionStream(body.model, include_usage)

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for chunk in chunks:
            for event in converter.feed(chunk):
                yield event

    return _sse(events())


@router.post("/v1/embeddings")
@_answers_errors
async def embeddings(request: Request) -> Response:
    started = time.perf_counter_ns()
    body, encoding = oai.embed_request(await read_json(request))
    result = await while_connected(request, embed(state(request).service, body, started))
    return JSONResponse(oai.embeddings_response(body.model, result, encoding))


def _unix(modified_at: str) -> int:
    return int(parse_rfc3339(modified_at).timestamp())


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    models = await run_in_threadpool(state(request).lister.list)
    data = [oai.model_object(m.name, _unix(m.modified_at), _namespace(m.name)) for m in models]
    return JSONResponse({"object": "list", "data": data or None})


def _namespace(name: str) -> str:
    return ModelName.parse(name).namespace


@router.get("/v1/models/{model}")
async def retrieve_model(request: Request, model: str) -> Response:
    models = await run_in_threadpool(state(request).lister.list)
    wanted = ModelName.parse(model)
    for entry in models:
        if ModelName.parse(entry.name).same_as(wanted):
            return JSONResponse(oai.model_object(model, _unix(entry.modified_at), wanted.namespace))
    return _error(404, f"model '{model}' not found")
