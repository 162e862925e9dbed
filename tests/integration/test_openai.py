"""The OpenAI-compatible API (spec B.1–B.4) through the official ``openai`` SDK against a real server.

One module-scoped server holds SmolLM2-135M-Instruct as ``smol`` (ChatML, fast), a copy with ``temperature 0`` as
a model parameter, a copy whose template opens ``<think>`` (so it "thinks"), and all-MiniLM-L6-v2 as ``minilm``;
Qwen2.5-Coder-0.5B-Instruct (tools in its template) is added only for the slow tool-call tests. Requests go through
the SDK where it can express them (its typed exceptions included) and through httpx where the wire matters: the SSE
framing, the exact bytes of a chunk, ``data: null``, request shapes the SDK refuses to send.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import openai
import pytest

from pollama.gocompat.timefmt import parse_rfc3339
from tests.integration.test_scheduler import install
from tests.integration.test_structured_tools import ADD_TOOL, THINKING_OPENED
from tests.servers import ServerProcess
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(180)

WHY = [{"role": "user", "content": "Why is the sky blue?"}]
# SmolLM2 answers "2 + 2 = 4" and stops on its own, well inside 32 tokens, at temperature 0.
SHORT = [{"role": "user", "content": "What is 2+2? Answer with just the number."}]
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}
NAME_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ADDITION = [{"role": "user", "content": "What is 1234 plus 5678?"}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris right now?"}]


# --- fixtures and helpers ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(server: ServerProcess) -> ServerProcess:
    """The module's server with its small models created once."""
    install(server, "smol", ensure_model("smollm2"))
    install(server, "minilm", ensure_model("minilm"))
    api = ollama.Client(host=server.url)
    assert api.create("smol-cold", from_="smol", parameters={"temperature": 0}).status == "success"
    assert api.create("thinker", from_="smol", template=THINKING_OPENED).status == "success"
    assert api.create("someone/smol", from_="smol").status == "success"
    return server


@pytest.fixture(scope="module")
def qwen(models: ServerProcess) -> str:
    return install(models, "qwen", ensure_model("qwen2.5-coder"))


