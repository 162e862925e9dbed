"""A PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) as a GGUF LoRA, for a given base GGUF.

What llama.cpp's ``convert_lora_to_gguf.py`` writes: ``general.type`` adapter, ``adapter.type`` lora,
``adapter.lora.alpha``, and for each adapted weight ``W`` of the base the pair ``W.lora_a`` (rank × inputs)
and ``W.lora_b`` (outputs × rank), named as the base model's tensors are. The base model is the GGUF the
adapter will be applied to: its architecture picks the name map, and its head counts the row order of
Llama's Q/K outputs (the same rotary permutation the weights get, applied to B's rows).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter, get_tensor_name_map

from pollama.convert.architectures import ARCHITECTURES, Architecture, ConfigError
from pollama.convert.checkpoint import Checkpoint, TensorRef, read_json_object
from pollama.store.gguf import read_gguf

__all__ = ["convert_lora"]

_PEFT_PREFIX = "base_model.model."
_PAIR = re.compile(r"^(?P<base>.+)\.lora_(?P<half>[AB])\.weight$")
Progress = Callable[[int, int], None]


def convert_lora(folder: Path, base_model: Path, target: Path, *, progress: Progress | None = None) -> int:
    """Write ``target``, the GGUF of the PEFT adapter in ``folder`` for ``base_model``; the number of pairs."""
    adapter_config = _adapter_config(folder)
    base = read_gguf(base_model, max_array_length=0)
    architecture = _architecture_of(base.architecture)
    config = {
        "num_attention_heads": base.get("attention.head_count"),
        "num_key_value_heads": base.get("attention.head_count_kv") or base.get("attention.head_count"),
    }
    names = get_tensor_name_map(architecture.arch, int(base.get("block_count") or 0))
    pairs = _pairs(Checkpoint(folder))

    writer = GGUFWriter(target, base.architecture)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", _alpha(adapter_config))
    # (GGUF name, data, the base weight's name when the base's row fix-up applies: B's rows are W's rows)
    planned: list[tuple[str, TensorRef, str | None]] = []
    for base_name, (lora_a, lora_b) in sorted(pairs.items()):
        gguf_name = names.get_name(base_name, try_suffixes=(".weight",))
        if gguf_name is None:
            raise ConfigError(f"the adapter changes {base_name}, which {base.architecture} models do not have")
        planned += [(f"{gguf_name}.lora_a", lora_a, None), (f"{gguf_name}.lora_b", lora_b, base_name)]
    for name, ref, _ in planned:
        writer.add_tensor_info(name, ref.shape, np.dtype(np.float16), int(np.prod(ref.shape)) * 2)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for done, (_name, ref, fixed_as) in enumerate(planned):
        data = ref.load()
        if fixed_as is not None and architecture.fix_tensor is not None:
            data = architecture.fix_tensor(fixed_as, data, config)
        writer.write_tensor_data(np.ascontiguousarray(data, dtype=np.float16))
        if progress is not None:
            progress(done + 1, len(planned))
    writer.close()
    return len(pairs)


def _adapter_config(folder: Path) -> Mapping[str, Any]:
    config = read_json_object(folder / "adapter_config.json", missing="the adapter has no adapter_config.json")
    if config.get("peft_type", "LORA") != "LORA":
        raise ConfigError(f"unsupported adapter type {config.get('peft_type')}; only LoRA adapters can be imported")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ConfigError("adapters with a rank or alpha per module (rank_pattern, alpha_pattern) are not supported")
    if not isinstance(config.get("r"), int) or not isinstance(config.get("lora_alpha"), int | float):
        raise ConfigError("adapter_config.json lacks the LoRA rank (r) or lora_alpha")
    return config


def _alpha(config: Mapping[str, Any]) -> float:
    """The alpha llama.cpp needs for PEFT's scale: it scales by alpha / rank; rsLoRA by alpha / sqrt(rank)."""
    alpha, rank = float(config["lora_alpha"]), int(config["r"])
    return alpha * math.sqrt(rank) if config.get("use_rslora") else alpha


def _architecture_of(arch: str) -> Architecture:
    for architecture in ARCHITECTURES.values():
        if architecture.name == arch:
            return architecture
    raise ConfigError(f"adapters for {arch} models are not supported")


def _pairs(checkpoint: Checkpoint) -> dict[str, tuple[TensorRef, TensorRef]]:
    """Each adapted base weight's (A, B), keyed by the base weight's Hugging Face name."""
    halves: dict[str, dict[str, TensorRef]] = {}
    for ref in checkpoint:
        match = _PAIR.match(ref.name.removeprefix(_PEFT_PREFIX))
        if match is None:
            raise ConfigError(f"adapter tensor {ref.name} is not half of a LoRA pair (lora_A / lora_B)")
        halves.setdefault(f"{match['base']}.weight", {})[match["half"]] = ref
    pairs = {}
    for base_name, half in halves.items():
        if set(half) != {"A", "B"}:
            raise ConfigError(f"the adapter has only one half of the LoRA pair for {base_name}")
        lora_a, lora_b = half["A"], half["B"]
        if len(lora_a.shape) != 2 or len(lora_b.shape) != 2 or lora_a.shape[0] != lora_b.shape[1]:
            raise ConfigError(f"the LoRA pair for {base_name} has shapes {lora_a.shape} and {lora_b.shape}")
        pairs[base_name] = (lora_a, lora_b)
    if not pairs:
        raise ConfigError("the adapter has no LoRA tensors")
    return pairs
