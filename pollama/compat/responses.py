"""OpenAI's Responses API, stateless, as a translation of native chat (spec B.5)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pollama.api.native import ChatRequest
from pollama.compat.openai import OpenAIError, forced_tools, reasoning_think
from pollama.compat.requests import (
    client_errors,
    expect_object,
    optional_list,
    optional_number,
    optional_object,
    optional_str,
)
from pollama.service import Chunk

__all__ = ["ResponseConversion", "ResponseStream", "response_object", "response_request"]


def _image(url: Any) -> str:
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise OpenAIError(400, "image URLs are not currently supported, please use base64 encoded data instead")
    return url.split(";base64,", 1)[1]


def _message(item: dict[str, Any]) -> dict[str, Any]:
    role = item.get("role", "user")
    role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise OpenAIError(400, "invalid message content")
    text, images = [], []
    for part in content:
        part = expect_object(part, "content part")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text.append(str(part.get("text", "")))
        elif kind == "input_image":
            images.append(_image(part.get("image_url")))
        elif kind == "input_file":
            raise OpenAIError(400, "file inputs are not currently supported")
        else:
            raise OpenAIError(400, f"unsupported content part type: {kind!r}")
    message: dict[str, Any] = {"role": role, "content": "".join(text)}
    if images:
        message["images"] = images
    return message


def _messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if instructions := optional_str(data.get("instructions"), "instructions"):
        out.append({"role": "system", "content": instructions})
    items = data.get("input")
    if isinstance(items, str):
        return [*out, {"role": "user", "content": items}]
    if not isinstance(items, list):
        raise OpenAIError(400, "input is required")
    names: dict[str, str] = {}
    thinking = ""
    for item in items:
        item = expect_object(item, "input item")
        kind = item.get("type", "message")
        if kind == "message":
            message = _message(item)
            if thinking and message["role"] == "assistant":
                message["thinking"], thinking = thinking, ""
            out.append(message)
        elif kind == "function_call":
            try:
                raw_arguments = item.get("arguments") or "{}"
                arguments = json.loads(raw_arguments) if isinstance(raw_arguments, str) else raw_arguments
                if not isinstance(arguments, dict):
                    raise ValueError(arguments)
            except ValueError:
                raise OpenAIError(400, "invalid tool call arguments") from None
            call_id = optional_str(item.get("call_id"), "call_id")
            call = {"id": call_id, "function": {"name": item.get("name", ""), "arguments": arguments}}
            names[call_id] = item.get("name", "")
            if out and out[-1]["role"] == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
                if thinking:
                    out[-1]["thinking"], thinking = thinking, ""
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _message({"content": output})["content"]
            call_id = optional_str(item.get("call_id"), "call_id")
            out.append({"role": "tool", "content": text, "tool_call_id": call_id, "tool_name": names.get(call_id, "")})
        elif kind == "reasoning":
            thinking = item.get("encrypted_content") or "".join(
                str(part.get("text", ""))
                for part in optional_list(item.get("summary"), "reasoning summary")
                if isinstance(part, dict)
            )
        elif kind == "web_search_call":
            continue
        else:
            raise OpenAIError(400, f"unsupported input item type: {kind!r}")
    return out


def _tools(raw: Any) -> list[dict[str, Any]] | None:
    tools = []
    for tool in optional_list(raw, "tools"):
        tool = expect_object(tool, "tool")
        if tool.get("type") != "function":
            continue
        function = {"name": tool.get("name", ""), "description": tool.get("description") or "",
                    "parameters": tool.get("parameters") or {"type": "object"}}  # fmt: skip
        tools.append({"type": "function", "function": function})
    return tools or None


def _format(text: Any) -> Any:
    form = (text or {}).get("format") if isinstance(text, dict) else None
    if not isinstance(form, dict):
        return None
    if form.get("type") == "json_schema":
        return form.get("schema") or "json"
    if form.get("type") == "json_object":
        return "json"
    return None


@dataclass
class ResponseConversion:
    body: ChatRequest
    stream: bool
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the response repeats
    forced_tools: list[str] | None = None


@client_errors
def response_request(data: Any) -> ResponseConversion:
    data = expect_object(data, "request")
    if data.get("previous_response_id"):
        raise OpenAIError(400, "previous_response_id is not supported: the Responses API here is stateless")
    tools = None if data.get("tool_choice") == "none" else _tools(data.get("tools"))
    reasoning = optional_object(data.get("reasoning"), "reasoning")
    options: dict[str, Any] = {"temperature": 1.0, **optional_object(data.get("options"), "options")}
    for name in ("temperature", "top_p", "max_output_tokens"):
        optional_number(data.get(name), name)  # the native options take any JSON: check the numbers here
    for name in ("temperature", "top_p"):
        if data.get(name) is not None:
            options[name] = data[name]
    if data.get("max_output_tokens") is not None:
        options["num_predict"] = data["max_output_tokens"]
    body = ChatRequest.model_validate(
        {"model": data.get("model") or "", "messages": _messages(data), "stream": True, "options": options,
         "tools": tools, "format": _format(data.get("text")), "think": reasoning_think(reasoning.get("effort")),
         "keep_alive": data.get("keep_alive")}
    )  # fmt: skip
    echo = {
        "instructions": data.get("instructions"),
        "max_output_tokens": data.get("max_output_tokens"),
        "temperature": options["temperature"],
        "top_p": options.get("top_p", 1.0),
        "tools": data.get("tools") or [],
        "tool_choice": data.get("tool_choice") or "auto",
        "text": data.get("text") or {"format": {"type": "text"}},
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "metadata": data.get("metadata") or {},
    }
    return ResponseConversion(body, bool(data.get("stream")), echo, forced_tools(data.get("tool_choice"), tools))


def _usage(final: Chunk) -> dict[str, Any]:
    stats = final.stats
    prompt, output = (stats.prompt_eval_count, stats.eval_count) if stats else (0, 0)
    cached = stats.prompt_cached_count if stats else 0
    return {
        "input_tokens": prompt,
        "output_tokens": output,
        "total_tokens": prompt + output,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _shell(response_id: str, model: str, echo: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": response_id, "object": "response", "created_at": created, "status": "in_progress", "model": model,
        "output": [], "error": None, "incomplete_details": None, "parallel_tool_calls": True, "truncation": "disabled",
        "store": False, "service_tier": "default", "previous_response_id": None, **echo,
    }  # fmt: skip


def _finished(shell: dict[str, Any], output: list[dict[str, Any]], final: Chunk) -> dict[str, Any]:
    cut = final.done_reason == "length"
    return {
        **shell,
        "status": "incomplete" if cut else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "completed_at": int(time.time()),
        "output": output,
        "usage": _usage(final),
    }


def _reasoning_item(response_id: str, thinking: str) -> dict[str, Any]:
    return {"id": f"rs_{response_id}", "type": "reasoning", "summary": [{"type": "summary_text", "text": thinking}],
            "encrypted_content": thinking}  # fmt: skip


def _call_item(response_id: str, index: int, call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {"id": f"fc_{response_id}_{index}", "type": "function_call", "status": "completed",
            "call_id": call.get("id") or f"call_{random.getrandbits(40):010x}", "name": function.get("name", ""),
            "arguments": json.dumps(function.get("arguments") or {}, ensure_ascii=False)}  # fmt: skip


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}


def new_response_id() -> str:
    return f"resp_{random.randrange(1_000_000)}"


def response_object(model: str, echo: dict[str, Any], chunks: list[Chunk]) -> dict[str, Any]:
    """The whole response: the stream's final object, so both give the same items in the same order."""
    stream = ResponseStream(model, echo)
    final: dict[str, Any] = {}
    for chunk in chunks:
        for event in stream.feed(chunk):
            if event["type"] == "response.completed":
                final = event["response"]
    return final


