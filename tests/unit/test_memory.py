"""Memory estimates against what llama.cpp reports for real models, and where layers go (``place``)."""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import pytest

from pollama.runtime.devices import GpuDevice
from pollama.runtime.memory import GPU_MINIMUM_MEMORY, Estimate, ModelShape, Placement, estimate, model_shape, place
from pollama.store.gguf import read_gguf
from tools.test_models import ensure_model

MIB, GIB = 1 << 20, 1 << 30


@functools.cache
def shape_of(key: str) -> ModelShape:
    return model_shape(read_gguf(ensure_model(key), max_array_length=5))


# --- model_shape ----------------------------------------------------------------------------------


def test_smollm2_shape() -> None:
    shape = shape_of("smollm2")
    assert (shape.block_count, shape.embedding_length, shape.head_count, shape.head_count_kv) == (30, 576, 9, 3)
    assert (shape.key_length, shape.value_length) == (64, 64)  # embedding / heads: no key_length in the GGUF
    assert shape.vocab_size == 49152  # from the token array's length, which max_array_length left unread
    assert not shape.recurrent
    assert len(shape.layer_bytes) == 30 and all(size > 0 for size in shape.layer_bytes)
    assert shape.other_bytes > 0  # token embeddings and norms
    assert shape.weights == sum(shape.layer_bytes) + shape.other_bytes


@pytest.mark.slow
def test_gemma3_shape_reads_explicit_head_sizes() -> None:
    shape = shape_of("gemma3")
    assert (shape.block_count, shape.head_count, shape.head_count_kv) == (18, 4, 1)
    assert (shape.key_length, shape.value_length) == (256, 256)  # not 640 / 4
    assert shape.vocab_size == 262144


# --- estimate against llama.cpp -------------------------------------------------------------------


class Reported(NamedTuple):
    """Buffer sizes in MiB from llama.cpp's load log (CPU, num_batch 512)."""

    num_ctx: int
    num_parallel: int
    model: float
    repack: float  # CPU_REPACK: weights copied into an interleaved layout for the CPU kernels
    kv: float
    compute: float
    output: float

    def total(self, *, repack: bool) -> int:
        mib = self.model + self.kv + self.compute + self.output + (self.repack if repack else 0)
        return int(mib * MIB)


LLAMA_CPP = {
    "smollm2": Reported(4096, 2, model=92.10, repack=0, kv=180.00, compute=98.25, output=0.38),
    "qwen2.5-coder": Reported(8192, 1, model=462.96, repack=28.05, kv=96.00, compute=300.25, output=0.58),
    "gemma3": Reported(8192, 1, model=235.16, repack=12.66, kv=24.00 + 120.00, compute=514.50, output=1.00),
}
MODELS = [
    "smollm2",
    pytest.param("qwen2.5-coder", marks=pytest.mark.slow),
    pytest.param("gemma3", marks=pytest.mark.slow),
]


def estimate_like_llama_cpp(key: str, **overrides: object) -> Estimate:
    reported = LLAMA_CPP[key]
    options: dict = {"num_ctx": reported.num_ctx, "num_parallel": reported.num_parallel, "num_batch": 512}
    return estimate(shape_of(key), **(options | overrides))


@pytest.mark.parametrize("key", MODELS)
def test_weights_within_one_percent(key: str) -> None:
    assert estimate_like_llama_cpp(key).weights == pytest.approx(LLAMA_CPP[key].model * MIB, rel=0.01)


@pytest.mark.parametrize("key", MODELS)
def test_kv_cache_exact(key: str) -> None:
    assert estimate_like_llama_cpp(key).kv == LLAMA_CPP[key].kv * MIB


@pytest.mark.parametrize("key", MODELS)
@pytest.mark.parametrize("flash_attention", [None, True, False])
def test_compute_errs_high_by_at_most_15_percent(key: str, flash_attention: bool | None) -> None:
    compute = estimate_like_llama_cpp(key, flash_attention=flash_attention).compute
    reported = LLAMA_CPP[key].compute * MIB
    assert reported <= compute <= reported * 1.15


@pytest.mark.parametrize("key", MODELS)
def test_total_never_below_llama_cpps(key: str) -> None:
    assert estimate_like_llama_cpp(key).total >= LLAMA_CPP[key].total(repack=False)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("qwen2.5-coder", marks=pytest.mark.slow),
        pytest.param("gemma3", marks=pytest.mark.slow),
    ],
)
def test_total_covers_repacked_weights_on_the_cpu(key: str) -> None:
    assert estimate_like_llama_cpp(key).total >= LLAMA_CPP[key].total(repack=True)


