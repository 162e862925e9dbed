"""Quantizing on create with llama.cpp's own quantizer: F16 all-MiniLM to Q8_0 and Q4_K_M, and the refusals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.integration.conftest import upload
from tests.servers import ServerProcess
from tools.test_models import ensure_model

SENTENCES = ["The cat sits on the mat.", "Quantum computers use qubits.", "I like green apples."]


@pytest.fixture(scope="module")
def minilm() -> Path:
    return ensure_model("minilm")


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_an_f16_model_quantizes_with_progress_and_embeds_as_before(
    client: ollama.Client, server: ServerProcess, minilm: Path
) -> None:
    digest = upload(client, minilm)
    assert client.create("minilm-f16", files={"m.gguf": digest}).status == "success"
    events: list[Any] = list(client.create("minilm-q8", files={"m.gguf": digest}, quantize="q8_0", stream=True))
    statuses = [event.status for event in events]
    assert "quantizing F16 model to Q8_0" in statuses and statuses[-1] == "success"
    progress = [event for event in events if event.total]
    assert progress and progress[-1].completed == progress[-1].total and progress[-1].digest == "0000000000000000000"
    quantized = client.show("minilm-q8")
    assert quantized.details.quantization_level == "Q8_0"
    tags = {model.model: model.size for model in client.list().models}
    assert tags["minilm-q8:latest"] < 0.6 * tags["minilm-f16:latest"]
    original = client.embed("minilm-f16", SENTENCES).embeddings
    eight_bit = client.embed("minilm-q8", SENTENCES).embeddings
    assert min(cosine(a, b) for a, b in zip(original, eight_bit, strict=True)) > 0.999

    assert client.create("minilm-q4", files={"m.gguf": digest}, quantize="Q4_K").status == "success"
    assert client.show("minilm-q4").details.quantization_level == "Q4_K_M"
    four_bit = client.embed("minilm-q4", SENTENCES).embeddings
    assert min(cosine(a, b) for a, b in zip(original, four_bit, strict=True)) > 0.97


def test_quantizing_a_quantized_model_is_ollamas_error(client: ollama.Client, smollm2_path: Path) -> None:
    digest = upload(client, smollm2_path)  # Q4_1
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("smol-requantized", files={"m.gguf": digest}, quantize="q8_0")
    assert refused.value.error == "quantization is only supported for F16, BF16 and F32 models"
    with pytest.raises(ollama.ResponseError):
        client.show("smol-requantized")


def test_an_unknown_type_is_a_400_before_anything(http: httpx.Client, client: ollama.Client, minilm: Path) -> None:
    digest = upload(client, minilm)
    reply = http.post("/api/create", json={"model": "x", "files": {"m.gguf": digest}, "quantize": "q9_9"})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("unsupported quantization type q9_9 - supported types are")


def test_the_cli_quantizes(server: ServerProcess, minilm: Path, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {minilm}\n")
    created = server.cli("create", "minilm-cli-q8", "-f", str(modelfile), "--quantize", "q8_0")
    assert created.returncode == 0, created.stderr
    shown = server.cli("show", "minilm-cli-q8")
    assert "Q8_0" in shown.stdout
