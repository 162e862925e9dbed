"""Anthropic's Messages API as a translation of native chat (``pollama.compat.anthropic``, spec B.7).

``message_request``: the native chat request a Messages request becomes (system prompt, content blocks, tools,
thinking, options) and what it refuses. ``message`` and ``MessageStream``: native lines out as a ``message``
object and as the named stream events, blocks in order with increasing indexes. Pure functions only.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from pollama.compat.anthropic import AnthropicError, MessageStream, error_body, message, message_request
from pollama.service import Chunk
from tests.chunks import chunk
from tests.unit.test_compat_openai import accepted_or_refused

USER = {"role": "user", "content": "Hi"}
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather of a city", "input_schema": WEATHER_SCHEMA}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": [USER], **fields}


def messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry.dump() for entry in message_request(data).body.messages]


def options(data: dict[str, Any]) -> dict[str, Any]:
    return message_request(data).body.options or {}


def refused(data: Any) -> str:
    with pytest.raises(AnthropicError) as raised:
        message_request(data)
    assert raised.value.status == 400
    return raised.value.message


def blocks(role: str, *content: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "content": list(content)}


# --- message_request: required fields ---------------------------------------------------------------------


@pytest.mark.parametrize("model", [None, ""])
def test_the_model_is_required(model: Any) -> None:
    assert refused(request(model=model)) == "model is required"


@pytest.mark.parametrize("max_tokens", [None, 0, -1, 1.5, "100", True, False])
def test_max_tokens_must_be_a_positive_integer(max_tokens: Any) -> None:
    assert refused(request(max_tokens=max_tokens)) == "max_tokens is required and must be a positive integer"


def test_max_tokens_is_num_predict() -> None:
    converted = message_request(request(max_tokens=64))
    assert converted.body.options == {"num_predict": 64}
    assert (converted.body.model, converted.body.stream, converted.stream) == ("m", True, False)
    assert message_request(request(stream=True)).stream is True


@pytest.mark.parametrize("value", [[], None, "Hi"])
def test_messages_are_required(value: Any) -> None:
    assert refused(request(messages=value)) == "messages is required"


@pytest.mark.parametrize("role", ["system", "tool", None])
def test_only_user_and_assistant_roles(role: Any) -> None:
    assert refused(request(messages=[{"role": role, "content": "x"}])) == f"invalid message role: {role!r}"


def test_the_request_must_be_an_object() -> None:
    assert refused([1]) == "invalid request"


# --- message_request: system and content blocks -------------------------------------------------------------


def test_a_system_string_is_the_first_message() -> None:
    assert messages(request(system="Be brief.")) == [{"role": "system", "content": "Be brief."}, USER]


def test_system_text_blocks_are_joined_into_one_message() -> None:
    system = [{"type": "text", "text": "Be brief. "}, {"type": "text", "text": "Be kind."}]
    assert messages(request(system=system)) == [{"role": "system", "content": "Be brief. Be kind."}, USER]


@pytest.mark.parametrize("system", [None, "", []])
def test_no_system_no_system_message(system: Any) -> None:
    assert messages(request(system=system)) == [USER]


def test_text_blocks_are_joined_into_one_message() -> None:
    data = request(messages=[blocks("user", {"type": "text", "text": "Hello, "}, {"type": "text", "text": "there"})])
    assert messages(data) == [{"role": "user", "content": "Hello, there"}]


def test_base64_images() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    data = request(messages=[blocks("user", {"type": "text", "text": "What is it?"}, image)])
    assert messages(data) == [{"role": "user", "content": "What is it?", "images": ["iVBORw0KGgo="]}]


@pytest.mark.parametrize("source", [{"type": "url", "url": "https://example.com/a.png"}, {}, {"type": "file"}])
def test_other_image_sources_are_refused(source: dict[str, Any]) -> None:
    data = request(messages=[blocks("user", {"type": "image", "source": source})])
    assert refused(data) == "only base64 image sources are supported"


def test_thinking_blocks_become_thinking_and_redacted_thinking_is_dropped() -> None:
    assistant = blocks(
        "assistant",
        {"type": "thinking", "thinking": "Easy.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "xxx"},
        {"type": "text", "text": "4"},
    )
    assert messages(request(messages=[USER, assistant]))[1] == {
        "role": "assistant",
        "content": "4",
        "thinking": "Easy.",
    }


def tool_round() -> list[dict[str, Any]]:
    return [
        USER,
        blocks(
            "assistant",
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
        ),
        blocks(
            "user",
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
            {"type": "text", "text": "Thanks"},
        ),
    ]


def test_tool_use_and_tool_result_blocks() -> None:
    converted = messages(request(messages=tool_round()))
    assert converted[0] == USER
    assistant = converted[1]
    assert (assistant["role"], assistant["content"]) == ("assistant", "Let me check.")
    assert [
        (call["id"], call["function"]["name"], call["function"]["arguments"]) for call in assistant["tool_calls"]
    ] == [
        ("toolu_1", "get_weather", {"city": "Paris"}),
        ("toolu_2", "get_time", {}),
    ]
    # Each result is a tool message named after the tool_use with its id; text after them is the user's.
    assert converted[2:] == [
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "toolu_2"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "toolu_1"},
        {"role": "user", "content": "Thanks"},
    ]


def test_a_result_for_an_unknown_tool_use_has_no_name() -> None:
    data = request(messages=[blocks("user", {"type": "tool_result", "tool_use_id": "nope", "content": "x"})])
    assert messages(data) == [{"role": "tool", "content": "x", "tool_call_id": "nope"}]


@pytest.mark.parametrize("kind", ["document", "audio", None])
def test_an_unsupported_block_is_refused(kind: Any) -> None:
    data = request(messages=[blocks("user", {"type": kind, "text": "x"})])
    assert refused(data) == f"unsupported content block type: {kind!r}"


@pytest.mark.parametrize("content", [None, 5, {"type": "text", "text": "x"}])
def test_content_must_be_a_string_or_blocks(content: Any) -> None:
    assert refused(request(messages=[{"role": "user", "content": content}])) == "invalid message content"


# --- message_request: options, tools, thinking ----------------------------------------------------------------


def test_sampling_fields_become_options() -> None:
    data = request(temperature=0.3, top_p=0.8, top_k=20, stop_sequences=["END", "\n\n"])
    assert options(data) == {"num_predict": 100, "temperature": 0.3, "top_p": 0.8, "top_k": 20, "stop": ["END", "\n\n"]}


def test_no_defaults_are_added() -> None:
    assert options(request()) == {"num_predict": 100}


def test_a_zero_temperature_is_kept() -> None:
    assert options(request(temperature=0))["temperature"] == 0


def test_the_options_object_passes_through_and_explicit_fields_win() -> None:
    passed = {"num_ctx": 4096, "temperature": 0.9, "top_k": 5, "stop": ["x"]}
    assert options(request(options=passed)) == {
        "num_predict": 100,
        "num_ctx": 4096,
        "temperature": 0.9,
        "top_k": 5,
        "stop": ["x"],
    }
    data = request(options=passed, temperature=0.1, top_k=7, stop_sequences=["y"])
    assert options(data) == {"num_predict": 100, "num_ctx": 4096, "temperature": 0.1, "top_k": 7, "stop": ["y"]}


def test_a_string_stop_sequences_is_not_split_into_characters() -> None:
    try:
        stop = options(request(stop_sequences="END")).get("stop")
    except (AnthropicError, ValidationError):
        return
    assert stop == ["END"]


def test_tools_become_native_function_tools() -> None:
    web_search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
    converted = message_request(request(tools=[WEATHER_TOOL, {"type": "custom", "name": "noop"}, web_search]))
    assert converted.body.tools == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather of a city", "parameters": WEATHER_SCHEMA},
        },
        {"type": "function", "function": {"name": "noop", "description": "", "parameters": {}}},
    ]
    assert converted.forced_tools is None


@pytest.mark.parametrize("tools", [None, []])
def test_no_tools(tools: Any) -> None:
    assert message_request(request(tools=tools)).body.tools is None


@pytest.mark.parametrize(
    ("choice", "forced"),
    [
        (None, None),
        ({"type": "auto"}, None),
        ({"type": "any"}, []),
        ({"type": "tool", "name": "get_weather"}, ["get_weather"]),
    ],
)
def test_tool_choice(choice: Any, forced: list[str] | None) -> None:
    converted = message_request(request(tools=[WEATHER_TOOL], tool_choice=choice))
    assert converted.forced_tools == forced
    assert converted.body.tools is not None and len(converted.body.tools) == 1


def test_tool_choice_none_drops_the_tools() -> None:
    converted = message_request(request(tools=[WEATHER_TOOL], tool_choice={"type": "none"}))
    assert (converted.body.tools, converted.forced_tools) == (None, None)


@pytest.mark.parametrize("choice", [{"type": "tool"}, {"type": "tool", "name": 3}, {"type": "sometimes"}])
def test_an_invalid_tool_choice_is_refused(choice: dict[str, Any]) -> None:
    assert refused(request(tools=[WEATHER_TOOL], tool_choice=choice)) == f"invalid tool_choice: {json.dumps(choice)}"


def test_a_tool_choice_without_tools_forces_nothing() -> None:
    assert message_request(request(tool_choice={"type": "any"})).forced_tools is None


@pytest.mark.parametrize(
    ("thinking", "think", "wants"),
    [
        (None, None, False),
        ({"type": "enabled", "budget_tokens": 1024}, True, True),
        ({"type": "disabled"}, False, False),
    ],
)
def test_thinking(thinking: Any, think: Any, wants: bool) -> None:
    converted = message_request(request(thinking=thinking))
    assert (converted.body.think, converted.wants_thinking) == (think, wants)


@pytest.mark.parametrize(
    ("effort", "think"), [("low", "low"), ("medium", "medium"), ("high", "high"), ("xhigh", "high"), ("max", "high")]
)
def test_output_config_effort(effort: str, think: str) -> None:
    converted = message_request(request(output_config={"effort": effort}, thinking={"type": "enabled"}))
    assert (converted.body.think, converted.wants_thinking) == (think, True)


MALFORMED = {
    "thinking as a string": request(thinking="enabled"),
    "output_config as a string": request(output_config="high"),
    "options as a list": request(options=[1]),
    "image source as a string": request(messages=[blocks("user", {"type": "image", "source": "abc"})]),
    "effort as a list": request(output_config={"effort": ["high"]}),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_fields_of_the_wrong_type_are_client_errors(data: dict[str, Any]) -> None:
    with pytest.raises((AnthropicError, ValidationError)):
        message_request(data)


# --- message ---------------------------------------------------------------------------------------------------


def line(content: str = "", thinking: str = "", calls: Any = (), **final: Any) -> Chunk:
    return chunk(content, thinking, calls, **final)


def done(reason: str = "stop", prompt: int = 9, evals: int = 3) -> Chunk:
    return line(done_reason=reason, prompt_eval_count=prompt, eval_count=evals)


def call(name: str, arguments: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    return {"id": call_id, "function": {"name": name, "arguments": arguments}}


def test_a_text_message() -> None:
    answer = message("claude-ish", [line("Hello"), line(" there"), done()])
    assert answer["id"].startswith("msg_")
    assert {key: answer[key] for key in ("type", "role", "model", "stop_reason", "stop_sequence")} == {
        "type": "message",
        "role": "assistant",
        "model": "claude-ish",
        "stop_reason": "end_turn",
        "stop_sequence": None,
    }
    assert answer["content"] == [{"type": "text", "text": "Hello there"}]
    assert answer["usage"] == {"input_tokens": 9, "output_tokens": 3, "cache_read_input_tokens": 0}


def test_cache_reads_are_counted_apart_from_input_tokens() -> None:
    answer = message(
        "m", [line("Hi"), line(done_reason="stop", prompt_eval_count=40, prompt_cached_count=32, eval_count=1)]
    )
    assert answer["usage"] == {"input_tokens": 8, "output_tokens": 1, "cache_read_input_tokens": 32}


def test_blocks_come_thinking_text_tool_use() -> None:
    lines = [
        line(thinking="Need weather."),
        line("Checking."),
        line(calls=[call("get_weather", {"city": "Oslo"}, "t1")]),
    ]
    answer = message("m", [*lines, line(calls=[call("get_time", {})]), done()])
    thinking, text, first, second = answer["content"]
    assert thinking == {"type": "thinking", "thinking": "Need weather.", "signature": ""}
    assert text == {"type": "text", "text": "Checking."}
    assert first == {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}}
    assert second["type"] == "tool_use" and second["id"].startswith("toolu_") and second["input"] == {}
    assert answer["stop_reason"] == "tool_use"


def test_a_tool_call_alone_has_no_text_block() -> None:
    answer = message("m", [line(calls=[call("f", {}, "t")]), done()])
    assert [block["type"] for block in answer["content"]] == ["tool_use"]


def test_an_empty_answer_has_one_empty_text_block() -> None:
    assert message("m", [done()])["content"] == [{"type": "text", "text": ""}]


@pytest.mark.parametrize(
    ("reason", "calls", "stop"),
    [("stop", False, "end_turn"), ("length", False, "max_tokens"), ("stop", True, "tool_use")],
)
def test_stop_reason(reason: str, calls: bool, stop: str) -> None:
    lines = [line("x", calls=[call("f", {}, "t")] if calls else ()), done(reason)]
    assert message("m", lines)["stop_reason"] == stop


# --- MessageStream ---------------------------------------------------------------------------------------------


def events(lines: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    stream = MessageStream("m")
    return [*stream.start(), *(event for native in lines for event in stream.feed(native))]


def shape(sequence: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """Each event as (type, index, what it carries), for comparing whole streams."""
    out: list[tuple[Any, ...]] = []
    for name, data in sequence:
        assert data["type"] == name
        if name == "content_block_start":
            out.append((name, data["index"], data["content_block"]["type"]))
        elif name == "content_block_delta":
            delta = data["delta"]
            out.append((name, data["index"], delta["type"], next(v for k, v in delta.items() if k != "type")))
        elif name == "content_block_stop":
            out.append((name, data["index"]))
        else:
            out.append((name,))
    return out


def test_message_start() -> None:
    ((name, data),) = list(MessageStream("m").start())
    assert name == "message_start"
    assert data["message"]["id"].startswith("msg_")
    assert {key: value for key, value in data["message"].items() if key != "id"} == {
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def test_a_text_stream() -> None:
    sequence = events([line("Hel"), line("lo"), done(prompt=5, evals=2)])
    assert shape(sequence) == [
        ("message_start",),
        ("content_block_start", 0, "text"),
        ("content_block_delta", 0, "text_delta", "Hel"),
        ("content_block_delta", 0, "text_delta", "lo"),
        ("content_block_stop", 0),
        ("message_delta",),
        ("message_stop",),
    ]
    assert sequence[1][1]["content_block"] == {"type": "text", "text": ""}
    assert sequence[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 0},
    }


def test_thinking_then_text_opens_a_new_block() -> None:
    sequence = events([line(thinking="Hm"), line("A", thinking="m."), line("B"), line(thinking="again"), done()])
    assert shape(sequence) == [
        ("message_start",),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta", "Hm"),
        ("content_block_delta", 0, "thinking_delta", "m."),
        ("content_block_stop", 0),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta", "A"),
        ("content_block_delta", 1, "text_delta", "B"),
        ("content_block_stop", 1),
        ("content_block_start", 2, "thinking"),
        ("content_block_delta", 2, "thinking_delta", "again"),
        ("content_block_stop", 2),
        ("message_delta",),
        ("message_stop",),
    ]
    assert sequence[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}


def test_each_tool_call_is_its_own_tool_use_block() -> None:
    lines = [
        line("Checking."),
        line(calls=[call("get_weather", {"city": "Oslo"}, "t1"), call("get_time", {"zone": "UTC"}, "t2")]),
        done("stop"),
    ]
    sequence = events(lines)
    assert shape(sequence) == [
        ("message_start",),
        ("content_block_start", 0, "text"),
        ("content_block_delta", 0, "text_delta", "Checking."),
        ("content_block_stop", 0),
        ("content_block_start", 1, "tool_use"),
        ("content_block_delta", 1, "input_json_delta", '{"city": "Oslo"}'),
        ("content_block_stop", 1),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta", '{"zone": "UTC"}'),
        ("content_block_stop", 2),
        ("message_delta",),
        ("message_stop",),
    ]
    assert sequence[4][1]["content_block"] == {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}
    assert sequence[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_a_cut_stream_stops_with_max_tokens() -> None:
    assert events([line("a"), done("length")])[-2][1]["delta"]["stop_reason"] == "max_tokens"


def test_the_block_indexes_increase_by_one() -> None:
    sequence = events([line(thinking="t"), line("x", calls=[call("f", {}, "a")]), line(calls=[call("g", {})]), done()])
    starts = [data["index"] for name, data in sequence if name == "content_block_start"]
    stops = [data["index"] for name, data in sequence if name == "content_block_stop"]
    assert starts == stops == [0, 1, 2, 3]


# --- error_body ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (503, "overloaded_error"),
        (500, "api_error"),
    ],
)
def test_error_body(status: int, kind: str) -> None:
    assert error_body(status, "boom") == {"type": "error", "error": {"type": kind, "message": "boom"}}


# --- hostile shapes: every wrong type is the client's 400, never a converter's crash ----------------------

FULL_REQUEST = {
    "model": "m",
    "max_tokens": 10,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "redacted_thinking", "data": "x"},
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r"}]}],
        },
        {"role": "user", "content": "plain"},
    ],
    "tools": [WEATHER_TOOL, {"type": "web_search_20250305", "name": "web_search"}],
    "tool_choice": {"type": "tool", "name": "get_weather"},
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 3,
    "stop_sequences": ["x"],
    "thinking": {"type": "enabled", "budget_tokens": 100},
    "output_config": {"effort": "high"},
    "stream": True,
    "options": {"num_ctx": 1},
}
OTHER_REQUEST = request(system="s", tools=[WEATHER_TOOL], tool_choice={"type": "any"}, thinking={"type": "disabled"},
                        stop_sequences="x")  # fmt: skip


@pytest.mark.parametrize("valid", [FULL_REQUEST, OTHER_REQUEST], ids=["full", "other"])
def test_every_field_of_the_wrong_type_is_refused_not_a_crash(valid: dict[str, Any]) -> None:
    assert accepted_or_refused(message_request, valid) == []


HOSTILE = {
    "messages as a string": request(messages="Hi"),
    "a message as a list": request(messages=[["user", "Hi"]]),
    "content as a number": request(messages=[{"role": "user", "content": 1}]),
    "a content block as a string": request(messages=[{"role": "user", "content": ["Hi"]}]),
    "an image source as a string": request(messages=[{"role": "user", "content": [{"type": "image", "source": "x"}]}]),
    "a tool_use id as a list": request(
        messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": ["t"], "name": "f", "input": {}}]}]
    ),
    "a tool_use input as a string": request(
        messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]
    ),
    "a tool_result id as an object": request(
        messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": {"a": 1}, "content": "x"}]}]
    ),
    "a tool_result content as a number": request(
        messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 1}]}]
    ),
    "system as a number": request(system=1),
    "system as an object": request(system={"text": "x"}),
    "max_tokens as a string": request(max_tokens="10"),
    "temperature as a string": request(temperature="0.5"),
    "top_k as a list": request(top_k=[3]),
    "tools as an object": request(tools={"name": "f"}),
    "tools as a number": request(tools=1),
    "a tool as a string": request(tools=["f"]),
    "stop_sequences as an object": request(stop_sequences={"a": 1}),
    "thinking as a list": request(thinking=["enabled"]),
    "output_config effort as a list": request(output_config={"effort": ["high"]}),
    "options as a string": request(options="x"),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_shapes_are_400s(data: dict[str, Any]) -> None:
    refused(data)
