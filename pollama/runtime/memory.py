"""How much memory a runner will take, and where its layers go.

The estimate is read from the GGUF before anything is loaded: the weights (tensor by tensor, so
each repeating layer's share is known), the KV cache for ``num_ctx x num_parallel`` cells at the
configured cache type, and llama.cpp's compute buffer, which is dominated by one batch of logits
(``num_batch x n_vocab`` floats) plus, without flash attention, the attention scores. Checked
against what llama.cpp reports for SmolLM2, Qwen2.5 and Gemma 3 at several contexts, it errs high
by a few percent (sliding-window layers are counted at full context).

Placement follows Ollama: everything on one GPU when it fits (unless spreading is asked for), else
layers split over the GPUs of one library in proportion to their free memory, else as many layers
as fit with the rest on the CPU. An explicit ``num_gpu`` is obeyed as given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from pollama.runtime.devices import GpuDevice
from pollama.runtime.process import RunnerConfig
from pollama.store.gguf import GGUFFile, TensorInfo
from pollama.store.models import read_gguf_header

__all__ = [
    "Estimate",
    "ModelShape",
    "Placement",
    "estimate",
    "model_shape",
    "place",
    "place_remote",
    "runner_estimate",
]

MIB = 1 << 20
# What a CUDA/ROCm context and cuBLAS workspaces take before any tensor (Ollama's per-GPU minimum).
GPU_MINIMUM_MEMORY = 457 * MIB
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# The CPU backend repacks these (interleaved for SIMD) into a buffer of their own, beside the mapped file.
_REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})
_LAYER = re.compile(r"^(?:blk|layers?|enc\.blk|dec\.blk)\.(\d+)\.")


@dataclass(frozen=True)
class ModelShape:
    """The facts about a model that decide its memory use."""

    block_count: int
    embedding_length: int
    head_count: int
    head_count_kv: int
    key_length: int
    value_length: int
    vocab_size: int
    layer_bytes: tuple[int, ...]  # weights of each repeating layer
    other_bytes: int  # embeddings, output head, norms: what is not in a layer
    repacked_bytes: int = 0  # layer matrices llama.cpp's CPU backend copies into a faster layout
    recurrent: bool = False  # state-space layers keep a fixed-size state instead of a KV cache

    @property
    def weights(self) -> int:
        return sum(self.layer_bytes) + self.other_bytes


def model_shape(gguf: GGUFFile) -> ModelShape:
    blocks = int(gguf.get("block_count") or 0)
    layer_bytes = [0] * blocks
    other = repacked = 0
    for tensor in gguf.tensors:
        size = _tensor_bytes(tensor)
        match = _LAYER.match(tensor.name)
        if match and int(match.group(1)) < blocks:
            layer_bytes[int(match.group(1))] += size
            if tensor.type in _REPACKED_TYPES and len(tensor.shape) == 2:
                repacked += size
        else:
            other += size
    embedding = int(gguf.get("embedding_length") or 0)
    heads = _largest(gguf.get("attention.head_count")) or 1
    heads_kv = _largest(gguf.get("attention.head_count_kv")) or heads
    head_dim = embedding // heads if heads else 0
    vocab = int(gguf.get("vocab_size") or gguf.array_lengths.get("tokenizer.ggml.tokens", 0) or 0)
    if not vocab:
        tokens = gguf.kv.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if isinstance(tokens, list) else 0
    return ModelShape(
        block_count=blocks,
        embedding_length=embedding,
        head_count=heads,
        head_count_kv=heads_kv,
        key_length=int(gguf.get("attention.key_length") or head_dim),
        value_length=int(gguf.get("attention.value_length") or head_dim),
        vocab_size=vocab,
        layer_bytes=tuple(layer_bytes),
        other_bytes=other,
        repacked_bytes=repacked,
        recurrent=gguf.has("ssm.state_size"),
    )


def _largest(value: object) -> int:
    """Per-layer lists (some models vary head counts by layer) count at their largest."""
    if isinstance(value, list):
        return max((int(item) for item in value), default=0)
    return int(value) if isinstance(value, int | float) else 0


def _tensor_bytes(tensor: TensorInfo) -> int:
    try:
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType[tensor.type]]
    except KeyError:
        return 0
    return tensor.element_count // block * block_bytes


@dataclass(frozen=True)
class Estimate:
    """A runner's memory if it all stays on the CPU (the repacked copies included)."""

    weights: int
    kv_per_layer: int
    compute: int
    shape: ModelShape

    @property
    def kv(self) -> int:
        return self.kv_per_layer * self.shape.block_count

    @property
    def total(self) -> int:
        return self.weights + self.shape.repacked_bytes + self.kv + self.compute


