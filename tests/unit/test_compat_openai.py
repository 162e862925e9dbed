"""The OpenAI API as a translation of the native one (``pollama.compat.openai``, spec B.1-B.4), as pure functions.

Requests in (``chat_request``, ``completion_request``, ``embed_request``): the native body they become and the
exact 400 messages for what is refused. Native lines out (``chat_completion``, ``ChatStream``, ``completion``,
``CompletionStream``, ``embeddings_response``): the OpenAI objects and chunk sequences clients read.
No server and no model: every test here is a dictionary in, a dictionary out.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

import pollama.compat.openai as openai_compat
from pollama.compat.openai import (
    ChatStream,
    CompletionStream,
    OpenAIError,
    chat_choice,
    chat_completion,
    chat_request,
    completion,
    completion_request,
    embed_request,
    embeddings_response,
    error_body,
    model_object,
)
from pollama.service import Chunk
from pollama.service.embed import Embeddings
from tests.chunks import chunk

USER = {"role": "user", "content": "Hi"}
# A finished answer always says what the prompt cache saved, as the server's final line always did.
NO_CACHE = {"prompt_tokens_details": {"cached_tokens": 0}}
PNG = "iVBORw0KGgo="  # any base64 payload: it is passed on untouched
URL_MESSAGE = "image URLs are not currently supported, please use base64 encoded data instead"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [USER], **fields}


def messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The native messages of a chat request, as Ollama would store them (empty fields left out)."""
    return [message.dump() for message in chat_request(data).body.messages]


def options(data: dict[str, Any]) -> dict[str, Any]:
    return chat_request(data).body.options or {}


def refused(call: Any, *args: Any) -> OpenAIError:
    with pytest.raises(OpenAIError) as raised:
        call(*args)
    assert raised.value.status == 400
    return raised.value


def user_parts(*parts: Any) -> dict[str, Any]:
    return request(messages=[{"role": "user", "content": list(parts)}])


# --- chat_request: messages -----------------------------------------------------------------------------


def test_string_content_is_one_message() -> None:
    assert messages(request(messages=[{"role": "system", "content": "Be brief."}, USER])) == [
        {"role": "system", "content": "Be brief."},
        USER,
    ]


def test_the_role_is_lowercased_as_ollama_does() -> None:
    assert messages(request(messages=[{"role": "USER", "content": "x"}])) == [{"role": "user", "content": "x"}]


def test_content_parts_become_one_message_per_part() -> None:
    data = user_parts(
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "Be brief."},
    )
    assert messages(data) == [
        {"role": "user", "content": "What is this?"},
        {"role": "user", "content": "", "images": [PNG]},
        {"role": "user", "content": "Be brief."},
    ]


@pytest.mark.parametrize(
    "prefix",
    [
        "data:image/jpeg;base64,",
        "data:image/jpg;base64,",
        "data:image/png;base64,",
        "data:image/webp;base64,",
        "data:;base64,",
        "DATA:IMAGE/PNG;BASE64,",
    ],
)
def test_data_url_images_are_accepted(prefix: str) -> None:
    assert messages(user_parts({"type": "image_url", "image_url": {"url": prefix + PNG}})) == [
        {"role": "user", "content": "", "images": [PNG]}
    ]


def test_an_image_url_may_be_a_bare_string() -> None:
    data = user_parts({"type": "image_url", "image_url": f"data:image/jpeg;base64,{PNG}"})
    assert messages(data)[0]["images"] == [PNG]


@pytest.mark.parametrize("url", ["http://example.com/cat.png", "https://example.com/cat.png"])
def test_http_image_urls_are_refused_with_ollamas_message(url: str) -> None:
    error = refused(chat_request, user_parts({"type": "image_url", "image_url": {"url": url}}))
    assert error.message == URL_MESSAGE


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/cat.png", "data:image/gif;base64,R0lGOD", "data:image/png,rawbytes", "file:///cat.png", ""],
)
def test_other_image_inputs_are_invalid(url: str) -> None:
    assert refused(chat_request, user_parts({"type": "image_url", "image_url": {"url": url}})).message == (
        "invalid image input"
    )


def test_input_audio_goes_into_images() -> None:
    data = user_parts({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}})
    assert messages(data) == [{"role": "user", "content": "", "images": ["UklGRg=="]}]


def test_an_unknown_part_type_is_refused() -> None:
    assert refused(chat_request, user_parts({"type": "video", "video": "x"})).message == "invalid message format"


