"""The ``openai`` Python SDK against pollama's ``/v1``, unchanged."""

from __future__ import annotations

import json

import pytest
from openai import OpenAI

from tests.clients.conftest import SHORT
from tests.clients.test_ollama_python import ADD

CLIENT = "openai"
NAME_AGE = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


@pytest.fixture
def client(url: str) -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key="unused")


@pytest.mark.client(CLIENT, "chat")
def test_chat(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=SHORT)
    assert reply.choices[0].message.content and reply.usage and reply.usage.completion_tokens


@pytest.mark.client(CLIENT, "stream")
def test_stream(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=SHORT, stream=True))  # fmt: skip
    assert len(chunks) > 2 and chunks[-1].choices[0].finish_reason in ("stop", "length")


@pytest.mark.client(CLIENT, "tools")
def test_tools(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="qwen", messages=[{"role": "user", "content": "What is 1234 plus 5678? Use the tool."}],
        tools=[ADD], temperature=0, max_tokens=64,
    )  # fmt: skip
    (call,) = reply.choices[0].message.tool_calls or []
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 1234, "b": 5678}


@pytest.mark.client(CLIENT, "response_format json_schema")
def test_response_format(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Describe a person as JSON."}], temperature=1, seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": NAME_AGE}}, max_tokens=100,
    )  # fmt: skip
    assert list(json.loads(reply.choices[0].message.content or "")) == ["name", "age"]


@pytest.mark.client(CLIENT, "embeddings")
def test_embeddings(client: OpenAI) -> None:
    vectors = client.embeddings.create(model="minilm", input=["a cat", "a dog"]).data
    assert len(vectors) == 2 and len(vectors[0].embedding) == 384


@pytest.mark.client(CLIENT, "models")
def test_models(client: OpenAI) -> None:
    assert {"smol:latest", "qwen:latest"} <= {model.id for model in client.models.list().data}
    assert client.models.retrieve("smol").id == "smol"
