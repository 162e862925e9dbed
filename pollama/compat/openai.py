"""The OpenAI API as a translation of the native one (spec B): requests in, the service's chunks out.

Pure functions and small state machines; the routes in ``server/routes/openai.py`` do the I/O.
Beyond Ollama: an ``options`` object (the ``openai`` SDK's ``extra_body``) passes any native
option through, thinking comes back as both ``reasoning`` and ``reasoning_content``, ``n`` gives
that many choices, and ``tool_choice`` ``none`` drops the tools.
"""

from __future__ import annotations

import base64
import json
import random
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pollama.api.native import ChatRequest, EmbedRequest, GenerateRequest
from pollama.compat.requests import (
    TranslationError,
    client_errors,
    expect_object,
    optional_list,
    optional_number,
    optional_object,
    optional_str,
)
from pollama.service import Chunk
from pollama.service.embed import Embeddings

__all__ = [
    "ChatConversion",
    "ChatStream",
    "CompletionStream",
    "OpenAIError",
    "chat_completion",
    "chat_request",
    "completion",
    "completion_request",
    "embed_request",
    "embeddings_response",
    "error_body",
    "forced_tools",
    "model_object",
]

FINGERPRINT = "fp_ollama"
_IMAGE_DATA = re.compile(r"data:(?:image/(?:jpeg|jpg|png|webp))?;base64,", re.IGNORECASE)


# The API's own name for a refused request, for the routes and tests that speak OpenAI.
OpenAIError = TranslationError


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _stop(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise OpenAIError(400, "invalid type for 'stop' field")


def reasoning_think(effort: Any) -> bool | str | None:
    """``reasoning_effort`` as the native ``think`` (spec B.1's mapping)."""
    if effort in (None, ""):
        return None
    if not isinstance(effort, str):
        raise OpenAIError(400, "invalid reasoning value: expected a string")
    if effort == "none":
        return False
    mapped = {"minimal": "low", "xhigh": "max", "ultra": "max"}.get(effort, effort)
    if mapped not in ("low", "medium", "high", "max"):
        raise OpenAIError(400, f"invalid reasoning value: '{effort}' (must be 'none', 'low', 'medium', or 'high')")
    return mapped


def _image(part: dict[str, Any]) -> str:
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str):
        raise OpenAIError(400, "invalid image input")
    if url.startswith(("http://", "https://")):
        raise OpenAIError(400, "image URLs are not currently supported, please use base64 encoded data instead")
    match = _IMAGE_DATA.match(url)
    if match is None:
        raise OpenAIError(400, "invalid image input")
    return url[match.end() :]


def _tool_calls(calls: Any) -> list[dict[str, Any]]:
    converted = []
    for call in optional_list(calls, "tool_calls"):
        call = expect_object(call, "tool call")
        function = optional_object(call.get("function"), "tool call function")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            raise OpenAIError(400, "invalid tool call arguments") from None
        if not isinstance(parsed, dict):
            raise OpenAIError(400, "invalid tool call arguments")
        entry: dict[str, Any] = {"function": {"name": function.get("name", ""), "arguments": parsed}}
        if call_id := optional_str(call.get("id"), "tool call id"):
            entry["id"] = call_id
        converted.append(entry)
    return converted


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise OpenAIError(400, "invalid message format")
    if not raw:
        raise OpenAIError(400, "[] is too short - 'messages'")
    out: list[dict[str, Any]] = []
    names_by_call: dict[str, str] = {}
    for message in raw:
        message = expect_object(message, "message format")
        role = message.get("role", "")
        content = message.get("content")
        tool_calls = _tool_calls(message.get("tool_calls"))
        for call in tool_calls:
            if "id" in call:
                names_by_call[call["id"]] = call["function"]["name"]
        base: dict[str, Any] = {"role": role}
        if role == "tool":
            call_id = optional_str(message.get("tool_call_id"), "tool_call_id")
            base["tool_name"] = message.get("name") or names_by_call.get(call_id, "")
            if call_id:
                base["tool_call_id"] = call_id
        thinking = message.get("reasoning") or message.get("reasoning_content")
        if isinstance(content, str):
            out.append({**base, "content": content, "thinking": thinking, "tool_calls": tool_calls})
        elif isinstance(content, list):
            parts: list[dict[str, Any]] = []
            for part in content:
                part = expect_object(part, "message part")
                kind = part.get("type")
                if kind == "text":
                    if not isinstance(part.get("text"), str):
                        raise OpenAIError(400, "invalid message format")
                    parts.append({**base, "content": part["text"]})
                elif kind == "image_url":
                    parts.append({**base, "content": "", "images": [_image(part)]})
                elif kind == "input_audio":
                    data = optional_object(part.get("input_audio"), "input_audio").get("data", "")
                    parts.append({**base, "content": "", "images": [data]})
                else:
                    raise OpenAIError(400, "invalid message format")
            if parts:
                parts[-1]["tool_calls"] = tool_calls
                parts[-1]["thinking"] = thinking
            out.extend(parts)
        elif content is None and tool_calls:
            out.append({**base, "content": "", "thinking": thinking, "tool_calls": tool_calls})
        else:
            raise OpenAIError(
                400, f"invalid message content type: {'<nil>' if content is None else type(content).__name__}"
            )
    return [{key: value for key, value in message.items() if value not in (None, [])} for message in out]