def test_tool_calls_and_reasoning_go_on_the_last_part() -> None:
    data = request(
        messages=[
            {
                "role": "assistant",
                "reasoning": "They want weather.",
                "content": [{"type": "text", "text": "Checking"}, {"type": "text", "text": "the weather"}],
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            }
        ]
    )
    first, last = messages(data)
    assert first == {"role": "assistant", "content": "Checking"}
    assert last["content"] == "the weather"
    assert last["thinking"] == "They want weather."
    assert [call["function"]["name"] for call in last["tool_calls"]] == ["get_weather"]


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_assistant_reasoning_becomes_thinking(field: str) -> None:
    data = request(messages=[USER, {"role": "assistant", "content": "4", field: "2+2"}])
    assert messages(data)[1] == {"role": "assistant", "content": "4", "thinking": "2+2"}


def test_null_content_is_allowed_with_tool_calls() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    (message,) = messages(request(messages=[{"role": "assistant", "content": None, "tool_calls": [call]}]))
    assert message["content"] == ""
    (native,) = message["tool_calls"]
    assert native["id"] == "call_1"
    assert native["function"]["name"] == "get_weather"
    assert native["function"]["arguments"] == {"city": "Paris"}  # the JSON string, parsed to an object


@pytest.mark.parametrize("message", [{"role": "user", "content": None}, {"role": "user"}])
def test_null_content_without_tool_calls_is_refused(message: dict[str, Any]) -> None:
    assert refused(chat_request, request(messages=[message])).message == "invalid message content type: <nil>"


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", "null", '"text"', "3"])
def test_tool_call_arguments_that_are_no_json_object_are_refused(arguments: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    data = request(messages=[{"role": "assistant", "content": None, "tool_calls": [call]}])
    assert refused(chat_request, data).message == "invalid tool call arguments"


@pytest.mark.parametrize("arguments", ["", None, "{}"])
def test_empty_tool_call_arguments_are_an_empty_object(arguments: Any) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    (message,) = messages(request(messages=[{"role": "assistant", "content": None, "tool_calls": [call]}]))
    assert message["tool_calls"][0]["function"]["arguments"] == {}


def tool_exchange(*results: dict[str, Any]) -> dict[str, Any]:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    return request(messages=[USER, {"role": "assistant", "content": None, "tool_calls": calls}, *results])


def test_a_tool_result_takes_its_name_from_the_call_with_its_id() -> None:
    data = tool_exchange(
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    )
    assert messages(data)[2:] == [
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "call_b"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_a"},
    ]


def test_a_tool_results_name_field_wins() -> None:
    data = tool_exchange({"role": "tool", "tool_call_id": "call_a", "name": "other", "content": "x"})
    assert messages(data)[2]["tool_name"] == "other"


def test_the_last_call_with_an_id_names_its_result() -> None:
    first = {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": "old"}}]}
    second = {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {"name": "new"}}]}
    data = request(messages=[USER, first, second, {"role": "tool", "tool_call_id": "c", "content": "x"}])
    assert messages(data)[3]["tool_name"] == "new"


def test_an_unknown_tool_call_id_leaves_no_name() -> None:
    (message,) = messages(request(messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}]))
    assert message == {"role": "tool", "content": "x", "tool_call_id": "nope"}


def test_no_messages_is_refused_with_ollamas_message() -> None:
    assert refused(chat_request, request(messages=[])).message == "[] is too short - 'messages'"


@pytest.mark.parametrize("value", [None, "Hi", {"role": "user"}])
def test_messages_must_be_a_list(value: Any) -> None:
    assert refused(chat_request, request(messages=value)).message == "invalid message format"


def test_a_null_text_part_is_not_the_text_none() -> None:
    try:
        converted = messages(user_parts({"type": "text", "text": None}))
    except OpenAIError as error:
        assert error.message == "invalid message format"
        return
    assert converted == [{"role": "user", "content": ""}]


# --- chat_request: options, format, think, tools --------------------------------------------------------


def test_temperature_and_top_p_default_to_one() -> None:
    assert options(request()) == {"temperature": 1.0, "top_p": 1.0}


def test_sampling_fields_become_options() -> None:
    data = request(temperature=0.2, top_p=0.5, seed=7, frequency_penalty=0.1, presence_penalty=0.3, max_tokens=12)
    assert options(data) == {
        "temperature": 0.2,
        "top_p": 0.5,
        "seed": 7,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.3,
        "num_predict": 12,
    }


def test_a_zero_temperature_is_kept() -> None:
    assert options(request(temperature=0))["temperature"] == 0


def test_max_completion_tokens_is_num_predict_and_wins_over_max_tokens() -> None:
    assert options(request(max_completion_tokens=9))["num_predict"] == 9
    assert options(request(max_completion_tokens=9, max_tokens=50))["num_predict"] == 9


def test_a_null_max_completion_tokens_leaves_max_tokens() -> None:
    assert options(request(max_completion_tokens=None, max_tokens=5)).get("num_predict") == 5


@pytest.mark.parametrize(("stop", "native"), [("END", ["END"]), (["a", "b"], ["a", "b"]), ([], [])])
def test_stop_is_a_string_or_a_list(stop: Any, native: list[str]) -> None:
    assert options(request(stop=stop))["stop"] == native


