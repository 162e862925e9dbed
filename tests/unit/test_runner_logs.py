"""Buffer sizes read from llama.cpp's load log: the figures /api/ps reports."""

from __future__ import annotations

import pytest

from pollama.runner.logs import BufferLog, is_gpu_buffer, parse_buffer_line

MIB = 1 << 20
DEBUG, INFO, WARN, ERROR, CONT = 1, 2, 3, 4, 5  # ggml_log_level


def mib(value: float) -> int:
    return int(value * MIB)


# --- parse_buffer_line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("load_tensors:   CPU_Mapped model buffer size =    92.10 MiB\n", ("CPU_Mapped", "model", mib(92.10))),
        ("load_tensors:   CPU_REPACK model buffer size =    28.05 MiB\n", ("CPU_REPACK", "model", mib(28.05))),
        ("llama_kv_cache:        CPU KV buffer size =   180.00 MiB\n", ("CPU", "KV", 180 * MIB)),
        ("sched_reserve:        CPU compute buffer size =    98.25 MiB\n", ("CPU", "compute", mib(98.25))),
        ("llama_context:        CPU  output buffer size =     0.38 MiB\n", ("CPU", "output", mib(0.38))),
        ("load_tensors:        CUDA0 model buffer size =  1918.35 MiB\n", ("CUDA0", "model", mib(1918.35))),
        ("CUDA_Host compute buffer size = 268.05 MiB", ("CUDA_Host", "compute", mib(268.05))),
        ("llama_memory_recurrent:        CPU RS buffer size =    16.50 MiB\n", ("CPU", "RS", mib(16.5))),
        ("llama_kv_cache:      ROCm1 KV buffer size =  2048.00 MiB", ("ROCm1", "KV", 2048 * MIB)),
    ],
)
def test_buffer_lines(line: str, expected: tuple[str, str, int]) -> None:
    assert parse_buffer_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "~llama_context:        CPU compute buffer size is 98.2520 MiB, matches expectation of 98.2520 MiB\n",
        "print_info: file size   = 98.72 MiB (5.74 BPW)\n",
        "llama_kv_cache: size =  180.00 MiB (  4096 cells,  30 layers,  2/2 seqs), K (f16):   90.00 MiB\n",
        "load_tensors: offloaded 25/25 layers to GPU\n",
        "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 1918.35 MiB on device 0: cudaMalloc failed\n",
        "",
        ".......",
    ],
)
def test_other_lines(line: str) -> None:
    assert parse_buffer_line(line) is None


# --- is_gpu_buffer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "on_gpu"),
    [
        ("CPU", False),
        ("CPU_Mapped", False),
        ("CPU_REPACK", False),
        ("BLAS", False),
        ("CUDA_Host", False),  # pinned system memory
        ("ROCm_Host", False),
        ("CUDA0", True),
        ("CUDA1", True),
        ("ROCm1", True),
        ("MTL0", True),
        ("MTL0_Mapped", True),  # Apple's unified memory, mapped for the GPU
        ("Vulkan0", True),
    ],
)
def test_is_gpu_buffer(backend: str, on_gpu: bool) -> None:
    assert is_gpu_buffer(backend) is on_gpu


# --- BufferLog ------------------------------------------------------------------------------------


def feed(log: BufferLog, *lines: str, level: int = INFO) -> None:
    for line in lines:
        log._on_log(level, line.encode(), None)


CPU_LOAD = [
    "load_tensors:   CPU_Mapped model buffer size =    92.10 MiB\n",
    "llama_context:        CPU  output buffer size =     0.38 MiB\n",
    "llama_kv_cache:        CPU KV buffer size =   180.00 MiB\n",
    "sched_reserve:        CPU compute buffer size =    98.25 MiB\n",
]


def test_cpu_load() -> None:
    log = BufferLog()
    feed(log, *CPU_LOAD)
    assert log.buffers == {
        ("CPU_Mapped", "model"): mib(92.10),
        ("CPU", "output"): mib(0.38),
        ("CPU", "KV"): 180 * MIB,
        ("CPU", "compute"): mib(98.25),
    }
    assert log.sizes() == (mib(92.10) + mib(0.38) + 180 * MIB + mib(98.25), 0)


def test_kv_parts_of_one_backend_add_up() -> None:
    log = BufferLog()
    feed(log, "llama_kv_cache:        CPU KV buffer size =    24.00 MiB\n")  # the sliding-window layers
    feed(log, "llama_kv_cache:        CPU KV buffer size =   120.00 MiB\n")  # the others
    assert log.buffers == {("CPU", "KV"): 144 * MIB}


