"""``/api/generate`` and ``/api/chat``: run a prompt or a conversation, streaming NDJSON."""

from __future__ import annotations

import re
import secrets
import string
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import APIRouter, Request, Response

from pollama.api.native import ChatRequest, ChatResponse, GenerateRequest, GenerateResponse
from pollama.errors import InvalidRequest, NotFound
from pollama.gocompat.timefmt import rfc3339_nano
from pollama.model.capabilities import capabilities_of
from pollama.parsers.thinking import ThinkingParser
from pollama.parsers.tools import ToolCallParser, closing_tag, tool_call_tag
from pollama.server.bodies import read_body
from pollama.server.inference import (
    Chunk,
    complete,
    find_model,
    history_text,
    keep_alive_of,
    retry_after_crash,
    until_disconnected,
    use_runner,
    validate_think,
)
from pollama.server.responses import JSON
from pollama.server.state import ServerState, state
from pollama.server.streaming import progress_response
from pollama.store.models import StoredModel
from pollama.structured import FormatError, grammar_for_format, tool_call_grammar
from pollama.templates.prompt import RenderedPrompt, Tokenize, fill_in_middle_prompt, fitted_chat_prompt

router = APIRouter()

RAW_CONFLICT = "raw mode does not support template, system, or context"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_SPECIAL_TAG = re.compile(r"<[^<>\s\"]+>")


def _check_common(body: GenerateRequest | ChatRequest) -> str | None:
    """Checks generate and chat share; the grammar of the request's ``format``, if it has one."""
    if not 0 <= body.top_logprobs <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")
    try:
        return grammar_for_format(body.format)
    except FormatError as error:
        raise InvalidRequest(str(error)) from None


@dataclass(frozen=True)
class Answer:
    """A prompt ready to run, and what the request asked of the run."""

    body: GenerateRequest | ChatRequest
    model: StoredModel
    keep_alive: int | None
    started_ns: int
    render: Callable[[Tokenize | None, int], Awaitable[RenderedPrompt]]  # with a tokenizer, fitted to num_ctx
    think: bool | str | None
    grammar: str | None = None  # the format's constraint
    tools: ToolCallParser | None = None  # reads tool calls out of the answer, when tools were offered
    extra_options: dict[str, Any] = field(default_factory=dict)
    context: list[int] = field(default_factory=list)  # generate's deprecated token history, put before the prompt