class ResponseStream:
    """The service's chunks in, Responses API stream events out (each with its ``sequence_number``)."""

    def __init__(self, model: str, echo: dict[str, Any]) -> None:
        self.id = new_response_id()
        self.shell = _shell(self.id, model, echo, int(time.time()))
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the output item being written
        self.text = ""
        self.calls = 0
        self.cut = False  # the answer ran into max_output_tokens

    def _event(self, kind: str, **data: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return event

    def start(self) -> Iterator[dict[str, Any]]:
        yield self._event("response.created", response=self.shell)
        yield self._event("response.in_progress", response=self.shell)

    def _place(self) -> dict[str, Any]:
        return {"item_id": self.open["id"], "output_index": len(self.output)} if self.open else {}

    def _close(self) -> Iterator[dict[str, Any]]:
        item = self.open
        if item is None:
            return
        if item["type"] == "reasoning":
            yield self._event("response.reasoning_summary_text.done", **self._place(), summary_index=0, text=self.text)
            item = _reasoning_item(self.id, self.text)
        elif item["type"] == "message":
            part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
            yield self._event(
                "response.output_text.done", **self._place(), content_index=0, text=self.text, logprobs=[]
            )
            yield self._event("response.content_part.done", **self._place(), content_index=0, part=part)
            item = _message_item(item["id"], self.text, "incomplete" if self.cut else "completed")
        yield self._event("response.output_item.done", output_index=len(self.output), item=item)
        self.output.append(item)
        self.open, self.text = None, ""

    def _open(self, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from self._close()
        self.open = item
        yield self._event("response.output_item.added", output_index=len(self.output), item=item)

    def feed(self, chunk: Chunk) -> Iterator[dict[str, Any]]:
        if thinking := chunk.thinking:
            if self.open is None or self.open["type"] != "reasoning":
                yield from self._open({"id": f"rs_{self.id}", "type": "reasoning", "summary": []})
            self.text += thinking
            yield self._event("response.reasoning_summary_text.delta", **self._place(), summary_index=0, delta=thinking)
        if content := chunk.text:
            if self.open is None or self.open["type"] != "message":
                item_id = f"msg_{random.randrange(1_000_000)}"
                yield from self._open({"id": item_id, "type": "message", "status": "in_progress",
                                       "role": "assistant", "content": []})  # fmt: skip
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                yield self._event("response.content_part.added", **self._place(), content_index=0, part=part)
            self.text += content
            yield self._event(
                "response.output_text.delta", **self._place(), content_index=0, delta=content, logprobs=[]
            )
        for call in chunk.tool_calls:
            item = _call_item(self.id, self.calls, call)
            self.calls += 1
            yield from self._open({**item, "status": "in_progress", "arguments": ""})
            yield self._event("response.function_call_arguments.delta", **self._place(), delta=item["arguments"])
            yield self._event("response.function_call_arguments.done", **self._place(), arguments=item["arguments"])
            yield self._event("response.output_item.done", output_index=len(self.output), item=item)
            self.output.append(item)
            self.open = None
        if chunk.done:
            self.cut = chunk.done_reason == "length"
            yield from self._close()
            yield self._event("response.completed", response=_finished(self.shell, self.output, chunk))
