"""OpenAI's Responses API (``POST /v1/responses``, stateless; spec B.5) through the official ``openai`` SDK.

One real ``pollama serve`` process for the module. SmolLM2-135M-Instruct (``smol``, no tools capability) answers
the plain, streamed, structured and failing requests; Qwen2.5-Coder-0.5B-Instruct (``qwen``, a chat template with
tools) makes the function calls, so those tests are marked slow. Answers are greedy (temperature 0) and short, and
where it matters they are compared with what native ``/api/chat`` answers for the messages the request stands for:
that is what shows ``instructions``, the input items and the tool round trip really reached the model. The raw
SSE wire (``event:`` lines) is read with httpx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tests.unit.test_runner_constraint import schema_errors
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(300)

QUESTION = "What is the capital of France? Answer in one word."
STORY = "Tell me a long story about a cat."
FRENCH = "Always answer in French."
HELLO = "Say hello."
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
        "required": ["city"],
    },
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "Get the current local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_QUESTION = "What is the weather in Paris right now?"
WEATHER_REPORT = "Sunny, 22 degrees Celsius."
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z][a-z]+$"},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pets": {"type": "array", "items": {"type": "string", "enum": ["cat", "dog", "fish"]}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
CALL_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol(server: ServerProcess, smollm2_path: Path) -> str:
    return install(server, "smol", smollm2_path)


@pytest.fixture(scope="module")
def qwen(server: ServerProcess) -> str:
    return install(server, "qwen", ensure_model("qwen2.5-coder"))


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="pollama", max_retries=0, timeout=120) as client:
        yield client


def native_chat(server: ServerProcess, model: str, messages: list[dict[str, Any]], num_predict: int) -> str:
    """What ``/api/chat`` answers greedily for these messages."""
    body = {
        "model": model,
        "messages": messages,
        "stream": False,
        "options": {"temperature": 0, "num_predict": num_predict},
    }
    reply = httpx.post(server.url + "/api/chat", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()["message"]["content"]


def assert_usage(response: Any, max_output_tokens: int | None = None) -> None:
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    # Beyond Ollama: the part of the prompt the prompt cache held (a repeated prompt: all but the last token).
    assert 0 <= usage.input_tokens_details.cached_tokens < usage.input_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0
    if max_output_tokens is not None:
        assert usage.output_tokens <= max_output_tokens


def calls_of(response: Any) -> list[Any]:
    return [item for item in response.output if item.type == "function_call"]


def raw_events(server: ServerProcess, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The SSE stream as ``(event line, data)`` pairs, each block checked to be exactly those two lines."""
    with httpx.stream("POST", server.url + "/v1/responses", json={**body, "stream": True}, timeout=120) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        text = reply.read().decode()
    assert text.endswith("\n\n")
    pairs = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        pairs.append((lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))))
    return pairs


# --- non-streamed answers -------------------------------------------------------------------------


def test_a_plain_answer_is_a_completed_response(oai: openai.OpenAI, server: ServerProcess, smol: str) -> None:
    before = int(time.time())
    response = oai.responses.create(model=smol, input=QUESTION, max_output_tokens=40, temperature=0)
    assert response.object == "response"
    assert response.id.startswith("resp_") and len(response.id) > len("resp_")
    assert response.status == "completed"
    assert response.error is None and response.incomplete_details is None
    assert response.model == smol
    assert before - 1 <= response.created_at <= (response.completed_at or 0) <= time.time() + 1
    assert (response.temperature, response.max_output_tokens, response.store) == (0, 40, False)
    assert response.previous_response_id is None
    assert response.tools == [] and response.tool_choice == "auto"
    assert response.text.format.type == "text"

    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert item.id.startswith("msg_")
    [part] = item.content
    assert part.type == "output_text" and part.annotations == []
    assert part.text.strip() and response.output_text == part.text
    assert "Paris" in part.text
    assert_usage(response, 40)
    assert response.usage.output_tokens < 40  # it stopped on its own

    # The same answer native chat gives for the one user message.
    assert part.text == native_chat(server, smol, [{"role": "user", "content": QUESTION}], 40)


