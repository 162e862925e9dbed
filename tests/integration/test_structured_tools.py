"""Structured output (``format``), tool calls and logprobs under a format, through a real server.

SmolLM2-135M-Instruct (no tools capability) answers the ``format`` requests, sampled at temperature 1 so the
constraint, not the model's habits, is what keeps every answer valid; Qwen2.5-Coder-0.5B-Instruct (its GGUF chat
template has tools) makes the tool-call round trip. Requests go through the official ``ollama`` client where it
can express them and through httpx where the wire matters (tool call ids and indexes, error bodies,
``_debug_render_only``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from pollama.service.structured import FormatError, grammar_for_format
from tests.integration.conftest import upload
from tests.servers import ServerProcess
from tests.unit.test_runner_constraint import SCHEMA, schema_errors
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(300)

PERSON = "Describe a person as JSON."
ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers and return their sum.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
QUESTION = [{"role": "user", "content": "What is 1234 plus 5678?"}]
# A Go template that records thinking in history, so its tags are inferred and the model counts as thinking, but
# does not open <think> for the answer: SmolLM2 answers without thinking.
THINKING_NOT_OPENED = (
    "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
    "{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
THINKING_OPENED = THINKING_NOT_OPENED + "{{ if .Think }}<think>\n{{ end }}"


def post(server: ServerProcess, path: str, body: dict[str, Any], timeout: float = 120) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=timeout)


def stream_lines(server: ServerProcess, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", server.url + path, json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line) for line in response.iter_lines() if line]


def valid(text: str) -> dict[str, Any]:
    value = json.loads(text)
    assert schema_errors(value, SCHEMA) == [], text
    return value


@pytest.fixture(scope="module")
def smol(server: ServerProcess, smollm2_path: Path) -> str:
    client = ollama.Client(host=server.url)
    digest = upload(client, smollm2_path)
    assert client.create("smol", files={"smol.gguf": digest}).status == "success"
    client.create("thinker", files={"smol.gguf": digest}, template=THINKING_NOT_OPENED)
    client.create("opened-thinker", files={"smol.gguf": digest}, template=THINKING_OPENED)
    return "smol"


@pytest.fixture(scope="module")
def qwen(server: ServerProcess) -> str:
    client = ollama.Client(host=server.url)
    digest = upload(client, ensure_model("qwen2.5-coder"))
    assert client.create("qwen-coder", files={"model.gguf": digest}).status == "success"
    return "qwen-coder"


# --- format: a JSON schema --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_chat_answers_follow_the_schema(client: ollama.Client, smol: str, seed: int) -> None:
    options = {"temperature": 1.0, "seed": seed, "num_predict": 200}
    reply = client.chat(smol, messages=[{"role": "user", "content": PERSON}], format=SCHEMA, options=options)
    assert reply.done_reason == "stop"
    valid(reply.message.content)


@pytest.mark.parametrize("seed", range(4, 8))
def test_generate_answers_follow_the_schema(client: ollama.Client, smol: str, seed: int) -> None:
    reply = client.generate(smol, PERSON, format=SCHEMA, options={"temperature": 1.0, "seed": seed, "num_predict": 200})
    assert reply.done_reason == "stop"
    valid(reply.response)


@pytest.mark.parametrize("seed", [8, 9])
def test_streamed_answers_follow_the_schema(client: ollama.Client, smol: str, seed: int) -> None:
    options = {"temperature": 1.0, "seed": seed, "num_predict": 200}
    chunks = list(
        client.chat(smol, messages=[{"role": "user", "content": PERSON}], format=SCHEMA, options=options, stream=True)
    )
    assert len(chunks) > 3 and chunks[-1].done and chunks[-1].done_reason == "stop"
    valid("".join(chunk.message.content for chunk in chunks))
    parts = list(client.generate(smol, PERSON, format=SCHEMA, options=options, stream=True))
    assert len(parts) > 3 and parts[-1].done_reason == "stop"
    valid("".join(part.response for part in parts))


def test_raw_generate_follows_the_schema(server: ServerProcess, smol: str) -> None:
    body = {
        "model": smol,
        "prompt": "Here is a person:",
        "raw": True,
        "format": SCHEMA,
        "stream": False,
        "options": {"temperature": 1.0, "seed": 1, "num_predict": 200},
    }
    reply = post(server, "/api/generate", body).json()
    assert reply["done_reason"] == "stop"
    valid(reply["response"])


def test_json_format_gives_an_object(client: ollama.Client, smol: str) -> None:
    options = {"temperature": 0, "num_predict": 300}
    reply = client.chat(smol, messages=[{"role": "user", "content": PERSON}], format="json", options=options)
    assert isinstance(json.loads(reply.message.content), dict)
    generated = client.generate(smol, PERSON, format="json", options=options)
    assert isinstance(json.loads(generated.response), dict)


# --- Ollama's reading of a schema: no keys it does not name, no endless numbers (issue 26) -------------------

# What pydantic's model_json_schema() sends: required fields, nothing said about other keys.
NAME_AGE = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.mark.parametrize("seed", range(6))
def test_a_schema_that_does_not_allow_other_keys_gets_none(client: ollama.Client, smol: str, seed: int) -> None:
    # Measured before: 0 of these 6 answers had only these keys (the model added city, job, hobbies).
    options = {"temperature": 1.0, "seed": seed, "num_predict": 200}
    reply = client.chat(smol, messages=[{"role": "user", "content": PERSON}], format=NAME_AGE, options=options)
    assert reply.done_reason == "stop"
    assert list(json.loads(reply.message.content)) == ["name", "age"]


def test_openai_json_schema_gets_no_other_keys_either(server: ServerProcess, smol: str) -> None:
    from openai import OpenAI

    openai = OpenAI(base_url=server.url + "/v1", api_key="unused")
    for seed, strict in ((0, False), (1, True)):
        reply = openai.chat.completions.create(
            model=smol,
            messages=[{"role": "user", "content": PERSON}],
            response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": NAME_AGE, "strict": strict}},
            temperature=1.0,
            seed=seed,
            max_tokens=200,
        )
        assert reply.choices[0].finish_reason == "stop"
        assert list(json.loads(reply.choices[0].message.content or "")) == ["name", "age"]


def test_json_answers_are_not_cut_inside_an_endless_number(client: ollama.Client, smol: str) -> None:
    # Measured before: seeds 3 and 5 wrote {", ": 1000100010110111... until all 400 tokens were digits.
    answers = []
    for seed in range(10):
        options = {"temperature": 0.9, "seed": seed, "num_predict": 400}
        reply = client.generate(smol, "Give me JSON about cats.", format="json", options=options)
        answers.append((seed, reply.done_reason, reply.response))
    for seed, done_reason, text in answers:
        # Digits inside strings are text, as long as a model likes; a number has at most 16 each side of the point.
        # (An answer cut by num_predict may end in a number, but never in one more than 16 digits long.)
        outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"?', '""', text)
        assert max(map(len, re.findall(r"[0-9]+", outside_strings)), default=0) <= 16, (seed, text[-120:])
        if done_reason == "stop":
            assert isinstance(json.loads(text), dict), (seed, text)


@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_format_constrains_nothing(server: ServerProcess, smol: str, value: Any) -> None:
    body = {"model": smol, "prompt": "Why is the sky blue?", "format": value, "stream": False}
    reply = post(server, "/api/generate", {**body, "options": {"temperature": 0, "num_predict": 8}})
    assert reply.status_code == 200
    assert not reply.json()["response"].lstrip().startswith("{")


# --- format with a thinking model --------------------------------------------------------------------------


def test_a_thinking_model_that_answers_directly_gets_the_format(client: ollama.Client, smol: str) -> None:
    assert "thinking" in (client.show("thinker").capabilities or [])
    options = {"temperature": 0, "num_predict": 200}
    for think in (None, False):
        reply = client.chat(
            "thinker", messages=[{"role": "user", "content": PERSON}], format=SCHEMA, think=think, options=options
        )
        assert not reply.message.thinking
        valid(reply.message.content)


def test_thinking_runs_free_of_the_format(client: ollama.Client, smol: str) -> None:
    # The prompt opens <think>; SmolLM2 never closes it, so all it writes is thinking, none of it held to the format.
    options = {"temperature": 0, "num_predict": 16}
    reply = client.chat(
        "opened-thinker", messages=[{"role": "user", "content": PERSON}], format=SCHEMA, options=options
    )
    assert reply.done_reason == "length"
    assert reply.message.thinking and not reply.message.thinking.lstrip().startswith("{")
    assert reply.message.content == ""


# --- format errors ---------------------------------------------------------------------------------------------

BAD_FORMATS = [
    ("xml", 'invalid format: "xml"; expected "json" or a valid JSON Schema object'),
    (5, 'invalid format: 5; expected "json" or a valid JSON Schema object'),
    ([1], 'invalid format: [1]; expected "json" or a valid JSON Schema object'),
    (True, 'invalid format: true; expected "json" or a valid JSON Schema object'),
    ({"type": "foo"}, None),
    ({"type": "string", "pattern": "[a-"}, None),
    ({"type": "array", "minItems": 3, "maxItems": 1}, None),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/nope"}}}, None),
]


def schema_message(value: Any) -> str:
    with pytest.raises(FormatError) as raised:
        grammar_for_format(value)
    return str(raised.value)


def test_a_bad_format_is_a_400_before_anything_runs(fresh_server: ServerProcess, smollm2_path: Path) -> None:
    fresh_server.start()
    client = ollama.Client(host=fresh_server.url)
    client.create("smol", files={"smol.gguf": upload(client, smollm2_path)})
    for value, message in BAD_FORMATS:
        expected = message or schema_message(value)
        if message is None:
            assert expected.startswith("invalid JSON schema in format: ")
        for path, extra in (
            ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]}),
            ("/api/generate", {"prompt": "hi"}),
        ):
            for stream in (True, False):
                reply = post(fresh_server, path, {"model": "smol", "format": value, "stream": stream, **extra})
                assert (reply.status_code, reply.json()) == (400, {"error": expected}), (path, value, stream)
                assert reply.headers["content-type"].startswith("application/json")
    # Nothing was loaded, let alone generated.
    assert httpx.get(fresh_server.url + "/api/ps").json() == {"models": []}
    with pytest.raises(ollama.ResponseError) as raised:
        client.chat("smol", messages=[{"role": "user", "content": "hi"}], format={"type": "foo"})
    assert raised.value.status_code == 400
    assert raised.value.error == schema_message({"type": "foo"})


# --- tools ---------------------------------------------------------------------------------------------------------


def test_tools_need_the_tools_capability(server: ServerProcess, client: ollama.Client, smol: str) -> None:
    assert "tools" not in (client.show(smol).capabilities or [])
    body = {"model": smol, "messages": QUESTION, "tools": [ADD_TOOL]}
    for stream in (True, False):
        reply = post(server, "/api/chat", {**body, "stream": stream})
        assert (reply.status_code, reply.json()) == (
            400,
            {"error": "registry.ollama.ai/library/smol:latest does not support tools"},
        )
    # An empty list asks for nothing.
    reply = post(server, "/api/chat", {**body, "tools": [], "stream": False, "options": {"num_predict": 2}})
    assert reply.status_code == 200


def test_qwen_has_the_tools_capability(client: ollama.Client, qwen: str) -> None:
    assert "tools" in (client.show(qwen).capabilities or [])


def test_tool_call_round_trip(server: ServerProcess, client: ollama.Client, qwen: str) -> None:
    options = {"temperature": 0, "num_predict": 100}
    reply = client.chat(qwen, messages=QUESTION, tools=[ADD_TOOL], options=options)
    assert reply.done and reply.done_reason == "stop"
    (call,) = reply.message.tool_calls or []
    assert (call.function.name, dict(call.function.arguments)) == ("add", {"a": 1234, "b": 5678})
    assert reply.message.content == ""

    # The same request on the wire: Ollama's id and index.
    wire = post(
        server,
        "/api/chat",
        {"model": qwen, "messages": QUESTION, "tools": [ADD_TOOL], "stream": False, "options": options},
    )
    (wire_call,) = wire.json()["message"]["tool_calls"]
    assert wire_call["id"].startswith("call_") and len(wire_call["id"]) == 13
    assert wire_call["id"][5:].isalnum() and wire_call["id"][5:] == wire_call["id"][5:].lower()
    assert wire_call["function"] == {"index": 0, "name": "add", "arguments": {"a": 1234, "b": 5678}}

    # The result goes back; the prompt shows the call and the result to the model.
    messages = [*QUESTION, reply.message, {"role": "tool", "content": '{"sum": 6912}', "tool_name": "add"}]
    rendered = post(
        server,
        "/api/chat",
        {
            "model": qwen,
            "messages": [*QUESTION, reply.message.model_dump(exclude_none=True), messages[-1]],
            "tools": [ADD_TOOL],
            "_debug_render_only": True,
        },
    ).json()["_debug_info"]["rendered_template"]
    assert '{"name": "add", "arguments": {"a": 1234, "b": 5678}}' in rendered
    assert '<tool_response>\n{"sum": 6912}\n</tool_response>' in rendered
    assert rendered.endswith("<|im_start|>assistant\n")

    answer = client.chat(qwen, messages=messages, tools=[ADD_TOOL], options=options)
    assert answer.done and answer.done_reason == "stop"
    # The 0.5B model echoes the result and/or calls the tool again (which of the two depends on the KV cache's
    # state, even greedily); whatever it says is either content or a well-formed call.
    assert "6912" in answer.message.content or answer.message.tool_calls
    assert all(again.function.name == "add" for again in answer.message.tool_calls or [])


def test_a_streamed_tool_call_comes_in_one_chunk(server: ServerProcess, qwen: str) -> None:
    body = {"model": qwen, "messages": QUESTION, "tools": [ADD_TOOL], "options": {"temperature": 0, "num_predict": 100}}
    lines = stream_lines(server, "/api/chat", body)
    with_calls = [line for line in lines if line["message"].get("tool_calls")]
    (chunk,) = with_calls
    assert chunk["done"] is False and chunk["message"]["content"] == ""
    (call,) = chunk["message"]["tool_calls"]
    assert call["id"].startswith("call_") and len(call["id"]) == 13
    assert call["function"] == {"index": 0, "name": "add", "arguments": {"a": 1234, "b": 5678}}
    assert "".join(line["message"]["content"] for line in lines) == ""
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert "tool_calls" not in lines[-1]["message"]

    whole = post(server, "/api/chat", {**body, "stream": False}).json()
    (final,) = whole["message"]["tool_calls"]
    assert final["function"] == call["function"]
    assert final["id"] != call["id"]  # a fresh id per answer


# Ollama's own qwen2.5 TEMPLATE (ollama tools/testdata/qwen2.5.gotmpl): its calls are written in an `else if`.
OLLAMA_QWEN25_TEMPLATE = (
    "{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>\n"
    "{{- else if .Messages }}\n{{- if or .System .Tools }}<|im_start|>system\n{{- if .System }}\n{{ .System }}\n"
    "{{- end }}\n{{- if .Tools }}\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{{- range .Tools }}\n"
    '{"type": "function", "function": {{ .Function }}}\n{{- end }}\n</tools>\n\n'
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>\n'
    "{{- end }}<|im_end|>\n{{ end }}\n{{- range $i, $_ := .Messages }}\n"
    "{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
    '{{- if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ if .Content }}{{ .Content }}\n'
    "{{- else if .ToolCalls }}<tool_call>\n"
    '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}\n'
    "{{ end }}</tool_call>\n{{- end }}{{ if not $last }}<|im_end|>\n{{ end }}\n"
    '{{- else if eq .Role "tool" }}<|im_start|>user\n<tool_response>\n{{ .Content }}\n</tool_response><|im_end|>\n'
    '{{ end }}\n{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant\n{{ end }}\n{{- end }}\n'
    "{{- else }}\n{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ end }}"
    "{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"
)


def test_tool_calls_with_ollamas_qwen_template(client: ollama.Client, qwen: str) -> None:
    # Under this template the model writes its call as bare JSON, which is parsed whatever tag the template gives
    # (tests/unit/test_tool_parser.py shows the tag itself comes out wrong: '{' instead of '<tool_call>').
    client.create("qwen-gotemplate", from_=qwen, template=OLLAMA_QWEN25_TEMPLATE)
    assert "tools" in (client.show("qwen-gotemplate").capabilities or [])
    reply = client.chat(
        "qwen-gotemplate", messages=QUESTION, tools=[ADD_TOOL], options={"temperature": 0, "num_predict": 100}
    )
    assert "<tool_call>" not in reply.message.content, reply.message.content
    (call,) = reply.message.tool_calls or []
    assert (call.function.name, dict(call.function.arguments)) == ("add", {"a": 1234, "b": 5678})


# --- logprobs under a format ---------------------------------------------------------------------------------------

LOGPROBS_BODY = {
    "messages": [{"role": "user", "content": PERSON}],
    "format": SCHEMA,
    "logprobs": True,
    "top_logprobs": 20,
    "options": {"temperature": 0, "num_predict": 200},
}


@pytest.fixture(scope="module")
def logprobs_reply(server: ServerProcess, smol: str) -> dict[str, Any]:
    reply = post(server, "/api/chat", {"model": smol, **LOGPROBS_BODY, "stream": False})
    assert reply.status_code == 200
    return reply.json()


def test_logprobs_under_a_format_are_finite_and_sorted(logprobs_reply: dict[str, Any]) -> None:
    # acceptance-scenarios §16: greedy with logprobs/top_logprobs 20 still gives a valid object, all logprobs finite.
    assert logprobs_reply["done_reason"] == "stop"
    valid(logprobs_reply["message"]["content"])
    entries = logprobs_reply["logprobs"]
    assert logprobs_reply["eval_count"] - 1 <= len(entries) <= logprobs_reply["eval_count"]
    for entry in entries:
        assert list(entry) == ["token", "logprob", "bytes", "top_logprobs"]
        assert math.isfinite(entry["logprob"]) and entry["logprob"] <= 0
        alternatives = entry["top_logprobs"]
        assert 1 <= len(alternatives) <= 20
        values = [alternative["logprob"] for alternative in alternatives]
        assert all(math.isfinite(value) and value <= 0 for value in values)
        assert values == sorted(values, reverse=True)
        assert (alternatives[0]["token"], alternatives[0]["logprob"]) == (entry["token"], entry["logprob"])
        assert bytes(entry["bytes"]) == entry["token"].encode()
    # Alternatives the format forbids are left out: the answer can only open an object.
    assert all(alternative["token"].startswith("{") for alternative in entries[0]["top_logprobs"])


def test_streamed_logprobs_under_a_format(server: ServerProcess, smol: str) -> None:
    lines = stream_lines(server, "/api/chat", {"model": smol, **LOGPROBS_BODY})
    content = "".join(line["message"]["content"] for line in lines)
    valid(content)
    entries = [entry for line in lines for entry in line.get("logprobs") or ()]
    assert lines[-1]["eval_count"] - 1 <= len(entries) <= lines[-1]["eval_count"]
    assert "".join(entry["token"] for entry in entries).startswith(content)


def test_logprobs_cover_the_content_and_nothing_else(logprobs_reply: dict[str, Any]) -> None:
    entries = logprobs_reply["logprobs"]
    assert "".join(entry["token"] for entry in entries) == logprobs_reply["message"]["content"]
    assert len(entries) == logprobs_reply["eval_count"] - 1
