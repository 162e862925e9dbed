"""The official ``ollama`` Python package: everyday calls, unchanged, against pollama."""

from __future__ import annotations

import json

import ollama
import pytest
from pydantic import BaseModel

from tests.clients.conftest import SHORT
from tests.registries import DockerRegistry

CLIENT = "ollama"
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


class Pet(BaseModel):
    name: str
    legs: int


@pytest.fixture
def client(url: str) -> ollama.Client:
    return ollama.Client(host=url)


@pytest.mark.client(CLIENT, "generate and chat")
def test_generate_and_chat(client: ollama.Client) -> None:
    assert client.generate("smol", "Hi", options={"num_predict": SHORT}).response
    reply = client.chat("smol", messages=[{"role": "user", "content": "Hi"}], options={"num_predict": SHORT})
    assert reply.message.role == "assistant" and reply.message.content and reply.done


@pytest.mark.client(CLIENT, "streaming")
def test_streaming(client: ollama.Client) -> None:
    parts = list(client.chat("smol", messages=[{"role": "user", "content": "Count to five."}], stream=True,
                             options={"num_predict": SHORT}))  # fmt: skip
    assert len(parts) > 2 and parts[-1].done and parts[-1].eval_count


@pytest.mark.client(CLIENT, "tools")
def test_tools(client: ollama.Client) -> None:
    reply = client.chat("qwen", messages=[{"role": "user", "content": "What is 1234 plus 5678? Use the tool."}],
                        tools=[ADD], options={"temperature": 0, "num_predict": 64})  # fmt: skip
    (call,) = reply.message.tool_calls or []
    assert call.function.name == "add" and call.function.arguments == {"a": 1234, "b": 5678}


@pytest.mark.client(CLIENT, "format=Model.model_json_schema()")
def test_format_from_pydantic(client: ollama.Client) -> None:
    for seed in range(3):
        options = {"temperature": 1, "seed": seed, "num_predict": 100}
        reply = client.chat("smol", messages=[{"role": "user", "content": "Describe a pet as JSON."}],
                            format=Pet.model_json_schema(), options=options)  # fmt: skip
        pet = Pet.model_validate_json(reply.message.content or "")
        assert set(json.loads(reply.message.content or "")) == {"name", "legs"}, pet


@pytest.mark.client(CLIENT, "embed")
def test_embed(client: ollama.Client) -> None:
    vectors = client.embed("minilm", input=["a cat", "a dog"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == 384


@pytest.mark.client(CLIENT, "list, show, ps")
def test_list_show_ps(client: ollama.Client) -> None:
    assert {"smol:latest", "qwen:latest", "minilm:latest"} <= {model.model for model in client.list().models}
    shown = client.show("smol")
    assert "completion" in (shown.capabilities or []) and shown.modelinfo
    client.generate("smol", "Hi", options={"num_predict": 1})
    assert "smol:latest" in {model.model for model in client.ps().models}


@pytest.mark.client(CLIENT, "pull with progress")
def test_pull_with_progress(client: ollama.Client, tmp_path_factory: pytest.TempPathFactory) -> None:
    with DockerRegistry(tmp_path_factory.mktemp("registry")) as registry:
        name = f"{registry.host}/matrix/smol:v1"
        client.copy("smol", name)
        assert client.push(name, insecure=True).status == "success"
        client.delete(name)
        statuses = [part.status for part in client.pull(name, insecure=True, stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
    assert name in {model.model for model in client.list().models}


@pytest.mark.client(CLIENT, "errors as ResponseError")
def test_errors(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat("nope", messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.status_code == 404 and "not found" in missing.value.error
    with pytest.raises(ollama.ResponseError) as no_tools:
        client.chat("smol", messages=[{"role": "user", "content": "Hi"}], tools=[ADD])
    assert no_tools.value.status_code == 400 and "does not support tools" in no_tools.value.error
