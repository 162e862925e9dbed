"""Anthropic's Messages API (spec B.7): ``POST /v1/messages``, run on the answering service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from pollama.compat import anthropic
from pollama.errors import PollamaError
from pollama.model.capabilities import capabilities_of
from pollama.server.bodies import describe_validation_error, read_json
from pollama.server.errors import status_of
from pollama.server.events import named_event, started_chunks
from pollama.server.state import state
from pollama.server.streaming import STREAM_HEADERS

router = APIRouter()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(anthropic.error_body(status, message), status_code=status)


@router.post("/v1/messages")
async def messages(request: Request) -> Response:
    started = time.perf_counter_ns()
    service = state(request).service
    try:
        conversion = anthropic.message_request(await read_json(request))
        body = conversion.body
        if conversion.wants_thinking:
            model = await service.find_model(body.model)
            if "thinking" not in capabilities_of(model):  # Anthropic clients ask every model to think
                body = body.model_copy(update={"think": None})
        answer = await service.chat(body, started, forced_tools=conversion.forced_tools)
        chunks = await started_chunks(request, answer)
        if not conversion.stream:
            return JSONResponse(anthropic.message(body.model, [chunk async for chunk in chunks]))
    except anthropic.AnthropicError as err:
        return _error(err.status, err.message)
    except ValidationError as err:
        return _error(400, describe_validation_error(err))
    except PollamaError as err:
        return _error(status_of(err), err.message)

    stream = anthropic.MessageStream(body.model)

    async def events() -> AsyncIterator[bytes]:
        for kind, data in stream.start():
            yield named_event(kind, data)
        try:
            async for chunk in chunks:
                for kind, data in stream.feed(chunk):
                    yield named_event(kind, data)
        except PollamaError as err:
            yield named_event("error", anthropic.error_body(status_of(err), err.message))

    return StreamingResponse(events(), media_type="text/event-stream", headers=STREAM_HEADERS)
