"""LlamaIndex's ``Ollama`` LLM and ``OllamaEmbedding`` against pollama, unchanged."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

ollama_llm = pytest.importorskip("llama_index.llms.ollama", reason="pip install 'pollama[clients]'")
ollama_embedding = pytest.importorskip("llama_index.embeddings.ollama", reason="pip install 'pollama[clients]'")

from llama_index.core.llms import ChatMessage  # noqa: E402
from llama_index.core.prompts import PromptTemplate  # noqa: E402

CLIENT = "llama-index-llms-ollama"


class Album(BaseModel):
    """A music album."""

    title: str
    artist: str
    year: int


def llm(url: str, model: str = "smol", **options: object) -> ollama_llm.Ollama:
    # context_window becomes num_ctx: the server's default here, so that the models are not reloaded for it
    # (left out, LlamaIndex asks for the model's whole context, 32k for Qwen).
    additional = {"num_predict": 64, **options}
    return ollama_llm.Ollama(model=model, base_url=url, request_timeout=120, context_window=4096,
                             additional_kwargs=additional)  # fmt: skip


@pytest.mark.client(CLIENT, "complete")
def test_complete(url: str) -> None:
    assert llm(url, num_predict=8).complete("Hi").text


@pytest.mark.client(CLIENT, "chat")
def test_chat(url: str) -> None:
    reply = llm(url, num_predict=8).chat([ChatMessage(role="user", content="Hi")])
    assert reply.message.content


@pytest.mark.client(CLIENT, "stream")
def test_stream(url: str) -> None:
    parts = list(llm(url, num_predict=8).stream_complete("Count to five."))
    assert len(parts) > 2 and parts[-1].text


@pytest.mark.client(CLIENT, "structured_predict (plain pydantic model)")
def test_structured_predict(url: str) -> None:
    # Measured before Ollama's schema reading: 0 of 3 valid within 256 tokens, the model adding keys.
    model = llm(url, "qwen", num_predict=256, temperature=1)
    for seed in range(3):
        model.additional_kwargs["seed"] = seed
        album = model.structured_predict(Album, PromptTemplate("Name a famous album by {artist}."), artist="Queen")
        assert isinstance(album, Album)


@pytest.mark.client("llama-index-embeddings-ollama", "embeddings")
def test_embeddings(url: str) -> None:
    embedding = ollama_embedding.OllamaEmbedding(model_name="minilm", base_url=url)
    vectors = embedding.get_text_embedding_batch(["a cat", "a dog"])
    assert len(vectors) == 2 and len(embedding.get_query_embedding("a bird")) == len(vectors[0]) == 384