@pytest.mark.parametrize("stop", [5, ["a", 1], {"a": 1}, [None]])
def test_a_bad_stop_is_refused(stop: Any) -> None:
    assert refused(chat_request, request(stop=stop)).message == "invalid type for 'stop' field"


def test_the_options_object_passes_any_native_option_through() -> None:
    assert options(request(options={"num_ctx": 8192, "top_k": 3, "temperature": 0.4})) == {
        "temperature": 0.4,
        "top_p": 1.0,
        "num_ctx": 8192,
        "top_k": 3,
    }


def test_explicit_openai_fields_win_over_the_options_object() -> None:
    passed = {"temperature": 0.9, "top_p": 0.9, "num_predict": 100, "seed": 1, "stop": ["x"], "num_ctx": 512}
    data = request(options=passed, temperature=0.1, top_p=0.2, max_tokens=5, seed=2, stop="y")
    assert options(data) == {
        "temperature": 0.1,
        "top_p": 0.2,
        "num_predict": 5,
        "seed": 2,
        "stop": ["y"],
        "num_ctx": 512,
    }


def test_options_must_be_an_object() -> None:
    assert refused(chat_request, request(options=[1])).message == "invalid options"


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.mark.parametrize(
    ("response_format", "native"),
    [
        ({"type": "json_object"}, "json"),
        ({"type": "JSON_OBJECT"}, "json"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}, SCHEMA),
        ({"type": "Json_Schema", "json_schema": {"schema": SCHEMA}}, SCHEMA),
        ({"type": "text"}, None),
        (None, None),
    ],
)
def test_response_format(response_format: Any, native: Any) -> None:
    assert chat_request(request(response_format=response_format)).body.format == native


@pytest.mark.parametrize(
    ("effort", "think"),
    [
        ("none", False),
        ("minimal", "low"),
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
        ("max", "max"),
        ("xhigh", "max"),
        ("ultra", "max"),
        ("", None),
        (None, None),
    ],
)
def test_reasoning_effort(effort: Any, think: Any) -> None:
    assert chat_request(request(reasoning_effort=effort)).body.think == think
    assert chat_request(request(reasoning={"effort": effort})).body.think == think


def test_an_invalid_reasoning_effort_is_refused() -> None:
    assert refused(chat_request, request(reasoning_effort="extreme")).message.startswith(
        "invalid reasoning value: 'extreme'"
    )


def test_tools_pass_through_in_the_native_shape() -> None:
    converted = chat_request(request(tools=[WEATHER_TOOL]))
    assert converted.body.tools == [WEATHER_TOOL]
    assert converted.forced_tools is None


@pytest.mark.parametrize(
    ("choice", "forced"),
    [
        (None, None),
        ("auto", None),
        ("required", []),
        ({"type": "function", "function": {"name": "get_weather"}}, ["get_weather"]),
    ],
)
def test_tool_choice(choice: Any, forced: list[str] | None) -> None:
    converted = chat_request(request(tools=[WEATHER_TOOL], tool_choice=choice))
    assert converted.forced_tools == forced
    assert converted.body.tools == [WEATHER_TOOL]


def test_tool_choice_none_drops_the_tools() -> None:
    converted = chat_request(request(tools=[WEATHER_TOOL], tool_choice="none"))
    assert converted.body.tools is None
    assert converted.forced_tools is None


@pytest.mark.parametrize(
    "choice", ["always", {"type": "function"}, {"type": "function", "function": {"name": ""}}, {"type": "x"}, 3]
)
def test_an_invalid_tool_choice_is_refused(choice: Any) -> None:
    error = refused(chat_request, request(tools=[WEATHER_TOOL], tool_choice=choice))
    assert error.message == f"invalid tool_choice: {json.dumps(choice)}"


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_a_forcing_tool_choice_needs_tools(choice: Any) -> None:
    assert refused(chat_request, request(tool_choice=choice)).message == "tool_choice requires tools"


def test_tool_choice_none_needs_no_tools() -> None:
    assert chat_request(request(tool_choice="none")).body.tools is None


@pytest.mark.parametrize(("n", "choices"), [(None, 1), (1, 1), (3, 3), (8, 8)])
def test_n(n: Any, choices: int) -> None:
    assert chat_request(request(n=n)).choices == choices


@pytest.mark.parametrize("n", [9, -1, 2.0, "2"])
def test_n_out_of_bounds_is_refused(n: Any) -> None:
    assert refused(chat_request, request(n=n)).message == "n must be an integer from 1 to 8"


def test_logit_bias_maps_token_ids_to_floats() -> None:
    converted = chat_request(request(logit_bias={"50256": -100, "13": 2.5}))
    assert converted.extra_options == {"logit_bias": {50256: -100.0, 13: 2.5}}
    assert all(isinstance(value, float) for value in converted.extra_options["logit_bias"].values())
    assert chat_request(request(logit_bias={})).extra_options == {}
    assert chat_request(request()).extra_options == {}