def estimate(
    shape: ModelShape,
    *,
    num_ctx: int,
    num_parallel: int,
    num_batch: int,
    kv_cache_type: str = "f16",
    flash_attention: bool | None = None,
    embedding: bool = False,
) -> Estimate:
    """Memory for one runner: ``num_ctx`` is per sequence, as the runner allocates it."""
    cells = num_ctx * num_parallel
    kv_width = shape.head_count_kv * (shape.key_length + shape.value_length)
    per_element = KV_BYTES_PER_ELEMENT.get(kv_cache_type, 2.0)
    kv_per_layer = 0 if shape.recurrent else int(cells * kv_width * per_element)
    batch = max(num_batch, num_parallel)
    logits = 0 if embedding else batch * shape.vocab_size * 4
    scores = 0 if flash_attention else batch * shape.head_count * num_ctx * 4
    compute = max(logits, scores) + batch * shape.embedding_length * 4 * 8
    return Estimate(weights=shape.weights, kv_per_layer=kv_per_layer, compute=compute, shape=shape)


def runner_estimate(gguf: GGUFFile, config: RunnerConfig) -> Estimate:
    """The memory a runner started with ``config`` will take, all on the CPU."""
    need = estimate(
        model_shape(gguf),
        num_ctx=config.num_ctx,
        num_parallel=config.num_parallel,
        num_batch=config.num_batch,
        kv_cache_type=config.kv_cache_type,
        flash_attention=config.flash_attention,
        embedding=config.embedding,
    )
    # A projector's weights, and about as much again for encoding an image, stay with the compute buffers;
    # an adapter's weights (LoRA pairs, each beside the matrix it updates) are counted there too.
    extra = 2 * _file_size(config.projector_path) + sum(_file_size(path) for path in config.adapter_paths)
    # A draft model has its own weights, cache (a sequence per slot) and buffers, counted with the compute.
    if config.draft_model_path is not None and (draft := read_gguf_header(config.draft_model_path)) is not None:
        extra += runner_estimate(
            draft, replace(config, draft_model_path=None, projector_path=None, adapter_paths=())
        ).total
    return replace(need, compute=need.compute + extra) if extra else need


def _file_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


@dataclass(frozen=True)
class Placement:
    """Where a runner's memory goes: ``layers`` repeating layers (plus the output head when all of
    them are) on ``gpus``, split by ``tensor_split``; the rest in system memory."""

    total: int
    vram_by_gpu: dict[int, int] = field(default_factory=dict)  # GPU index -> bytes
    layers: int = 0  # llama.cpp's n_gpu_layers
    gpus: tuple[GpuDevice, ...] = ()
    tensor_split: tuple[float, ...] = ()  # per device index; empty: all on ``main_gpu``

    @property
    def vram(self) -> int:
        return sum(self.vram_by_gpu.values())

    @property
    def ram(self) -> int:
        return self.total - self.vram

    @property
    def main_gpu(self) -> int:
        return self.gpus[0].index if self.gpus else 0

    def full(self, block_count: int) -> bool:
        return self.layers > block_count