def test_instructions_become_the_system_message(oai: openai.OpenAI, server: ServerProcess, smol: str) -> None:
    response = oai.responses.create(model=smol, instructions=FRENCH, input=HELLO, max_output_tokens=12, temperature=0)
    assert response.instructions == FRENCH
    assert response.output_text.strip()
    system = [{"role": "system", "content": FRENCH}, {"role": "user", "content": HELLO}]
    with_system = native_chat(server, smol, system, 12)
    without = native_chat(server, smol, [{"role": "user", "content": HELLO}], 12)
    assert with_system != without  # the instruction changes the answer...
    assert response.output_text == with_system  # ...and the response is the answer with it
    assert "Bonjour" in response.output_text


def test_max_output_tokens_makes_an_incomplete_response(oai: openai.OpenAI, smol: str) -> None:
    response = oai.responses.create(model=smol, input=STORY, max_output_tokens=8, temperature=0)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 8
    assert response.usage.total_tokens == response.usage.input_tokens + 8
    assert response.output_text.strip()
    assert response.max_output_tokens == 8


# --- input forms ------------------------------------------------------------------------------------


def test_input_as_a_list_of_message_items(oai: openai.OpenAI, server: ServerProcess, smol: str) -> None:
    def message(role: str, *texts: str) -> dict[str, Any]:
        kind = "output_text" if role == "assistant" else "input_text"
        return {"type": "message", "role": role, "content": [{"type": kind, "text": text} for text in texts]}

    items: list[Any] = [
        message("system", "You are a helpful assistant."),
        message("developer", "Answer in a few words."),
        message("user", "My name is Zed. ", "I live in Rome."),
        message("assistant", "Nice to meet you, Zed!"),
        {"role": "user", "content": "What is my name?"},  # an "easy" message: no type, string content
    ]
    response = oai.responses.create(model=smol, input=items, max_output_tokens=30, temperature=0)
    assert response.output_text.strip()
    [item] = response.output
    assert item.type == "message"
    expected = native_chat(
        server,
        smol,
        [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "system", "content": "Answer in a few words."},  # developer is a system message
            {"role": "user", "content": "My name is Zed. I live in Rome."},  # text parts joined
            {"role": "assistant", "content": "Nice to meet you, Zed!"},
            {"role": "user", "content": "What is my name?"},
        ],
        30,
    )
    assert response.output_text == expected


def test_string_input_equals_one_user_message_item(oai: openai.OpenAI, smol: str) -> None:
    as_string = oai.responses.create(model=smol, input=QUESTION, max_output_tokens=20, temperature=0)
    as_item = oai.responses.create(
        model=smol,
        input=[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]}],
        max_output_tokens=20,
        temperature=0,
    )
    assert as_string.output_text.strip() and as_string.output_text == as_item.output_text


# --- streaming --------------------------------------------------------------------------------------


def test_streamed_text_events(oai: openai.OpenAI, smol: str) -> None:
    events = list(oai.responses.create(model=smol, input=QUESTION, max_output_tokens=40, temperature=0, stream=True))
    kinds = [event.type for event in events]
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) >= 2
    # The fixed shape, with the deltas in the middle.
    assert kinds == TEXT_EVENTS[:4] + ["response.output_text.delta"] * len(deltas) + TEXT_EVENTS[5:]
    assert [event.sequence_number for event in events] == list(range(len(events)))

    created, in_progress, added, part_added = events[:4]
    text_done, part_done, item_done, completed = events[-4:]
    assert created.response.status == "in_progress" and in_progress.response.status == "in_progress"
    assert created.response.id == completed.response.id and created.response.id.startswith("resp_")
    assert created.response.output == []
    assert added.output_index == 0 and added.item.type == "message" and added.item.status == "in_progress"
    item_id = added.item.id
    assert part_added.item_id == item_id and part_added.part.text == ""
    assert all(event.item_id == item_id and event.output_index == 0 and event.content_index == 0 for event in deltas)

    text = "".join(event.delta for event in deltas)
    assert text.strip()
    assert text_done.text == text and text_done.item_id == item_id
    assert part_done.part.type == "output_text" and part_done.part.text == text
    assert item_done.item.id == item_id and item_done.item.status == "completed"
    assert item_done.item.content[0].text == text

    final = completed.response
    assert final.status == "completed" and final.output_text == text
    assert [item.id for item in final.output] == [item_id]
    assert_usage(final, 40)
    assert final.usage.output_tokens >= len(deltas) - 1

    # Greedy: the same text as the answer not streamed.
    plain = oai.responses.create(model=smol, input=QUESTION, max_output_tokens=40, temperature=0)
    assert plain.output_text == text


