"""Build a synthetic LoRA adapter (a llama.cpp adapter GGUF) for a model, and that model with it merged.

No LoRA adapter small enough for the tests can be had from a package registry, so the tests make one:
seeded random low-rank updates of some of the model's matrices, laid out as llama.cpp's
``convert_lora_to_gguf.py`` writes a trained one, so that ``llama_adapter_lora_init`` loads it as it
would a real adapter. The merged model is the reference the adapter's effect is checked against: the
base weights dequantized plus ``scale · B · A`` (``scale = alpha / rank``, what llama.cpp applies at
scale 1.0) on the targeted matrices, every other tensor copied as it is. It answers exactly as the base
with the adapter only where the base computes those matrices in float32 (``float_model``).

In GGUF (and ggml) terms a weight ``W`` of ``ne = [n_in, n_out]`` (numpy shape ``(n_out, n_in)``)
gets ``W.lora_a`` of ``ne = [n_in, rank]`` and ``W.lora_b`` of ``ne = [rank, n_out]``: numpy shapes
``(rank, n_in)`` and ``(n_out, rank)``, PEFT's ``lora_A`` and ``lora_B``, so that the update is
``B @ A`` and llama.cpp computes ``W x + scale · B (A x)`` (``llm_graph_context::build_lora_mm``).

``peft_adapter`` writes such an adapter out again as the folder PEFT saves a trained one to
(adapter_config.json, adapter_model.safetensors with Hugging Face names and row order), the input of
``create``'s adapter conversion.

    python -m tools.lora BASE.gguf LORA.gguf [MERGED.gguf]
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import gguf
import numpy as np

__all__ = ["ALPHA", "RANK", "SEED", "STRENGTH", "TARGETS", "build_lora", "float_model", "merge_lora", "peft_adapter"]

TARGETS = ("attn_q", "attn_v")  # the matrices of every block that get an update
RANK = 8
ALPHA = 16.0  # scale = alpha / rank = 2
SEED = 1234
STRENGTH = 0.1  # the update's standard deviation, as a share of the weight's own: a changed answer, still words
_SAMPLE_ROWS = 64  # the rows of a weight read to size its update


def _reader(path: Path) -> gguf.GGUFReader:
    """An open reader of ``path``, kept while the file is unchanged: opening one parses every key (seconds)."""
    stat = path.stat()
    return _open_reader(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _open_reader(path: Path, _mtime_ns: int, _size: int) -> gguf.GGUFReader:
    return gguf.GGUFReader(path)


def _architecture(reader: gguf.GGUFReader) -> str:
    return str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents())


def _targets(reader: gguf.GGUFReader, targets: Iterable[str]) -> list[gguf.ReaderTensor]:
    wanted = tuple(f".{name}.weight" for name in targets)
    found = [t for t in reader.tensors if t.name.startswith("blk.") and t.name.endswith(wanted)]
    if not found:
        raise ValueError(f"the model has none of the matrices {', '.join(targets)}")
    return found


def _weight(tensor: gguf.ReaderTensor, rows: int | None = None) -> np.ndarray:
    """The tensor (or its first ``rows`` rows) as float32, numpy shape ``(n_out, n_in)``."""
    data = tensor.data if rows is None else tensor.data[:rows]
    return np.asarray(gguf.quants.dequantize(data, tensor.tensor_type), dtype=np.float32)


def build_lora(
    base: Path,
    target: Path,
    *,
    rank: int = RANK,
    alpha: float = ALPHA,
    seed: int = SEED,
    strength: float = STRENGTH,
    targets: Iterable[str] = TARGETS,
    transposed_a: bool = False,
    architecture: str | None = None,
) -> Path:
    """Write a LoRA adapter for the model ``base`` to ``target``; the same arguments write the same file.

    ``transposed_a`` writes each ``lora_a`` the wrong way round (``ne = [rank, n_in]``, as adapters of
    llama.cpp's old finetune example were): the metadata still fits the model, the shapes do not, and
    llama.cpp refuses the adapter when loading it. ``architecture`` writes another architecture than the
    model's into the metadata: an adapter made for another kind of model, as far as its header tells.
    """
    reader = _reader(base)
    architecture = architecture or _architecture(reader)
    rng = np.random.default_rng(seed)
    scale = alpha / rank
    writer = gguf.GGUFWriter(target, architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(f"pollama test LoRA (rank {rank}, seed {seed})")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for tensor in _targets(reader, targets):
        n_in, n_out = (int(n) for n in tensor.shape[:2])
        sample = _weight(tensor, rows=_SAMPLE_ROWS)  # enough to size the update, without dequantizing it all
        a = rng.standard_normal((rank, n_in), dtype=np.float32) / np.float32(np.sqrt(n_in))
        b = rng.standard_normal((n_out, rank), dtype=np.float32)
        # std(B @ A) is about sqrt(rank) · std(A) · std(B): scaled so that the update is `strength` of W.
        b *= np.float32(strength * float(sample.std()) / (scale * np.sqrt(rank) * float(a.std()) * float(b.std())))
        writer.add_tensor(f"{tensor.name}.lora_a", np.ascontiguousarray(a.T if transposed_a else a))
        writer.add_tensor(f"{tensor.name}.lora_b", np.ascontiguousarray(b))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


def merge_lora(base: Path, lora: Path, target: Path, *, scale: float = 1.0) -> Path:
    """Write ``base`` with the adapter ``lora`` merged into its weights (as float32) to ``target``.

    ``scale`` is the adapter's (llama.cpp's ``adapter_scale``; Ollama applies 1.0).
    """
    adapter = _reader(lora)
    alpha = float(adapter.fields[gguf.Keys.Adapter.LORA_ALPHA].contents())
    parts = {t.name: np.asarray(t.data, dtype=np.float32) for t in adapter.tensors}

    def merged(tensor: gguf.ReaderTensor) -> np.ndarray | None:
        a, b = parts.get(f"{tensor.name}.lora_a"), parts.get(f"{tensor.name}.lora_b")
        if a is None or b is None:
            return None
        factor = np.float32(scale * (alpha / b.shape[1] if alpha else 1.0))  # llama.cpp's rank: lora_b's ne[0]
        return _weight(tensor) + factor * (b @ a)

    reader = _reader(base)
    if _architecture(reader) != _architecture(adapter):
        raise ValueError(f"the adapter is for {_architecture(adapter)} models, the model is {_architecture(reader)}")
    _rewrite(reader, target, merged)
    return target


# GGUF block tensor -> the Hugging Face module PEFT names it by (llama-style models).
_PEFT_MODULES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def peft_adapter(lora: Path, base: Path, folder: Path) -> Path:
    """Write the GGUF adapter ``lora`` (for ``base``) as PEFT's adapter folder: the inverse of its conversion.

    B's rows of the Q and K projections go back to Hugging Face's rotary order (llama.cpp's converter
    permutes them as it permutes the weights); A and the other matrices are as they are.
    """
    from safetensors.numpy import save_file

    from tools.export_hf import unpermute_rotary

    adapter, model = _reader(lora), _reader(base)
    arch = _architecture(model)
    heads = int(model.fields[f"{arch}.attention.head_count"].contents())
    kv_heads = int(model.fields[f"{arch}.attention.head_count_kv"].contents())
    tensors: dict[str, np.ndarray] = {}
    modules: set[str] = set()
    rank = 0
    for tensor in adapter.tensors:
        _blk, block, kind, _weight_suffix, half = tensor.name.split(".")
        module = _PEFT_MODULES[kind]
        data = np.asarray(tensor.data, dtype=np.float32)
        if half == "lora_b" and kind in ("attn_q", "attn_k"):
            data = unpermute_rotary(data, heads if kind == "attn_q" else kv_heads)
        rank = data.shape[0] if half == "lora_a" else rank
        peft_half = "lora_A" if half == "lora_a" else "lora_B"
        tensors[f"base_model.model.model.layers.{block}.{module}.{peft_half}.weight"] = np.ascontiguousarray(data)
        modules.add(module.split(".")[1])
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": float(adapter.fields[gguf.Keys.Adapter.LORA_ALPHA].contents()),
        "target_modules": sorted(modules),
        "lora_dropout": 0.0,
        "bias": "none",
        "base_model_name_or_path": str(model.fields[gguf.Keys.General.NAME].contents()),
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return folder


def float_model(base: Path, target: Path, *, blocks: int | None = None) -> Path:
    """Write ``base`` with the matrices of its blocks as float32, and only its first ``blocks`` blocks if given.

    The base on which an adapter's answer equals the merged model's: on a quantized base the CPU
    quantizes the activations each quantized matrix multiplies, so an adapter's float32 update and the
    same update merged into float32 weights round differently at every later layer, and greedy answers
    part after a few tokens. In float32 they agree to the last bits; cutting the model short keeps the
    files small (its answers are still deterministic, if not sensible).
    """
    reader = _reader(base)
    count_key = f"{_architecture(reader)}.block_count"
    kept = int(reader.fields[count_key].contents()) if blocks is None else blocks

    def floated(tensor: gguf.ReaderTensor) -> np.ndarray | None:
        if not tensor.name.startswith("blk."):
            return None
        if int(tensor.name.split(".")[1]) >= kept:
            return _DROPPED
        return _weight(tensor)

    _rewrite(reader, target, floated, {count_key: kept})
    return target


_DROPPED = np.zeros(0, np.float32)


def _rewrite(
    reader: gguf.GGUFReader,
    target: Path,
    replace: Callable[[gguf.ReaderTensor], np.ndarray | None],
    values: dict[str, int] | None = None,
) -> None:
    """Copy a GGUF's metadata (with ``values`` changed) and tensors; ``replace`` gives a tensor's new data
    (None: copied as it is; ``_DROPPED``: left out)."""
    writer = gguf.GGUFWriter(target, _architecture(reader))
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # written by the writer itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        value = (values or {}).get(field.name, field.contents())
        writer.add_key_value(field.name, value, value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        data = replace(tensor)
        if data is None:
            writer.add_tensor(tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
        elif data is not _DROPPED:
            writer.add_tensor(tensor.name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    base, lora = Path(argv[0]), Path(argv[1])
    build_lora(base, lora)
    if len(argv) == 3:
        merge_lora(base, lora, Path(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
