"""LoRA adapters (Modelfile ``ADAPTER``, ``/api/create`` ``adapters``) through a real server: stored, shown,
applied by the runner, refused when they do not fit the model.

The adapters are synthetic (``tools.lora``): seeded random low-rank updates of each block's ``attn_q`` and
``attn_v``, laid out as llama.cpp's converter writes a trained adapter. Their effect is checked against the
merged model (the same updates added to the weights). On SmolLM2 as shipped (Q4_1) the CPU quantizes the
activations each quantized matrix multiplies, so the adapter's float update and a merged float matrix round
differently at every later layer, and greedy answers part within a few tokens (measured: after 1 to 24
tokens, the first token's log-probabilities 0.1 to 0.5 apart). The comparison is therefore made on a float32
SmolLM2 cut to four blocks, where the two agree to the last bits.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import ollama
import pytest

from tests.integration.conftest import upload
from tests.servers import ServerProcess
from tools.lora import build_lora, float_model, merge_lora, peft_adapter

GREEDY = {"temperature": 0, "seed": 1, "num_predict": 12, "num_ctx": 512}
STORY = "Write a short story about a cat."
PROMPTS = (STORY, "What is the capital of France?")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("adapters")
    floated = float_model(smollm2_path, folder / "float4.gguf", blocks=4)
    float_lora = build_lora(floated, folder / "float4-lora.gguf")
    # Q and K too: their B rows are the ones a conversion from PEFT's layout must reorder.
    qkv_lora = build_lora(floated, folder / "float4-qkv-lora.gguf", targets=("attn_q", "attn_k", "attn_v"))
    return {
        "lora": build_lora(smollm2_path, folder / "lora.gguf"),
        "transposed": build_lora(smollm2_path, folder / "transposed.gguf", transposed_a=True),
        # As far as create can tell (the header), one made for Qwen2.5; building it from Qwen2.5 itself
        # (tools.lora can) would take seconds more, for the gguf package's reader to open that model.
        "qwen": build_lora(smollm2_path, folder / "qwen-lora.gguf", architecture="qwen2"),
        "float": floated,
        "float-lora": float_lora,
        "float-merged": merge_lora(floated, float_lora, folder / "float4-merged.gguf"),
        "qkv-peft": peft_adapter(qkv_lora, floated, folder / "qkv-peft"),
        "qkv-merged": merge_lora(floated, qkv_lora, folder / "float4-qkv-merged.gguf"),
    }


@pytest.fixture(scope="module")
def client(server: ServerProcess, smollm2_path: Path) -> ollama.Client:
    client = ollama.Client(host=server.url)
    assert client.create("smol", files={"smol.gguf": upload(client, smollm2_path)}).status == "success"
    return client


def answer(client: ollama.Client, model: str, prompt: str = STORY) -> str:
    return client.generate(model, prompt, options=GREEDY).response


def test_a_modelfile_adapter_is_stored_shown_and_changes_the_answer(
    server: ServerProcess, client: ollama.Client, files: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "lora.gguf").symlink_to(files["lora"])
    (tmp_path / "Modelfile").write_text("FROM smol\nADAPTER ./lora.gguf\n")
    created = server.cli("create", "smol-lora", "-f", "Modelfile", cwd=tmp_path)
    assert created.returncode == 0, created.stderr

    adapter_line = next(line for line in client.show("smol-lora").modelfile.splitlines() if line.startswith("ADAPTER"))
    assert Path(adapter_line.split(" ", 1)[1]).read_bytes() == files["lora"].read_bytes()

    plain = answer(client, "smol")
    assert answer(client, "smol-lora") != plain
    # One runner per weights file: the adapter's was loaded in place of the plain one, and the plain one back.
    assert answer(client, "smol") == plain


def test_the_adapter_answers_as_the_merged_weights_do(client: ollama.Client, files: dict[str, Path]) -> None:
    float_digest = upload(client, files["float"])
    assert client.create("float4", files={"float4.gguf": float_digest}).status == "success"
    adapter = {"lora.gguf": upload(client, files["float-lora"])}
    assert client.create("float4-lora", from_="float4", adapters=adapter).status == "success"
    merged = {"merged.gguf": upload(client, files["float-merged"])}
    assert client.create("float4-merged", files=merged).status == "success"

    adapted = [answer(client, "float4-lora", prompt) for prompt in PROMPTS]
    assert adapted == [answer(client, "float4-merged", prompt) for prompt in PROMPTS]
    plain = [answer(client, "float4", prompt) for prompt in PROMPTS]
    assert all(with_adapter != without for with_adapter, without in zip(adapted, plain, strict=True))


def test_a_peft_adapter_folder_is_converted_on_create_and_answers_as_the_merged_weights_do(
    server: ServerProcess, client: ollama.Client, files: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "float4.gguf").symlink_to(files["float"])
    (tmp_path / "Modelfile").write_text(f"FROM ./float4.gguf\nADAPTER {files['qkv-peft']}\n")
    created = server.cli("create", "float4-peft", "-f", "Modelfile", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert "converting adapter" in created.stdout + created.stderr
    assert any(line.startswith("ADAPTER ") for line in client.show("float4-peft").modelfile.splitlines())
    merged = {"merged.gguf": upload(client, files["qkv-merged"])}
    assert client.create("float4-qkv-merged", files=merged).status == "success"
    for prompt in PROMPTS:
        assert answer(client, "float4-peft", prompt) == answer(client, "float4-qkv-merged", prompt)


def test_a_peft_adapter_with_ranks_per_module_is_a_clear_error(
    client: ollama.Client, files: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "peft"
    folder.mkdir()
    config = (files["qkv-peft"] / "adapter_config.json").read_text()
    (folder / "adapter_config.json").write_text(config.replace('"r":', '"rank_pattern": {"q_proj": 4}, "r":'))
    (folder / "adapter_model.safetensors").symlink_to(files["qkv-peft"] / "adapter_model.safetensors")
    adapters = {name: upload(client, folder / name) for name in ("adapter_config.json", "adapter_model.safetensors")}
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("smol-patterned", from_="smol", adapters=adapters)
    assert "rank_pattern" in refused.value.error
    with pytest.raises(ollama.ResponseError):
        client.show("smol-patterned")


def test_an_adapter_for_another_architecture_is_refused_at_create(
    client: ollama.Client, files: dict[str, Path]
) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("smol-qwen-lora", from_="smol", adapters={"qwen-lora.gguf": upload(client, files["qwen"])})
    assert refused.value.status_code == 400
    assert refused.value.error == (
        "the adapter qwen-lora.gguf does not match the model smol:latest: the adapter is for 'qwen2' models, "
        "the model smol:latest is a 'llama' model"
    )
    with pytest.raises(ollama.ResponseError):
        client.show("smol-qwen-lora")  # nothing was written


def test_a_model_given_as_an_adapter_is_refused_at_create(
    client: ollama.Client, smollm2_path: Path, files: dict[str, Path]
) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.create("smol-smol", from_="smol", adapters={"smol.gguf": upload(client, smollm2_path)})
    assert refused.value.status_code == 400
    assert refused.value.error == "the adapter smol.gguf is not an adapter: its general.type is 'model', not 'adapter'"


def test_an_adapter_whose_shapes_do_not_fit_fails_at_load_and_the_server_goes_on(
    server: ServerProcess, client: ollama.Client, files: dict[str, Path]
) -> None:
    adapter = {"transposed.gguf": upload(client, files["transposed"])}
    assert client.create("smol-transposed", from_="smol", adapters=adapter).status == "success"
    response = httpx.post(
        server.url + "/api/generate",
        json={"model": "smol-transposed", "prompt": STORY, "stream": False, "options": GREEDY},
        timeout=120,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith(f"the adapter {adapter['transposed.gguf'].replace(':', '-')} does not match the model")
    assert "has incorrect shape" in error, error
    assert answer(client, "smol")  # the server still serves
    assert "Traceback" not in server.log_path.read_text()