def place(
    need: Estimate,
    gpus: Sequence[GpuDevice],
    *,
    num_gpu: int = -1,
    main_gpu: int | None = None,
    spread: bool = False,
    overhead: int = 0,
    max_vram: int = 0,
) -> Placement:
    """Choose GPUs and the number of offloaded layers for ``need`` given each GPU's free memory."""
    cpu = Placement(total=need.total)
    if not gpus or num_gpu == 0:
        return cpu
    shape = need.shape
    layer_sizes = [size + need.kv_per_layer for size in shape.layer_bytes]
    head = shape.other_bytes  # offloaded with the last layer count: n_gpu_layers = block_count + 1
    everything = sum(layer_sizes) + head

    def room(gpu: GpuDevice) -> int:
        free = min(gpu.free_memory, max_vram) if max_vram else gpu.free_memory
        return max(0, free - overhead - GPU_MINIMUM_MEMORY - need.compute)

    groups: dict[str, list[GpuDevice]] = {}
    for gpu in sorted(gpus, key=lambda gpu: (gpu.integrated, gpu.index)):
        groups.setdefault(gpu.library, []).append(gpu)

    if main_gpu is not None and num_gpu < 0:
        chosen = next((gpu for gpu in gpus if gpu.index == main_gpu), None)
        if chosen is not None and room(chosen) >= everything:
            return _on(need, [chosen], [float(shape.block_count + 1)], shape.block_count + 1, layer_sizes, head)
    if not spread and num_gpu < 0:
        fitting = [gpu for gpu in gpus if room(gpu) >= everything]
        if fitting:
            best = max(fitting, key=lambda gpu: (not gpu.integrated, room(gpu), -gpu.index))
            return _on(need, [best], [float(shape.block_count + 1)], shape.block_count + 1, layer_sizes, head)

    group = max(groups.values(), key=lambda members: (sum(room(gpu) for gpu in members), -members[0].index))
    capacity = [room(gpu) for gpu in group]
    if num_gpu > 0:
        layers = min(num_gpu, shape.block_count + 1)
    else:  # whole layers only: a layer is not split between GPUs
        whole = sum(room // max(1, max(layer_sizes, default=1)) for room in capacity)
        layers = min(_layers_that_fit(layer_sizes, head, sum(capacity)), whole)
    if layers == 0:
        return cpu
    share = _split(layers, capacity, max(layer_sizes, default=1))
    used = [(gpu, count) for gpu, count in zip(group, share, strict=True) if count]
    return _on(need, [gpu for gpu, _ in used], [float(count) for _, count in used], layers, layer_sizes, head)


# The RPC servers of a split model (docs/rpc.md), as one device of unbounded room: their memory is theirs
# to check, and llama.cpp refuses the load when a server lacks it.
_ELSEWHERE = GpuDevice(index=0, id="rpc", library="rpc", name="RPC servers", total_memory=1 << 62, free_memory=1 << 62)


def place_remote(need: Estimate, num_gpu: int = -1) -> Placement:
    """Where a model split over RPC servers goes: ``num_gpu`` layers (all of them when -1) offloaded, the
    rest in this machine's memory, which is all the placement counts.

    How llama.cpp divides the offloaded layers between the servers and any local GPUs (by their free
    memory) is not planned here, so no GPU memory is counted as taken either.
    """
    offloaded = place(need, [_ELSEWHERE], num_gpu=num_gpu)
    return Placement(total=offloaded.ram, layers=offloaded.layers)


def _layers_that_fit(layer_sizes: list[int], head: int, capacity: int) -> int:
    used = 0
    for count, size in enumerate(reversed(layer_sizes)):  # llama.cpp offloads the last layers first
        if used + size > capacity:
            return count
        used += size
    return len(layer_sizes) + 1 if used + head <= capacity else len(layer_sizes)


def _split(layers: int, capacity: list[int], layer_size: int) -> list[int]:
    """Divide ``layers`` over GPUs in proportion to their room, no GPU given more than it holds.

    An explicit ``num_gpu`` beyond what fits is split by proportion alone: the user asked for it.
    """
    weights = [max(1, room) for room in capacity]
    total = sum(weights)
    exact = [layers * weight / total for weight in weights]
    counts = [int(value) for value in exact]
    for index in sorted(range(len(weights)), key=lambda i: exact[i] - counts[i], reverse=True)[: layers - sum(counts)]:
        counts[index] += 1
    limits = [room // max(1, layer_size) for room in capacity]
    if sum(limits) < layers:
        return counts
    spare = 0
    for index, limit in enumerate(limits):
        if counts[index] > limit:
            spare += counts[index] - limit
            counts[index] = limit
    while spare:
        index = max(range(len(counts)), key=lambda i: limits[i] - counts[i])
        counts[index] += 1
        spare -= 1
    return counts


def _on(
    need: Estimate,
    gpus: list[GpuDevice],
    split: list[float],
    layers: int,
    layer_sizes: list[int],
    head: int,
) -> Placement:
    offloaded = sum(layer_sizes[len(layer_sizes) - min(layers, len(layer_sizes)) :])
    if layers > len(layer_sizes):
        offloaded += head
    total_split = sum(split)
    vram = {
        gpu.index: int(offloaded * part / total_split) + need.compute for gpu, part in zip(gpus, split, strict=True)
    }
    # Each GPU holds its own compute buffer; when layers stay behind the CPU keeps one too. Offloaded
    # layers are not repacked for the CPU.
    repacked = need.shape.repacked_bytes * min(layers, len(layer_sizes)) // max(1, len(layer_sizes))
    total = need.total - repacked + need.compute * (len(gpus) - 1)
    if layers <= len(layer_sizes):
        total += need.compute
    tensor_split: tuple[float, ...] = ()
    if len(gpus) > 1:  # llama.cpp reads the split by device index, every device included
        by_index = dict(zip((gpu.index for gpu in gpus), split, strict=True))
        tensor_split = tuple(by_index.get(index, 0.0) for index in range(max(by_index) + 1))
    return Placement(total=total, vram_by_gpu=vram, layers=layers, gpus=tuple(gpus), tensor_split=tensor_split)
