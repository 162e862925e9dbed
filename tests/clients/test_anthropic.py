"""The ``anthropic`` Python SDK against pollama's ``/v1/messages``, unchanged."""

from __future__ import annotations

import anthropic
import pytest

from tests.clients.conftest import SHORT
from tests.clients.test_ollama_python import ADD as OLLAMA_ADD

CLIENT = "anthropic"
# The tool of the other clients' tests, in Anthropic's shape.
ADD = {
    "name": OLLAMA_ADD["function"]["name"],
    "description": OLLAMA_ADD["function"]["description"],
    "input_schema": OLLAMA_ADD["function"]["parameters"],
}


@pytest.fixture
def client(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="unused")


@pytest.mark.client(CLIENT, "messages")
def test_messages(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="smol", max_tokens=SHORT, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].type == "text" and message.content[0].text and message.usage.output_tokens


@pytest.mark.client(CLIENT, "stream")
def test_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="smol", max_tokens=SHORT, messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text


@pytest.mark.client(CLIENT, "tools")
def test_tools(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="qwen", max_tokens=64, tools=[ADD], extra_body={"temperature": 0},
        messages=[{"role": "user", "content": "What is 1234 plus 5678? Use the tool."}],
    )  # fmt: skip
    (use,) = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use" and use.name == "add" and use.input == {"a": 1234, "b": 5678}
