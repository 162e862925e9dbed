"""Write a GGUF model back out as the Hugging Face checkpoint folder it was converted from.

The safetensors-to-GGUF importer (``pollama.convert``) has to be tested on real Hugging Face checkpoints, but
the only models this project can fetch offline are GGUFs. This tool inverts llama.cpp's converter
(``convert_hf_to_gguf.py`` with its ``conversion/`` package and ``gguf-py``) for the architectures the test
models use: it writes the folder that ``transformers`` would hold for the model (``config.json``,
``generation_config.json``, safetensors weights, the tokenizer files), such that llama.cpp's converter
turns it back into the same GGUF, bar quantization (weights come out dequantized) and metadata that HF
checkpoints do not carry (``general.name`` and the like).

Each transform the converter applies is undone, next to a note of where llama.cpp defines it:

- tensor names go back to Hugging Face's (``gguf-py/gguf/tensor_mapping.py``), shapes to PyTorch's order
  (ggml lists dimensions innermost first);
- Llama's Q/K rows are put back in Hugging Face's rotary order (``LlamaModel.permute``, ``conversion/llama.py``);
- Gemma 3's norm weights lose the 1 the converter adds (``Gemma3Model.norm_shift``, ``conversion/gemma.py``);
- the vocabulary becomes ``tokenizer.json`` (byte-level BPE, ``TextModel.get_vocab_base`` in
  ``conversion/base.py``) or ``tokenizer.model`` (SentencePiece, ``_create_vocab_sentencepiece``), with the
  special tokens in ``tokenizer_config.json`` where ``gguf.SpecialVocab`` reads them.

The safetensors files are written here, streaming: each header is computed from the shapes first, then the
tensors are dequantized (``gguf.quants.dequantize``) a block of rows at a time, so memory stays at a few tens
of MiB whatever the model. The key/values come from pollama's header reader (``pollama.store.gguf``):
``gguf.GGUFReader`` takes seconds to build a view per vocabulary string.

    python -m tools.export_hf MODEL.gguf OUT_DIR [--dtype bf16|f16|f32] [--max-shard-size BYTES] [--no-weights]
"""

from __future__ import annotations

import argparse
import json
import mmap
import struct
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, GGUFValueType, TokenType
from gguf.quants import dequantize

from pollama.store.gguf import read_gguf

__all__ = ["DTYPES", "export", "unpermute_rotary"]

JSON = dict[str, Any]
Float32Array = npt.NDArray[np.float32]

# --dtype -> (safetensors dtype name, bytes per element, config.json torch_dtype).
DTYPES: dict[str, tuple[str, int, str]] = {
    "bf16": ("BF16", 2, "bfloat16"),
    "f16": ("F16", 2, "float16"),
    "f32": ("F32", 4, "float32"),
}


# ---------------------------------------------------------------------------------------------------------------
# Architectures


@dataclass(frozen=True)
class _Arch:
    """What llama.cpp's converter did to one Hugging Face architecture, to be undone."""

    architecture: str  # config.json "architectures", for messages
    # GGUF per-block tensor -> Hugging Face per-layer module, in the model's module order (that of its
    # state_dict, which transformers shards in).
    layer_modules: Mapping[str, str]
    # conversion/llama.py: LlamaModel.undo_permute (True for llama); Qwen2Model and Gemma3Model keep the order.
    permutes_qk: bool
    # Added by the converter to every tensor whose Hugging Face name ends in "norm.weight".
    norm_shift: float
    config: Callable[[_Metadata, _Shapes, str], JSON]


# Tensors outside the blocks; the same names for every architecture here (tensor_mapping.py: TOKEN_EMBD,
# OUTPUT_NORM, OUTPUT).
_GLOBAL_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
# Order of the top-level tensors in a state_dict: embeddings, the layers, final norm, head.
_GLOBAL_ORDER = {"model.embed_tokens": 0, "model.norm": 2, "lm_head": 3}