def test_repeated_compute_lines_replace() -> None:
    log = BufferLog()
    feed(log, "sched_reserve:        CPU compute buffer size =   300.00 MiB\n")
    feed(log, "sched_reserve:        CPU compute buffer size =    98.25 MiB\n")
    assert log.buffers == {("CPU", "compute"): mib(98.25)}


def test_the_closing_summary_is_not_counted_again() -> None:
    log = BufferLog()
    feed(log, *CPU_LOAD)
    before = dict(log.buffers)
    feed(log, "~llama_context:        CPU compute buffer size is 98.2520 MiB, matches expectation of 98.2520 MiB\n")
    assert log.buffers == before


GPU_LOAD = [
    "load_tensors: offloading 24 repeating layers to GPU\n",
    "load_tensors: offloaded 25/25 layers to GPU\n",
    "load_tensors:        CUDA0 model buffer size =   373.00 MiB\n",
    "load_tensors:   CPU_Mapped model buffer size =    89.96 MiB\n",  # token embeddings stay in system memory
    "llama_context:  CUDA_Host  output buffer size =     0.58 MiB\n",
    "llama_kv_cache:      CUDA0 KV buffer size =    96.00 MiB\n",
    "sched_reserve:      CUDA0 compute buffer size =   298.50 MiB\n",
    "sched_reserve:  CUDA_Host compute buffer size =    17.76 MiB\n",
]


def test_fully_offloaded_counts_as_all_vram() -> None:
    log = BufferLog()
    feed(log, *GPU_LOAD)
    assert log.layers == (25, 25)
    vram = 373 * MIB + 96 * MIB + mib(298.50)
    assert log.sizes() == (vram, vram)


def test_partly_offloaded_is_split() -> None:
    log = BufferLog()
    feed(log, *[line.replace("25/25", "10/25") for line in GPU_LOAD])
    assert log.layers == (10, 25)
    total, vram = log.sizes()
    assert vram == 373 * MIB + 96 * MIB + mib(298.50)
    assert total == vram + mib(89.96) + mib(0.58) + mib(17.76)
    assert total > vram


def test_offloaded_layers_without_gpu_buffers_are_all_system_memory() -> None:
    log = BufferLog()
    feed(log, "load_tensors: offloaded 0/31 layers to GPU\n", *CPU_LOAD)
    total, vram = log.sizes()
    assert vram == 0 and total > 0


def test_nothing_logged_is_nothing() -> None:
    assert BufferLog().sizes() == (0, 0)


# --- passing the log on ---------------------------------------------------------------------------


def test_lines_pass_through_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    log = BufferLog()
    feed(log, CPU_LOAD[0])
    log._on_log(WARN, b"llama_model_load: warning\n", None)
    assert capsys.readouterr().err == CPU_LOAD[0] + "llama_model_load: warning\n"


def test_debug_lines_are_quiet_but_still_read(capsys: pytest.CaptureFixture[str]) -> None:
    log = BufferLog()
    log._on_log(DEBUG, b"llama_kv_cache:        CPU KV buffer size =   180.00 MiB\n", None)
    log._on_log(CONT, b"...continued\n", None)  # a continuation keeps the level of the line it continues
    log._on_log(INFO, b"shown\n", None)
    assert capsys.readouterr().err == "shown\n"
    assert log.buffers == {("CPU", "KV"): 180 * MIB}


def test_verbose_shows_debug_lines(capsys: pytest.CaptureFixture[str]) -> None:
    log = BufferLog(verbose=True)
    log._on_log(DEBUG, b"debug\n", None)
    log._on_log(CONT, b"more\n", None)
    assert capsys.readouterr().err == "debug\nmore\n"


def test_continuation_of_a_shown_line_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    log = BufferLog()
    log._on_log(INFO, b"loading", None)
    log._on_log(CONT, b"...\n", None)
    assert capsys.readouterr().err == "loading...\n"


def test_undecodable_bytes_do_not_break_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    BufferLog()._on_log(INFO, b"name: \xff\xfe\n", None)
    assert capsys.readouterr().err == "name: \ufffd\ufffd\n"


def test_errors_are_shown_and_the_last_one_kept(capsys: pytest.CaptureFixture[str]) -> None:
    log = BufferLog()
    log._on_log(ERROR, b"llama_model_load: error loading model: first\n", None)
    log._on_log(INFO, b"llama_adapter_lora_init: loading lora adapter from 'x' ...\n", None)
    log._on_log(ERROR, b"llama_adapter_lora_init_from_file_ptr: failed to apply lora adapter: tensor ", None)
    log._on_log(CONT, b"'blk.0.attn_q.weight' has incorrect shape\n", None)
    assert log.last_error == "failed to apply lora adapter: tensor 'blk.0.attn_q.weight' has incorrect shape\n"
    assert "error loading model: first" in capsys.readouterr().err  # ggml's level 4 is an error, not debug
