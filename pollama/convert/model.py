"""A Hugging Face checkpoint folder (config.json, tokenizer, safetensors) written out as one GGUF file.

The tensors are planned from the safetensors headers first (names, shapes, output types), so the GGUF's
header is written before any weight is read; then each tensor is read, fixed up and written in turn. Memory
holds one tensor at a time (one layer's experts, for mixture-of-experts models, which GGUF stores as one
tensor), so a checkpoint larger than RAM converts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, PoolingType, get_tensor_name_map
from gguf.utility import size_label

from pollama.convert.architectures import Architecture, Config, ConfigError, architecture_for
from pollama.convert.checkpoint import FLOAT_DTYPES, Checkpoint, TensorRef, read_json_object
from pollama.convert.vocab import add_vocab

__all__ = ["OUTTYPES", "Converted", "convert_model", "read_config"]

OUTTYPES = {
    "f16": (LlamaFileType.MOSTLY_F16, GGMLQuantizationType.F16),
    "bf16": (LlamaFileType.MOSTLY_BF16, GGMLQuantizationType.BF16),
    "f32": (LlamaFileType.ALL_F32, GGMLQuantizationType.F32),
}
# Kept F32 whatever the output type, as llama.cpp's converter does (its quantizer leaves them alone too).
_F32_TENSORS = re.compile(r"(^|\.)(ffn_gate_inp|position_embd|token_types)\.weight$")
_EXPERT = re.compile(r"^model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Converted:
    architecture: str
    tensors: int
    source_bytes: int


@dataclass(frozen=True)
class _Tensor:
    name: str  # in the GGUF
    source_name: str  # in the checkpoint (what fix-ups match on)
    sources: tuple[TensorRef, ...]  # several when per-expert tensors are stacked into one
    shape: tuple[int, ...]  # numpy order
    qtype: GGMLQuantizationType


def read_config(folder: Path) -> Config:
    return read_json_object(folder / "config.json", missing="the checkpoint has no config.json")


def convert_model(
    folder: Path, target: Path, *, outtype: str = "f16", name: str | None = None, progress: Progress | None = None
) -> Converted:
    """Write ``target``, the GGUF of the checkpoint in ``folder``; ValueErrors say what is wrong with it."""
    config = read_config(folder)
    architecture = architecture_for(config)
    file_type, matrix_type = OUTTYPES[outtype]
    checkpoint = Checkpoint(folder)

    writer = GGUFWriter(target, architecture.name)
    vocabulary_size = add_vocab(writer, folder, config)
    _add_tokenizer_quirks(writer, architecture, folder, config)
    plan = _plan(checkpoint, architecture, config, matrix_type, vocabulary_size)
    for tensor in plan:
        nbytes = int(np.prod(tensor.shape, dtype=np.int64)) * (4 if tensor.qtype == GGMLQuantizationType.F32 else 2)
        writer.add_tensor_info(tensor.name, tensor.shape, _numpy_type(tensor.qtype), nbytes, raw_dtype=tensor.qtype)

    writer.add_type("model")
    writer.add_name(name or str(config.get("_name_or_path") or folder.name).rsplit("/", 1)[-1])
    writer.add_size_label(size_label(*writer.get_total_parameter_count()))
    if card_license := _card_license(folder / "README.md"):
        writer.add_license(card_license)
    architecture.write_hparams(writer, config)
    if (pooling := _pooling_type(folder)) is not None:
        writer.add_pooling_type(pooling)
    writer.add_file_type(file_type)
    writer.add_quantization_version(2)  # GGML_QNT_VERSION

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for done, tensor in enumerate(plan):
        writer.write_tensor_data(_data(tensor, architecture, config))
        if progress is not None:
            progress(done + 1, len(plan))
    writer.close()
    return Converted(architecture.name, len(plan), checkpoint.nbytes)


def _plan(
    checkpoint: Checkpoint,
    architecture: Architecture,
    config: Config,
    matrix_type: GGMLQuantizationType,
    vocabulary_size: int,
) -> list[_Tensor]:
    blocks = int(config.get("num_hidden_layers") or 0)
    names = get_tensor_name_map(architecture.arch, blocks)
    plan: list[_Tensor] = []
    experts: dict[tuple[int, str], list[TensorRef]] = {}
    for ref in checkpoint:
        source_name = _normalised(ref.name, architecture)
        if source_name.startswith(architecture.skipped):
            continue
        if ref.dtype not in FLOAT_DTYPES:
            raise ConfigError(f"tensor {ref.name} is {ref.dtype}; only F32, F16 and BF16 weights can be imported")
        sources: tuple[TensorRef, ...] = (ref,)
        shape = ref.shape
        if architecture.experts and (match := _EXPERT.match(source_name)):
            group = experts.setdefault((int(match[1]), match[3]), [])
            group.append(ref)
            if len(group) < int(config["num_local_experts"]):
                continue
            sources = tuple(sorted(group, key=_expert_number))
            shape = (len(sources), *ref.shape)
            source_name = f"layers.{match[1]}.feed_forward.experts.{match[3]}.weight"
        gguf_name = names.get_name(source_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ConfigError(f"cannot convert tensor {ref.name}: {architecture.name} has no such tensor")
        if architecture.trim_embeddings and gguf_name == "token_embd.weight":
            shape = (min(shape[0], vocabulary_size), *shape[1:])
        plan.append(_Tensor(gguf_name, source_name, sources, shape, _output_type(gguf_name, shape, matrix_type)))
    if incomplete := [key for key, group in experts.items() if len(group) < int(config["num_local_experts"])]:
        raise ConfigError(f"the checkpoint lacks experts of layer {incomplete[0][0]}")
    return plan


def _expert_number(ref: TensorRef) -> int:
    match = _EXPERT.match(ref.name)
    assert match is not None
    return int(match[2])


def _normalised(name: str, architecture: Architecture) -> str:
    """A checkpoint's tensor name as the name map knows it (older BERT checkpoints say gamma/beta)."""
    name = name.removeprefix(architecture.name_prefix_dropped) if architecture.name_prefix_dropped else name
    return re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))