def _format(response_format: Any) -> Any:
    if response_format is None:
        return None
    response_format = expect_object(response_format, "response_format")
    kind = str(response_format.get("type", "")).lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = optional_object(response_format.get("json_schema"), "json_schema").get("schema")
        return schema if schema is not None else "json"
    return None


def _sampling(data: dict[str, Any], *, completion: bool) -> dict[str, Any]:
    """Native options: the passed-through ``options`` object, then the OpenAI fields, which win."""
    passed = optional_object(data.get("options"), "options")
    options: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, **passed}
    for name in ("temperature", "top_p", "max_completion_tokens", "max_tokens", "seed", "frequency_penalty",
                 "presence_penalty"):  # fmt: skip
        optional_number(data.get(name), name)  # the native options take any JSON: check the numbers here
    if data.get("temperature") is not None:
        options["temperature"] = data["temperature"]
    if data.get("top_p") is not None:
        options["top_p"] = data["top_p"] or (1.0 if completion else 0.0)
    max_tokens = data.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = data.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    for name in ("seed", "frequency_penalty", "presence_penalty"):
        if data.get(name) is not None:
            options[name] = data[name]
    if (stop := _stop(data.get("stop"))) is not None:
        options["stop"] = stop
    return options


def _logit_bias(value: Any) -> dict[int, float]:
    if value is None:
        return {}
    bias = expect_object(value, "logit_bias")
    try:
        weights = {int(token): float(weight) for token, weight in bias.items()}
    except (TypeError, ValueError, OverflowError):
        raise OpenAIError(400, "invalid logit_bias: token ids map to numbers") from None
    if not all(-100 <= weight <= 100 for weight in weights.values()):  # OpenAI's range
        raise OpenAIError(400, "invalid logit_bias: a bias must be between -100 and 100")
    return weights


def forced_tools(choice: Any, tools: Any) -> list[str] | None:
    """``tool_choice`` as the tools the answer must call: None = free, [] = any of them.

    A named function is ``{"type": "function", "function": {"name": ...}}`` in Chat Completions and
    ``{"type": "function", "name": ...}`` in the Responses API; both are read.
    """
    if choice in (None, "auto", "none"):
        return None
    if not tools:
        raise OpenAIError(400, "tool_choice requires tools")
    if choice == "required":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = (function.get("name") if isinstance(function, dict) else None) or choice.get("name")
        if isinstance(name, str) and name:
            return [name]
    raise OpenAIError(400, f"invalid tool_choice: {json.dumps(choice)}")


@dataclass
class ChatConversion:
    body: ChatRequest
    stream: bool
    include_usage: bool
    choices: int
    forced_tools: list[str] | None = None  # tool_choice "required" ([]: any tool) or a named function
    extra_options: dict[str, Any] = field(default_factory=dict)