@pytest.fixture
def oai(models: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=models.url + "/v1", api_key="ignored", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture
def wire(models: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=models.url, timeout=120) as session:
        yield session


def sse(wire: httpx.Client, path: str, body: dict[str, Any]) -> list[str]:
    """The ``data:`` payloads of a streamed answer, in order, checking the SSE framing on the way."""
    with wire.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "", "the stream ends with a blank line"
    assert all(event.startswith("data: ") for event in events[:-1]), raw
    return [event.removeprefix("data: ") for event in events[:-1]]


def assert_usage(usage: Any, completion_tokens: int | None = None) -> None:
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if completion_tokens is not None:
        assert usage.completion_tokens == completion_tokens


def chat(oai: openai.OpenAI, messages: list[dict[str, Any]] = WHY, **fields: Any) -> Any:
    return oai.chat.completions.create(model="smol", messages=messages, **fields)


def streamed(oai: openai.OpenAI, messages: list[dict[str, Any]] = WHY, model: str = "smol", **fields: Any) -> list:
    return list(oai.chat.completions.create(model=model, messages=messages, stream=True, **fields))


def text_of(chunks: list[Any], index: int = 0) -> str:
    return "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices if choice.index == index)


# --- chat, not streamed --------------------------------------------------------------------------------------------


def test_chat_completion_cut_by_max_tokens(oai: openai.OpenAI) -> None:
    reply = chat(oai, max_tokens=12, **GREEDY)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-") and reply.id.removeprefix("chatcmpl-").isdigit()
    assert reply.system_fingerprint == "fp_ollama"
    assert reply.model == "smol"
    assert isinstance(reply.created, int) and reply.created > 1_600_000_000
    (choice,) = reply.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content and "sky" in choice.message.content.lower()
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "length"
    assert choice.logprobs is None  # not asked for
    assert_usage(reply.usage, completion_tokens=12)


def test_a_repeated_prompt_reports_its_cached_tokens(oai: openai.OpenAI) -> None:
    # Beyond Ollama: usage.prompt_tokens_details.cached_tokens says what the prompt cache held.
    messages = [{"role": "user", "content": "Name one colour of the rainbow, in a word."}]
    chat(oai, messages, max_tokens=2)
    again = chat(oai, messages, max_tokens=2)
    assert again.usage.prompt_tokens > 10
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1


def test_chat_completion_that_ends_by_itself(oai: openai.OpenAI) -> None:
    reply = chat(oai, SHORT, max_tokens=32, **GREEDY)
    (choice,) = reply.choices
    assert choice.finish_reason == "stop"
    assert "4" in choice.message.content
    assert 0 < reply.usage.completion_tokens < 32
    assert_usage(reply.usage)


def test_max_completion_tokens_is_max_tokens(oai: openai.OpenAI) -> None:
    reply = chat(oai, max_completion_tokens=5, **GREEDY)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5


def test_stop_sequences(oai: openai.OpenAI) -> None:
    whole = chat(oai, max_tokens=12, **GREEDY).choices[0].message.content
    assert "blue" in whole
    for stop in ("blue", ["nothing-like-this", "blue"]):
        reply = chat(oai, max_tokens=12, stop=stop, **GREEDY)
        (choice,) = reply.choices
        assert choice.finish_reason == "stop"
        assert choice.message.content == whole[: whole.index("blue")]


# --- chat, streamed ------------------------------------------------------------------------------------------------


def test_stream_matches_the_whole_answer(oai: openai.OpenAI) -> None:
    whole = chat(oai, max_tokens=12, **GREEDY)
    chunks = streamed(oai, max_tokens=12, **GREEDY)
    assert len(chunks) == 12 + 1  # one chunk per token, then the finish chunk; no usage chunk unasked
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert len({chunk.created for chunk in chunks}) == 1
    assert {chunk.system_fingerprint for chunk in chunks} == {"fp_ollama"}
    assert {chunk.model for chunk in chunks} == {"smol"}
    assert all(len(chunk.choices) == 1 and chunk.usage is None for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices[0].delta.role is None for chunk in chunks[1:])
    assert text_of(chunks) == whole.choices[0].message.content
    *body, finish = chunks
    assert all(chunk.choices[0].finish_reason is None for chunk in body)
    assert finish.choices[0].finish_reason == "length"
    assert finish.choices[0].delta.content is None and finish.choices[0].delta.tool_calls is None


def test_stream_of_an_answer_that_ends_by_itself(oai: openai.OpenAI) -> None:
    whole = chat(oai, SHORT, max_tokens=32, **GREEDY).choices[0].message.content
    chunks = streamed(oai, SHORT, max_tokens=32, **GREEDY)
    assert text_of(chunks) == whole
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_with_usage(oai: openai.OpenAI) -> None:
    chunks = streamed(oai, max_tokens=8, stream_options={"include_usage": True}, **GREEDY)
    *answer, last = chunks
    assert last.choices == [] and last.object == "chat.completion.chunk"
    assert last.id == answer[0].id and last.created == answer[0].created
    assert_usage(last.usage, completion_tokens=8)
    assert all(chunk.usage is None for chunk in answer)
    assert answer[-1].choices[0].finish_reason == "length"


def test_stream_on_the_wire(wire: httpx.Client) -> None:
    body = {"model": "smol", "messages": WHY, "max_tokens": 4, **GREEDY, "stream_options": {"include_usage": True}}
    events = sse(wire, "/v1/chat/completions", body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finish, usage = chunks[-2:]
    assert finish["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
    assert "usage" not in chunks[0]
    # Without stream_options: no usage chunk, still [DONE].
    events = sse(wire, "/v1/chat/completions", {**body, "stream_options": None})
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(event) for event in events[:-1])


def test_streams_ask_proxies_not_to_buffer(wire: httpx.Client) -> None:
    # nginx holds a response back (buffering, gzip) unless told; the native stream says it too.
    chat = {"model": "smol", "messages": WHY, "max_tokens": 2, "stream": True}
    with wire.stream("POST", "/v1/chat/completions", json=chat) as response:
        assert response.headers["x-accel-buffering"] == "no"
    native = {"model": "smol", "prompt": "hi", "options": {"num_predict": 2}}
    with wire.stream("POST", "/api/generate", json=native) as response:
        assert response.headers["x-accel-buffering"] == "no"
    anthropic = {"model": "smol", "max_tokens": 2, "messages": WHY, "stream": True}
    with wire.stream("POST", "/v1/messages", json=anthropic) as response:
        assert response.headers["x-accel-buffering"] == "no"


def test_stream_defaults_to_false(wire: httpx.Client) -> None:
    reply = wire.post("/v1/chat/completions", json={"model": "smol", "messages": WHY, "max_tokens": 2})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["object"] == "chat.completion"


# --- sampling options ----------------------------------------------------------------------------------------------


def test_the_openai_temperature_wins_over_options(oai: openai.OpenAI) -> None:
    greedy = chat(oai, max_tokens=16, temperature=0).choices[0].message.content
    for seed in (1, 2):
        hot_options = {"options": {"temperature": 1.8}}
        reply = chat(oai, max_tokens=16, temperature=0, seed=seed, extra_body=hot_options)
        assert reply.choices[0].message.content == greedy
    # An options temperature alone is used (the OpenAI default of 1.0 does not override it).
    reply = chat(oai, max_tokens=16, seed=3, extra_body={"options": {"temperature": 0}})
    assert reply.choices[0].message.content == greedy


def test_temperature_defaults_to_one_over_the_models_own(oai: openai.OpenAI, models: ServerProcess) -> None:
    api = ollama.Client(host=models.url)
    native = {
        api.chat("smol-cold", messages=WHY, options={"num_predict": 12, "seed": seed}).message.content
        for seed in range(3)
    }
    assert len(native) == 1  # the model's temperature 0: greedy whatever the seed
    answers = {
        oai.chat.completions.create(model="smol-cold", messages=WHY, max_tokens=12, seed=seed)
        .choices[0]
        .message.content
        for seed in range(3)
    }
    assert len(answers) > 1  # sampled at 1.0
    explicit = oai.chat.completions.create(model="smol-cold", messages=WHY, max_tokens=12, temperature=0, seed=9)
    assert {explicit.choices[0].message.content} == native


# --- n choices -----------------------------------------------------------------------------------------------------


def test_n_choices(oai: openai.OpenAI) -> None:
    reply = chat(oai, n=2, max_tokens=6, temperature=1.0, seed=3)
    assert [choice.index for choice in reply.choices] == [0, 1]
    assert all(choice.message.content and choice.finish_reason == "length" for choice in reply.choices)
    assert reply.choices[0].message.content != reply.choices[1].message.content  # seeds 3 and 4
    assert reply.usage.completion_tokens == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


def test_n_choices_streamed(oai: openai.OpenAI) -> None:
    whole = chat(oai, n=2, max_tokens=6, temperature=1.0, seed=3)
    chunks = streamed(oai, n=2, max_tokens=6, temperature=1.0, seed=3, stream_options={"include_usage": True})
    assert len({chunk.id for chunk in chunks}) == 1
    *answer, usage = chunks
    for index in (0, 1):
        mine = [chunk.choices[0] for chunk in answer if chunk.choices[0].index == index]
        assert mine[0].delta.role == "assistant"
        assert [choice.finish_reason for choice in mine if choice.finish_reason] == ["length"]
        assert mine[-1].finish_reason == "length"
        assert text_of(answer, index) == whole.choices[index].message.content
    assert {chunk.choices[0].index for chunk in answer} == {0, 1}
    assert usage.choices == [] and usage.usage.completion_tokens == 12


def test_n_out_of_range(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        chat(oai, n=9, max_tokens=2)
    assert raised.value.body["message"] == "n must be an integer from 1 to 8"


# --- response_format -----------------------------------------------------------------------------------------------


def test_json_schema_response_format(oai: openai.OpenAI) -> None:
    reply = chat(
        oai,
        [{"role": "user", "content": "Give me a JSON object with a person's name."}],
        max_tokens=64,
        **GREEDY,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": NAME_SCHEMA}},
    )
    (choice,) = reply.choices
    assert choice.finish_reason == "stop"
    value = json.loads(choice.message.content)
    assert list(value) == ["name"] and isinstance(value["name"], str) and value["name"]


def test_json_object_response_format(oai: openai.OpenAI) -> None:
    reply = chat(
        oai,
        [{"role": "user", "content": "Give me a JSON object with a person's name and age."}],
        max_tokens=64,
        **GREEDY,
        response_format={"type": "json_object"},
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_response_format_type_is_case_insensitive(wire: httpx.Client) -> None:
    body = {
        "model": "smol",
        "messages": [{"role": "user", "content": "Give me a JSON object with a person's name."}],
        "max_tokens": 64,
        **GREEDY,
        "response_format": {"type": "JSON_SCHEMA", "json_schema": {"schema": NAME_SCHEMA}},
    }
    value = json.loads(wire.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"])
    assert list(value) == ["name"]


# --- tools (Qwen2.5-Coder) -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tool_call(oai: openai.OpenAI, qwen: str) -> None:
    reply = oai.chat.completions.create(model=qwen, messages=ADDITION, tools=[ADD_TOOL], max_tokens=100, temperature=0)
    (choice,) = reply.choices
    assert choice.finish_reason == "tool_calls"
    assert not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_") and len(call.id) > len("call_")
    assert call.function.name == "add"
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {"a": 1234, "b": 5678}
    assert_usage(reply.usage)


@pytest.mark.slow
def test_tool_result_round_trip(oai: openai.OpenAI, qwen: str) -> None:
    first = oai.chat.completions.create(
        model=qwen, messages=WEATHER, tools=[WEATHER_TOOL], max_tokens=60, temperature=0
    )
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    # The SDK's own message object goes back as it came (arguments a JSON string), then the result, named only by
    # its tool_call_id.
    messages = [
        *WEATHER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_celsius": 22, "sky": "sunny"}'},
    ]
    again = oai.chat.completions.create(
        model=qwen, messages=messages, tools=[WEATHER_TOOL], max_tokens=60, temperature=0
    )
    (choice,) = again.choices
    # The 0.5B model may echo the result and/or call the tool again; whatever it writes is well formed.
    for repeat in choice.message.tool_calls or []:
        assert repeat.function.name == "get_weather" and isinstance(json.loads(repeat.function.arguments), dict)
    assert "22" in (choice.message.content or "") or choice.finish_reason == "tool_calls"
    # Without tools to call, the answer is text that uses the result.
    final = oai.chat.completions.create(
        model=qwen, messages=messages, tools=[WEATHER_TOOL], tool_choice="none", max_tokens=60, temperature=0
    )
    (choice,) = final.choices
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert "22" in choice.message.content


@pytest.mark.slow
def test_streamed_tool_call(oai: openai.OpenAI, qwen: str) -> None:
    chunks = streamed(oai, ADDITION, model=qwen, tools=[ADD_TOOL], max_tokens=100, temperature=0)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or []]
    (call,) = deltas
    assert call.index == 0 and call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 1234, "b": 5678}
    assert text_of(chunks) == ""
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices[0].delta.tool_calls is None


@pytest.mark.slow
def test_tool_choice_none_calls_nothing(oai: openai.OpenAI, qwen: str) -> None:
    reply = oai.chat.completions.create(
        model=qwen, messages=ADDITION, tools=[ADD_TOOL], tool_choice="none", max_tokens=30, temperature=0
    )
    (choice,) = reply.choices
    assert choice.message.tool_calls is None
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.content


# --- embeddings ----------------------------------------------------------------------------------------------------


def test_float_embeddings(oai: openai.OpenAI) -> None:
    reply = oai.embeddings.create(model="minilm", input="why is the sky blue?", encoding_format="float")
    assert reply.object == "list" and reply.model == "minilm"
    (item,) = reply.data
    assert item.object == "embedding" and item.index == 0
    assert len(item.embedding) == 384 and all(isinstance(value, float) for value in item.embedding)
    assert math.isclose(math.hypot(*item.embedding), 1.0, rel_tol=1e-5)
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (8, 8)  # [CLS] why is the sky blue ? [SEP]


def test_base64_embeddings_are_little_endian_float32(oai: openai.OpenAI, wire: httpx.Client) -> None:
    floats = oai.embeddings.create(model="minilm", input="why is the sky blue?", encoding_format="float")
    expected = floats.data[0].embedding
    raw = wire.post(
        "/v1/embeddings", json={"model": "minilm", "input": "why is the sky blue?", "encoding_format": "base64"}
    ).json()
    encoded = raw["data"][0]["embedding"]
    assert isinstance(encoded, str)
    packed = base64.b64decode(encoded, validate=True)
    assert len(packed) == 384 * 4
    assert list(struct.unpack("<384f", packed)) == pytest.approx(expected, abs=1e-6)
    # The SDK asks for base64 by default and decodes it itself.
    decoded = oai.embeddings.create(model="minilm", input="why is the sky blue?").data[0].embedding
    assert decoded == pytest.approx(expected, abs=1e-6)


def test_several_inputs_keep_their_order(oai: openai.OpenAI) -> None:
    texts = ["cat", "why is the sky blue?", "a car engine"]
    reply = oai.embeddings.create(model="minilm", input=texts, encoding_format="float")
    assert [item.index for item in reply.data] == [0, 1, 2]
    for text, item in zip(texts, reply.data, strict=True):
        alone = oai.embeddings.create(model="minilm", input=text, encoding_format="float").data[0].embedding
        assert item.embedding == pytest.approx(alone, abs=1e-4)
    assert reply.usage.prompt_tokens > 8 and reply.usage.total_tokens == reply.usage.prompt_tokens


def test_dimensions_truncate_and_renormalize(oai: openai.OpenAI) -> None:
    full = oai.embeddings.create(model="minilm", input="why is the sky blue?", encoding_format="float")
    short = oai.embeddings.create(model="minilm", input="why is the sky blue?", dimensions=64, encoding_format="float")
    vector = short.data[0].embedding
    assert len(vector) == 64
    assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-5)
    scale = 1 / math.hypot(*full.data[0].embedding[:64])
    assert vector == pytest.approx([value * scale for value in full.data[0].embedding[:64]], abs=1e-5)


def test_bad_encoding_format(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        oai.embeddings.create(model="minilm", input="hi", encoding_format="int8")  # type: ignore[arg-type]
    assert raised.value.status_code == 400
    assert raised.value.body == {
        "message": "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64'].",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize("value", [[], None, [1, 2]])
def test_bad_embedding_input(wire: httpx.Client, value: Any) -> None:
    reply = wire.post("/v1/embeddings", json={"model": "minilm", "input": value})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "invalid input"


def test_empty_list_input_through_the_sdk(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="invalid input"):
        oai.embeddings.create(model="minilm", input=[])


def test_an_empty_string_is_one_input(wire: httpx.Client) -> None:
    reply = wire.post("/v1/embeddings", json={"model": "minilm", "input": ""})
    assert reply.status_code == 200
    assert [item["index"] for item in reply.json()["data"]] == [0]


# --- models --------------------------------------------------------------------------------------------------------


def test_list_models(oai: openai.OpenAI, wire: httpx.Client) -> None:
    listed = {model.id: model for model in oai.models.list()}
    assert {"smol:latest", "minilm:latest", "someone/smol:latest"} <= set(listed)
    tags = {entry["name"]: entry for entry in wire.get("/api/tags").json()["models"]}
    assert set(listed) == set(tags)
    for name, model in listed.items():
        assert model.object == "model"
        assert isinstance(model.created, int)
        assert model.created == int(parse_rfc3339(tags[name]["modified_at"]).timestamp())
    assert listed["smol:latest"].owned_by == "library"
    assert listed["someone/smol:latest"].owned_by == "someone"


def test_retrieve_model(oai: openai.OpenAI) -> None:
    listed = {model.id: model for model in oai.models.list()}
    model = oai.models.retrieve("smol")
    assert (model.id, model.object, model.owned_by) == ("smol", "model", "library")
    assert model.created == listed["smol:latest"].created
    assert oai.models.retrieve("smol:latest").id == "smol:latest"


def test_retrieve_unknown_model(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        oai.models.retrieve("nope")
    assert raised.value.status_code == 404
    assert raised.value.body == {
        "message": "model 'nope' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


def test_no_models_is_null_data(fresh_server: ServerProcess) -> None:
    fresh_server.start()
    assert httpx.get(fresh_server.url + "/v1/models").json() == {"object": "list", "data": None}
    with openai.OpenAI(base_url=fresh_server.url + "/v1", api_key="ignored", max_retries=0) as client:
        assert list(client.models.list()) == []


# --- completions ---------------------------------------------------------------------------------------------------

PROMPT = "The capital of France is"


def test_completion(oai: openai.OpenAI) -> None:
    reply = oai.completions.create(model="smol", prompt=PROMPT, max_tokens=8, **GREEDY)
    assert reply.object == "text_completion"
    assert reply.id.startswith("cmpl-") and reply.id.removeprefix("cmpl-").isdigit()
    assert reply.system_fingerprint == "fp_ollama" and reply.model == "smol"
    (choice,) = reply.choices
    assert choice.index == 0 and choice.text
    assert choice.finish_reason == "length"
    assert_usage(reply.usage, completion_tokens=8)


def test_completion_stream(oai: openai.OpenAI) -> None:
    whole = oai.completions.create(model="smol", prompt=PROMPT, max_tokens=8, **GREEDY).choices[0].text
    chunks = list(oai.completions.create(model="smol", prompt=PROMPT, max_tokens=8, stream=True, **GREEDY))
    assert {chunk.object for chunk in chunks} == {"text_completion"}
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    assert all(len(chunk.choices) == 1 and chunk.usage is None for chunk in chunks)
    assert "".join(chunk.choices[0].text for chunk in chunks) == whole
    assert [chunk.choices[0].finish_reason for chunk in chunks] == [None] * (len(chunks) - 1) + ["length"]


def test_completion_stream_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.completions.create(
            model="smol", prompt=PROMPT, max_tokens=8, stream=True, stream_options={"include_usage": True}, **GREEDY
        )
    )
    *answer, last = chunks
    for chunk in answer:  # every chunk carries a zero usage object (spec B.2)
        assert len(chunk.choices) == 1
        assert (chunk.usage.prompt_tokens, chunk.usage.completion_tokens, chunk.usage.total_tokens) == (0, 0, 0)
    assert answer[-1].choices[0].finish_reason == "length"
    assert last.choices == [] and last.id == answer[0].id
    assert_usage(last.usage, completion_tokens=8)


def test_completion_stream_on_the_wire(wire: httpx.Client) -> None:
    events = sse(wire, "/v1/completions", {"model": "smol", "prompt": PROMPT, "max_tokens": 3, **GREEDY})
    assert events[-1] == "[DONE]"
    assert len(events) == 3 + 2  # three tokens, the finish chunk, [DONE]
    assert all(json.loads(event)["object"] == "text_completion" for event in events[:-1])


def test_completion_stop(oai: openai.OpenAI) -> None:
    whole = oai.completions.create(model="smol", prompt=PROMPT, max_tokens=8, **GREEDY).choices[0].text
    word = whole.split()[1]
    reply = oai.completions.create(model="smol", prompt=PROMPT, max_tokens=8, stop=[word], **GREEDY)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].text == whole[: whole.index(word)]


def test_completion_suffix_needs_a_template_that_inserts(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not support insert"):
        oai.completions.create(model="smol", prompt="def add(a, b):\n", suffix="    return c", max_tokens=4)


def test_completion_stop_must_be_strings(wire: httpx.Client) -> None:
    reply = wire.post("/v1/completions", json={"model": "smol", "prompt": PROMPT, "stop": ["a", 1]})
    assert reply.status_code == 400
    assert reply.json()["error"] == {
        "message": "invalid type for 'stop' field",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


# --- errors --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model(oai: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        oai.chat.completions.create(model="nope", messages=WHY, stream=stream)
    assert raised.value.status_code == 404
    assert raised.value.body == {
        "message": "model 'nope' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


def test_unknown_model_elsewhere(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        oai.completions.create(model="nope", prompt="hi")
    assert raised.value.body["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError) as raised:
        oai.embeddings.create(model="nope", input="hi")
    assert raised.value.body["type"] == "not_found_error" and "not found" in raised.value.body["message"]


def bad_request(call: Any) -> str:
    with pytest.raises(openai.BadRequestError) as raised:
        call()
    assert raised.value.status_code == 400
    assert raised.value.body["type"] == "invalid_request_error"
    return raised.value.body["message"]


def test_empty_messages(oai: openai.OpenAI) -> None:
    assert bad_request(lambda: chat(oai, [])) == "[] is too short - 'messages'"


def test_invalid_reasoning_effort(oai: openai.OpenAI) -> None:
    message = bad_request(lambda: chat(oai, reasoning_effort="bogus"))
    assert message.startswith("invalid reasoning value: 'bogus'")


def test_image_urls_are_refused(oai: openai.OpenAI) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    message = bad_request(lambda: chat(oai, [{"role": "user", "content": content}]))
    assert message == "image URLs are not currently supported, please use base64 encoded data instead"
    content[1] = {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD"}}
    assert bad_request(lambda: chat(oai, [{"role": "user", "content": content}])) == "invalid image input"


def test_invalid_tool_call_arguments(oai: openai.OpenAI) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{not json"}}
    messages = [*ADDITION, {"role": "assistant", "content": None, "tool_calls": [call]}]
    assert bad_request(lambda: chat(oai, messages)) == "invalid tool call arguments"


def test_null_content_without_tool_calls(oai: openai.OpenAI) -> None:
    messages = [*WHY, {"role": "assistant", "content": None}]
    assert bad_request(lambda: chat(oai, messages)) == "invalid message content type: <nil>"


def test_missing_model(oai: openai.OpenAI, wire: httpx.Client) -> None:
    assert bad_request(lambda: oai.chat.completions.create(model="", messages=WHY)) == "model is required"
    reply = wire.post("/v1/chat/completions", json={"messages": WHY})
    assert reply.status_code == 400
    assert reply.json() == {
        "error": {"message": "model is required", "type": "invalid_request_error", "param": None, "code": None}
    }
    assert wire.post("/v1/embeddings", json={"input": "hi"}).status_code == 400
    # As the native /api/generate: an empty name is a model that is not found.
    reply = wire.post("/v1/completions", json={"prompt": "hi"})
    assert (reply.status_code, reply.json()["error"]["message"]) == (404, "model '' not found")


def test_capabilities_are_checked(oai: openai.OpenAI) -> None:
    assert bad_request(lambda: oai.chat.completions.create(model="minilm", messages=WHY)) == (
        '"minilm" does not support chat'
    )
    assert bad_request(lambda: chat(oai, tools=[ADD_TOOL])).endswith("does not support tools")


def test_invalid_json_body(wire: httpx.Client) -> None:
    reply = wire.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"


# --- logprobs ------------------------------------------------------------------------------------------------------


def test_logprobs(oai: openai.OpenAI) -> None:
    reply = chat(oai, max_tokens=6, logprobs=True, top_logprobs=2, **GREEDY)
    (choice,) = reply.choices
    entries = choice.logprobs.content
    assert len(entries) == reply.usage.completion_tokens == 6
    assert "".join(entry.token for entry in entries) == choice.message.content
    for entry in entries:
        assert math.isfinite(entry.logprob) and entry.logprob <= 0
        assert bytes(entry.bytes) == entry.token.encode()
        assert len(entry.top_logprobs) == 2
        first, second = entry.top_logprobs
        assert (first.token, first.logprob) == (entry.token, entry.logprob)  # greedy: the best one was taken
        assert second.logprob <= first.logprob and second.token != first.token


def test_logprobs_without_alternatives(oai: openai.OpenAI) -> None:
    reply = chat(oai, max_tokens=4, logprobs=True, **GREEDY)
    entries = reply.choices[0].logprobs.content
    assert len(entries) == 4
    assert all(not entry.top_logprobs for entry in entries)


def test_streamed_logprobs(oai: openai.OpenAI) -> None:
    whole = chat(oai, max_tokens=4, logprobs=True, top_logprobs=2, **GREEDY).choices[0].logprobs.content
    chunks = streamed(oai, max_tokens=4, logprobs=True, top_logprobs=2, **GREEDY)
    entries = [entry for chunk in chunks if chunk.choices[0].logprobs for entry in chunk.choices[0].logprobs.content]
    assert [(entry.token, entry.logprob) for entry in entries] == [(entry.token, entry.logprob) for entry in whole]


# --- reasoning -----------------------------------------------------------------------------------------------------


def test_reasoning_effort_none_on_a_model_that_does_not_think(oai: openai.OpenAI) -> None:
    plain = chat(oai, max_tokens=8, **GREEDY)
    reply = chat(oai, max_tokens=8, reasoning_effort="none", **GREEDY)  # native think: false, which smol accepts
    assert reply.choices[0].message.content == plain.choices[0].message.content
    assert "reasoning" not in (reply.choices[0].message.model_extra or {})
    # An effort that asks for thinking is refused, as native think on a model without the capability.
    assert bad_request(lambda: chat(oai, max_tokens=8, reasoning_effort="low")) == '"smol" does not support thinking'


def test_reasoning_object_effort(wire: httpx.Client) -> None:
    body = {"model": "smol", "messages": WHY, "max_tokens": 3, **GREEDY}
    reply = wire.post("/v1/chat/completions", json={**body, "reasoning": {"effort": "none"}})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    reply = wire.post("/v1/chat/completions", json={**body, "reasoning": {"effort": "bogus"}})
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith("invalid reasoning value: 'bogus'")


def test_thinking_comes_back_as_reasoning(oai: openai.OpenAI) -> None:
    # The template opens <think> and SmolLM2 never closes it: everything it writes is thinking.
    reply = oai.chat.completions.create(model="thinker", messages=WHY, max_tokens=8, **GREEDY)
    message = reply.choices[0].message
    extra = message.model_extra or {}
    assert message.content == ""
    assert extra["reasoning"] and extra["reasoning_content"] == extra["reasoning"]
    assert reply.choices[0].finish_reason == "length"
    chunks = streamed(oai, model="thinker", max_tokens=8, **GREEDY)
    thought = "".join((chunk.choices[0].delta.model_extra or {}).get("reasoning") or "" for chunk in chunks)
    assert thought == extra["reasoning"]
    # reasoning_effort none is think false: no <think> opened, so the model answers.
    answered = oai.chat.completions.create(
        model="thinker", messages=WHY, max_tokens=8, reasoning_effort="none", **GREEDY
    )
    assert answered.choices[0].message.content
    assert "reasoning" not in (answered.choices[0].message.model_extra or {})


# --- _debug_render_only --------------------------------------------------------------------------------------------


def test_debug_render_only_shows_the_prompt(wire: httpx.Client) -> None:
    reply = wire.post("/v1/chat/completions", json={"model": "smol", "messages": WHY, "_debug_render_only": True})
    assert reply.status_code == 200
    assert "<|im_start|>user\nWhy is the sky blue?<|im_end|>" in reply.json()["_debug_info"]["rendered_template"]


# --- last, as it reloads smol's runner with another context --------------------------------------------------------


def test_options_pass_through_to_the_runner(oai: openai.OpenAI, wire: httpx.Client) -> None:
    # Beyond Ollama: the SDK's extra_body "options" reach the native request, num_ctx included.
    reply = chat(oai, max_tokens=2, extra_body={"options": {"num_ctx": 1024}})
    assert reply.choices[0].message.content
    (loaded,) = [entry for entry in wire.get("/api/ps").json()["models"] if entry["name"] == "smol:latest"]
    assert loaded["context_length"] == 1024