# --- estimate: how it scales ----------------------------------------------------------------------


def smollm2(**options: object) -> Estimate:
    defaults: dict = {"num_ctx": 4096, "num_parallel": 1, "num_batch": 512}
    return estimate(shape_of("smollm2"), **(defaults | options))


def test_kv_is_linear_in_context_times_parallel() -> None:
    one = smollm2(num_ctx=1024).kv
    assert one > 0
    assert smollm2(num_ctx=4096).kv == 4 * one
    assert smollm2(num_ctx=2048, num_parallel=2).kv == 4 * one
    assert smollm2(num_ctx=1024, num_parallel=4).kv == 4 * one


@pytest.mark.parametrize(("cache_type", "ratio"), [("f16", 1), ("q8_0", 34 / 64), ("q4_0", 18 / 64)])
def test_quantized_kv_cache(cache_type: str, ratio: float) -> None:
    f16 = smollm2().kv
    assert smollm2(kv_cache_type=cache_type).kv == f16 * ratio
    assert smollm2(kv_cache_type=cache_type).weights == smollm2().weights


def test_weights_do_not_depend_on_the_context() -> None:
    assert smollm2(num_ctx=512).weights == smollm2(num_ctx=32768, num_parallel=4).weights


def test_compute_grows_with_the_batch() -> None:
    assert smollm2(num_batch=2048).compute > smollm2(num_batch=512).compute > smollm2(num_batch=128).compute


def test_embedding_models_need_no_logits() -> None:
    assert smollm2(embedding=True, flash_attention=True).compute < smollm2(flash_attention=True).compute


def test_recurrent_models_have_no_kv_cache() -> None:
    shape = dataclasses.replace(SHAPE, recurrent=True)
    need = estimate(shape, num_ctx=8192, num_parallel=4, num_batch=512)
    assert need.kv == 0 and need.total == need.weights + need.compute


def test_total_is_the_sum() -> None:
    need = smollm2(num_parallel=2)
    assert need.total == need.weights + need.kv + need.compute
    assert need.kv == need.kv_per_layer * 30


# --- place: a synthetic model ---------------------------------------------------------------------
# Ten 100 MiB layers, 10 MiB of KV each, a 50 MiB head and a 100 MiB compute buffer: 1250 MiB in all.
# A GPU holds all of it (1150 MiB of layers and head) with 1150 + 457 + 100 = 1707 MiB free.

SHAPE = ModelShape(
    block_count=10,
    embedding_length=1024,
    head_count=8,
    head_count_kv=8,
    key_length=128,
    value_length=128,
    vocab_size=32000,
    layer_bytes=(100 * MIB,) * 10,
    other_bytes=50 * MIB,
)
NEED = Estimate(weights=SHAPE.weights, kv_per_layer=10 * MIB, compute=100 * MIB, shape=SHAPE)
LAYER = 110 * MIB
WHOLE = 1150 * MIB  # what has to fit beside the compute buffer and the GPU minimum
FITS = WHOLE + GPU_MINIMUM_MEMORY + NEED.compute


def gpu(index: int, free: int, *, library: str = "cuda", integrated: bool = False) -> GpuDevice:
    return GpuDevice(
        index=index,
        id=f"{library}-{index}",
        library=library,
        name=f"GPU {index}",
        total_memory=max(free, 24 * GIB),
        free_memory=free,
        integrated=integrated,
    )


def room(device: GpuDevice, overhead: int = 0) -> int:
    return device.free_memory - overhead - GPU_MINIMUM_MEMORY - NEED.compute


def test_totals_of_the_synthetic_model() -> None:
    assert NEED.total == 1250 * MIB
    assert FITS == 1707 * MIB


def assert_on_cpu(placement: Placement) -> None:
    assert placement.layers == 0
    assert placement.vram == 0 and placement.vram_by_gpu == {}
    assert placement.ram == placement.total == NEED.total
    assert placement.gpus == () and placement.tensor_split == ()
    assert placement.main_gpu == 0
    assert not placement.full(SHAPE.block_count)


def test_no_gpus_means_the_cpu() -> None:
    assert_on_cpu(place(NEED, []))


def test_num_gpu_zero_means_the_cpu() -> None:
    assert_on_cpu(place(NEED, [gpu(0, 24 * GIB)], num_gpu=0))


def test_a_gpu_without_room_for_a_layer_means_the_cpu() -> None:
    assert_on_cpu(place(NEED, [gpu(0, GPU_MINIMUM_MEMORY + NEED.compute + LAYER - 1)]))