@pytest.mark.parametrize("bias", [{"token": 1}, {"1": "much"}, {"1": None}, {"1": [1]}])
def test_bad_logit_bias_is_refused(bias: Any) -> None:
    assert refused(chat_request, request(logit_bias=bias)).message == "invalid logit_bias: token ids map to numbers"


def test_logit_bias_must_be_an_object() -> None:
    assert refused(chat_request, request(logit_bias=[1])).message == "invalid logit_bias"


def test_stream_and_include_usage() -> None:
    plain = chat_request(request())
    assert (plain.stream, plain.include_usage) == (False, False)  # stream defaults to false on /v1
    assert plain.body.stream is True  # the native request always streams: the route collects
    streamed = chat_request(request(stream=True, stream_options={"include_usage": True}))
    assert (streamed.stream, streamed.include_usage) == (True, True)


def test_logprobs() -> None:
    assert (chat_request(request()).body.logprobs, chat_request(request()).body.top_logprobs) == (False, 0)
    assert chat_request(request(logprobs=True)).body.logprobs is True
    body = chat_request(request(top_logprobs=3)).body
    assert (body.logprobs, body.top_logprobs) == (True, 3)


def test_model_keep_alive_and_debug_render_only() -> None:
    body = chat_request(request(model="llama3.2", keep_alive="5m", _debug_render_only=True)).body
    assert (body.model, body.keep_alive, body.debug_render_only) == ("llama3.2", "5m", True)


@pytest.mark.parametrize("data", [None, [], "x"])
def test_the_request_must_be_an_object(data: Any) -> None:
    assert refused(chat_request, data).message == "invalid request"


MALFORMED_CHAT = {
    "reasoning as a string": request(reasoning="high"),
    "reasoning_effort as a list": request(reasoning_effort=["high"]),
    "stream_options as a boolean": request(stream_options=True),
    "top_logprobs as a string": request(top_logprobs="3"),
    "tool call function as a string": request(
        messages=[{"role": "assistant", "content": None, "tool_calls": [{"function": "f"}]}]
    ),
    "input_audio as a string": user_parts({"type": "input_audio", "input_audio": "UklGRg=="}),
    "json_schema as a string": request(response_format={"type": "json_schema", "json_schema": "x"}),
}


@pytest.mark.parametrize("data", MALFORMED_CHAT.values(), ids=MALFORMED_CHAT.keys())
def test_fields_of_the_wrong_type_are_client_errors(data: dict[str, Any]) -> None:
    with pytest.raises((OpenAIError, ValidationError)):
        chat_request(data)


# --- chat_completion / chat_choice --------------------------------------------------------------------------


def line(content: str = "", thinking: str = "", calls: Any = (), **final: Any) -> Chunk:
    return chunk(content, thinking, calls, **final)


def done(reason: str = "stop", prompt: int = 10, evals: int = 4, content: str = "") -> Chunk:
    return line(content, done_reason=reason, prompt_eval_count=prompt, eval_count=evals)


def call(name: str, arguments: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"function": {"name": name, "arguments": arguments}}
    if call_id:
        entry["id"] = call_id
    return entry


def test_a_completion_joins_the_content_and_counts_usage() -> None:
    answer = chat_completion("llama3.2", [[line("The sky"), line(" is blue."), done(prompt=12, evals=5)]])
    assert answer["object"] == "chat.completion"
    assert answer["id"].startswith("chatcmpl-") and 0 <= int(answer["id"].split("-")[1]) < 999
    assert isinstance(answer["created"], int)
    assert (answer["model"], answer["system_fingerprint"]) == ("llama3.2", "fp_ollama")
    assert answer["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "The sky is blue."}, "finish_reason": "stop"}
    ]
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, **NO_CACHE}


def test_thinking_comes_back_as_reasoning_and_reasoning_content() -> None:
    choice = chat_choice(0, [line(thinking="Two and "), line(thinking="two."), line("4"), done()])
    assert choice["message"] == {
        "role": "assistant",
        "content": "4",
        "reasoning": "Two and two.",
        "reasoning_content": "Two and two.",
    }


def test_tool_calls_have_ids_and_string_arguments() -> None:
    calls = [call("get_weather", {"city": "Zürich"}, "call_1"), call("get_time", {})]
    choice = chat_choice(0, [line(calls=calls), done()])
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    first, second = choice["message"]["tool_calls"]
    assert first == {
        "id": "call_1",
        "index": 0,
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
    }
    assert second["id"].startswith("call_") and second["id"] != "call_1"
    assert second["index"] == 1
    assert json.loads(second["function"]["arguments"]) == {}


