"""LangChain's ``langchain-ollama`` (``ChatOllama``, ``OllamaEmbeddings``) against pollama, unchanged."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

langchain_ollama = pytest.importorskip("langchain_ollama", reason="pip install 'pollama[clients]'")

CLIENT = "langchain-ollama"


class Sum(BaseModel):
    """The sum of two numbers."""

    a: int
    b: int


def chat(url: str, model: str = "smol", **options: object) -> langchain_ollama.ChatOllama:
    settings: dict[str, object] = {"num_predict": 64, **options}
    return langchain_ollama.ChatOllama(model=model, base_url=url, **settings)


@pytest.mark.client(CLIENT, "invoke")
def test_invoke(url: str) -> None:
    reply = chat(url, num_predict=8).invoke("Hi")
    assert isinstance(reply.content, str) and reply.content and reply.usage_metadata


@pytest.mark.client(CLIENT, "stream")
def test_stream(url: str) -> None:
    chunks = list(chat(url, num_predict=8).stream("Count to five."))
    assert len(chunks) > 2 and "".join(str(chunk.content) for chunk in chunks)


@pytest.mark.client(CLIENT, "bind_tools")
def test_bind_tools(url: str) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    reply = chat(url, "qwen", temperature=0).bind_tools([add]).invoke("What is 1234 plus 5678? Use the tool.")
    (call,) = reply.tool_calls
    assert call["name"] == "add" and call["args"] == {"a": 1234, "b": 5678}


@pytest.mark.client(CLIENT, "with_structured_output json_schema")
def test_structured_output_json_schema(url: str) -> None:
    structured = chat(url, temperature=1, seed=1).with_structured_output(Sum, method="json_schema")
    result = structured.invoke("Give two numbers a and b as JSON.")
    assert isinstance(result, Sum)


@pytest.mark.client(CLIENT, "with_structured_output function_calling")
def test_structured_output_function_calling(url: str) -> None:
    structured = chat(url, "qwen", temperature=0).with_structured_output(Sum, method="function_calling")
    result = structured.invoke("Report the numbers 1234 and 5678 as a and b.")
    assert result == Sum(a=1234, b=5678)


@pytest.mark.client(CLIENT, "OllamaEmbeddings")
def test_embeddings(url: str) -> None:
    embeddings = langchain_ollama.OllamaEmbeddings(model="minilm", base_url=url)
    vectors = embeddings.embed_documents(["a cat", "a dog"])
    assert len(vectors) == 2 and len(embeddings.embed_query("a bird")) == len(vectors[0]) == 384