def test_everything_on_one_big_gpu() -> None:
    placement = place(NEED, [gpu(0, 8 * GIB)])
    assert placement.layers == SHAPE.block_count + 1
    assert placement.full(SHAPE.block_count)
    assert placement.vram == NEED.weights + NEED.kv + NEED.compute
    assert placement.vram_by_gpu == {0: placement.vram}
    assert placement.ram == 0
    assert placement.tensor_split == ()


def test_exactly_enough_room_fits() -> None:
    assert place(NEED, [gpu(0, FITS)]).full(SHAPE.block_count)
    assert not place(NEED, [gpu(0, FITS - 1)]).full(SHAPE.block_count)


def test_one_gpu_that_fits_is_preferred_to_a_split() -> None:
    placement = place(NEED, [gpu(0, 1536 * MIB), gpu(1, 8 * GIB)])
    assert [g.index for g in placement.gpus] == [1]
    assert placement.main_gpu == 1
    assert placement.tensor_split == ()
    assert placement.vram_by_gpu == {1: NEED.total}


def test_of_gpus_that_fit_the_one_with_most_room_wins() -> None:
    assert place(NEED, [gpu(0, 4 * GIB), gpu(1, 8 * GIB), gpu(2, 6 * GIB)]).main_gpu == 1
    assert place(NEED, [gpu(0, 4 * GIB), gpu(1, 4 * GIB)]).main_gpu == 0  # a tie: the lower index


def test_spread_uses_every_gpu_in_proportion_to_free_memory() -> None:
    gpus = [gpu(0, 4 * GIB), gpu(1, 8 * GIB)]
    placement = place(NEED, gpus, spread=True)
    assert [g.index for g in placement.gpus] == [0, 1]
    assert placement.layers == SHAPE.block_count + 1
    # 11 layers in proportion 3539 : 7635 MiB of room is 3.48 : 7.52, so 3 : 8 by largest remainder.
    assert placement.tensor_split == (3.0, 8.0)
    assert set(placement.vram_by_gpu) == {0, 1}
    assert placement.vram_by_gpu[1] > placement.vram_by_gpu[0]
    for device in gpus:
        assert placement.vram_by_gpu[device.index] <= device.free_memory
    assert placement.total == NEED.total + NEED.compute  # each GPU has its own compute buffer
    assert placement.vram == pytest.approx(placement.total, abs=2)  # integer division of the shares


def test_spread_gives_unused_devices_a_zero_in_the_split() -> None:
    gpus = [gpu(0, 300 * MIB), gpu(1, 8 * GIB), gpu(2, 8 * GIB)]  # GPU 0 has no room at all
    placement = place(NEED, gpus, spread=True)
    assert [g.index for g in placement.gpus] == [1, 2]
    assert len(placement.tensor_split) == 3
    assert placement.tensor_split[0] == 0.0
    assert sum(placement.tensor_split) == SHAPE.block_count + 1
    assert 0 not in placement.vram_by_gpu


def test_a_model_too_big_for_the_gpus_is_partly_offloaded() -> None:
    device = gpu(0, GIB)  # 467 MiB of room: four 110 MiB layers
    placement = place(NEED, [device])
    assert placement.layers == 4
    assert not placement.full(SHAPE.block_count)
    assert placement.vram_by_gpu == {0: 4 * LAYER + NEED.compute}
    assert placement.vram <= device.free_memory
    assert placement.total == NEED.total + NEED.compute  # the CPU keeps a compute buffer for its layers
    assert placement.ram == placement.total - placement.vram


def test_partial_offload_over_two_gpus() -> None:
    gpus = [gpu(0, 1200 * MIB), gpu(1, 1200 * MIB)]  # 643 MiB of room each: neither takes the model alone
    placement = place(NEED, gpus)
    assert [g.index for g in placement.gpus] == [0, 1]
    assert placement.layers == 10  # 643 MiB of room each: 5 whole 110 MiB layers apiece
    assert placement.tensor_split == (5.0, 5.0)
    for device in gpus:
        assert placement.vram_by_gpu[device.index] <= device.free_memory


def test_all_layers_but_not_the_head() -> None:
    placement = place(NEED, [gpu(0, FITS - 1)])
    assert placement.layers == SHAPE.block_count  # 1100 MiB of layers fit, the 50 MiB head does not
    assert not placement.full(SHAPE.block_count)
    assert placement.vram == 10 * LAYER + NEED.compute


