"""LoRA adapters, without a model loaded: the metadata check, the runner's arguments, the reload rule, the
memory estimate and a runner's refusal reaching the caller as a 400. tests/integration/test_adapters.py
applies real adapters."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf as gguf_package
import numpy as np
import pytest

from pollama.config import Settings
from pollama.errors import InvalidRequest
from pollama.model.adapter import adapter_mismatch
from pollama.runner.__main__ import parse_args
from pollama.runtime.memory import runner_estimate
from pollama.runtime.options import resolve
from pollama.runtime.process import RunnerConfig, RunnerProcess
from pollama.runtime.scheduler import _compatible
from pollama.store.gguf import GGUFFile, read_gguf
from pollama.store.models import StoredModel
from tests.ggufs import write_gguf
from tests.unit.stored_models import bare_model
from tools.lora import build_lora, float_model, merge_lora

LORA = {"general.type": "adapter", "adapter.type": "lora", "adapter.lora.alpha": 16.0}


def gguf(arch: str = "llama", **kv: Any) -> GGUFFile:
    return GGUFFile(version=3, kv={"general.architecture": arch, **kv})


# --- the metadata check ---------------------------------------------------------------------------


def test_a_lora_of_the_models_architecture_fits() -> None:
    assert adapter_mismatch(gguf(), gguf(**LORA)) is None


@pytest.mark.parametrize(
    ("adapter", "problem"),
    [
        (gguf("qwen2", **LORA), "x does not match m: the adapter is for 'qwen2' models, m is a 'llama' model"),
        (gguf(**{**LORA, "general.type": "model"}), "x is not an adapter: its general.type is 'model', not 'adapter'"),
        (gguf(**{**LORA, "general.type": ""}), "x is not an adapter: it has no general.type, not 'adapter'"),
        (gguf(**{**LORA, "adapter.type": "control_vector"}), "x is not a LoRA adapter: its adapter.type is "
         "'control_vector', not 'lora'"),
        (gguf(**{k: v for k, v in LORA.items() if k != "adapter.type"}), "x is not a LoRA adapter: its "
         "adapter.type is None, not 'lora'"),
    ],
)  # fmt: skip
def test_what_llama_cpp_would_refuse_is_said(adapter: GGUFFile, problem: str) -> None:
    assert adapter_mismatch(gguf(), adapter, adapter_name="x", model_name="m") == problem


# --- from the stored model to the runner ----------------------------------------------------------


@pytest.fixture
def model(tmp_path: Path, make_gguf: Callable[..., Path]) -> Callable[..., StoredModel]:
    def make(*adapters: dict[str, Any], arch: str = "llama") -> StoredModel:
        paths = [make_gguf(f"adapter-{index}.gguf", arch=arch, kv=kv) for index, kv in enumerate(adapters)]
        return bare_model("tuned", make_gguf("model.gguf"), adapter_paths=paths)

    return make


def test_the_models_adapters_reach_the_runner_arguments(tmp_path: Path, model: Callable[..., StoredModel]) -> None:
    stored = model(LORA)
    config = resolve(Settings.from_env({"HOME": str(tmp_path)}), stored, None).config
    assert config.adapter_paths == tuple(stored.adapter_paths)
    arguments = config.arguments()
    assert arguments[arguments.index("--adapter") + 1] == str(stored.adapter_paths[0])
    assert parse_args(arguments).adapters == config.adapter_paths
    assert parse_args(RunnerConfig(Path("m.gguf"), 512).arguments()).adapters == ()


def test_a_stored_adapter_of_another_architecture_is_a_400_before_any_load(
    tmp_path: Path, model: Callable[..., StoredModel]
) -> None:
    stored = model(LORA, arch="gemma3")
    with pytest.raises(InvalidRequest) as refused:
        resolve(Settings.from_env({"HOME": str(tmp_path)}), stored, None)
    assert refused.value.message == (
        f"the adapter {stored.adapter_paths[0].name} does not match tuned:latest: the adapter is for 'gemma3' "
        "models, tuned:latest is a 'llama' model"
    )


def test_another_adapter_list_is_another_runner(tmp_path: Path) -> None:
    plain = RunnerConfig(tmp_path / "model", 512)
    tuned = dataclasses.replace(plain, adapter_paths=(tmp_path / "lora",))
    assert not _compatible(plain, tuned) and not _compatible(tuned, plain)
    assert _compatible(tuned, dataclasses.replace(plain, adapter_paths=(tmp_path / "lora",)))


def test_an_adapters_weights_are_counted(tmp_path: Path, make_gguf: Callable[..., Path]) -> None:
    weights = make_gguf("model.gguf", kv={"llama.attention.head_count": 1})
    adapter = tmp_path / "lora.gguf"
    adapter.write_bytes(bytes(3 << 20))
    model = read_gguf(weights)
    plain = runner_estimate(model, RunnerConfig(weights, 512))
    tuned = runner_estimate(model, RunnerConfig(weights, 512, adapter_paths=(adapter,)))
    assert tuned.compute - plain.compute == 3 << 20


# --- a runner that refuses the adapter ------------------------------------------------------------

REFUSING = r"""
import json, sys
error = "the adapter sha256-1 does not match the model sha256-2: tensor 'blk.0.attn_q.weight' has incorrect shape"
sys.stdout.write(json.dumps({"event": "load_error", "error": error, "status": 400}) + "\n")
sys.exit(1)
"""


def test_a_runner_refusing_an_adapter_is_a_400_with_its_words(monkeypatch: pytest.MonkeyPatch) -> None:
    spawn = asyncio.create_subprocess_exec

    async def refusing(program: str, *_arguments: str, **options: Any) -> asyncio.subprocess.Process:
        return await spawn(sys.executable, "-c", REFUSING, **options)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", refusing)

    async def run() -> None:
        process = RunnerProcess(RunnerConfig(Path("model.gguf"), 512, adapter_paths=(Path("lora.gguf"),)))
        with pytest.raises(InvalidRequest) as refused:
            await process.start(timeout=30)
        assert refused.value.message == (
            "the adapter sha256-1 does not match the model sha256-2: tensor 'blk.0.attn_q.weight' has incorrect shape"
        )
        assert not process.alive

    asyncio.run(run())


# --- the synthetic adapters the integration tests use (tools/lora.py) ------------------------------


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    weights = {
        "token_embd.weight": rng.standard_normal((8, 16), dtype=np.float32),
        "blk.0.attn_q.weight": rng.standard_normal((16, 16), dtype=np.float32),  # numpy (n_out, n_in)
        "blk.0.attn_v.weight": rng.standard_normal((4, 16), dtype=np.float32),
        "blk.1.attn_q.weight": rng.standard_normal((16, 16), dtype=np.float32),
        "blk.1.attn_v.weight": rng.standard_normal((4, 16), dtype=np.float32),
    }
    return write_gguf(tmp_path / "tiny.gguf", tensors=weights)


def tensors(path: Path) -> dict[str, np.ndarray]:
    return {t.name: np.array(t.data) for t in gguf_package.GGUFReader(path).tensors}


def test_a_built_lora_is_laid_out_as_llama_cpp_reads_it(tmp_path: Path, tiny_model: Path) -> None:
    lora = build_lora(tiny_model, tmp_path / "lora.gguf", rank=2)
    reader = gguf_package.GGUFReader(lora)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["general.architecture"].contents() == "llama"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 16.0
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}  # ggml's ne: inputs first
    assert shapes["blk.0.attn_v.weight.lora_a"] == [16, 2] and shapes["blk.0.attn_v.weight.lora_b"] == [2, 4]
    assert len(shapes) == 8
    assert lora.read_bytes() == build_lora(tiny_model, tmp_path / "again.gguf", rank=2).read_bytes()
    transposed = build_lora(tiny_model, tmp_path / "transposed.gguf", rank=2, transposed_a=True)
    assert [int(n) for n in gguf_package.GGUFReader(transposed).tensors[0].shape] == [2, 16]


def test_the_merged_model_adds_the_scaled_update(tmp_path: Path, tiny_model: Path) -> None:
    lora = build_lora(tiny_model, tmp_path / "lora.gguf", rank=2, alpha=4.0, targets=("attn_v",))
    base, parts, merged = tensors(tiny_model), tensors(lora), tensors(merge_lora(tiny_model, lora, tmp_path / "m.gguf"))
    update = 2.0 * parts["blk.1.attn_v.weight.lora_b"] @ parts["blk.1.attn_v.weight.lora_a"]  # alpha / rank = 2
    assert np.allclose(merged["blk.1.attn_v.weight"], base["blk.1.attn_v.weight"] + update, atol=1e-6)
    assert not np.allclose(merged["blk.1.attn_v.weight"], base["blk.1.attn_v.weight"])
    assert np.array_equal(merged["blk.1.attn_q.weight"], base["blk.1.attn_q.weight"])


def test_a_float_model_can_be_cut_short(tmp_path: Path, tiny_model: Path) -> None:
    cut = float_model(tiny_model, tmp_path / "cut.gguf", blocks=1)
    assert sorted(tensors(cut)) == ["blk.0.attn_q.weight", "blk.0.attn_v.weight", "token_embd.weight"]
    assert gguf_package.GGUFReader(cut).fields["llama.block_count"].contents() == 1