def test_streamed_incomplete_response(oai: openai.OpenAI, smol: str) -> None:
    events = list(oai.responses.create(model=smol, input=STORY, max_output_tokens=8, temperature=0, stream=True))
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.status == "incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert final.response.usage.output_tokens == 8


def test_the_sdk_stream_helper_accumulates_the_response(oai: openai.OpenAI, smol: str) -> None:
    with oai.responses.stream(model=smol, input=QUESTION, max_output_tokens=40, temperature=0) as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(texts) and final.output_text.strip()


def test_raw_sse_names_each_event(server: ServerProcess, smol: str) -> None:
    body = {"model": smol, "input": QUESTION, "max_output_tokens": 20, "temperature": 0}
    pairs = raw_events(server, body)
    assert [data["type"] for _, data in pairs] == [name for name, _ in pairs]
    assert pairs[0][0] == "response.created" and pairs[-1][0] == "response.completed"
    assert [data["sequence_number"] for _, data in pairs] == list(range(len(pairs)))
    # Responses streams end with response.completed: no chat-completions style "[DONE]".
    assert all(name.startswith("response.") for name, _ in pairs)


# --- structured output --------------------------------------------------------------------------------


def test_json_schema_format(oai: openai.OpenAI, smol: str) -> None:
    response = oai.responses.create(
        model=smol,
        input="Describe a person and their pets as JSON.",
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
        max_output_tokens=120,
        temperature=0,
    )
    assert response.status == "completed", response.output_text
    value = json.loads(response.output_text)
    assert schema_errors(value, PERSON) == [], value
    assert response.text.format.type == "json_schema" and response.text.format.name == "person"


def test_streamed_json_schema_format(oai: openai.OpenAI, smol: str) -> None:
    events = list(
        oai.responses.create(
            model=smol,
            input="Describe a person and their pets as JSON.",
            text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
            max_output_tokens=120,
            temperature=1,
            extra_body={"options": {"seed": 3}},
            stream=True,
        )
    )
    final = events[-1].response
    assert final.status == "completed"
    assert schema_errors(json.loads(final.output_text), PERSON) == []


# --- errors -------------------------------------------------------------------------------------------