def test_no_gpu_gets_more_layers_than_its_room() -> None:
    gpus = [gpu(0, 300 * MIB + FITS - WHOLE), gpu(1, 800 * MIB + FITS - WHOLE)]  # 300 and 800 MiB of room
    placement = place(NEED, gpus)
    assert placement.layers == 9  # whole layers: 2 in the 300 MiB, 7 in the 800 MiB
    for device, layers in zip(placement.gpus, placement.tensor_split, strict=True):
        assert layers * LAYER <= room(device), f"GPU {device.index}: {layers:g} layers in {room(device) // MIB} MiB"


def test_explicit_num_gpu_is_obeyed_beyond_memory() -> None:
    device = gpu(0, 600 * MIB)  # room for nothing
    placement = place(NEED, [device], num_gpu=5)
    assert placement.layers == 5
    assert placement.gpus == (device,)
    assert placement.vram == 5 * LAYER + NEED.compute > device.free_memory


def test_explicit_num_gpu_is_obeyed_below_what_fits() -> None:
    placement = place(NEED, [gpu(0, 24 * GIB)], num_gpu=3)
    assert placement.layers == 3
    assert placement.vram == 3 * LAYER + NEED.compute


def test_explicit_num_gpu_above_the_layer_count_means_all() -> None:
    placement = place(NEED, [gpu(0, 24 * GIB)], num_gpu=999)
    assert placement.layers == SHAPE.block_count + 1
    assert placement.vram == NEED.total


def test_main_gpu_is_honoured_when_the_model_fits_on_it() -> None:
    gpus = [gpu(0, 8 * GIB), gpu(1, 4 * GIB)]
    assert place(NEED, gpus).main_gpu == 0
    placement = place(NEED, gpus, main_gpu=1)
    assert placement.main_gpu == 1
    assert placement.vram_by_gpu == {1: NEED.total}


def test_main_gpu_without_room_or_absent_is_passed_over() -> None:
    gpus = [gpu(0, 8 * GIB), gpu(1, GIB)]
    assert place(NEED, gpus, main_gpu=1).main_gpu == 0
    assert place(NEED, gpus, main_gpu=7).main_gpu == 0


def test_max_vram_caps_a_gpu() -> None:
    placement = place(NEED, [gpu(0, 24 * GIB)], max_vram=GIB)
    assert placement.layers == 4  # as if it had 1 GiB free
    assert placement.vram <= GIB


def test_overhead_reduces_layers() -> None:
    device = gpu(0, 2 * GIB)
    assert place(NEED, [device]).layers == SHAPE.block_count + 1
    assert place(NEED, [device], overhead=GIB).layers == 4
    assert place(NEED, [device], overhead=2 * GIB).layers == 0


def test_discrete_gpu_beats_a_roomier_integrated_one() -> None:
    gpus = [gpu(0, 16 * GIB, library="rocm", integrated=True), gpu(1, 4 * GIB, library="rocm")]
    assert [g.index for g in place(NEED, gpus).gpus] == [1]


def test_integrated_gpu_is_used_when_only_it_fits() -> None:
    gpus = [gpu(0, 16 * GIB, library="rocm", integrated=True), gpu(1, GIB, library="rocm")]
    assert [g.index for g in place(NEED, gpus).gpus] == [0]


@pytest.mark.parametrize("spread", [False, True])
def test_gpus_of_different_libraries_are_not_mixed(spread: bool) -> None:
    gpus = [gpu(0, 1200 * MIB), gpu(1, 1200 * MIB), gpu(0, 1500 * MIB, library="rocm")]
    placement = place(NEED, gpus, spread=spread)
    assert [(g.library, g.index) for g in placement.gpus] == [("cuda", 0), ("cuda", 1)]  # 1286 MiB > 943 MiB


def test_the_library_with_most_room_is_chosen() -> None:
    gpus = [gpu(0, 1000 * MIB), gpu(0, 1600 * MIB, library="rocm")]
    placement = place(NEED, gpus)
    assert [g.library for g in placement.gpus] == ["rocm"]
    assert not placement.full(SHAPE.block_count)


# --- Placement ------------------------------------------------------------------------------------


def test_placement_properties() -> None:
    placement = Placement(
        total=1000, vram_by_gpu={1: 300, 0: 200}, layers=11, gpus=(gpu(1, GIB), gpu(0, GIB)), tensor_split=(4.0, 7.0)
    )
    assert placement.vram == 500
    assert placement.ram == 500
    assert placement.main_gpu == 1  # the first GPU listed
    assert placement.full(10)
    assert not placement.full(11)
    assert Placement(total=10).main_gpu == 0 and Placement(total=10).ram == 10
