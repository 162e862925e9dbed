"""Anthropic's Messages API (spec B.7, ``POST /v1/messages``) through the official ``anthropic`` SDK against a real
server.

One module-scoped server holds SmolLM2-135M-Instruct as ``smol`` (ChatML, fast, no tools or thinking capability) and
as ``thinker`` (a template that opens ``<think>``, so it counts as thinking); Qwen2.5-Coder-0.5B-Instruct (tools in
its template) is added as ``qwen`` only for the slow tool tests. Answers are short and greedy (temperature 0, sent in
the body: SDK 2.x has no ``temperature`` argument), so they can be compared across requests. Requests go through the
SDK where it can express them (its typed exceptions included) and through httpx where the wire matters: the SSE
framing, and bodies the SDK will not send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import pytest

from tests.integration.test_scheduler import install
from tests.integration.test_structured_tools import THINKING_OPENED
from tests.servers import ServerProcess
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(300)

GREEDY: dict[str, Any] = {"temperature": 0}
# SmolLM2 answers "Hello! How can I help you today?" (10 tokens) and stops on its own at temperature 0.
HI = [{"role": "user", "content": "Hi"}]
HELLO = "Hello! How can I help you today?"
WHY = [{"role": "user", "content": "Why is the sky blue?"}]
NAME = [{"role": "user", "content": "What is your name?"}]
# A 1x1 PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)  # fmt: skip

ADD_TOOL = {
    "name": "add",
    "description": "Add two integers and return their sum.",
    "input_schema": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
SUM = [{"role": "user", "content": "What is 1234 plus 5678?"}]


# --- fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smol(server: ServerProcess) -> str:
    return install(server, "smol", ensure_model("smollm2"))


@pytest.fixture(scope="module")
def thinker(server: ServerProcess, smol: str) -> str:
    """SmolLM2 with a template that opens <think> when asked to think: it never closes it, so it all is thinking."""
    assert ollama.Client(host=server.url).create("thinker", from_=smol, template=THINKING_OPENED).status == "success"
    return "thinker"


@pytest.fixture(scope="module")
def qwen(server: ServerProcess) -> str:
    return install(server, "qwen", ensure_model("qwen2.5-coder"))


@pytest.fixture(scope="module")
def claude(server: ServerProcess) -> anthropic.Anthropic:
    # No retries: a 5xx must fail the test, not be retried into a pass.
    return anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0, timeout=180)


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=180) as session:
        yield session


def ask(
    claude: anthropic.Anthropic, model: str, messages: list[dict[str, Any]], max_tokens: int = 40, **kwargs: Any
) -> anthropic.types.Message:
    extra_body = {**GREEDY, **kwargs.pop("extra_body", {})}
    return claude.messages.create(
        model=model, max_tokens=max_tokens, messages=messages, extra_body=extra_body, **kwargs
    )


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def tool_uses(message: Any) -> list[Any]:
    return [block for block in message.content if block.type == "tool_use"]


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` for each SSE event, checking that each has one ``event:`` and one ``data:`` line."""
    events, name, data = [], None, None
    for line in response.iter_lines():
        if line.startswith("event: "):
            assert name is None, line
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            assert data is None, line
            data = json.loads(line.removeprefix("data: "))
        elif line == "":
            if name is not None or data is not None:
                assert name is not None and data is not None, (name, data)
                events.append((name, data))
            name, data = None, None
        else:
            raise AssertionError(f"unexpected SSE line: {line!r}")
    assert name is None and data is None, "stream ended inside an event"
    return events