@pytest.mark.parametrize(
    ("reason", "calls", "finish"),
    [("stop", False, "stop"), ("length", False, "length"), ("length", True, "length"), ("stop", True, "tool_calls")],
)
def test_finish_reason(reason: str, calls: bool, finish: str) -> None:
    lines = [line("x", calls=[call("f", {})] if calls else ()), done(reason)]
    assert chat_choice(0, lines)["finish_reason"] == finish


def test_logprobs_are_collected_into_the_choice() -> None:
    first, second = {"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -0.2}
    choice = chat_choice(0, [line("a", logprobs=[first]), line("b", logprobs=[second]), done()])
    assert choice["logprobs"] == {"content": [first, second]}
    assert "logprobs" not in chat_choice(0, [line("a"), done()])


def test_several_choices_count_the_prompt_once() -> None:
    answers = [[line("a"), done(prompt=10, evals=3)], [line("b"), done(reason="length", prompt=10, evals=7)]]
    answer = chat_completion("m", answers)
    assert [choice["index"] for choice in answer["choices"]] == [0, 1]
    assert [choice["message"]["content"] for choice in answer["choices"]] == ["a", "b"]
    assert [choice["finish_reason"] for choice in answer["choices"]] == ["stop", "length"]
    assert answer["usage"] == {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20, **NO_CACHE}


# --- ChatStream ------------------------------------------------------------------------------------------


def stream(lines: list[dict[str, Any]], index: int = 0) -> list[dict[str, Any]]:
    chat = ChatStream("m", "chatcmpl-7", 1_700_000_000, index)
    return [chunk for native in lines for chunk in chat.feed(native)]


def deltas(chunks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
    return [(chunk["choices"][0]["delta"], chunk["choices"][0]["finish_reason"]) for chunk in chunks]


def test_a_text_stream() -> None:
    chunks = stream([line("Hel"), line("lo"), done()])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert {(chunk["id"], chunk["created"], chunk["model"], chunk["system_fingerprint"]) for chunk in chunks} == {
        ("chatcmpl-7", 1_700_000_000, "m", "fp_ollama")
    }
    assert deltas(chunks) == [
        ({"role": "assistant", "content": "Hel"}, None),
        ({"content": "lo"}, None),
        ({}, "stop"),  # the separate finish chunk; the metrics-only line is no content chunk
    ]


def test_thinking_is_split_before_the_content_of_the_same_line() -> None:
    chunks = stream([line(thinking="Hmm."), line("4", thinking=" Four."), done()])
    assert deltas(chunks) == [
        ({"role": "assistant", "content": "", "reasoning": "Hmm.", "reasoning_content": "Hmm."}, None),
        ({"content": "", "reasoning": " Four.", "reasoning_content": " Four."}, None),
        ({"content": "4"}, None),
        ({}, "stop"),
    ]


def test_empty_lines_send_nothing() -> None:
    assert deltas(stream([line(""), line("a"), line(""), done()])) == [
        ({"role": "assistant", "content": "a"}, None),
        ({}, "stop"),
    ]


def test_tool_call_indexes_continue_across_chunks() -> None:
    chunks = stream([line(calls=[call("a", {"x": 1}, "c1")]), line(calls=[call("b", {}), call("c", {})]), done()])
    (first, _), (second, _), (finish, reason) = deltas(chunks)
    assert first["role"] == "assistant"
    assert first["tool_calls"] == [
        {"id": "c1", "index": 0, "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}}
    ]
    assert [(tool["index"], tool["function"]["name"]) for tool in second["tool_calls"]] == [(1, "b"), (2, "c")]
    assert (finish, reason) == ({}, "tool_calls")


def test_a_cut_stream_finishes_with_length() -> None:
    assert deltas(stream([line("a"), done("length")]))[-1] == ({}, "length")


def test_content_on_the_final_line_comes_before_the_finish() -> None:
    assert deltas(stream([done(content="bye")])) == [({"role": "assistant", "content": "bye"}, None), ({}, "stop")]


def test_the_choice_index_is_kept() -> None:
    assert {chunk["choices"][0]["index"] for chunk in stream([line("a"), done()], index=2)} == {2}


def test_logprobs_ride_on_content_chunks() -> None:
    entry = {"token": "a", "logprob": -0.5}
    (chunk, _) = stream([line("a", logprobs=[entry]), done()])
    assert chunk["choices"][0]["logprobs"] == {"content": [entry]}


def test_the_usage_chunk_has_no_choices() -> None:
    chat = ChatStream("m", "chatcmpl-1", 5)
    list(chat.feed(line("a")))
    list(chat.feed(done(prompt=3, evals=2)))
    assert chat.final is not None and chat.final.stats is not None and chat.final.stats.eval_count == 2
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    chunk = chat.usage_chunk(usage)
    assert chunk["choices"] == []
    assert chunk["usage"] == usage
    assert (chunk["id"], chunk["object"], chunk["created"]) == ("chatcmpl-1", "chat.completion.chunk", 5)


# --- /v1/completions ------------------------------------------------------------------------------------


def test_completion_request() -> None:
    body, stream_, include_usage = completion_request(
        {"model": "m", "prompt": "Once", "suffix": "end", "max_tokens": 8, "seed": 1, "stop": ["\n"]}
    )
    assert (body.model, body.prompt, body.suffix, body.stream) == ("m", "Once", "end", True)
    assert body.options == {
        "temperature": 1.0,
        "top_p": 1.0,
        "num_predict": 8,
        "seed": 1,
        "stop": ["\n"],
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
    }
    assert (stream_, include_usage) == (False, False)


def test_a_zero_top_p_is_one_for_completions() -> None:
    body, _, _ = completion_request({"model": "m", "prompt": "x", "top_p": 0})
    assert body.options is not None and body.options["top_p"] == 1.0


@pytest.mark.parametrize("prompt", [["a", "b"], [1, 2], 5, None])
def test_the_prompt_must_be_a_string(prompt: Any) -> None:
    error = refused(completion_request, {"model": "m", "prompt": prompt})
    assert error.message == "invalid type for 'prompt' field: only a string is supported"


def test_a_missing_prompt_is_empty() -> None:
    assert completion_request({"model": "m"})[0].prompt == ""


@pytest.mark.parametrize("stop", [["a", 1], [None], 3])
def test_a_non_string_stop_is_refused(stop: Any) -> None:
    error = refused(completion_request, {"model": "m", "prompt": "x", "stop": stop})
    assert error.message == "invalid type for 'stop' field"


@pytest.mark.parametrize(
    ("logprobs", "native"), [(None, (False, 0)), (3, (True, 3)), (0, (False, 0)), (True, (True, 0))]
)
def test_integer_logprobs_are_top_logprobs(logprobs: Any, native: tuple[bool, int]) -> None:
    body, _, _ = completion_request({"model": "m", "prompt": "x", "logprobs": logprobs})
    assert (body.logprobs, body.top_logprobs) == native


def test_completion_include_usage() -> None:
    _, streamed, include_usage = completion_request(
        {"model": "m", "prompt": "x", "stream": True, "stream_options": {"include_usage": True}}
    )
    assert (streamed, include_usage) == (True, True)


def generated(text: str = "", **final: Any) -> Chunk:
    return chunk(text, **final)


def test_completion() -> None:
    answer = completion(
        "m", [generated("Once upon"), generated(" a time", done_reason="length", prompt_eval_count=2, eval_count=3)]
    )
    assert answer["object"] == "text_completion"
    assert answer["id"].startswith("cmpl-")
    assert answer["system_fingerprint"] == "fp_ollama"
    assert answer["choices"] == [{"text": "Once upon a time", "index": 0, "finish_reason": "length"}]
    assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5, **NO_CACHE}


def test_a_completion_stream() -> None:
    completions = CompletionStream("m", include_usage=False)
    chunks = [
        chunk for native in [generated("a"), generated("b", done_reason="stop")] for chunk in completions.feed(native)
    ]
    assert [chunk["choices"] for chunk in chunks] == [
        [{"text": "a", "index": 0, "finish_reason": None}],
        [{"text": "b", "index": 0, "finish_reason": "stop"}],
    ]
    assert all(chunk["object"] == "text_completion" and "usage" not in chunk for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_a_completion_stream_with_usage() -> None:
    completions = CompletionStream("m", include_usage=True)
    lines = [generated("a"), generated("b"), generated(done_reason="stop", prompt_eval_count=4, eval_count=2)]
    chunks = [chunk for native in lines for chunk in completions.feed(native)]
    assert len(chunks) == 4
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert [chunk["usage"] for chunk in chunks[:3]] == [zero] * 3
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == []
    assert chunks[3]["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6, **NO_CACHE}
    assert chunks[3]["object"] == "text_completion"
    assert len({chunk["id"] for chunk in chunks}) == 1


# --- /v1/embeddings, /v1/models, errors -----------------------------------------------------------------


@pytest.mark.parametrize(("value", "native"), [("", [""]), ("hello", ["hello"]), (["a", "b"], ["a", "b"])])
def test_embed_input(value: Any, native: list[str]) -> None:
    body, encoding = embed_request({"model": "m", "input": value})
    assert (body.model, body.input, encoding) == ("m", native, "float")


@pytest.mark.parametrize("value", [[], None, [1, 2], [[1, 2]], ["a", 1], 5])
def test_bad_embed_input_is_refused(value: Any) -> None:
    assert refused(embed_request, {"model": "m", "input": value}).message == "invalid input"


def test_embed_encoding_and_dimensions() -> None:
    body, encoding = embed_request({"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 8})
    assert (encoding, body.dimensions) == ("base64", 8)


@pytest.mark.parametrize("encoding", ["hex", "FLOAT"])
def test_an_unknown_encoding_is_refused_with_openais_message(encoding: str) -> None:
    error = refused(embed_request, {"model": "m", "input": "x", "encoding_format": encoding})
    assert error.message == f"Invalid value for 'encoding_format' = {encoding}. Supported values: ['float', 'base64']."


NATIVE_EMBED = Embeddings([[0.5, -1.25, 3.0], [0.1, 0.2, 0.3]], total_duration=0, load_duration=0, prompt_eval_count=7)


def test_float_embeddings() -> None:
    assert embeddings_response("m", NATIVE_EMBED, "float") == {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": [0.5, -1.25, 3.0], "index": 0},
            {"object": "embedding", "embedding": [0.1, 0.2, 0.3], "index": 1},
        ],
        "model": "m",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }


def test_base64_embeddings_are_little_endian_float32() -> None:
    answer = embeddings_response("m", NATIVE_EMBED, "base64")
    first = base64.b64decode(answer["data"][0]["embedding"])
    assert first == b"\x00\x00\x00\x3f" + b"\x00\x00\xa0\xbf" + b"\x00\x00\x40\x40"
    second = struct.unpack("<3f", base64.b64decode(answer["data"][1]["embedding"]))
    assert second == pytest.approx([0.1, 0.2, 0.3], rel=1e-6)
    assert [entry["index"] for entry in answer["data"]] == [0, 1]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (404, "not_found_error"), (500, "api_error"), (401, "api_error")],
)
def test_error_body(status: int, kind: str) -> None:
    assert error_body(status, "boom") == {"error": {"message": "boom", "type": kind, "param": None, "code": None}}


def test_model_object() -> None:
    assert model_object("llama3.2:latest", 1_700_000_000, "library") == {
        "id": "llama3.2:latest",
        "object": "model",
        "created": 1_700_000_000,
        "owned_by": "library",
    }


# --- hostile shapes: every wrong type is the client's 400, never a converter's crash ----------------------

WRONG_TYPES: list[Any] = [None, 1, 1.5, True, "", "x", [], [1], [None], [[1]], {}, {"a": 1}, [{"a": 1}]]


def mutations(valid: Any) -> Iterator[tuple[str, Any]]:
    """``valid`` with each of its values (at any depth), one at a time, replaced by each of ``WRONG_TYPES``."""

    def paths(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        yield path
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            yield from paths(child, (*path, key))

    for path in paths(valid, ()):
        for wrong in WRONG_TYPES:
            mutated = copy.deepcopy(valid)
            if not path:
                mutated = wrong
            else:
                target = mutated
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = wrong
            yield f"{'.'.join(map(str, path)) or '<request>'} = {wrong!r}", mutated


def accepted_or_refused(convert: Any, valid: Any) -> list[str]:
    """Run ``convert`` on every mutation of ``valid``: the mutations that raised anything but a 400."""
    convert(copy.deepcopy(valid))  # the valid request itself converts
    crashes = []
    for label, mutated in mutations(valid):
        try:
            convert(mutated)
        except OpenAIError as err:
            if err.status != 400:
                crashes.append(f"{label}: status {err.status}")
        except Exception as err:  # noqa: BLE001 - what the test looks for
            crashes.append(f"{label}: {type(err).__name__}: {err}")
    return crashes


FULL_CHAT = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "input_audio", "input_audio": {"data": PNG, "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning": "r",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "out"},
        {"role": "tool", "tool_call_id": "c1", "content": "out"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 10,
    "max_completion_tokens": 10,
    "seed": 1,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.1,
    "stop": ["a"],
    "n": 1,
    "stream": True,
    "stream_options": {"include_usage": True},
    "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    "reasoning_effort": "low",
    "reasoning": {"effort": "low"},
    "logprobs": True,
    "top_logprobs": 2,
    "logit_bias": {"1": 2},
    "keep_alive": "5m",
    "options": {"num_ctx": 10},
}
OTHER_CHAT = {
    "model": "m",
    "messages": [
        {"role": "assistant", "content": "a", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "o"},
    ],
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": {"type": "function", "name": "f"},
    "response_format": {"type": "json_object"},
    "stop": "a",
}
FULL_COMPLETION = {
    "model": "m",
    "prompt": "p",
    "suffix": "s",
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 5,
    "seed": 1,
    "stop": ["x"],
    "logprobs": 2,
    "stream": True,
    "stream_options": {"include_usage": True},
    "keep_alive": "1m",
    "options": {"num_ctx": 1},
}
FULL_EMBED = {"model": "m", "input": ["a", "b"], "encoding_format": "float", "dimensions": 3, "options": {"num_ctx": 1}}


@pytest.mark.parametrize(
    ("convert", "valid"),
    [
        (chat_request, FULL_CHAT),
        (chat_request, OTHER_CHAT),
        (completion_request, FULL_COMPLETION),
        (completion_request, {"model": "m", "prompt": "p", "stop": "x", "logprobs": True}),
        (embed_request, FULL_EMBED),
        (embed_request, {"model": "m", "input": "x", "encoding_format": "base64"}),
    ],
    ids=["chat", "chat-other", "completion", "completion-other", "embed", "embed-other"],
)
def test_every_field_of_the_wrong_type_is_refused_not_a_crash(convert: Any, valid: dict[str, Any]) -> None:
    assert accepted_or_refused(convert, valid) == []


HOSTILE_CHAT = {
    "messages as a string": request(messages="Hi"),
    "a message as a list": request(messages=[["user", "Hi"]]),
    "a content part as a string": user_parts("Hi"),
    "a content part as a number": user_parts(1),
    "text of a part as a number": user_parts({"type": "text", "text": 1}),
    "image_url as a number": user_parts({"type": "image_url", "image_url": 1}),
    "input_audio as a list": user_parts({"type": "input_audio", "input_audio": [PNG]}),
    "tool_calls as a number": request(messages=[{"role": "assistant", "content": "", "tool_calls": 1}]),
    "a tool call as a string": request(messages=[{"role": "assistant", "content": "", "tool_calls": ["f"]}]),
    "a tool call id as a list": request(
        messages=[{"role": "assistant", "content": "", "tool_calls": [{"id": ["c"], "function": {"name": "f"}}]}]
    ),
    "tool_call_id as an object": request(messages=[{"role": "tool", "tool_call_id": {"a": 1}, "content": "x"}]),
    "tools as an object": request(tools={"type": "function"}),
    "tools as a string": request(tools="f"),
    "tool_choice as a number": request(tools=[{"type": "function", "function": {"name": "f"}}], tool_choice=1),
    "tool_choice function as a string": request(
        tools=[{"type": "function", "function": {"name": "f"}}], tool_choice={"type": "function", "function": "f"}
    ),
    "stop as an object": request(stop={"a": 1}),
    "stream_options as a list": request(stream_options=[1]),
    "options as a string": request(options="x"),
    "reasoning_effort as an object": request(reasoning_effort={"a": 1}),
    "reasoning as a list": request(reasoning=["low"]),
    "top_logprobs as a list": request(top_logprobs=[3]),
    "max_tokens as a string": request(max_tokens="10"),
    "temperature as a list": request(temperature=[1]),
    "response_format as a string": request(response_format="json"),
    "logit_bias as a list": request(logit_bias=[1]),
    "n as a string": request(n="2"),
}


@pytest.mark.parametrize("data", HOSTILE_CHAT.values(), ids=HOSTILE_CHAT.keys())
def test_hostile_chat_shapes_are_400s(data: dict[str, Any]) -> None:
    refused(chat_request, data)


HOSTILE_COMPLETION = {
    "prompt as a number": {"model": "m", "prompt": 1},
    "stop as an object": {"model": "m", "prompt": "p", "stop": {"a": 1}},
    "stream_options as a list": {"model": "m", "prompt": "p", "stream_options": [1]},
    "stream_options as a string": {"model": "m", "prompt": "p", "stream_options": "x"},
    "max_tokens as a string": {"model": "m", "prompt": "p", "max_tokens": "10"},
    "options as a list": {"model": "m", "prompt": "p", "options": [1]},
}


@pytest.mark.parametrize("data", HOSTILE_COMPLETION.values(), ids=HOSTILE_COMPLETION.keys())
def test_hostile_completion_shapes_are_400s(data: dict[str, Any]) -> None:
    refused(completion_request, data)


HOSTILE_EMBED = {
    "input as a number": {"model": "m", "input": 1},
    "input as an object": {"model": "m", "input": {"a": 1}},
    "input as token ids": {"model": "m", "input": [[1, 2]]},
    "encoding_format as a list": {"model": "m", "input": "x", "encoding_format": ["float"]},
    "dimensions as a list": {"model": "m", "input": "x", "dimensions": [3]},
    "options as a string": {"model": "m", "input": "x", "options": "x"},
}


@pytest.mark.parametrize("data", HOSTILE_EMBED.values(), ids=HOSTILE_EMBED.keys())
def test_hostile_embed_shapes_are_400s(data: dict[str, Any]) -> None:
    refused(embed_request, data)


def test_a_converter_bug_is_not_disguised_as_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the client's mistakes are 400s: a converter's own TypeError reaches the route as itself (a 500)."""

    def broken(data: Any) -> Any:
        raise TypeError("a bug")

    monkeypatch.setattr(openai_compat, "_format", broken)
    with pytest.raises(TypeError, match="a bug"):
        chat_request(request())


def test_a_native_validation_error_is_still_a_400() -> None:
    error = refused(chat_request, request(messages=[{"role": 1, "content": "Hi"}]))
    assert error.message.startswith("invalid request: ")
