"""``/api/generate`` and ``/api/chat``: the service's chunks framed as Ollama's NDJSON lines."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from pollama.api.native import ChatRequest, ChatResponse, GenerateRequest, GenerateResponse
from pollama.gocompat.timefmt import rfc3339_nano
from pollama.server.bodies import read_body
from pollama.server.connection import until_disconnected
from pollama.server.responses import JSON
from pollama.server.state import state
from pollama.server.streaming import progress_response
from pollama.service import Answer, Chunk
from pollama.service.running import first

router = APIRouter()

Line = Callable[[str, Chunk], dict[str, Any]]


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    started = time.perf_counter_ns()
    body = await read_body(request, GenerateRequest)
    answer = await state(request).service.generate(body, started)
    return await _framed(request, answer, body.model, body.stream, line=_generate_line, combine=_combine_generate)


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    started = time.perf_counter_ns()
    body = await read_body(request, ChatRequest)
    answer = await state(request).service.chat(body, started)
    return await _framed(request, answer, body.model, body.stream, line=_chat_line, combine=_combine_chat)


async def _framed(
    request: Request,
    answer: Answer,
    model: str,
    stream: bool | None,
    *,
    line: Line,
    combine: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> Response:
    """NDJSON lines, or one combined object (``stream`` false); one object for a load, unload or render."""
    if answer.single:
        chunk = await first(answer.chunks)
        framed = line(model, chunk)
        if chunk.rendered is not None:
            framed["_debug_info"] = {"rendered_template": chunk.rendered}
        return JSON(framed)

    async def lines() -> AsyncIterator[dict[str, Any]]:
        async for chunk in answer.chunks:
            yield line(model, chunk)

    return await progress_response(
        until_disconnected(request, lines()),
        stream=stream is not False,
        shutdown=state(request).shutdown,
        combine=combine,
    )


def _generate_line(model: str, chunk: Chunk) -> dict[str, Any]:
    return GenerateResponse(
        model=model,
        created_at=rfc3339_nano(),
        response=chunk.text,
        thinking=chunk.thinking or None,
        done=chunk.done,
        done_reason=chunk.done_reason,
        context=chunk.context,
        logprobs=chunk.logprobs,
        truncated=chunk.truncated or None,
        **_stats(chunk),
    ).dump()


def _chat_line(model: str, chunk: Chunk) -> dict[str, Any]:
    return ChatResponse(
        model=model,
        created_at=rfc3339_nano(),
        message={
            "role": "assistant",
            "content": chunk.text,
            **({"thinking": chunk.thinking} if chunk.thinking else {}),
            **({"tool_calls": chunk.tool_calls} if chunk.tool_calls else {}),
        },
        done=chunk.done,
        done_reason=chunk.done_reason,
        logprobs=chunk.logprobs,
        truncated=chunk.truncated or None,
        **_stats(chunk),
    ).dump()


def _stats(chunk: Chunk) -> dict[str, Any]:
    return {**chunk.stats.fields()} if chunk.stats else {}


def _joined_logprobs(lines: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    joined = [entry for line in lines for entry in line.get("logprobs") or ()]
    return joined or None


def _combine_generate(lines: list[dict[str, Any]]) -> dict[str, Any]:
    combined = dict(lines[-1])
    combined["response"] = "".join(line.get("response", "") for line in lines)
    if thinking := "".join(line.get("thinking", "") for line in lines):
        combined["thinking"] = thinking
    if logprobs := _joined_logprobs(lines):
        combined["logprobs"] = logprobs
    return combined


def _combine_chat(lines: list[dict[str, Any]]) -> dict[str, Any]:
    combined = dict(lines[-1])
    content = "".join(line["message"].get("content", "") for line in lines)
    combined["message"] = {**combined["message"], "content": content}
    if thinking := "".join(line["message"].get("thinking", "") for line in lines):
        combined["message"]["thinking"] = thinking
    if tool_calls := [call for line in lines for call in line["message"].get("tool_calls", ())]:
        combined["message"]["tool_calls"] = tool_calls
    if logprobs := _joined_logprobs(lines):
        combined["logprobs"] = logprobs
    return combined