def test_unknown_model_is_not_found(oai: openai.OpenAI, smol: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.responses.create(model="no-such-model", input="hi")
    assert caught.value.status_code == 404
    assert "no-such-model" in caught.value.body["message"]
    assert caught.value.body["type"] == "not_found_error"


def test_previous_response_id_is_rejected(oai: openai.OpenAI, smol: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model=smol, input="hi", previous_response_id="resp_123")
    assert "previous_response_id" in caught.value.body["message"]
    assert caught.value.body["type"] == "invalid_request_error"


def test_file_inputs_are_rejected(oai: openai.OpenAI, smol: str) -> None:
    content = [
        {"type": "input_text", "text": "Summarise this file."},
        {"type": "input_file", "filename": "a.txt", "file_data": "data:text/plain;base64,aGVsbG8="},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model=smol, input=[{"role": "user", "content": content}])
    assert caught.value.body["message"] == "file inputs are not currently supported"


def test_image_urls_are_rejected(oai: openai.OpenAI, smol: str) -> None:
    content = [
        {"type": "input_text", "text": "What is in this picture?"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model=smol, input=[{"role": "user", "content": content}])
    assert "image URLs are not currently supported" in caught.value.body["message"]


def test_a_missing_model_is_a_bad_request(oai: openai.OpenAI, server: ServerProcess) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model="", input="hi")
    assert caught.value.body["message"] == "model is required"
    reply = httpx.post(server.url + "/v1/responses", json={"input": "hi"}, timeout=30)
    assert reply.status_code == 400
    assert reply.json() == {
        "error": {"message": "model is required", "type": "invalid_request_error", "param": None, "code": None}
    }


def test_tools_need_a_model_that_can_call_them(oai: openai.OpenAI, smol: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model=smol, input=WEATHER_QUESTION, tools=[WEATHER])
    assert "does not support tools" in caught.value.body["message"]
    # tool_choice "none" drops the tools, so the same request is answered.
    response = oai.responses.create(
        model=smol,
        input=WEATHER_QUESTION,
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=10,
        temperature=0,
    )
    assert response.output_text.strip() and calls_of(response) == []


# --- function tools (Qwen2.5-Coder) -------------------------------------------------------------------


@pytest.mark.slow
def test_a_function_tool_is_called(oai: openai.OpenAI, qwen: str) -> None:
    response = oai.responses.create(
        model=qwen,
        input=WEATHER_QUESTION,
        tools=[WEATHER],
        max_output_tokens=60,
        temperature=0,
    )
    assert response.status == "completed"
    [call] = calls_of(response)
    assert call.name == "get_weather" and call.status == "completed"
    assert call.call_id and call.id.startswith("fc_" + response.id)
    assert isinstance(call.arguments, str)
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert [tool.name for tool in response.tools] == ["get_weather"]
    assert_usage(response, 60)


def history(call_id: str, name: str, arguments: str) -> list[Any]:
    """The question, the model's call and the call's result, as Responses input items."""
    return [
        {"role": "user", "content": WEATHER_QUESTION},
        {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments},
        {"type": "function_call_output", "call_id": call_id, "output": WEATHER_REPORT},
    ]


@pytest.mark.slow
def test_a_function_call_round_trip(oai: openai.OpenAI, server: ServerProcess, qwen: str) -> None:
    first = oai.responses.create(
        model=qwen, input=WEATHER_QUESTION, tools=[WEATHER], max_output_tokens=60, temperature=0
    )
    [call] = calls_of(first)
    # The answer to the tool's result. (Offered the tool again, this 0.5B model only calls it again and again.)
    final = oai.responses.create(
        model=qwen, input=history(call.call_id, call.name, call.arguments), max_output_tokens=60, temperature=0
    )
    assert final.status == "completed"
    [message] = final.output
    assert message.type == "message" and message.role == "assistant"
    assert "22 degrees" in final.output_text  # the tool's output reached the model

    # Exactly what native chat answers for the same history: the call and its result as native messages.
    function = {"name": call.name, "arguments": json.loads(call.arguments)}
    messages = [
        {"role": "user", "content": WEATHER_QUESTION},
        {"role": "assistant", "content": "", "tool_calls": [{"id": call.call_id, "function": function}]},
        {"role": "tool", "content": WEATHER_REPORT, "tool_call_id": call.call_id, "tool_name": call.name},
    ]
    assert final.output_text == native_chat(server, qwen, messages, 60)


# With the tool offered again after its result, Qwen2.5-Coder-0.5B answers (greedily, cut at 40 tokens):
#   {"name": "get_weather", "arguments": {"city": "Paris"}}\n{"name": "get_weather", "arguments": {"city": "Paris"}}
#   \n{"name": "get_weather", "
# i.e. two complete calls and the start of a third cut off by max_output_tokens.
CUT_CALLS = {"max_output_tokens": 40, "temperature": 0}


@pytest.mark.slow
def test_a_call_cut_off_after_complete_calls_is_not_message_text(oai: openai.OpenAI, qwen: str) -> None:
    response = oai.responses.create(
        model=qwen, input=history("call_1", "get_weather", '{"city": "Paris"}'), tools=[WEATHER], **CUT_CALLS
    )
    assert len(calls_of(response)) == 2
    assert [item.type for item in response.output] == ["function_call", "function_call"], response.output_text


@pytest.mark.slow
def test_stream_and_non_stream_list_the_output_items_alike(oai: openai.OpenAI, qwen: str) -> None:
    items = history("call_1", "get_weather", '{"city": "Paris"}')
    plain = oai.responses.create(model=qwen, input=items, tools=[WEATHER], **CUT_CALLS)
    events = list(oai.responses.create(model=qwen, input=items, tools=[WEATHER], stream=True, **CUT_CALLS))
    streamed = events[-1].response
    assert streamed.output_text == plain.output_text and len(calls_of(streamed)) == len(calls_of(plain)) == 2
    assert [item.type for item in plain.output] == [item.type for item in streamed.output]


@pytest.mark.slow
def test_a_streamed_function_call(oai: openai.OpenAI, qwen: str) -> None:
    events = list(
        oai.responses.create(
            model=qwen,
            input=WEATHER_QUESTION,
            tools=[WEATHER],
            max_output_tokens=60,
            temperature=0,
            stream=True,
        )
    )
    assert [event.type for event in events] == CALL_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    _, _, added, delta, done, item_done, completed = events
    assert (
        added.item.type == "function_call" and added.item.name == "get_weather" and added.item.status == "in_progress"
    )
    assert delta.item_id == done.item_id == added.item.id == item_done.item.id
    assert delta.output_index == done.output_index == item_done.output_index == 0
    assert delta.delta == done.arguments == item_done.item.arguments
    assert json.loads(done.arguments) == {"city": "Paris"}
    assert item_done.item.type == "function_call" and item_done.item.status == "completed"
    assert item_done.item.call_id == added.item.call_id and item_done.item.call_id
    final = completed.response
    assert final.status == "completed"
    assert [item.model_dump() for item in final.output] == [item_done.item.model_dump()]
    assert_usage(final, 60)


@pytest.mark.slow
def test_tool_choice_required_forces_a_call(oai: openai.OpenAI, qwen: str) -> None:
    response = oai.responses.create(
        model=qwen,
        input="Say hello.",
        tools=[WEATHER],
        tool_choice="required",
        max_output_tokens=60,
        temperature=0,
    )
    [call] = calls_of(response)
    assert call.name == "get_weather"
    assert isinstance(json.loads(call.arguments), dict)
    assert response.tool_choice == "required"


@pytest.mark.slow
def test_tool_choice_names_the_function(oai: openai.OpenAI, qwen: str) -> None:
    response = oai.responses.create(
        model=qwen,
        input=WEATHER_QUESTION,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "name": "get_time"},
        max_output_tokens=60,
        temperature=0,
    )
    [call] = calls_of(response)
    assert call.name == "get_time"
    assert isinstance(json.loads(call.arguments), dict)


