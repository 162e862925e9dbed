"""OpenAI's Responses API, stateless, as a translation of native chat (``pollama.compat.responses``, spec B.5).

``response_request``: input items → native messages (instructions, message parts, function calls and their
outputs, reasoning carried to the next assistant turn), tools, ``text.format`` and options. ``response_object``
and ``ResponseStream``: native lines out as a ``response`` object and as its numbered stream events.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from pollama.compat.openai import OpenAIError
from pollama.compat.responses import ResponseStream, response_object, response_request
from pollama.service import Chunk
from tests.chunks import chunk
from tests.unit.test_compat_openai import accepted_or_refused

WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMETERS}
NATIVE_WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMETERS},
}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "Hi", **fields}


def messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry.dump() for entry in response_request(data).body.messages]


def items(*entries: dict[str, Any], **fields: Any) -> list[dict[str, Any]]:
    return messages(request(input=list(entries), **fields))


def refused(data: Any) -> str:
    with pytest.raises(OpenAIError) as raised:
        response_request(data)
    assert raised.value.status == 400
    return raised.value.message


# --- response_request: input -------------------------------------------------------------------------------


def test_a_string_input_is_one_user_message() -> None:
    converted = response_request(request())
    assert [entry.dump() for entry in converted.body.messages] == [{"role": "user", "content": "Hi"}]
    assert (converted.body.model, converted.body.stream, converted.stream) == ("m", True, False)
    assert response_request(request(stream=True)).stream is True


def test_instructions_are_the_system_message() -> None:
    assert messages(request(instructions="Be brief.")) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert items({"role": "user", "content": "x"}, instructions="Be brief.")[0] == {
        "role": "system",
        "content": "Be brief.",
    }


def test_message_items_with_parts() -> None:
    converted = items(
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is "},
                {"type": "input_text", "text": "this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,QUJD"},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "A cat."}]},
        {"role": "user", "content": "Sure?"},
    )
    assert converted == [
        {"role": "user", "content": "What is this?", "images": ["QUJD"]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Sure?"},
    ]


@pytest.mark.parametrize(("role", "native"), [("developer", "system"), ("system", "system"), ("user", "user")])
def test_roles(role: str, native: str) -> None:
    assert items({"role": role, "content": "x"}) == [{"role": native, "content": "x"}]


def test_input_files_are_refused_with_ollamas_message() -> None:
    part = {"type": "input_file", "file_data": "data:application/pdf;base64,QUJD", "filename": "a.pdf"}
    assert refused(request(input=[{"role": "user", "content": [part]}])) == "file inputs are not currently supported"


@pytest.mark.parametrize("url", ["https://example.com/a.png", "data:image/png,raw", None])
def test_only_base64_data_url_images(url: Any) -> None:
    part = {"type": "input_image", "image_url": url}
    assert refused(request(input=[{"role": "user", "content": [part]}])) == (
        "image URLs are not currently supported, please use base64 encoded data instead"
    )


def test_an_unknown_part_is_refused() -> None:
    part = {"type": "input_video", "video": "x"}
    assert (
        refused(request(input=[{"role": "user", "content": [part]}])) == "unsupported content part type: 'input_video'"
    )


def test_an_unknown_item_is_refused() -> None:
    assert refused(request(input=[{"type": "computer_call"}])) == "unsupported input item type: 'computer_call'"


@pytest.mark.parametrize("value", [None, 5, {"role": "user"}])
def test_input_is_required(value: Any) -> None:
    assert refused(request(input=value)) == "input is required"


def function_round(*more: dict[str, Any]) -> list[dict[str, Any]]:
    return items(
        {"role": "user", "content": "Weather and time?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": ""},
        {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
        {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "sunny"}]},
        *more,
    )


def test_function_calls_and_outputs() -> None:
    converted = function_round()
    assert converted[0] == {"role": "user", "content": "Weather and time?"}
    # Consecutive calls are one assistant turn; their arguments are parsed to objects.
    assistant = converted[1]
    assert (assistant["role"], assistant["content"]) == ("assistant", "")
    assert [
        (call["id"], call["function"]["name"], call["function"]["arguments"]) for call in assistant["tool_calls"]
    ] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_time", {}),
    ]
    # Each output is a tool message named after the call with its id.
    assert converted[2:] == [
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "call_2"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_1"},
    ]


def test_calls_after_an_output_are_a_new_turn() -> None:
    converted = function_round({"type": "function_call", "call_id": "call_3", "name": "get_weather", "arguments": "{}"})
    assert [entry["role"] for entry in converted] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [call["id"] for call in converted[4]["tool_calls"]] == ["call_3"]


def test_invalid_call_arguments_are_refused() -> None:
    item = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{nope"}
    assert refused(request(input=[item])) == "invalid tool call arguments"


@pytest.mark.parametrize(
    "reasoning",
    [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": t} for t in ("Think", "ing")]},
        {"type": "reasoning", "summary": [], "encrypted_content": "Thinking"},
    ],
    ids=["summary", "encrypted_content"],
)
def test_reasoning_is_thinking_of_the_next_assistant_message(reasoning: dict[str, Any]) -> None:
    converted = items(
        {"role": "user", "content": "Q"},
        reasoning,
        {"role": "assistant", "content": "A"},
        {"role": "assistant", "content": "B"},
    )
    assert converted[1:] == [
        {"role": "assistant", "content": "A", "thinking": "Thinking"},
        {"role": "assistant", "content": "B"},
    ]


def test_reasoning_before_a_function_call() -> None:
    converted = items(
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Need weather."}]},
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
    )
    assert converted[0]["thinking"] == "Need weather."
    assert converted[0]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_web_search_calls_are_ignored() -> None:
    assert items({"type": "web_search_call", "id": "ws"}, {"role": "user", "content": "x"}) == [
        {"role": "user", "content": "x"}
    ]


def test_previous_response_id_is_refused() -> None:
    assert refused(request(previous_response_id="resp_1")).startswith("previous_response_id is not supported")


# --- response_request: tools, format, options ------------------------------------------------------------------


def test_only_function_tools_are_passed() -> None:
    tools = [WEATHER_TOOL, {"type": "web_search"}, {"type": "function", "name": "noop"}]
    assert response_request(request(tools=tools)).body.tools == [
        NATIVE_WEATHER,
        {"type": "function", "function": {"name": "noop", "description": "", "parameters": {"type": "object"}}},
    ]
    assert response_request(request(tools=[{"type": "web_search"}])).body.tools is None


@pytest.mark.parametrize(
    ("choice", "forced", "tools"),
    [
        (None, None, [NATIVE_WEATHER]),
        ("auto", None, [NATIVE_WEATHER]),
        ("required", [], [NATIVE_WEATHER]),
        ({"type": "function", "name": "get_weather"}, ["get_weather"], [NATIVE_WEATHER]),
        ("none", None, None),
    ],
)
def test_tool_choice(choice: Any, forced: Any, tools: Any) -> None:
    converted = response_request(request(tools=[WEATHER_TOOL], tool_choice=choice))
    assert (converted.forced_tools, converted.body.tools) == (forced, tools)


@pytest.mark.parametrize("choice", ["always", {"type": "function"}, {"type": "allowed_tools"}])
def test_an_invalid_tool_choice_is_refused(choice: Any) -> None:
    assert refused(request(tools=[WEATHER_TOOL], tool_choice=choice)) == f"invalid tool_choice: {json.dumps(choice)}"


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


@pytest.mark.parametrize(
    ("text", "native"),
    [
        ({"format": {"type": "json_schema", "name": "x", "schema": SCHEMA}}, SCHEMA),
        ({"format": {"type": "json_object"}}, "json"),
        ({"format": {"type": "text"}}, None),
        (None, None),
    ],
)
def test_text_format(text: Any, native: Any) -> None:
    assert response_request(request(text=text)).body.format == native


def test_options() -> None:
    assert response_request(request()).body.options == {"temperature": 1.0}
    data = request(temperature=0.2, top_p=0.5, max_output_tokens=30, options={"num_ctx": 2048, "temperature": 0.9})
    assert response_request(data).body.options == {"temperature": 0.2, "top_p": 0.5, "num_predict": 30, "num_ctx": 2048}


@pytest.mark.parametrize(("effort", "think"), [("none", False), ("minimal", "low"), ("high", "high"), ("xhigh", "max")])
def test_reasoning_effort(effort: str, think: Any) -> None:
    assert response_request(request(reasoning={"effort": effort})).body.think == think


def test_the_echo_repeats_the_request() -> None:
    data = request(
        instructions="Be brief.",
        max_output_tokens=30,
        tools=[WEATHER_TOOL],
        metadata={"k": "v"},
        reasoning={"effort": "low", "summary": "auto"},
    )
    echo = response_request(data).echo
    assert echo == {
        "instructions": "Be brief.",
        "max_output_tokens": 30,
        "temperature": 1.0,
        "top_p": 1.0,
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "text": {"format": {"type": "text"}},
        "reasoning": {"effort": "low", "summary": "auto"},
        "metadata": {"k": "v"},
    }


MALFORMED = {
    "reasoning as a string": request(reasoning="high"),
    "options as a list": request(options=[1]),
    "function_call arguments as a list": request(
        input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": [1]}]
    ),
}


def test_function_call_arguments_may_also_be_an_object() -> None:
    # Lenient where it costs nothing: some clients send the parsed object instead of a JSON string.
    data = request(input=[{"type": "function_call", "call_id": "c", "name": "f", "arguments": {"city": "Paris"}}])
    call = response_request(data).body.messages[-1].tool_calls[0]
    assert call.function.arguments == {"city": "Paris"}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_fields_of_the_wrong_type_are_client_errors(data: dict[str, Any]) -> None:
    with pytest.raises((OpenAIError, ValidationError)):
        response_request(data)


# --- response_object --------------------------------------------------------------------------------------------

ECHO = response_request(request()).echo


def line(content: str = "", thinking: str = "", calls: Any = (), **final: Any) -> Chunk:
    return chunk(content, thinking, calls, **final)


def done(reason: str = "stop", prompt: int = 8, evals: int = 5) -> Chunk:
    return line(done_reason=reason, prompt_eval_count=prompt, eval_count=evals)


def call(name: str, arguments: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    return {"id": call_id, "function": {"name": name, "arguments": arguments}}


USAGE = {
    "input_tokens": 8,
    "output_tokens": 5,
    "total_tokens": 13,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens_details": {"reasoning_tokens": 0},
}


def test_a_text_response() -> None:
    answer = response_object("m", ECHO, [line("Hello"), line(" there"), done()])
    assert answer["id"].startswith("resp_")
    assert (answer["object"], answer["status"], answer["model"]) == ("response", "completed", "m")
    assert answer["incomplete_details"] is None and answer["error"] is None
    assert isinstance(answer["created_at"], int) and answer["completed_at"] >= answer["created_at"]
    (item,) = answer["output"]
    assert item["id"].startswith("msg_")
    assert {key: value for key, value in item.items() if key != "id"} == {
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello there", "annotations": [], "logprobs": []}],
    }
    assert answer["usage"] == USAGE
    assert {key: answer[key] for key in ("store", "truncation", "parallel_tool_calls", "tool_choice")} == {
        "store": False,
        "truncation": "disabled",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
    }


def test_reasoning_message_and_function_calls() -> None:
    lines = [line(thinking="Need it."), line("Checking."), line(calls=[call("get_weather", {"city": "Zürich"}, "c1")])]
    answer = response_object("m", ECHO, [*lines, line(calls=[call("get_time", {})]), done()])
    reasoning, text, first, second = answer["output"]
    response_id = answer["id"]
    assert reasoning == {
        "id": f"rs_{response_id}",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Need it."}],
        "encrypted_content": "Need it.",
    }
    assert text["type"] == "message" and text["content"][0]["text"] == "Checking."
    assert first == {
        "id": f"fc_{response_id}_0",
        "type": "function_call",
        "status": "completed",
        "call_id": "c1",
        "name": "get_weather",
        "arguments": '{"city": "Zürich"}',
    }
    assert second["id"] == f"fc_{response_id}_1"
    assert second["call_id"].startswith("call_")
    assert json.loads(second["arguments"]) == {}


def test_a_function_call_alone_has_no_message() -> None:
    answer = response_object("m", ECHO, [line(calls=[call("f", {"a": 1}, "c")]), done()])
    assert [item["type"] for item in answer["output"]] == ["function_call"]


def test_a_cut_response_is_incomplete() -> None:
    answer = response_object("m", ECHO, [line("Once upon"), done("length")])
    assert answer["status"] == "incomplete"
    assert answer["incomplete_details"] == {"reason": "max_output_tokens"}


# --- ResponseStream ---------------------------------------------------------------------------------------------


def stream(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    responses = ResponseStream("m", ECHO)
    return [*responses.start(), *(event for native in lines for event in responses.feed(native))]


def check_numbering(events: list[dict[str, Any]]) -> None:
    assert [event["sequence_number"] for event in events] == list(range(len(events)))


def test_a_text_stream() -> None:
    events = stream([line("Hel"), line("lo"), done()])
    check_numbering(events)
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0]["response"]
    assert (created["status"], created["output"]) == ("in_progress", [])
    added = events[2]
    assert (added["output_index"], added["item"]["type"], added["item"]["status"]) == (0, "message", "in_progress")
    item_id = added["item"]["id"]
    assert [event["delta"] for event in events[4:6]] == ["Hel", "lo"]
    assert {event["item_id"] for event in events[3:8]} == {item_id}
    assert events[6]["text"] == "Hello"
    assert events[7]["part"]["text"] == "Hello"
    assert events[8]["item"]["id"] == item_id and events[8]["item"]["status"] == "completed"
    completed = events[-1]["response"]
    assert completed["status"] == "completed" and completed["id"] == created["id"]
    assert completed["output"] == [events[8]["item"]]
    assert completed["usage"] == USAGE


def test_thinking_then_text() -> None:
    events = stream([line(thinking="Hm"), line("4", thinking="m."), done()])
    check_numbering(events)
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["output_index"] for event in events[2:7]] == [0] * 5
    assert [event["output_index"] for event in events[7:13]] == [1] * 6
    assert events[5]["text"] == "Hmm."
    reasoning = events[6]["item"]
    assert reasoning["type"] == "reasoning" and reasoning["summary"] == [{"type": "summary_text", "text": "Hmm."}]
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]
    assert output[1]["content"][0]["text"] == "4"


def test_a_tool_call_stream() -> None:
    events = stream([line("Let me check."), line(calls=[call("get_weather", {"city": "Oslo"}, "c1")]), done()])
    check_numbering(events)
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = events[8]
    assert added["output_index"] == 1
    assert {key: added["item"][key] for key in ("type", "status", "name", "call_id", "arguments")} == {
        "type": "function_call",
        "status": "in_progress",
        "name": "get_weather",
        "call_id": "c1",
        "arguments": "",
    }
    assert events[9]["delta"] == events[10]["arguments"] == '{"city": "Oslo"}'
    assert {events[index]["item_id"] for index in (9, 10)} == {added["item"]["id"]}
    assert events[11]["item"]["status"] == "completed" and events[11]["output_index"] == 1
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert output[1] == events[11]["item"]


def test_several_tool_calls_get_their_own_items() -> None:
    events = stream([line(calls=[call("a", {}, "c1"), call("b", {}, "c2")]), line(calls=[call("c", {}, "c3")]), done()])
    check_numbering(events)
    output = events[-1]["response"]["output"]
    assert [(item["name"], item["call_id"]) for item in output] == [("a", "c1"), ("b", "c2"), ("c", "c3")]
    assert len({item["id"] for item in output}) == 3
    added = [event["output_index"] for event in events if event["type"] == "response.output_item.added"]
    assert added == [0, 1, 2]


def test_a_cut_stream_completes_incomplete() -> None:
    final = stream([line("a"), done("length")])[-1]
    assert final["type"] == "response.completed"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


# --- hostile shapes: every wrong type is the client's 400, never a converter's crash ----------------------

IMAGE = "data:image/png;base64,iVBORw0KGgo="
FULL_REQUEST = {
    "model": "m",
    "instructions": "Be brief.",
    "input": [
        {"type": "message", "role": "developer", "content": "s"},
        {
            "role": "user",
            "content": [{"type": "input_text", "text": "Hi"}, {"type": "input_image", "image_url": IMAGE}],
        },
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "r"}]},
        {"type": "web_search_call", "id": "w"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
    ],
    "tools": [WEATHER_TOOL, {"type": "web_search"}],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "reasoning": {"effort": "low", "summary": "auto"},
    "temperature": 0.5,
    "top_p": 0.9,
    "max_output_tokens": 10,
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
    "stream": True,
    "options": {"num_ctx": 1},
    "metadata": {"a": "b"},
}
OTHER_REQUEST = {
    "model": "m",
    "input": [
        {"type": "reasoning", "encrypted_content": "e"},
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": {"city": "Paris"}},
    ],
    "text": {"format": {"type": "json_object"}},
    "tools": [WEATHER_TOOL],
    "tool_choice": "required",
}


@pytest.mark.parametrize("valid", [FULL_REQUEST, OTHER_REQUEST, request()], ids=["full", "other", "plain"])
def test_every_field_of_the_wrong_type_is_refused_not_a_crash(valid: dict[str, Any]) -> None:
    assert accepted_or_refused(response_request, valid) == []


HOSTILE = {
    "input as a number": request(input=1),
    "input as an object": request(input={"role": "user", "content": "Hi"}),
    "an input item as a string": request(input=["Hi"]),
    "content as a number": request(input=[{"role": "user", "content": 1}]),
    "a content part as a string": request(input=[{"role": "user", "content": ["Hi"]}]),
    "an image_url as an object": request(
        input=[{"role": "user", "content": [{"type": "input_image", "image_url": {}}]}]
    ),
    "call_id as a list": request(input=[{"type": "function_call", "call_id": ["c"], "name": "f", "arguments": "{}"}]),
    "output call_id as an object": request(
        input=[{"type": "function_call_output", "call_id": {"a": 1}, "output": "x"}]
    ),
    "a reasoning summary as a number": request(input=[{"type": "reasoning", "summary": 1}]),
    "instructions as an object": request(instructions={"a": 1}),
    "tools as an object": request(tools={"type": "function", "name": "f"}),
    "tools as a number": request(tools=1),
    "a tool as a string": request(tools=["f"]),
    "tool_choice as a number": request(tools=[WEATHER_TOOL], tool_choice=1),
    "reasoning as a string": request(reasoning="high"),
    "reasoning effort as a list": request(reasoning={"effort": ["high"]}),
    "options as a list": request(options=[1]),
    "temperature as a string": request(temperature="0.5"),
    "max_output_tokens as a string": request(max_output_tokens="10"),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_shapes_are_400s(data: dict[str, Any]) -> None:
    refused(data)
