"""Anthropic's Messages API as a translation of native chat (spec B.7).

Beyond Ollama, ``tool_choice`` is honoured (``any``, ``tool`` with a name, ``none``) through the
same constraint as the OpenAI API's.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pollama.api.native import ChatRequest
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

__all__ = ["AnthropicError", "MessageConversion", "MessageStream", "error_body", "message", "message_request"]


# The API's own name for a refused request, for the routes and tests that speak Anthropic.
AnthropicError = TranslationError


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 503: "overloaded_error"}  # fmt: skip


def error_body(status: int, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": text}}


def _text_of(content: Any, what: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    raise AnthropicError(400, f"invalid {what}: expected a string or an array of content blocks")


def _messages(raw: Any, system: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise AnthropicError(400, "messages is required")
    out: list[dict[str, Any]] = []
    if system_text := _text_of(system, "system"):
        out.append({"role": "system", "content": system_text})
    names: dict[str, str] = {}
    for entry in raw:
        entry = expect_object(entry, "message")
        role = entry.get("role")
        if role not in ("user", "assistant"):
            raise AnthropicError(400, f"invalid message role: {role!r}")
        content = entry.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise AnthropicError(400, "invalid message content")
        text, thinking, images, calls = [], [], [], []
        for block in content:
            block = expect_object(block, "content block")
            kind = block.get("type")
            if kind == "text":
                text.append(str(block.get("text", "")))
            elif kind == "image":
                source = optional_object(block.get("source"), "image source")
                if source.get("type") != "base64":
                    raise AnthropicError(400, "only base64 image sources are supported")
                images.append(source.get("data", ""))
            elif kind == "thinking":
                thinking.append(str(block.get("thinking", "")))
            elif kind == "redacted_thinking":
                continue
            elif kind in ("tool_use", "server_tool_use"):
                call_id = optional_str(block.get("id"), "tool_use id")
                names[call_id] = block.get("name", "")
                calls.append({"id": block.get("id"), "function": {"name": block.get("name", ""),
                                                                  "arguments": block.get("input") or {}}})  # fmt: skip
            elif kind in ("tool_result", "web_search_tool_result"):
                call_id = optional_str(block.get("tool_use_id"), "tool_use_id")
                out.append({"role": "tool", "content": _text_of(block.get("content"), "tool_result content"),
                            "tool_call_id": call_id, "tool_name": names.get(call_id, "")})  # fmt: skip
            else:
                raise AnthropicError(400, f"unsupported content block type: {kind!r}")
        if text or thinking or images or calls:
            native: dict[str, Any] = {"role": role, "content": "".join(text)}
            if thinking:
                native["thinking"] = "".join(thinking)
            if images:
                native["images"] = images
            if calls:
                native["tool_calls"] = calls
            out.append(native)
    return out


def _tools(raw: Any) -> list[dict[str, Any]] | None:
    if not raw:
        return None
    tools = []
    for tool in optional_list(raw, "tools"):
        tool = expect_object(tool, "tool")
        if tool.get("type", "custom") not in ("custom", None) and "input_schema" not in tool:
            continue  # server tools (web search) are not run here
        function = {"name": tool.get("name", ""), "description": tool.get("description", ""),
                    "parameters": tool.get("input_schema") or {}}  # fmt: skip
        tools.append({"type": "function", "function": function})
    return tools or None


def _forced(choice: Any) -> list[str] | None:
    if not isinstance(choice, dict) or choice.get("type") in (None, "auto", "none"):
        return None
    if choice["type"] == "any":
        return []
    if choice["type"] == "tool" and isinstance(choice.get("name"), str):
        return [choice["name"]]
    raise AnthropicError(400, f"invalid tool_choice: {json.dumps(choice)}")


@dataclass
class MessageConversion:
    body: ChatRequest
    stream: bool
    wants_thinking: bool
    forced_tools: list[str] | None


@client_errors
def message_request(data: Any) -> MessageConversion:
    data = expect_object(data, "request")
    if not data.get("model"):
        raise AnthropicError(400, "model is required")
    max_tokens = data.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
        raise AnthropicError(400, "max_tokens is required and must be a positive integer")
    options: dict[str, Any] = {**optional_object(data.get("options"), "options"), "num_predict": max_tokens}
    for name, native in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")):
        optional_number(data.get(name), name)  # the native options take any JSON: check the numbers here
        if data.get(name) is not None:
            options[native] = data[name]
    stops = data.get("stop_sequences")
    if isinstance(stops, str):
        stops = [stops]
    if stops:
        if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
            raise AnthropicError(400, "stop_sequences must be a list of strings")
        options["stop"] = stops
    choice = data.get("tool_choice")
    tools = None if isinstance(choice, dict) and choice.get("type") == "none" else _tools(data.get("tools"))
    thinking = optional_object(data.get("thinking"), "thinking")
    think: bool | str | None = None
    if thinking.get("type") == "enabled":
        think = True
    elif thinking.get("type") == "disabled":
        think = False
    if effort := optional_object(data.get("output_config"), "output_config").get("effort"):
        if not isinstance(effort, str):
            raise AnthropicError(400, "invalid output_config.effort: expected a string")
        think = {"xhigh": "high", "max": "high"}.get(effort, effort)
    body = ChatRequest.model_validate(
        {"model": data["model"], "messages": _messages(data.get("messages"), data.get("system")), "stream": True,
         "options": options, "tools": tools, "think": think, "keep_alive": data.get("keep_alive")}
    )  # fmt: skip
    return MessageConversion(
        body, bool(data.get("stream")), think not in (None, False), _forced(choice) if tools else None
    )


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _usage(final: Chunk) -> dict[str, int]:
    """Anthropic counts cache reads apart: ``input_tokens`` is only what was not read from the cache."""
    stats = final.stats
    if stats is None:
        return {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0}
    cached = stats.prompt_cached_count
    fresh = stats.prompt_eval_count - cached
    return {"input_tokens": fresh, "output_tokens": stats.eval_count, "cache_read_input_tokens": cached}


def _stop_reason(final: Chunk, tool_use: bool) -> str:
    if tool_use:
        return "tool_use"
    return "max_tokens" if final.done_reason == "length" else "end_turn"


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id") or new_id("toolu"), "name": function.get("name", ""),
            "input": function.get("arguments") or {}}  # fmt: skip


def message(model: str, chunks: list[Chunk]) -> dict[str, Any]:
    thinking = "".join(chunk.thinking for chunk in chunks)
    text = "".join(chunk.text for chunk in chunks)
    calls = [call for chunk in chunks for call in chunk.tool_calls]
    content: list[dict[str, Any]] = []
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if text or not (calls or thinking):
        content.append({"type": "text", "text": text})
    content += [_tool_use(call) for call in calls]
    final = chunks[-1]
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(final, bool(calls)),
        "stop_sequence": None,
        "usage": _usage(final),
    }


class MessageStream:
    """The service's chunks in, Anthropic stream events (``(event type, data)``) out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = -1
        self.open: str | None = None  # the kind of the content block being written
        self.tool_use = False

    def start(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield "message_start", {"type": "message_start", "message": {
            "id": new_id("msg"), "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}}  # fmt: skip

    def _close(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.open is not None:
            yield "content_block_stop", {"type": "content_block_stop", "index": self.index}
            self.open = None

    def _block(self, kind: str, block: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.open == kind and kind != "tool_use":
            return
        yield from self._close()
        self.index += 1
        self.open = kind
        yield "content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block}

    def _delta(self, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return "content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta}

    def feed(self, chunk: Chunk) -> Iterator[tuple[str, dict[str, Any]]]:
        if thinking := chunk.thinking:
            yield from self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            yield self._delta({"type": "thinking_delta", "thinking": thinking})
        if text := chunk.text:
            yield from self._block("text", {"type": "text", "text": ""})
            yield self._delta({"type": "text_delta", "text": text})
        for call in chunk.tool_calls:
            block = _tool_use(call)
            self.tool_use = True
            yield from self._block("tool_use", {**block, "input": {}})
            yield self._delta({"type": "input_json_delta", "partial_json": json.dumps(block["input"])})
        if chunk.done:
            yield from self._close()
            usage = _usage(chunk)
            delta = {"stop_reason": _stop_reason(chunk, self.tool_use), "stop_sequence": None}
            yield "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
            yield "message_stop", {"type": "message_stop"}