@pytest.mark.slow
def test_tool_choice_none_gives_no_call(oai: openai.OpenAI, qwen: str) -> None:
    response = oai.responses.create(
        model=qwen,
        input=WEATHER_QUESTION,
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=40,
        temperature=0,
    )
    assert calls_of(response) == []
    assert response.output_text.strip()
    assert response.tool_choice == "none"


@pytest.mark.slow
def test_tool_choice_naming_an_absent_function_is_rejected(oai: openai.OpenAI, qwen: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(
            model=qwen,
            input=WEATHER_QUESTION,
            tools=[WEATHER],
            tool_choice={"type": "function", "name": "nope"},
            max_output_tokens=20,
        )
    assert "not among the tools" in caught.value.body["message"]


# --- options ------------------------------------------------------------------------------------------


def test_options_reach_the_runner(oai: openai.OpenAI, server: ServerProcess, smol: str) -> None:
    """Last: it reloads ``smol`` with another context length."""
    response = oai.responses.create(
        model=smol, input=QUESTION, max_output_tokens=8, temperature=0, extra_body={"options": {"num_ctx": 1024}}
    )
    assert response.output_text.strip()
    running = httpx.get(server.url + "/api/ps", timeout=30).json()["models"]
    [entry] = [model for model in running if model["name"].startswith(smol + ":")]
    assert entry["context_length"] == 1024
