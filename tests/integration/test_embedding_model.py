"""A real embedding model (all-MiniLM-L6-v2 converted to a BERT GGUF) served through /api/embed and /api/embeddings.

The reference values come from sentence-transformers on the original weights (see tests.unit.test_convert_bert.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import ollama
import pytest

from tests.servers import ServerProcess
from tests.unit.test_convert_bert import REFERENCE_FIRST_8, REFERENCE_POOLED_NORM, SENTENCE
from tools.test_models import ensure_model

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def minilm(server: ServerProcess) -> Iterator[str]:
    path = ensure_model("minilm")
    api = ollama.Client(host=server.url)
    api.create(model="minilm", files={path.name: api.create_blob(path)})
    yield "minilm"


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def embed(http: httpx.Client, model: str, text: str | list[str], **fields: object) -> httpx.Response:
    return http.post("/api/embed", json={"model": model, "input": text, **fields})


def test_matches_sentence_transformers(client: ollama.Client, minilm: str) -> None:
    reply = client.embed(model=minilm, input=SENTENCE)
    (vector,) = reply.embeddings
    assert len(vector) == 384
    assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-6)
    assert vector[:8] == pytest.approx(REFERENCE_FIRST_8, abs=1e-3)


def test_token_counts_as_in_ollamas_integration_tests(http: httpx.Client, minilm: str) -> None:
    one = embed(http, minilm, "why is the sky blue?").json()
    assert one["prompt_eval_count"] == 8  # [CLS] why is the sky blue ? [SEP]
    two = embed(http, minilm, ["why is the sky blue?", "why is the sky blue?"]).json()
    assert two["prompt_eval_count"] == 16
    # Inputs of one request share a batch, whose size decides llama.cpp's matrix kernels: equal to rounding.
    assert two["embeddings"][0] == pytest.approx(one["embeddings"][0], abs=1e-5)
    assert two["embeddings"][1] == pytest.approx(one["embeddings"][0], abs=1e-5)


def test_meaning_orders_similarity(client: ollama.Client, minilm: str) -> None:
    cat, kitten, dog = client.embed(model=minilm, input=["cat", "kitten", "car engine"]).embeddings
    assert cosine(cat, kitten) > cosine(cat, dog)


def test_legacy_endpoint_is_not_normalized(client: ollama.Client, minilm: str) -> None:
    vector = client.embeddings(model=minilm, prompt=SENTENCE).embedding
    assert len(vector) == 384
    assert math.hypot(*vector) == pytest.approx(REFERENCE_POOLED_NORM, rel=1e-2)


def test_truncation_to_num_ctx(http: httpx.Client, minilm: str) -> None:
    # A context of 3 is raised to Ollama's minimum of 4: "why is the sky blue?" keeps [CLS] why is [SEP].
    truncated = embed(http, minilm, "why is the sky blue?", options={"num_ctx": 3}).json()
    assert truncated["prompt_eval_count"] == 4
    why = embed(http, minilm, "why is").json()
    assert cosine(truncated["embeddings"][0], why["embeddings"][0]) > 0.999

    refused = embed(http, minilm, "why is the sky blue?", truncate=False, options={"num_ctx": 3})
    assert refused.status_code == 400
    assert "input length exceeds the context length" in refused.json()["error"]


def test_long_inputs_fit_the_default_batch(http: httpx.Client, minilm: str) -> None:
    reply = embed(http, minilm, "word " * 400)
    assert reply.status_code == 200
    assert len(reply.json()["embeddings"][0]) == 384


@pytest.mark.parametrize(
    ("path", "body", "verb"), [("/api/generate", "prompt", "generate"), ("/api/chat", None, "chat")]
)
def test_cannot_generate_or_chat(http: httpx.Client, minilm: str, path: str, body: str | None, verb: str) -> None:
    payload = (
        {"model": minilm, "prompt": "hi"}
        if body
        else {"model": minilm, "messages": [{"role": "user", "content": "hi"}]}
    )
    reply = http.post(path, json=payload)
    assert reply.status_code == 400
    assert reply.json() == {"error": f'"{minilm}" does not support {verb}'}