async def _answer(
    request: Request,
    answer: Answer,
    *,
    line: Callable[[str, Chunk], dict[str, Any]],
    combine: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> Response:
    """Run the prompt on a runner slot and answer with NDJSON lines (or one combined object)."""
    body = answer.body
    if body.debug_render_only:
        # One object even when streaming, and no model loaded: the rendered prompt is the answer.
        rendered = line(body.model, Chunk())
        rendered["_debug_info"] = {"rendered_template": (await answer.render(None, 0)).text}
        return JSON(rendered)

    async def lines() -> AsyncGenerator[dict[str, Any]]:
        async with use_runner(state(request), answer.model, body.options, answer.keep_alive) as (runner, resolved):
            tokenize = runner.process.count_tokens if body.truncate is not False else None
            rendered = await answer.render(tokenize, int(resolved.options["num_ctx"]))
            prompt = rendered.text
            if answer.context:
                prompt = await history_text(runner.process, answer.context) + prompt
            options = {
                **resolved.options,
                "grammar": answer.grammar,
                # A thinking model thinks freely; the format holds from the end of its thinking on.
                **_thinking_before_format(answer, rendered),
                "logprobs": body.logprobs or body.top_logprobs > 0,
                "top_logprobs": body.top_logprobs,
                "shift": body.shift is not False,
                **answer.extra_options,
            }
            load_ns = time.perf_counter_ns() - answer.started_ns
            chunks = complete(runner, prompt, options, started_ns=answer.started_ns, load_ns=load_ns)
            chunks = _split_thinking(chunks, rendered, answer.think)
            if answer.tools is not None:
                chunks = _split_tool_calls(chunks, answer.tools)
            async for chunk in chunks:
                if chunk.done and rendered.truncated:
                    chunk = replace(chunk, truncated=True)
                yield line(body.model, chunk)

    return await progress_response(
        until_disconnected(request, retry_after_crash(lines)),
        stream=body.stream is not False,
        shutdown=state(request).shutdown,
        combine=combine,
    )


def _thinking_before_format(answer: Answer, rendered: RenderedPrompt) -> dict[str, str]:
    opening, closing = rendered.thinking_tags
    if not (answer.grammar and answer.think and opening and closing):
        return {}
    if rendered.text.rstrip().endswith(opening):
        return {"grammar_after": closing}
    return {"grammar_after": closing, "grammar_opening": opening}


async def _split_thinking(
    chunks: AsyncIterator[Chunk], prompt: RenderedPrompt, think: bool | str | None
) -> AsyncIterator[Chunk]:
    """Move a thinking model's thinking out of the content, when thinking is on and its tags are known."""
    opening, closing = prompt.thinking_tags
    if not (think and opening and closing):
        async for chunk in chunks:
            yield chunk
        return
    parser = ThinkingParser(opening, closing, opened=prompt.text.rstrip().endswith(opening))
    async for chunk in chunks:
        thinking, content = parser.add(chunk.text)
        if chunk.done:
            rest_thinking, rest_content = parser.finish()
            thinking, content = thinking + rest_thinking, content + rest_content
        elif not (thinking or content or chunk.logprobs):
            continue
        yield replace(chunk, text=content, thinking=thinking)


async def _split_tool_calls(chunks: AsyncIterator[Chunk], parser: ToolCallParser) -> AsyncIterator[Chunk]:
    """Move tool calls out of the content; each gets Ollama's ``call_`` id and a running index."""
    index = 0
    async for chunk in chunks:
        content, calls = parser.add(chunk.text)
        if chunk.done:
            rest, more = parser.finish()
            content, calls = content + rest, calls + more
        tool_calls = []
        for call in calls:
            tool_calls.append(
                {"id": _call_id(), "function": {"index": index, "name": call.name, "arguments": call.arguments}}
            )
            index += 1
        if not (content or tool_calls or chunk.thinking or chunk.logprobs or chunk.done):
            continue
        yield replace(chunk, text=content, tool_calls=tool_calls)


def _call_id() -> str:
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


async def _load_or_unload(
    st: ServerState, body: GenerateRequest | ChatRequest, model: StoredModel, keep_alive: int | None
) -> Chunk:
    """An empty prompt loads the model, or with ``keep_alive: 0`` unloads it without loading."""
    if keep_alive == 0:
        await st.scheduler.unload(str(model.model_path))
        return Chunk(done=True, done_reason="unload")
    async with use_runner(st, model, body.options, keep_alive):
        return Chunk(done=True, done_reason="load")


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    started = time.perf_counter_ns()
    return await run_generate(request, await read_body(request, GenerateRequest), started)


async def run_generate(request: Request, body: GenerateRequest, started: int) -> Response:
    """Answer a generate request: NDJSON lines, or one object (``stream`` false); also behind ``/v1/completions``."""
    st = state(request)
    grammar = _check_common(body)
    if not body.model:
        raise NotFound("model '' not found")
    model = await find_model(st, body.model)
    keep_alive = keep_alive_of(body.keep_alive)
    if not body.prompt and keep_alive == 0:
        return JSON(_generate_line(body.model, await _load_or_unload(st, body, model, keep_alive)))
    capabilities = capabilities_of(model)
    if body.raw and (body.template or body.system or body.context):
        raise InvalidRequest(RAW_CONFLICT)
    think = validate_think(body.model, body.think, capabilities, model.parameters.get("think"))
    if "completion" not in capabilities:
        raise InvalidRequest(f'"{body.model}" does not support generate')
    if body.suffix and "insert" not in capabilities:
        raise InvalidRequest(f"{model.name} does not support insert")
    if not body.prompt:
        return JSON(_generate_line(body.model, await _load_or_unload(st, body, model, keep_alive)))

    if body.raw or body.suffix:
        fixed = RenderedPrompt(
            body.prompt
            if body.raw
            else fill_in_middle_prompt(
                model, body.prompt, body.suffix, template=body.template, limits=st.settings.limits
            )
        )

        async def render(_tokenize: Tokenize | None, _num_ctx: int) -> RenderedPrompt:
            return fixed
    else:
        messages: list[dict[str, Any]] = []
        if system := body.system or model.system:
            messages.append({"role": "system", "content": system})
        if not body.context:
            messages.extend(model.messages)
        messages.append({"role": "user", "content": body.prompt, **({"images": body.images} if body.images else {})})
        go_template = st.settings.go_template is not False

        async def render(tokenize: Tokenize | None, num_ctx: int) -> RenderedPrompt:
            return await fitted_chat_prompt(
                model, messages, num_ctx=num_ctx, tokenize=tokenize, think=think, template=body.template,
                go_template=go_template, limits=st.settings.limits,
            )  # fmt: skip

    return await _answer(
        request,
        Answer(
            body,
            model,
            keep_alive,
            started,
            render,
            think,
            grammar,
            extra_options={"return_context": not body.raw},
            context=body.context or [],
        ),  # fmt: skip
        line=_generate_line,
        combine=_combine_generate,
    )


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    started = time.perf_counter_ns()
    return await run_chat(request, await read_body(request, ChatRequest), started)


async def run_chat(
    request: Request, body: ChatRequest, started: int, *, forced_tools: list[str] | None = None, **extra_options: Any
) -> Response:
    """Answer a chat request; ``extra_options`` reach the runner as they are (the OpenAI API's extras).

    ``forced_tools`` (beyond Ollama: OpenAI's ``tool_choice``) makes the answer a call of one of the
    named tools (any offered tool when empty), through the sampling constraint.
    """
    st = state(request)
    grammar = _check_common(body)
    if not body.model:
        raise InvalidRequest("model is required")
    model = await find_model(st, body.model)
    keep_alive = keep_alive_of(body.keep_alive)
    if not body.messages and keep_alive == 0:
        return JSON(_chat_line(body.model, await _load_or_unload(st, body, model, keep_alive)))
    capabilities = capabilities_of(model)
    if "completion" not in capabilities:
        raise InvalidRequest(f'"{body.model}" does not support chat')
    if body.tools and "tools" not in capabilities:
        raise InvalidRequest(f"{model.name} does not support tools")
    think = validate_think(body.model, body.think, capabilities, model.parameters.get("think"))
    if not body.messages:
        return JSON(_chat_line(body.model, await _load_or_unload(st, body, model, keep_alive)))

    requested = [message.dump() for message in body.messages]
    messages = [*model.messages, *requested]
    if model.system and requested[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": model.system})
    go_template = st.settings.go_template is not False

    async def render(tokenize: Tokenize | None, num_ctx: int) -> RenderedPrompt:
        return await fitted_chat_prompt(
            model, messages, num_ctx=num_ctx, tokenize=tokenize, tools=body.tools or None, think=think,
            go_template=go_template, limits=st.settings.limits,
        )  # fmt: skip

    tools = None
    if body.tools:
        names = [tool.get("function", {}).get("name", "") for tool in body.tools if isinstance(tool, dict)]
        gguf = model.gguf()
        template = model.template if go_template else None
        tag = tool_call_tag(template, gguf.chat_template if gguf else "")
        tools = ToolCallParser(tag, names)
        if forced_tools is not None:
            offered = [tool for tool in body.tools if tool.get("function", {}).get("name") in (forced_tools or names)]
            if not offered:
                raise InvalidRequest(f"tool_choice names a function that is not among the tools: {forced_tools}")
            try:
                grammar = tool_call_grammar(tag, closing_tag(tag), offered)
                if _SPECIAL_TAG.fullmatch(tag):  # prefer the model's special token, if it has one by that name
                    extra_options = {**extra_options, "grammar_fallback": grammar}
                    grammar = tool_call_grammar(tag, closing_tag(tag), offered, special=True)
            except FormatError as error:
                raise InvalidRequest(str(error)) from None
    return await _answer(
        request,
        Answer(body, model, keep_alive, started, render, think, grammar, tools, extra_options=extra_options),
        line=_chat_line,
        combine=_combine_chat,
    )


# --- response shapes --------------------------------------------------------------------------------


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
        **chunk.metrics,
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
        **chunk.metrics,
    ).dump()


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
