"""The OpenAI-compatible API (spec B.1–B.4): ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models``. Each request runs through the native handler and is re-encoded.
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
from pollama.model.names import ModelName
from pollama.server.bodies import describe_validation_error, read_json
from pollama.server.errors import status_of
from pollama.server.routes.embed import run_embed
from pollama.server.routes.generate import run_chat, run_generate
from pollama.server.state import state
from pollama.server.translate import first_line, merged, named_event, native_lines

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

    return StreamingResponse(body(), media_type="text/event-stream")


@router.post("/v1/chat/completions")
@_answers_errors
async def chat_completions(request: Request) -> Response:
    started = time.perf_counter_ns()
    conversion = oai.chat_request(await read_json(request))
    if not conversion.body.model:
        raise oai.OpenAIError(400, "model is required")
    native = await run_chat(
        request, conversion.body, started, forced_tools=conversion.forced_tools, **conversion.extra_options
    )
    _first_line, first = await first_line(native_lines(native))
    model = conversion.body.model

    async def another(index: int) -> AsyncIterator[dict[str, Any]]:
        body = conversion.body
        if body.options and "seed" in body.options:  # n choices from one seed would be n copies
            body = body.model_copy(update={"options": {**body.options, "seed": body.options["seed"] + index}})
        answer = await run_chat(
            request, body, started, forced_tools=conversion.forced_tools, **conversion.extra_options
        )
        async for line in native_lines(answer):
            yield line

    # The other choices start as they are read: each holds a runner slot until its answer is drained.
    streams = [first, *(another(index) for index in range(1, conversion.choices))]
    if not conversion.stream:
        collected: list[list[dict[str, Any]]] = [[] for _ in streams]
        async for index, line in merged(streams):
            collected[index].append(line)
        return JSONResponse(oai.chat_completion(model, collected))

    completion_id, created = oai.new_id("chatcmpl"), int(time.time())
    choices = [oai.ChatStream(model, completion_id, created, index) for index in range(len(streams))]

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for index, line in merged(streams):
            for chunk in choices[index].feed(line):
                yield chunk
        if conversion.include_usage:
            finals = [choice.final or {} for choice in choices]
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
    native = await run_chat(request, conversion.body, started, forced_tools=conversion.forced_tools)
    _first_line, lines = await first_line(native_lines(native))
    model = conversion.body.model
    if not conversion.stream:
        return JSONResponse(oai_responses.response_object(model, conversion.echo, [line async for line in lines]))
    stream = oai_responses.ResponseStream(model, conversion.echo)

    async def events() -> AsyncIterator[bytes]:
        try:
            for event in stream.start():
                yield named_event(event["type"], event)
            async for line in lines:
                for event in stream.feed(line):
                    yield named_event(event["type"], event)
        except PollamaError as err:
            failed = {**stream.shell, "status": "failed", "error": {"code": "server_error", "message": err.message}}
            failure = {"type": "response.failed", "sequence_number": stream.sequence, "response": failed}
            yield named_event("response.failed", failure)

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/v1/completions")
@_answers_errors
async def completions(request: Request) -> Response:
    started = time.perf_counter_ns()
    body, stream, include_usage = oai.completion_request(await read_json(request))
    native = await run_generate(request, body, started)
    first, lines = await first_line(native_lines(native))
    if not stream:
        return JSONResponse(oai.completion(body.model, [line async for line in lines]))
    converter = oai.CompletionStream(body.model, include_usage)

    async def events() -> AsyncIterator[dict[str, Any]]:
        async for line in lines:
            for chunk in converter.feed(line):
                yield chunk

    return _sse(events())


@router.post("/v1/embeddings")
@_answers_errors
async def embeddings(request: Request) -> Response:
    started = time.perf_counter_ns()
    body, encoding = oai.embed_request(await read_json(request))
    native = await run_embed(request, body, started)
    return JSONResponse(oai.embeddings_response(body.model, json.loads(bytes(native.body)), encoding))


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