def assert_error(response: httpx.Response, status: int, kind: str, needle: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error", body
    assert body["error"]["type"] == kind, body
    assert needle in body["error"]["message"], body


# --- a non-streamed message --------------------------------------------------------------------------------


def test_a_short_answer_ends_its_turn(claude: anthropic.Anthropic, smol: str) -> None:
    message = ask(claude, smol, HI, max_tokens=40)
    assert message.id.startswith("msg_") and len(message.id) > len("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", smol)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == HELLO
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens > 0
    assert 0 < message.usage.output_tokens < 40


def test_a_cut_answer_stops_at_max_tokens(claude: anthropic.Anthropic, smol: str) -> None:
    message = ask(claude, smol, WHY, max_tokens=5)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert message.usage.input_tokens > 0
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text.strip()


def test_the_system_prompt_as_a_string_or_text_blocks(claude: anthropic.Anthropic, smol: str) -> None:
    plain = text_of(ask(claude, smol, NAME, max_tokens=8))
    as_string = text_of(ask(claude, smol, NAME, max_tokens=8, system="Your name is Zorblax."))
    assert "Zorblax" in as_string and "Zorblax" not in plain
    # Blocks are joined as they are (no separator), as Ollama does: the same prompt, so the same greedy answer.
    blocks = [{"type": "text", "text": "Your name is "}, {"type": "text", "text": "Zorblax."}]
    assert text_of(ask(claude, smol, NAME, max_tokens=8, system=blocks)) == as_string


def test_thinking_is_dropped_for_a_model_that_cannot_think(claude: anthropic.Anthropic, smol: str) -> None:
    message = ask(claude, smol, HI, thinking={"type": "enabled", "budget_tokens": 1024})
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == HELLO
    assert message.stop_reason == "end_turn"
    # Beyond the SDK's typed arguments: an effort asks for thinking too, and is dropped the same way.
    assert text_of(ask(claude, smol, HI, extra_body={"output_config": {"effort": "low"}})) == HELLO
    # Thinking turned off is no request for a capability.
    assert text_of(ask(claude, smol, HI, thinking={"type": "disabled"})) == HELLO


def test_thinking_blocks(claude: anthropic.Anthropic, thinker: str) -> None:
    enabled = {"type": "enabled", "budget_tokens": 1024}
    message = ask(claude, thinker, HI, max_tokens=12, thinking=enabled)
    assert message.content[0].type == "thinking"
    assert message.content[0].thinking.strip()
    assert message.content[0].signature == ""
    assert message.stop_reason == "max_tokens"
    assert text_of(message) == ""
    with claude.messages.stream(model=thinker, max_tokens=12, messages=HI, thinking=enabled, extra_body=GREEDY) as s:
        events = list(s)
        streamed = s.get_final_message()
    deltas = [event.delta for event in events if event.type == "content_block_delta"]
    assert deltas and all(delta.type == "thinking_delta" for delta in deltas)
    assert [block.type for block in streamed.content] == ["thinking"]
    assert streamed.content[0].thinking == message.content[0].thinking
    # Turned off, the template does not open <think>: the model answers as text.
    disabled = ask(claude, thinker, HI, max_tokens=12, thinking={"type": "disabled"})
    assert [block.type for block in disabled.content] == ["text"] and text_of(disabled).strip()


def test_an_answer_that_is_all_thinking_has_no_empty_text_block(claude: anthropic.Anthropic, thinker: str) -> None:
    message = ask(claude, thinker, HI, max_tokens=12, thinking={"type": "enabled", "budget_tokens": 1024})
    assert [block.type for block in message.content] == ["thinking"]


def test_stop_sequences_cut_the_answer(claude: anthropic.Anthropic, smol: str) -> None:
    message = ask(claude, smol, HI, stop_sequences=["help"])
    text = text_of(message)
    assert text == HELLO[: HELLO.index("help")]
    assert "help" not in text
    # As Ollama: a stop sequence ends the answer with done_reason "stop", which maps to end_turn.
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens < 10


# --- streaming ---------------------------------------------------------------------------------------------------


def test_a_streamed_message_matches_the_whole_one(claude: anthropic.Anthropic, smol: str) -> None:
    with claude.messages.stream(model=smol, max_tokens=40, messages=HI, extra_body=GREEDY) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == text_of(final) == HELLO
    assert final.id.startswith("msg_")
    assert (final.role, final.model, final.stop_reason) == ("assistant", smol, "end_turn")
    assert [block.type for block in final.content] == ["text"]
    assert final.usage.output_tokens > 0


def test_a_cut_stream_reports_max_tokens(claude: anthropic.Anthropic, smol: str) -> None:
    with claude.messages.stream(model=smol, max_tokens=5, messages=WHY, extra_body=GREEDY) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 5
    assert text_of(final) == text_of(ask(claude, smol, WHY, max_tokens=5))


def test_the_raw_event_stream(http: httpx.Client, smol: str) -> None:
    body = {"model": smol, "max_tokens": 40, "messages": HI, "stream": True, **GREEDY}
    with http.stream("POST", "/v1/messages", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    for name, data in events:
        assert name == data["type"], (name, data)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"} and len(names) > 6

    start = events[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert (start["type"], start["role"], start["model"], start["content"]) == ("message", "assistant", smol, [])
    assert start["stop_reason"] is None
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    deltas = [data for name, data in events if name == "content_block_delta"]
    assert all(data["index"] == 0 and data["delta"]["type"] == "text_delta" for data in deltas)
    assert "".join(data["delta"]["text"] for data in deltas) == HELLO
    assert events[-3][1] == {"type": "content_block_stop", "index": 0}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["input_tokens"] > 0
    # One token per delta, and the end-of-turn token that wrote none.
    assert delta["usage"]["output_tokens"] in (len(deltas), len(deltas) + 1)


# --- errors ---------------------------------------------------------------------------------------------------


def test_an_unknown_model_is_not_found(claude: anthropic.Anthropic, smol: str) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        ask(claude, "no-such-model", HI)
    assert raised.value.status_code == 404
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model 'no-such-model' not found"},
    }
    with (
        pytest.raises(anthropic.NotFoundError),
        claude.messages.stream(model="no-such-model", max_tokens=8, messages=HI) as stream,
    ):
        stream.get_final_message()


@pytest.mark.parametrize("max_tokens", ["missing", 0, -5, True, 1.5, "8"])
def test_max_tokens_must_be_a_positive_integer(http: httpx.Client, smol: str, max_tokens: Any) -> None:
    body: dict[str, Any] = {"model": smol, "messages": HI}
    if max_tokens != "missing":
        body["max_tokens"] = max_tokens
    assert_error(http.post("/v1/messages", json=body), 400, "invalid_request_error", "max_tokens")


def test_requests_that_are_refused(claude: anthropic.Anthropic, http: httpx.Client, smol: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        ask(claude, smol, [])
    assert raised.value.status_code == 400
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert "messages" in raised.value.body["error"]["message"]

    with pytest.raises(anthropic.BadRequestError) as raised:
        ask(claude, smol, HI, tools=[WEATHER_TOOL])
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert raised.value.body["error"]["message"].endswith("does not support tools")

    response = http.post("/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_request_error", "invalid JSON")
    assert_error(http.post("/v1/messages", json={"max_tokens": 8, "messages": HI}), 400, "invalid_request_error")
    assert_error(http.post("/v1/messages", json=[1, 2]), 400, "invalid_request_error")
    bad_role = {"model": smol, "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]}
    assert_error(http.post("/v1/messages", json=bad_role), 400, "invalid_request_error", "role")
    bad_block = {"model": smol, "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "video"}]}]}
    assert_error(http.post("/v1/messages", json=bad_block), 400, "invalid_request_error", "video")


# --- images ---------------------------------------------------------------------------------------------------


def test_an_image_on_a_model_without_vision_is_refused(claude: anthropic.Anthropic, smol: str) -> None:
    # As Ollama's runner answers: the model has no projector to see it with.
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        ask(claude, smol, [{"role": "user", "content": [image, {"type": "text", "text": "Hi"}]}], 12)
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert raised.value.body["error"]["message"] == "this model is missing data required for image input"


def test_an_image_by_url_is_refused(claude: anthropic.Anthropic, smol: str) -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        ask(claude, smol, [{"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}])
    assert raised.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "only base64 image sources are supported",
    }


def test_an_image_that_is_not_base64_is_refused(claude: anthropic.Anthropic, smol: str) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!not base64!!"}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        ask(claude, smol, [{"role": "user", "content": [image, {"type": "text", "text": "Hi"}]}], 4)
    assert raised.value.body["error"]["type"] == "invalid_request_error"


# --- Ollama options (last of the fast tests: it reloads smol with a smaller context) ----------------------------


def test_ollama_options_reach_the_runner(claude: anthropic.Anthropic, http: httpx.Client, smol: str) -> None:
    message = ask(claude, smol, HI, extra_body={"options": {"num_ctx": 1024}})
    assert text_of(message) == HELLO
    loaded = {entry["name"]: entry for entry in http.get("/api/ps").json()["models"]}
    assert loaded[f"{smol}:latest"]["context_length"] == 1024


# --- tools (Qwen2.5-Coder) ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_model_calls_a_tool(claude: anthropic.Anthropic, qwen: str) -> None:
    message = ask(claude, qwen, WEATHER, max_tokens=60, tools=[WEATHER_TOOL, ADD_TOOL])
    assert message.stop_reason == "tool_use"
    [call] = tool_uses(message)
    assert isinstance(call.id, str) and call.id
    assert call.name == "get_weather"
    assert isinstance(call.input, dict)
    assert call.input["city"].lower() == "paris"


@pytest.mark.slow
def test_a_tool_result_round_trip(claude: anthropic.Anthropic, qwen: str) -> None:
    tools = [ADD_TOOL]
    first = ask(claude, qwen, SUM, max_tokens=60, tools=tools)
    assert first.stop_reason == "tool_use"
    [call] = tool_uses(first)
    assert call.name == "add" and call.input == {"a": 1234, "b": 5678}
    history = [
        *SUM,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "6912"},
                {"type": "text", "text": "Thanks. Now reply with the answer in one short sentence."},
            ],
        },
    ]
    final = ask(claude, qwen, history, max_tokens=30, tools=tools)
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert not tool_uses(final)
    assert "6912" in text_of(final)


@pytest.mark.slow
def test_a_streamed_tool_call(claude: anthropic.Anthropic, qwen: str) -> None:
    tools = [WEATHER_TOOL, ADD_TOOL]
    with claude.messages.stream(model=qwen, max_tokens=60, messages=WEATHER, tools=tools, extra_body=GREEDY) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "input_json" in kinds  # the SDK's event for each input_json_delta
    starts = [event.content_block for event in events if event.type == "content_block_start"]
    assert [block.type for block in starts] == ["tool_use"]
    assert final.stop_reason == "tool_use"
    [call] = tool_uses(final)
    assert call.id == starts[0].id and call.name == "get_weather"
    assert call.input == tool_uses(ask(claude, qwen, WEATHER, max_tokens=60, tools=tools))[0].input


@pytest.mark.slow
def test_tool_choice(claude: anthropic.Anthropic, qwen: str) -> None:
    tools = [WEATHER_TOOL, ADD_TOOL]
    greeting = [{"role": "user", "content": "Say hello."}]
    # A greeting calls no tool of its own accord...
    assert not tool_uses(ask(claude, qwen, greeting, tools=tools))
    # ...but a named tool is called all the same, with input that fits its schema,
    forced = ask(claude, qwen, greeting, tools=tools, tool_choice={"type": "tool", "name": "add"})
    assert forced.stop_reason == "tool_use"
    assert [call.name for call in tool_uses(forced)] == ["add"]
    arguments = tool_uses(forced)[0].input
    assert set(arguments) == {"a", "b"} and all(isinstance(value, int) for value in arguments.values())
    # "any" makes it call one of the tools,
    anything = ask(claude, qwen, greeting, tools=tools, tool_choice={"type": "any"})
    assert anything.stop_reason == "tool_use"
    assert tool_uses(anything) and {call.name for call in tool_uses(anything)} <= {"get_weather", "add"}
    # and "none" keeps a question that would call one from doing so.
    none = ask(claude, qwen, WEATHER, tools=tools, tool_choice={"type": "none"})
    assert not tool_uses(none) and none.stop_reason in ("end_turn", "max_tokens")
    assert text_of(none).strip()
    # A tool that is not offered cannot be forced.
    with pytest.raises(anthropic.BadRequestError) as raised:
        ask(claude, qwen, greeting, tools=tools, tool_choice={"type": "tool", "name": "nope"})
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert "nope" in raised.value.body["error"]["message"]


@pytest.mark.slow
def test_a_streamed_forced_tool_call(claude: anthropic.Anthropic, qwen: str) -> None:
    greeting = [{"role": "user", "content": "Say hello."}]
    choice = {"type": "tool", "name": "add"}
    with claude.messages.stream(
        model=qwen, max_tokens=40, messages=greeting, tools=[ADD_TOOL], tool_choice=choice, extra_body=GREEDY
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [call.name for call in tool_uses(final)] == ["add"]
    assert set(tool_uses(final)[0].input) == {"a", "b"}