def _output_type(name: str, shape: tuple[int, ...], matrix_type: GGMLQuantizationType) -> GGMLQuantizationType:
    """llama.cpp's converter's rule: vectors, norms, biases and a few named tensors stay F32."""
    if len(shape) <= 1 or name.endswith("_norm.weight") or _F32_TENSORS.search(name) or not name.endswith(".weight"):
        return GGMLQuantizationType.F32
    return matrix_type


def _numpy_type(qtype: GGMLQuantizationType) -> np.dtype[Any]:
    # BF16 has no numpy type: its values travel as the uint16 high halves of F32s.
    return np.dtype({GGMLQuantizationType.F32: np.float32, GGMLQuantizationType.F16: np.float16}.get(qtype, np.uint16))


def _data(tensor: _Tensor, architecture: Architecture, config: Config) -> np.ndarray:
    parts = []
    for ref in tensor.sources:
        data = ref.load()
        if architecture.fix_tensor is not None:
            data = architecture.fix_tensor(tensor.source_name, data, config)
        parts.append(data)
    data = parts[0] if len(parts) == 1 else np.stack(parts)
    if data.shape != tensor.shape:
        data = data[: tensor.shape[0]]
    if tensor.qtype == GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if tensor.qtype == GGMLQuantizationType.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return _bfloat16(np.ascontiguousarray(data, dtype=np.float32))


def _bfloat16(data: np.ndarray) -> np.ndarray:
    """F32 to BF16 bits, rounding to nearest even as torch does (NaNs stay NaNs)."""
    bits = data.view(np.uint32)
    rounded = ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    return np.where(np.isnan(data), np.uint16(0x7FC0), rounded)


def _add_tokenizer_quirks(writer: GGUFWriter, architecture: Architecture, folder: Path, config: Config) -> None:
    """Per-architecture tokenizer settings that llama.cpp's converter adds after the vocabulary."""
    tokenizer_config_path = folder / "tokenizer_config.json"
    tokenizer_config = read_json_object(tokenizer_config_path, missing="") if tokenizer_config_path.is_file() else {}
    if architecture.name == "llama":
        if (add_prefix_space := tokenizer_config.get("add_prefix_space")) is not None:
            writer.add_add_space_prefix(add_prefix_space)
        if config.get("vocab_size") == 49152:  # SmolLM / Granite-small vocabularies never want a BOS
            writer.add_add_bos_token(False)
    elif architecture.name in ("gemma2", "gemma3") and (folder / "tokenizer.model").is_file():
        writer.add_add_space_prefix(False)


def _card_license(readme: Path) -> str | None:
    """The ``license:`` of the model card's YAML front matter, which llama.cpp's converter copies."""
    if not readme.is_file():
        return None
    front = readme.read_text(encoding="utf-8", errors="replace").split("---", 2)
    if len(front) < 3 or front[0].strip():
        return None
    match = re.search(r"^license:\s*(\S+)\s*$", front[1], re.MULTILINE)
    return match[1] if match else None


def _pooling_type(folder: Path) -> PoolingType | None:
    """The sentence-transformers pooling (modules.json -> its Pooling module's config), if the model has one."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    paths = [module["path"] for module in modules if str(module.get("type", "")).endswith("Pooling")]
    if not paths or not (folder / paths[0] / "config.json").is_file():
        return None
    pooling = json.loads((folder / paths[0] / "config.json").read_text(encoding="utf-8"))
    if pooling.get("pooling_mode_mean_tokens"):
        return PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return PoolingType.CLS
    if pooling.get("pooling_mode_lasttoken"):
        return PoolingType.LAST
    modes = {"mean": PoolingType.MEAN, "cls": PoolingType.CLS, "lasttoken": PoolingType.LAST}
    if (mode := pooling.get("pooling_mode")) in modes:
        return modes[mode]
    raise ConfigError(f"unsupported sentence-transformers pooling {pooling}")