@client_errors
def chat_request(data: Any) -> ChatConversion:
    data = expect_object(data, "request")
    tools = data.get("tools")
    forced = forced_tools(data.get("tool_choice"), tools)
    if data.get("tool_choice") == "none":
        tools = None
    n = data.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 8:
        raise OpenAIError(400, "n must be an integer from 1 to 8")
    reasoning = optional_object(data.get("reasoning"), "reasoning")
    think = reasoning_think(data.get("reasoning_effort") or reasoning.get("effort"))
    top_logprobs = optional_number(data.get("top_logprobs"), "top_logprobs")
    body = ChatRequest.model_validate(
        {
            "model": data.get("model") or "",
            "messages": _messages(data.get("messages")),
            "stream": True,
            "format": _format(data.get("response_format")),
            "options": _sampling(data, completion=False),
            "tools": tools or None,
            "think": think,
            "logprobs": bool(data.get("logprobs")) or top_logprobs > 0,
            "top_logprobs": top_logprobs,
            "keep_alive": data.get("keep_alive"),
            "_debug_render_only": bool(data.get("_debug_render_only")),
        }
    )
    extra = {"logit_bias": bias} if (bias := _logit_bias(data.get("logit_bias"))) else {}
    include_usage = bool(optional_object(data.get("stream_options"), "stream_options").get("include_usage"))
    return ChatConversion(body, bool(data.get("stream")), include_usage, n, forced, extra)


def new_id(prefix: str) -> str:
    return f"{prefix}-{random.randrange(999)}"


def _usage(final: Chunk) -> dict[str, Any]:
    stats = final.stats
    prompt, completion_tokens = (stats.prompt_eval_count, stats.eval_count) if stats else (0, 0)
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                             "total_tokens": prompt + completion_tokens}  # fmt: skip
    if stats:  # beyond Ollama: what the prompt cache saved
        usage["prompt_tokens_details"] = {"cached_tokens": stats.prompt_cached_count}
    return usage


def _finish_reason(final: Chunk, tool_calls: bool) -> str | None:
    reason = final.done_reason
    if reason == "stop" and tool_calls:
        return "tool_calls"
    return reason if reason in ("stop", "length") else ("stop" if final.done else None)


def _openai_tool_calls(calls: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id") or f"call_{random.getrandbits(40):010x}",
            "index": start + offset,
            "type": "function",
            "function": {
                "name": call["function"]["name"],
                "arguments": json.dumps(call["function"].get("arguments", {}), ensure_ascii=False),
            },
        }
        for offset, call in enumerate(calls)
    ]


def chat_choice(index: int, chunks: list[Chunk]) -> dict[str, Any]:
    """One choice of a non-streamed completion, from one answer's chunks."""
    content = "".join(chunk.text for chunk in chunks)
    thinking = "".join(chunk.thinking for chunk in chunks)
    calls = [call for chunk in chunks for call in chunk.tool_calls]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["reasoning"] = message["reasoning_content"] = thinking
    if calls:
        message["tool_calls"] = _openai_tool_calls(calls)
    choice: dict[str, Any] = {
        "index": index,
        "message": message,
        "finish_reason": _finish_reason(chunks[-1], bool(calls)),
    }
    logprobs = [entry for chunk in chunks for entry in chunk.logprobs or ()]
    if logprobs:
        choice["logprobs"] = {"content": logprobs}
    return choice


def chat_completion(model: str, answers: list[list[Chunk]]) -> dict[str, Any]:
    # n choices answer one prompt: it counts once; their completions add up.
    usage = _usage(answers[0][-1])
    usage["completion_tokens"] = sum(_usage(chunks[-1])["completion_tokens"] for chunks in answers)
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    completion = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [chat_choice(index, chunks) for index, chunks in enumerate(answers)],
        "usage": usage,
    }
    if (rendered := answers[0][-1].rendered) is not None:  # _debug_render_only: the rendered prompt
        completion["_debug_info"] = {"rendered_template": rendered}
    return completion