_ATTENTION = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
}
_MLP = {"ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}

_LLAMA_LAYER = {
    **_ATTENTION,
    **_MLP,
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",  # FFN_NORM: llama-hf's norm before the MLP
}
# Gemma 3 norms around both sublayers; its "post_attention_layernorm" is ATTN_POST_NORM, not FFN_NORM (the
# GEMMA3 tensor list has no FFN_NORM, so tensor_mapping's FFN_PRE_NORM takes blk.N.ffn_norm).
_GEMMA3_LAYER = {
    **_ATTENTION,
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    **_MLP,
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}


class _Metadata:
    """The GGUF's key/values, as pollama's header reader gives them (float32 values as their shortest decimal,
    e.g. 1e-05 for 9.9999997e-06, which is what config.json holds)."""

    def __init__(self, kv: dict[str, Any]) -> None:
        self._kv = kv
        self.arch: str = str(self.require("general.architecture"))

    def get(self, key: str, default: Any = None) -> Any:
        return self._kv.get(key, default)

    def require(self, key: str) -> Any:
        if key not in self._kv:
            raise ValueError(f"the GGUF has no {key}")
        return self._kv[key]

    def hparam(self, name: str, default: Any = None) -> Any:
        """``{arch}.name``, e.g. ``hparam("attention.head_count")``."""
        return self.get(f"{self.arch}.{name}", default)

    def require_hparam(self, name: str) -> Any:
        return self.require(f"{self.arch}.{name}")


@dataclass(frozen=True)
class _Shapes:
    """What the tensors tell about the model (not everything is in the metadata)."""

    n_vocab: int  # rows of the embedding matrix
    has_output: bool  # an untied lm_head
    has_attn_bias: bool


def _common_config(meta: _Metadata, shapes: _Shapes, dtype: str) -> JSON:
    """The fields TextModel.set_gguf_parameters (conversion/base.py) turns into GGUF metadata, inverted."""
    n_head = int(meta.require_hparam("attention.head_count"))
    config: JSON = {
        "hidden_size": int(meta.require_hparam("embedding_length")),
        "intermediate_size": int(meta.require_hparam("feed_forward_length")),
        "num_hidden_layers": int(meta.require_hparam("block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(meta.hparam("attention.head_count_kv", n_head)),
        "max_position_embeddings": int(meta.require_hparam("context_length")),
        "rms_norm_eps": float(meta.require_hparam("attention.layer_norm_rms_epsilon")),
        "rope_scaling": _rope_scaling(meta),
        "vocab_size": shapes.n_vocab,
        "tie_word_embeddings": not shapes.has_output,
        "torch_dtype": DTYPES[dtype][2],
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
    }
    # The converter writes {arch}.attention.key_length only from a config.json "head_dim"; keep it present
    # exactly when the GGUF has it, so that converting back gives the same keys.
    if (head_dim := meta.hparam("attention.key_length")) is not None:
        config["head_dim"] = int(head_dim)
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("padding", "pad_token_id")):
        if (token_id := meta.get(f"tokenizer.ggml.{role}_token_id")) is not None:
            config[key] = int(token_id)
    return config


def _rope_scaling(meta: _Metadata) -> JSON | None:
    """config.json's rope_scaling: linear is the one kind these architectures' GGUFs carry (Gemma 3 4B+)."""
    kind = meta.hparam("rope.scaling.type", "none")
    if kind == "none":
        return None
    if kind == "linear":
        return {"factor": float(meta.require_hparam("rope.scaling.factor")), "rope_type": "linear"}
    raise ValueError(f"RoPE scaling {kind!r} is not supported")


def _head_dim(meta: _Metadata) -> int:
    head_dim = meta.hparam("attention.key_length")
    if head_dim is not None:
        return int(head_dim)
    return int(meta.require_hparam("embedding_length")) // int(meta.require_hparam("attention.head_count"))


def _check_full_rotary(meta: _Metadata) -> None:
    # LlamaModel writes rope.dimension_count = head_dim; a smaller one would be a partial-rotary model, which
    # LlamaConfig cannot express.
    rope_dim = meta.hparam("rope.dimension_count")
    if rope_dim is not None and int(rope_dim) != _head_dim(meta):
        raise ValueError(f"rope.dimension_count {rope_dim} is not the head size {_head_dim(meta)}")


def _llama_config(meta: _Metadata, shapes: _Shapes, dtype: str) -> JSON:
    _check_full_rotary(meta)
    return {
        **_common_config(meta, shapes, dtype),
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "rope_theta": float(meta.hparam("rope.freq_base", 10000.0)),
        "attention_bias": shapes.has_attn_bias,
        "mlp_bias": False,
        "pretraining_tp": 1,
    }


def _qwen2_config(meta: _Metadata, shapes: _Shapes, dtype: str) -> JSON:
    n_layer = int(meta.require_hparam("block_count"))
    return {
        **_common_config(meta, shapes, dtype),
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "rope_theta": float(meta.hparam("rope.freq_base", 10000.0)),
        # Qwen2 publishes these with sliding-window attention off; llama.cpp's qwen2 has none either.
        "use_sliding_window": False,
        "sliding_window": int(meta.require_hparam("context_length")),
        "max_window_layers": n_layer,
    }


# llama.cpp's gemma3 loader (src/models/gemma3.cpp) takes this pattern when the GGUF names none: every
# sixth layer global, as Hugging Face's Gemma3TextConfig defaults to.
_GEMMA3_SWA_PATTERN = 6
_GEMMA3_27B_LAYERS = 62


def _gemma3_layer_types(meta: _Metadata, n_layer: int) -> tuple[list[str], int | None]:
    """Hugging Face's layer_types and, where the layers repeat with a period, sliding_window_pattern."""
    pattern = meta.hparam("attention.sliding_window_pattern", _GEMMA3_SWA_PATTERN)
    if isinstance(pattern, list):  # one flag per layer: true where the layer uses the sliding window
        is_swa = [bool(flag) for flag in pattern]
        # The shortest period that gives these flags, if any: Hugging Face's older configs hold only that.
        period = next((n for n in range(1, n_layer + 1) if is_swa == _swa_flags(n, n_layer)), None)
    else:
        period = int(pattern)
        is_swa = _swa_flags(period, n_layer)
    return ["sliding_attention" if swa else "full_attention" for swa in is_swa], period


def _swa_flags(pattern: int, n_layer: int) -> list[bool]:
    # llama_hparams::set_swa_pattern, as Gemma3TextConfig: layer il slides unless il % n == n - 1.
    return [il % pattern < pattern - 1 for il in range(n_layer)]


def _gemma3_config(meta: _Metadata, shapes: _Shapes, dtype: str) -> JSON:
    n_layer = int(meta.require_hparam("block_count"))
    n_embd = int(meta.require_hparam("embedding_length"))
    n_head = int(meta.require_hparam("attention.head_count"))
    head_dim = int(meta.hparam("attention.key_length", 256))  # Gemma3Model's default, as the converter's
    config: JSON = {
        **_common_config(meta, shapes, dtype),
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_activation": "gelu_pytorch_tanh",
        "head_dim": head_dim,
        "rope_theta": float(meta.hparam("rope.freq_base", 1_000_000.0)),
        # TextModel reads rope_local_base_freq into {arch}.rope.freq_base_swa; 10000 is what llama.cpp and
        # transformers both take when the GGUF names none.
        "rope_local_base_freq": float(meta.hparam("rope.freq_base_swa", 10_000.0)),
        # llama.cpp scales queries by 1/sqrt(head_dim), except for the 27B model (n_embd / n_head), the
        # value Hugging Face keeps as query_pre_attn_scalar.
        "query_pre_attn_scalar": n_embd // n_head if n_layer == _GEMMA3_27B_LAYERS else head_dim,
        "final_logit_softcapping": meta.hparam("final_logit_softcapping"),
        "attn_logit_softcapping": None,  # Gemma3Model asserts it is unset
        "attention_bias": shapes.has_attn_bias,
        "use_bidirectional_attention": False,
    }
    if config["final_logit_softcapping"] is not None:
        config["final_logit_softcapping"] = float(config["final_logit_softcapping"])
    window = meta.hparam("attention.sliding_window")
    if window is None:
        # No sliding window: pattern 1 (every layer global) is what makes Gemma3Model write none back.
        config.update(sliding_window=None, sliding_window_pattern=1, layer_types=["full_attention"] * n_layer)
        return config
    layer_types, period = _gemma3_layer_types(meta, n_layer)
    config.update(sliding_window=int(window), layer_types=layer_types)
    if period is not None:
        config["sliding_window_pattern"] = period
    return config


_ARCHS: dict[str, _Arch] = {
    "llama": _Arch("LlamaForCausalLM", _LLAMA_LAYER, permutes_qk=True, norm_shift=0.0, config=_llama_config),
    "qwen2": _Arch("Qwen2ForCausalLM", _LLAMA_LAYER, permutes_qk=False, norm_shift=0.0, config=_qwen2_config),
    "gemma3": _Arch("Gemma3ForCausalLM", _GEMMA3_LAYER, permutes_qk=False, norm_shift=1.0, config=_gemma3_config),
}


# ---------------------------------------------------------------------------------------------------------------
# Weights


@dataclass(frozen=True)
class _Source:
    """One tensor's bytes in the GGUF, laid out as ggml does: rows of ne[0] elements, quantized or not."""

    name: str
    qtype: GGMLQuantizationType
    ne: tuple[int, ...]  # ggml's dimensions, innermost first
    rows: npt.NDArray[np.uint8]  # (rows, bytes per row), a view of the memory-mapped file


_SCALAR_SIZES = {
    GGUFValueType.UINT8: 1,
    GGUFValueType.INT8: 1,
    GGUFValueType.BOOL: 1,
    GGUFValueType.UINT16: 2,
    GGUFValueType.INT16: 2,
    GGUFValueType.UINT32: 4,
    GGUFValueType.INT32: 4,
    GGUFValueType.FLOAT32: 4,
    GGUFValueType.UINT64: 8,
    GGUFValueType.INT64: 8,
    GGUFValueType.FLOAT64: 8,
}


class _HeaderCursor:
    """Walks a little-endian GGUF header (v2/v3) to its tensor infos; read_gguf has read the key/values."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        self.pos += length
        return self.data[self.pos - length : self.pos].decode("utf-8")

    def skip_value(self, value_type: int) -> None:
        if value_type == GGUFValueType.STRING:
            length = self.unpack("<Q")  # read first: `pos += unpack()` would lose unpack's own advance
            self.pos += length
        elif value_type == GGUFValueType.ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALAR_SIZES:
                self.pos += _SCALAR_SIZES[GGUFValueType(item_type)] * count
            else:
                for _ in range(count):
                    self.skip_value(item_type)
        else:
            self.pos += _SCALAR_SIZES[GGUFValueType(value_type)]


_TensorInfo = tuple[str, tuple[int, ...], GGMLQuantizationType, int]  # name, ne, type, offset in the data


def _tensor_infos(cursor: _HeaderCursor, path: Path) -> tuple[list[_TensorInfo], int]:
    """The tensor infos that follow the key/values, and where the header ends."""
    if cursor.data[:4] != b"GGUF" or cursor.unpack("<4xI") not in (2, 3):
        raise ValueError(f"{path}: not a little-endian GGUF v2/v3 file")
    n_tensors, n_kv = cursor.unpack("<Q"), cursor.unpack("<Q")
    for _ in range(n_kv):
        cursor.string()
        cursor.skip_value(cursor.unpack("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cursor.string()
        ne = tuple(int(cursor.unpack("<Q")) for _ in range(cursor.unpack("<I")))
        infos.append((name, ne, GGMLQuantizationType(cursor.unpack("<I")), int(cursor.unpack("<Q"))))
    return infos, cursor.pos


def _read_sources(path: Path, meta: _Metadata) -> list[_Source]:
    """The GGUF's tensors as row views of a memory map: nothing is read until a row is asked for."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as header:
        infos, header_end = _tensor_infos(_HeaderCursor(header), path)
    alignment = int(meta.get("general.alignment", GGUF_DEFAULT_ALIGNMENT))
    data_start = -(-header_end // alignment) * alignment
    data = np.memmap(path, dtype=np.uint8, mode="r")
    sources = []
    for name, ne, qtype, offset in infos:
        block_size, block_bytes = GGML_QUANT_SIZES[qtype]
        row_bytes = ne[0] // block_size * block_bytes
        n_rows = int(np.prod(ne[1:], dtype=np.int64))
        start = data_start + offset
        if start + n_rows * row_bytes > len(data):
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
        rows = data[start : start + n_rows * row_bytes].reshape(n_rows, row_bytes)
        sources.append(_Source(name, qtype, ne, rows))
    return sources


@dataclass(frozen=True)
class _Tensor:
    name: str  # Hugging Face's
    shape: tuple[int, ...]  # PyTorch order
    source: _Source
    order: tuple[int, int, int, int]  # state_dict position: (top-level group, layer, module, weight/bias)

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _hf_name(arch: _Arch, gguf_name: str) -> tuple[str, tuple[int, int, int, int]]:
    """The Hugging Face name of a GGUF tensor and its place in the state_dict."""
    stem, dot, suffix = gguf_name.rpartition(".")
    if not dot or suffix not in ("weight", "bias"):
        raise ValueError(f"unexpected tensor {gguf_name}")
    suffix_order = 0 if suffix == "weight" else 1
    if stem in _GLOBAL_TENSORS:
        module = _GLOBAL_TENSORS[stem]
        return f"{module}.{suffix}", (_GLOBAL_ORDER[module], 0, 0, suffix_order)
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdecimal() and parts[2] in arch.layer_modules:
        layer = int(parts[1])
        module_order = list(arch.layer_modules).index(parts[2])
        module = arch.layer_modules[parts[2]]
        return f"model.layers.{layer}.{module}.{suffix}", (1, layer, module_order, suffix_order)
    raise ValueError(f"tensor {gguf_name} has no Hugging Face counterpart in {arch.architecture}")


def _plan_tensors(sources: Sequence[_Source], arch: _Arch) -> list[_Tensor]:
    tensors = []
    for source in sources:
        name, order = _hf_name(arch, source.name)
        # ggml lists dimensions innermost first; PyTorch outermost first.
        tensors.append(_Tensor(name, tuple(reversed(source.ne)), source, order))
    tensors.sort(key=lambda t: t.order)
    return tensors


def unpermute_rotary(weights: npt.NDArray[Any], n_head: int) -> npt.NDArray[Any]:
    """Inverse of conversion/llama.py LlamaModel.permute along the first axis.

    The converter regroups each head's rows from Hugging Face's rotate_half layout (the first halves of the
    rotated pairs, then the second halves) into ggml's adjacent pairs: reshape(n_head, 2, rows/n_head/2)
    .swapaxes(1, 2). The transposed reshape undoes it. Rows only move, so applied to ``arange(rows)`` this
    gives the GGUF row of each Hugging Face row.
    """
    rows = weights.shape[0]
    return weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _rotary_heads(tensor: _Tensor, arch: _Arch, meta: _Metadata) -> int | None:
    """The head count the converter permuted this tensor's rows with, or None when it left them alone."""
    if not arch.permutes_qk or not tensor.name.endswith(
        ("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")
    ):
        return None
    # conversion/llama.py LlamaModel.modify_tensors: q with n_head heads, k with n_head_kv.
    n_head = int(meta.require_hparam("attention.head_count"))
    if ".k_proj." in tensor.name:
        n_head = int(meta.hparam("attention.head_count_kv", n_head))
    return n_head


# Rows are dequantized this many elements at a time (16 MiB of float32), so that memory stays well under one
# tensor even for the embedding matrices.
_CHUNK_ELEMENTS = 1 << 22


def _chunks(tensor: _Tensor, arch: _Arch, meta: _Metadata) -> Iterator[Float32Array]:
    """The tensor as Hugging Face stores it, in float32, as consecutive blocks of its rows (C order)."""
    source = tensor.source
    n_head = _rotary_heads(tensor, arch, meta)
    # conversion/gemma.py Gemma3Model.modify_tensors adds norm_shift(name) = 1.0 to every "*norm.weight":
    # Gemma3RMSNorm multiplies by (1 + weight), ggml's rms_norm by the weight as stored.
    shift = np.float32(arch.norm_shift if tensor.name.endswith("norm.weight") else 0.0)
    if len(source.ne) == 1:  # one row: a bias's rotary order is over its elements
        data: Float32Array = dequantize(source.rows, source.qtype).reshape(tensor.shape)
        yield (data if n_head is None else unpermute_rotary(data, n_head)) - shift
        return
    n_rows = source.rows.shape[0]
    order = None if n_head is None else unpermute_rotary(np.arange(n_rows), n_head)
    step = max(1, _CHUNK_ELEMENTS // source.ne[0])
    for start in range(0, n_rows, step):
        rows = source.rows[start : start + step] if order is None else source.rows[order[start : start + step]]
        block: Float32Array = dequantize(rows, source.qtype)
        yield block - shift if shift else block


def _to_bf16(data: Float32Array) -> npt.NDArray[np.uint16]:
    """float32 -> bfloat16 bits, rounded to nearest even (as torch's .to(torch.bfloat16))."""
    bits = np.ascontiguousarray(data, dtype=np.float32).view(np.uint32)
    # uint32 arithmetic wraps only for bit patterns above 0xFFFF8000, all NaNs, which are replaced below.
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    # A NaN must stay a NaN (rounding could carry it into the infinities): keep its top half, made quiet.
    rounded = np.where((bits & 0x7FFFFFFF) > 0x7F800000, (bits >> 16) | 0x40, rounded)
    return rounded.astype("<u2")


def _encode(data: Float32Array, dtype: str) -> npt.NDArray[Any]:
    """The little-endian values safetensors stores for ``data`` in ``dtype``."""
    if dtype == "bf16":
        return _to_bf16(data)
    return np.ascontiguousarray(data, dtype="<f2" if dtype == "f16" else "<f4")


def _shards(tensors: Sequence[_Tensor], itemsize: int, max_shard_bytes: int | None) -> list[list[_Tensor]]:
    """Group tensors into files as huggingface_hub's split_state_dict_into_shards_factory does.

    Greedy in state_dict order; a tensor larger than the limit gets a file of its own (placed before the
    shard being filled, as there).
    """
    if max_shard_bytes is None:
        return [list(tensors)]
    shards: list[list[_Tensor]] = []
    current: list[_Tensor] = []
    current_bytes = 0
    for tensor in tensors:
        size = tensor.n_elements * itemsize
        if size > max_shard_bytes:
            shards.append([tensor])
            continue
        if current_bytes + size > max_shard_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append(tensor)
        current_bytes += size
    if current:
        shards.append(current)
    return shards


def _safetensors_header(tensors: Sequence[_Tensor], dtype: str) -> bytes:
    """The length-prefixed JSON header, offsets computed from the shapes before any data is written."""
    st_dtype, itemsize, _ = DTYPES[dtype]
    header: JSON = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in tensors:
        size = tensor.n_elements * itemsize
        header[tensor.name] = {"dtype": st_dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    # The safetensors library pads the header with spaces so that the data starts 8-byte aligned.
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded


def _write_safetensors(path: Path, tensors: Sequence[_Tensor], dtype: str, arch: _Arch, meta: _Metadata) -> None:
    with path.open("wb") as out:
        out.write(_safetensors_header(tensors, dtype))
        for tensor in tensors:
            written = sum(_write_block(out, _encode(block, dtype)) for block in _chunks(tensor, arch, meta))
            expected = tensor.n_elements * DTYPES[dtype][1]
            if written != expected:  # the header's offsets were computed from the shape alone
                raise ValueError(f"{tensor.source.name}: wrote {written} bytes, the header says {expected}")


def _write_block(out: BinaryIO, data: npt.NDArray[Any]) -> int:
    out.write(np.ascontiguousarray(data).data)
    return int(data.nbytes)


def _write_weights(
    sources: Sequence[_Source], arch: _Arch, meta: _Metadata, out_dir: Path, dtype: str, max_shard_bytes: int | None
) -> None:
    tensors = _plan_tensors(sources, arch)
    itemsize = DTYPES[dtype][1]
    shards = _shards(tensors, itemsize, max_shard_bytes)
    if len(shards) == 1:  # transformers writes no index for a single file
        _write_safetensors(out_dir / "model.safetensors", shards[0], dtype, arch, meta)
        return
    weight_map: dict[str, str] = {}
    for number, shard in enumerate(shards, start=1):
        filename = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        _write_safetensors(out_dir / filename, shard, dtype, arch, meta)
        weight_map.update((tensor.name, filename) for tensor in shard)
    total_size = sum(tensor.n_elements * itemsize for tensor in tensors)
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    _write_json(out_dir / "model.safetensors.index.json", index, sort_keys=True)


def _shapes(sources: Sequence[_Source], meta: _Metadata) -> _Shapes:
    by_name = {source.name: source for source in sources}
    embeddings = by_name.get("token_embd.weight")
    return _Shapes(
        # A vocabulary-only GGUF (llama.cpp's models/ggml-vocab-*.gguf) has no tensors: size it by its tokens.
        n_vocab=len(meta.require("tokenizer.ggml.tokens")) if embeddings is None else embeddings.ne[1],
        has_output="output.weight" in by_name,
        has_attn_bias="blk.0.attn_q.bias" in by_name,
    )


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer: byte-level BPE (tokenizer.ggml.model "gpt2") -> tokenizer.json


@dataclass(frozen=True)
class _BpeStyle:
    """The parts of a model's Hugging Face tokenizer.json that the GGUF reduces to tokenizer.ggml.pre.

    convert_hf_to_gguf names the pre-tokenizer by hashing how the tokenizer encodes a probe text
    (get_vocab_base_pre); these are the real files' pipelines for those names, so that the hash, and so
    tokenizer.ggml.pre, comes out the same.
    """

    normalizer: JSON | None
    pre_tokenizer: JSON
    byte_level_post: JSON  # the post-processor's ByteLevel step
    decoder: JSON
    model_options: JSON  # BPE model fields besides vocab and merges
    tokenizer_class: str
    add_bos_default: bool  # llama.cpp's add_bos when the GGUF has no tokenizer.ggml.add_bos_token


def _byte_level(add_prefix_space: bool, trim_offsets: bool, use_regex: bool) -> JSON:
    return {
        "type": "ByteLevel",
        "add_prefix_space": add_prefix_space,
        "trim_offsets": trim_offsets,
        "use_regex": use_regex,
    }


def _split(regex: str) -> JSON:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


def _bpe_model(prefix: str | None, ignore_merges: bool) -> JSON:
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": None,
        "continuing_subword_prefix": prefix,
        "end_of_word_suffix": prefix,
        "fuse_unk": False,
        # False, not absent: LlamaModel.set_vocab tries LlamaHfVocab first, which takes a tokenizer.json whose
        # BPE falls back to bytes for a SentencePiece one; byte-level BPE must fail that test.
        "byte_fallback": False,
        "ignore_merges": ignore_merges,
    }


def _cl100k_regex(numbers: str) -> str:
    """tiktoken's cl100k split, which Qwen2 and Llama 3 use with different runs of digits."""
    return (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
        + numbers
        + (r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    )


_BPE_STYLES: dict[str, _BpeStyle] = {
    # HuggingFaceTB/SmolLM-135M and SmolLM2: StarCoder's tokenizer, each digit its own token, then GPT-2's
    # byte-level regex.
    "smollm": _BpeStyle(
        normalizer=None,
        pre_tokenizer={
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                _byte_level(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ],
        },
        byte_level_post=_byte_level(add_prefix_space=True, trim_offsets=False, use_regex=True),
        decoder=_byte_level(add_prefix_space=True, trim_offsets=True, use_regex=True),
        model_options=_bpe_model(None, ignore_merges=False),
        tokenizer_class="GPT2Tokenizer",
        add_bos_default=False,
    ),
    # Qwen/Qwen1.5 .. Qwen2.5: NFC, then Qwen's split (single digits), byte-level without GPT-2's regex.
    "qwen2": _BpeStyle(
        normalizer={"type": "NFC"},
        pre_tokenizer={
            "type": "Sequence",
            "pretokenizers": [
                _split(_cl100k_regex(r"\p{N}")),
                _byte_level(add_prefix_space=False, trim_offsets=False, use_regex=False),
            ],
        },
        byte_level_post=_byte_level(add_prefix_space=False, trim_offsets=False, use_regex=False),
        decoder=_byte_level(add_prefix_space=False, trim_offsets=False, use_regex=False),
        model_options=_bpe_model("", ignore_merges=False),
        tokenizer_class="Qwen2Tokenizer",
        add_bos_default=False,
    ),
    # meta-llama/Meta-Llama-3-8B: tiktoken's cl100k split; a word found whole in the vocabulary is not merged
    # (ignore_merges, which llama.cpp's llama-bpe mirrors).
    "llama-bpe": _BpeStyle(
        normalizer=None,
        pre_tokenizer={
            "type": "Sequence",
            "pretokenizers": [
                _split(_cl100k_regex(r"\p{N}{1,3}")),
                _byte_level(add_prefix_space=False, trim_offsets=True, use_regex=False),
            ],
        },
        byte_level_post=_byte_level(add_prefix_space=True, trim_offsets=False, use_regex=True),
        decoder=_byte_level(add_prefix_space=True, trim_offsets=True, use_regex=True),
        model_options=_bpe_model(None, ignore_merges=True),
        tokenizer_class="PreTrainedTokenizerFast",
        add_bos_default=True,
    ),
}


@dataclass(frozen=True)
class _Vocab:
    tokens: list[str]
    types: list[int]
    scores: list[float] | None
    bos: int | None
    eos: int | None
    unk: int | None
    pad: int | None
    eot: int | None
    add_bos: bool | None
    add_eos: bool | None

    @classmethod
    def read(cls, meta: _Metadata) -> _Vocab:
        tokens: list[str] = meta.require("tokenizer.ggml.tokens")
        types: list[int] = meta.get("tokenizer.ggml.token_type") or [TokenType.NORMAL] * len(tokens)
        scores: list[float] | None = meta.get("tokenizer.ggml.scores")

        def token_id(role: str) -> int | None:
            value = meta.get(f"tokenizer.ggml.{role}_token_id")
            return None if value is None else int(value)

        def flag(name: str) -> bool | None:
            value = meta.get(f"tokenizer.ggml.{name}")
            return None if value is None else bool(value)

        return cls(
            tokens=tokens,
            types=[int(t) for t in types],
            scores=None if scores is None else [float(s) for s in scores],
            bos=token_id("bos"),
            eos=token_id("eos"),
            unk=token_id("unknown"),
            pad=token_id("padding"),
            eot=token_id("eot"),
            add_bos=flag("add_bos_token"),
            add_eos=flag("add_eos_token"),
        )

    def content(self, token_id: int | None) -> str | None:
        return None if token_id is None else self.tokens[token_id]


def _added_token(content: str, special: bool | None) -> JSON:
    """An AddedToken as transformers writes it in tokenizer_config.json (special_tokens_map.json: no "special").

    normalized false: llama.cpp takes control and user-defined tokens as pre-normalized (get_vocab_base
    re-encodes the others).
    """
    entry: JSON = {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    if special is not None:
        entry["special"] = special
    return entry


def _tokenizers_added_token(token_id: int, content: str, special: bool) -> JSON:
    # The tokenizers library's field order, as in tokenizer.json's "added_tokens".
    entry = _added_token(content, special)
    return {
        "id": token_id,
        **{key: entry[key] for key in ("content", "single_word", "lstrip", "rstrip", "normalized", "special")},
    }


def _gpt2_added_tokens(vocab: _Vocab) -> list[JSON]:
    """Control tokens were added special tokens, user-defined ones added non-special (get_vocab_base)."""
    added = []
    for token_id, (token, kind) in enumerate(zip(vocab.tokens, vocab.types, strict=True)):
        if kind in (TokenType.CONTROL, TokenType.USER_DEFINED):
            added.append(_tokenizers_added_token(token_id, token, special=kind == TokenType.CONTROL))
    return added


def _gpt2_model_vocab(vocab: _Vocab) -> dict[str, int]:
    """The BPE model's own vocabulary.

    get_vocab_base fills ids that no token has with "[PAD<id>]" (type UNUSED): those are left out. Added
    tokens stand in the model's vocabulary when they come before its last ordinary token (SmolLM2's
    <|endoftext|> .. at ids 0-16) and only among the added tokens after it (Qwen2's <|endoftext|> .. from
    151643), as in those models' files.
    """
    last_normal = max((i for i, kind in enumerate(vocab.types) if kind == TokenType.NORMAL), default=-1)
    model_vocab: dict[str, int] = {}
    for token_id in range(last_normal + 1):
        kind = vocab.types[token_id]
        if kind == TokenType.UNUSED:
            continue
        if kind not in (TokenType.NORMAL, TokenType.CONTROL, TokenType.USER_DEFINED):
            raise ValueError(f"token {token_id} {vocab.tokens[token_id]!r}: type {kind} in a byte-level vocabulary")
        model_vocab[vocab.tokens[token_id]] = token_id
    return model_vocab


def _gpt2_merges(meta: _Metadata) -> list[str]:
    merges: list[str] = meta.require("tokenizer.ggml.merges")
    for merge in merges:
        # "left right": byte-level pieces hold no raw space (it is "Ġ"); SpecialVocab writes spaces inside
        # pieces as U+0120 too, so a GGUF merge is always two pieces and one separator.
        if merge.count(" ") != 1:
            raise ValueError(f"merge {merge!r} is not two pieces")
    return merges


def _template_processing(vocab: _Vocab, add_bos: bool, add_eos: bool) -> JSON:
    """How LlamaTokenizerFast.update_post_processor adds BOS/EOS; SpecialVocab parses add_bos/eos back from it."""
    bos, eos = vocab.content(vocab.bos), vocab.content(vocab.eos)
    specials = ([(bos, vocab.bos)] if add_bos else []) + ([(eos, vocab.eos)] if add_eos else [])
    if any(content is None for content, _ in specials):
        raise ValueError("the GGUF adds a BOS/EOS token it does not name")

    def sequence(seq: str, type_id: int) -> list[JSON]:
        items: list[JSON] = []
        if add_bos:
            items.append({"SpecialToken": {"id": bos, "type_id": type_id}})
        items.append({"Sequence": {"id": seq, "type_id": type_id}})
        if add_eos:
            items.append({"SpecialToken": {"id": eos, "type_id": type_id}})
        return items

    return {
        "type": "TemplateProcessing",
        "single": sequence("A", 0),
        "pair": sequence("A", 0) + sequence("B", 1),
        "special_tokens": {
            content: {"id": content, "ids": [token_id], "tokens": [content]} for content, token_id in specials
        },
    }


def _bpe_add_flags(vocab: _Vocab, style: _BpeStyle) -> tuple[bool, bool]:
    add_bos = style.add_bos_default if vocab.add_bos is None else vocab.add_bos
    return add_bos, bool(vocab.add_eos)


def _gpt2_tokenizer_json(meta: _Metadata, vocab: _Vocab) -> tuple[JSON, _BpeStyle]:
    pre = meta.get("tokenizer.ggml.pre", "default")
    style = _BPE_STYLES.get(pre)
    if style is None:
        raise ValueError(f"tokenizer.ggml.pre {pre!r} is not one of {sorted(_BPE_STYLES)}")
    add_bos, add_eos = _bpe_add_flags(vocab, style)
    post: JSON = style.byte_level_post
    if add_bos or add_eos:
        post = {"type": "Sequence", "processors": [post, _template_processing(vocab, add_bos, add_eos)]}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _gpt2_added_tokens(vocab),
        "normalizer": style.normalizer,
        "pre_tokenizer": style.pre_tokenizer,
        "post_processor": post,
        "decoder": style.decoder,
        "model": {**style.model_options, "vocab": _gpt2_model_vocab(vocab), "merges": _gpt2_merges(meta)},
    }
    return tokenizer, style


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer: SentencePiece (tokenizer.ggml.model "llama") -> tokenizer.model


def _varint(value: int) -> bytes:
    # Protobuf int32/enum: a negative value is sent as its 64-bit two's complement (ten bytes).
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _pb_bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _pb_float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", value)


# sentencepiece_model.proto field numbers.
_MODEL_PIECES, _MODEL_TRAINER_SPEC, _MODEL_NORMALIZER_SPEC = 1, 2, 3
_PIECE_PIECE, _PIECE_SCORE, _PIECE_TYPE = 1, 2, 3
_TRAINER_MODEL_TYPE, _TRAINER_VOCAB_SIZE, _TRAINER_BYTE_FALLBACK = 3, 4, 35
_TRAINER_IDS = {"unk": 40, "bos": 41, "eos": 42, "pad": 43}
_TRAINER_PIECES = {"unk": 45, "bos": 46, "eos": 47, "pad": 48}
_NORMALIZER_NAME, _NORMALIZER_DUMMY_PREFIX, _NORMALIZER_EXTRA_WHITESPACES, _NORMALIZER_ESCAPE = 1, 3, 4, 5
_MODEL_TYPE_BPE = 2  # TrainerSpec.ModelType; llama.cpp's "llama" vocabulary is SentencePiece BPE
_SPM_SPACE = "\u2581"  # "▁", SentencePiece's escaped space
# _create_vocab_sentencepiece gives this score to every token named in tokenizer_config's added_tokens_decoder.
_ADDED_TOKEN_SCORE = -1000.0


def _spm_from_added_tokens(vocab: _Vocab, token_id: int) -> bool:
    """Whether the GGUF's token came from tokenizer_config.json's added_tokens_decoder, not tokenizer.model.

    _create_vocab_sentencepiece makes those CONTROL or USER_DEFINED with score -1000; the unknown token is
    among them when it is not of type UNKNOWN (Gemma's <unk>: SentencePiece needs one UNKNOWN piece).
    """
    assert vocab.scores is not None
    kind = vocab.types[token_id]
    if token_id == vocab.unk and kind != TokenType.UNKNOWN:
        return True
    return kind in (TokenType.CONTROL, TokenType.USER_DEFINED) and vocab.scores[token_id] == _ADDED_TOKEN_SCORE


def _spm_piece(vocab: _Vocab, token_id: int) -> tuple[str, int]:
    """A GGUF token as a SentencePiece piece and type."""
    token, kind = vocab.tokens[token_id], vocab.types[token_id]
    if token_id == vocab.unk:
        kind = TokenType.UNKNOWN
    if kind == TokenType.USER_DEFINED and _spm_from_added_tokens(vocab, token_id):
        # _create_vocab_sentencepiece pre-normalizes "▁" to " " in user-defined added tokens; pieces keep "▁".
        token = token.replace(" ", _SPM_SPACE)
    return token, kind


def _spm_trainer_spec(vocab: _Vocab) -> bytes:
    spec = _pb_varint(_TRAINER_MODEL_TYPE, _MODEL_TYPE_BPE) + _pb_varint(_TRAINER_VOCAB_SIZE, len(vocab.tokens))
    # SentencePiece refuses byte pieces (<0x00> ..) unless the model falls back to them.
    if TokenType.BYTE in vocab.types:
        spec += _pb_varint(_TRAINER_BYTE_FALLBACK, 1)
    for role, token_id in (("unk", vocab.unk), ("bos", vocab.bos), ("eos", vocab.eos), ("pad", vocab.pad)):
        # SentencePieceProcessor finds bos/eos/pad by these pieces; -1 says the model has none.
        spec += _pb_varint(_TRAINER_IDS[role], -1 if token_id is None else token_id)
        if token_id is not None:
            spec += _pb_bytes(_TRAINER_PIECES[role], vocab.tokens[token_id].encode())
    return spec


def _spm_normalizer_spec(meta: _Metadata) -> bytes:
    # No normalization rules: llama.cpp applies none, and Llama's and Gemma's models use "identity".
    # llama.cpp defaults add_space_prefix to true for SentencePiece vocabularies.
    add_dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    remove_extra_whitespaces = bool(meta.get("tokenizer.ggml.remove_extra_whitespaces", False))
    return (
        _pb_bytes(_NORMALIZER_NAME, b"identity")
        + _pb_varint(_NORMALIZER_DUMMY_PREFIX, int(add_dummy_prefix))
        + _pb_varint(_NORMALIZER_EXTRA_WHITESPACES, int(remove_extra_whitespaces))
        + _pb_varint(_NORMALIZER_ESCAPE, 1)
    )


def _spm_model_proto(meta: _Metadata, vocab: _Vocab) -> bytes:
    """A SentencePiece ModelProto, protobuf wire format, of the GGUF's pieces, scores and types."""
    if vocab.scores is None:
        raise ValueError("a SentencePiece vocabulary needs tokenizer.ggml.scores")
    if vocab.unk is None and TokenType.UNKNOWN not in vocab.types:
        raise ValueError("SentencePiece needs an unknown token; the GGUF names none")
    pieces = []
    for token_id, score in enumerate(vocab.scores):
        piece, kind = _spm_piece(vocab, token_id)
        body = _pb_bytes(_PIECE_PIECE, piece.encode()) + _pb_float(_PIECE_SCORE, score) + _pb_varint(_PIECE_TYPE, kind)
        pieces.append(_pb_bytes(_MODEL_PIECES, body))
    return (
        b"".join(pieces)
        + _pb_bytes(_MODEL_TRAINER_SPEC, _spm_trainer_spec(vocab))
        + _pb_bytes(_MODEL_NORMALIZER_SPEC, _spm_normalizer_spec(meta))
    )


def _spm_added_tokens_decoder(vocab: _Vocab) -> dict[str, JSON]:
    """tokenizer_config.json's added_tokens_decoder: the tokens _create_vocab_sentencepiece took from it."""
    decoder: dict[str, JSON] = {}
    for token_id in range(len(vocab.tokens)):
        if not _spm_from_added_tokens(vocab, token_id):
            continue
        user_defined = vocab.types[token_id] == TokenType.USER_DEFINED
        content = _spm_piece(vocab, token_id)[0] if user_defined else vocab.tokens[token_id]
        decoder[str(token_id)] = _added_token(content, special=not user_defined)
    return decoder


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer configuration


def _special_tokens(vocab: _Vocab) -> dict[str, str]:
    roles = {"bos_token": vocab.bos, "eos_token": vocab.eos, "unk_token": vocab.unk, "pad_token": vocab.pad}
    return {role: vocab.tokens[token_id] for role, token_id in roles.items() if token_id is not None}


def _tokenizer_config(meta: _Metadata, vocab: _Vocab, added_tokens_decoder: dict[str, JSON]) -> JSON:
    config: JSON = {"added_tokens_decoder": added_tokens_decoder, **_special_tokens(vocab)}
    if (template := meta.get("tokenizer.chat_template")) is not None:
        config["chat_template"] = template
    config["clean_up_tokenization_spaces"] = False
    config["model_max_length"] = int(meta.require_hparam("context_length"))
    return config


# A folder's small files by name: JSON values, or bytes (tokenizer.model). Built whole before any is written,
# so that a model the exporter cannot express leaves no half-written folder behind.
_Files = dict[str, JSON | bytes]


def _gpt2_tokenizer_files(meta: _Metadata, vocab: _Vocab) -> _Files:
    tokenizer, style = _gpt2_tokenizer_json(meta, vocab)
    decoder = {
        str(entry["id"]): _added_token(entry["content"], entry["special"]) for entry in tokenizer["added_tokens"]
    }
    config = _tokenizer_config(meta, vocab, decoder)
    add_bos, add_eos = _bpe_add_flags(vocab, style)
    # LlamaModel.set_vocab reads add_prefix_space into tokenizer.ggml.add_space_prefix.
    if (add_space_prefix := meta.get("tokenizer.ggml.add_space_prefix")) is not None:
        config["add_prefix_space"] = bool(add_space_prefix)
    config.update(add_bos_token=add_bos, add_eos_token=add_eos, tokenizer_class=style.tokenizer_class)
    return {"tokenizer.json": tokenizer, "tokenizer_config.json": config}


def _spm_tokenizer_files(meta: _Metadata, vocab: _Vocab) -> _Files:
    config = _tokenizer_config(meta, vocab, _spm_added_tokens_decoder(vocab))
    # llama.cpp's defaults for SentencePiece when the GGUF says nothing: BOS yes, EOS no.
    config.update(
        add_bos_token=True if vocab.add_bos is None else vocab.add_bos,
        add_eos_token=bool(vocab.add_eos),
    )
    # Gemma3Model.set_vocab writes add_space_prefix false itself; LlamaModel reads it from here.
    if meta.arch != "gemma3" and (add_space_prefix := meta.get("tokenizer.ggml.add_space_prefix")) is not None:
        config["add_prefix_space"] = bool(add_space_prefix)
    config.update(
        sp_model_kwargs={},
        spaces_between_special_tokens=False,
        tokenizer_class="GemmaTokenizer" if meta.arch.startswith("gemma") else "LlamaTokenizer",
    )
    return {"tokenizer.model": _spm_model_proto(meta, vocab), "tokenizer_config.json": config}


def _tokenizer_files(meta: _Metadata, vocab: _Vocab) -> _Files:
    model = meta.require("tokenizer.ggml.model")
    if model == "gpt2":
        files = _gpt2_tokenizer_files(meta, vocab)
    elif model == "llama":
        files = _spm_tokenizer_files(meta, vocab)
    else:
        raise ValueError(f"tokenizer.ggml.model {model!r} is not supported (gpt2 or llama)")
    files["special_tokens_map.json"] = {
        role: _added_token(content, special=None) for role, content in _special_tokens(vocab).items()
    }
    return files


def _generation_config(vocab: _Vocab) -> JSON:
    config: JSON = {"_from_model_config": True}
    if vocab.bos is not None:
        config["bos_token_id"] = vocab.bos
    if vocab.eos is not None:
        # Chat models stop at the end of a turn too: transformers lists both (Llama 3 Instruct, Gemma it).
        stops = [vocab.eos] + ([vocab.eot] if vocab.eot is not None and vocab.eot != vocab.eos else [])
        config["eos_token_id"] = stops[0] if len(stops) == 1 else stops
    if vocab.pad is not None:
        config["pad_token_id"] = vocab.pad
    return config


def _write_json(path: Path, value: Any, *, sort_keys: bool = False) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Entry points


def export(
    gguf_path: Path,
    out_dir: Path,
    *,
    dtype: str = "bf16",
    max_shard_bytes: int | None = None,
    weights: bool = True,
) -> None:
    """Write ``out_dir``, the Hugging Face checkpoint folder of the GGUF at ``gguf_path``.

    ``dtype`` is the safetensors dtype (bf16, f16 or f32); ``max_shard_bytes`` splits the weights into
    ``model-0000N-of-0000M.safetensors`` files of at most that many bytes of tensor data (a larger tensor gets
    a file of its own) with ``model.safetensors.index.json``, as transformers' ``save_pretrained`` does.
    ``weights=False`` writes only the configuration and tokenizer files. ``out_dir`` must be empty or absent.
    Raises ``ValueError`` for a model it cannot express in Hugging Face's terms.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise ValueError("max_shard_bytes must be positive")
    if out_dir.exists() and any(out_dir.iterdir()):
        # Files of an earlier export (other shard counts) would be taken for part of this one.
        raise ValueError(f"{out_dir} is not empty")
    meta = _Metadata(read_gguf(gguf_path).kv)
    arch = _ARCHS.get(meta.arch)
    if arch is None:
        raise ValueError(f"architecture {meta.arch!r} is not supported ({', '.join(sorted(_ARCHS))})")
    sources = _read_sources(gguf_path, meta)
    _plan_tensors(sources, arch)  # every tensor must have a Hugging Face name before anything is written
    vocab = _Vocab.read(meta)
    # transformers writes its configs with sorted keys, tokenizer files as the tokenizer built them.
    files: _Files = {
        "config.json": dict(sorted(arch.config(meta, _shapes(sources, meta), dtype).items())),
        "generation_config.json": dict(sorted(_generation_config(vocab).items())),
        **_tokenizer_files(meta, vocab),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (out_dir / name).write_bytes(content)
        else:
            _write_json(out_dir / name, content)
    if weights:
        _write_weights(sources, arch, meta, out_dir, dtype, max_shard_bytes)


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.export_hf", description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf", type=Path, help="the GGUF model to export")
    parser.add_argument("out_dir", type=Path, help="the folder to write (absent or empty)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="safetensors dtype (default bf16)")
    parser.add_argument("--max-shard-size", type=int, metavar="BYTES", help="split the weights into files this big")
    parser.add_argument("--no-weights", action="store_true", help="write only the config and tokenizer files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        export(
            args.gguf,
            args.out_dir,
            dtype=args.dtype,
            max_shard_bytes=args.max_shard_size,
            weights=not args.no_weights,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
