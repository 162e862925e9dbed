"""LiteLLM's ``ollama/`` and ``ollama_chat/`` providers against pollama, unchanged."""

from __future__ import annotations

import json

import pytest

litellm = pytest.importorskip("litellm", reason="pip install 'pollama[clients]'")

from tests.clients.test_ollama_python import ADD  # noqa: E402

CLIENT = "litellm"
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.mark.client(CLIENT, "ollama/ completion")
def test_completion(url: str) -> None:
    reply = litellm.completion(model="ollama/smol", api_base=url, messages=MESSAGES, max_tokens=8)
    assert reply.choices[0].message.content


@pytest.mark.client(CLIENT, "ollama_chat/ completion")
def test_chat_completion(url: str) -> None:
    reply = litellm.completion(model="ollama_chat/smol", api_base=url, messages=MESSAGES, max_tokens=8)
    assert reply.choices[0].message.content and reply.usage.completion_tokens


@pytest.mark.client(CLIENT, "stream")
def test_stream(url: str) -> None:
    for model in ("ollama/smol", "ollama_chat/smol"):
        chunks = list(litellm.completion(model=model, api_base=url, messages=MESSAGES, max_tokens=8, stream=True))
        assert len(chunks) > 2 and "".join(chunk.choices[0].delta.content or "" for chunk in chunks)


@pytest.mark.client(CLIENT, "tools")
def test_tools(url: str) -> None:
    reply = litellm.completion(
        model="ollama_chat/qwen", api_base=url, tools=[ADD], temperature=0, max_tokens=64,
        messages=[{"role": "user", "content": "What is 1234 plus 5678? Use the tool."}],
    )  # fmt: skip
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 1234, "b": 5678}


@pytest.mark.client(CLIENT, "embedding")
def test_embedding(url: str) -> None:
    reply = litellm.embedding(model="ollama/minilm", api_base=url, input=["a cat", "a dog"])
    assert len(reply.data) == 2 and len(reply.data[0]["embedding"]) == 384