class ChatStream:
    """The chunks of one choice in, ``chat.completion.chunk`` objects out."""

    def __init__(self, model: str, completion_id: str, created: int, index: int = 0) -> None:
        self.model, self.id, self.created, self.index = model, completion_id, created, index
        self.started = False
        self.tool_calls = 0
        self.final: Chunk | None = None

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        if not self.started:
            delta = {"role": "assistant", **delta}
            self.started = True
        choice = {"index": self.index, "delta": delta, "finish_reason": finish_reason, **extra}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
        }

    def feed(self, chunk: Chunk) -> Iterator[dict[str, Any]]:
        extra: dict[str, Any] = {"logprobs": {"content": chunk.logprobs}} if chunk.logprobs else {}
        if thinking := chunk.thinking:
            yield self._chunk({"content": "", "reasoning": thinking, "reasoning_content": thinking})
        calls = chunk.tool_calls
        content = chunk.text
        if calls:
            yield self._chunk({"content": content, "tool_calls": _openai_tool_calls(calls, self.tool_calls)}, **extra)
            self.tool_calls += len(calls)
        elif content or (extra and not chunk.done):
            yield self._chunk({"content": content}, **extra)
        if chunk.done:
            self.final = chunk
            yield self._chunk({}, _finish_reason(chunk, self.tool_calls > 0))

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = usage
        return chunk


def usage_of(final: Chunk) -> dict[str, Any]:
    return _usage(final)


# --- /v1/completions ------------------------------------------------------------------------------


@client_errors
def completion_request(data: Any) -> tuple[GenerateRequest, bool, bool]:
    data = expect_object(data, "request")
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str):
        raise OpenAIError(400, "invalid type for 'prompt' field: only a string is supported")
    logprobs = data.get("logprobs")
    options = _sampling(data, completion=True)
    options.setdefault("frequency_penalty", 0.0)
    options.setdefault("presence_penalty", 0.0)
    body = GenerateRequest.model_validate(
        {
            "model": data.get("model") or "",
            "prompt": prompt,
            "suffix": data.get("suffix") or "",
            "stream": True,
            "options": options,
            "logprobs": bool(logprobs),
            "top_logprobs": logprobs if isinstance(logprobs, int) and not isinstance(logprobs, bool) else 0,
            "keep_alive": data.get("keep_alive"),
            "_debug_render_only": bool(data.get("_debug_render_only")),
        }
    )
    include_usage = bool(optional_object(data.get("stream_options"), "stream_options").get("include_usage"))
    return body, bool(data.get("stream")), include_usage


def _completion_object(completion_id: str, model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
    }


def completion(model: str, chunks: list[Chunk]) -> dict[str, Any]:
    text = "".join(chunk.text for chunk in chunks)
    final = chunks[-1]
    choice = {"text": text, "index": 0, "finish_reason": _finish_reason(final, False)}
    return {**_completion_object(new_id("cmpl"), model, [choice]), "usage": _usage(final)}


class CompletionStream:
    def __init__(self, model: str, include_usage: bool) -> None:
        self.model, self.include_usage, self.id = model, include_usage, new_id("cmpl")

    def feed(self, chunk: Chunk) -> Iterator[dict[str, Any]]:
        finish = _finish_reason(chunk, False) if chunk.done else None
        event = _completion_object(self.id, self.model, [{"text": chunk.text, "index": 0, "finish_reason": finish}])
        if self.include_usage:
            event["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        yield event
        if chunk.done and self.include_usage:
            yield {**_completion_object(self.id, self.model, []), "usage": _usage(chunk)}


# --- /v1/embeddings, /v1/models ------------------------------------------------------------------


@client_errors
def embed_request(data: Any) -> tuple[EmbedRequest, str]:
    data = expect_object(data, "request")
    value = data.get("input")
    if value == "":
        value = [""]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise OpenAIError(400, "invalid input")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise OpenAIError(
            400, f"Invalid value for 'encoding_format' = {encoding}. Supported values: ['float', 'base64']."
        )
    body = EmbedRequest.model_validate(
        {"model": data.get("model") or "", "input": value, "dimensions": data.get("dimensions") or 0,
         "keep_alive": data.get("keep_alive"), "options": data.get("options")}
    )  # fmt: skip
    return body, encoding


def embeddings_response(model: str, result: Embeddings, encoding: str) -> dict[str, Any]:
    data = []
    for index, vector in enumerate(result.vectors):
        if encoding == "base64":
            encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "embedding": encoded, "index": index})
    tokens = result.prompt_eval_count
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_object(name: str, modified_unix: int, namespace: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": modified_unix, "owned_by": namespace}
