"""Prefill and decode speed with each CPU weight-buffer configuration the runner can load a model in.

    python -m bench.buffer_types [smollm2 qwen2.5-coder gemma3 | path/to/model.gguf ...]

Configurations, each measured in a fresh process (the extra buffer list is process-wide, and one of
them may crash), in interleaved rounds, medians with min-max:

- ``repack``: pollama's default, llama.cpp's extra buffer types minus AMX (the generic CPU repack).
- ``none``: no extra buffer types (``use_extra_bufts`` off), the runner's first fallback.
- ``amx``: llama.cpp's own default, AMX included; only where the CPU has AMX, and reported as a crash
  where it crashes (it does on Sapphire Rapids, llama.cpp#20824).

Prefill is one batch of PREFILL tokens; decode is DECODE single-token steps after it; both through
the runner's own loader (``pollama.runner.model.load``), same threads.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import llama_cpp

from pollama.runner import ggml
from pollama.runner.model import LoadOptions, load
from pollama.runtime.devices import physical_cores
from tools.test_models import ensure_model

PREFILL = 512
DECODE = 64
ROUNDS = 3
CONFIGS = ("repack", "none", "amx")
TEXT = "The lighthouse keeper wrote in his log every evening about the sea, the ships and the weather. "


def measure(path: Path, config: str) -> dict[str, float]:
    """One round in this process: load, prefill, decode."""
    if config == "amx":  # llama.cpp's default list; load() would drop AMX, so stop it from doing so
        import pollama.runner.model as runner_model

        runner_model.UNSAFE_BUFFER_TYPES = ()
    started = time.perf_counter()
    options = LoadOptions(
        path=path, num_ctx=2048, num_parallel=1, num_batch=PREFILL, num_thread=physical_cores(), num_gpu=0
    )
    model = load(dataclasses.replace(options, extra_buffers=config != "none"))
    loaded = time.perf_counter()
    prompt = (model.tokenize(TEXT * 64))[:PREFILL]
    llama_cpp.llama_memory_clear(model.memory, True)
    tokens = (llama_cpp.llama_token * len(prompt))(*prompt)
    start = time.perf_counter()
    llama_cpp.llama_decode(model.context, llama_cpp.llama_batch_get_one(tokens, len(prompt)))
    llama_cpp.llama_synchronize(model.context)
    middle = time.perf_counter()
    one = (llama_cpp.llama_token * 1)(prompt[-1])
    for _ in range(DECODE):
        llama_cpp.llama_decode(model.context, llama_cpp.llama_batch_get_one(one, 1))
    llama_cpp.llama_synchronize(model.context)
    end = time.perf_counter()
    model.close()
    return {"load_s": loaded - started, "prefill": len(prompt) / (middle - start), "decode": DECODE / (end - middle)}


def run_round(name: str, config: str) -> dict[str, float] | str:
    """A round in a subprocess: its figures, or how it died."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.buffer_types", "--worker", name, config], capture_output=True, text=True
    )
    if result.returncode != 0:
        return f"crashed ({result.returncode})" if result.returncode < 0 else f"failed: {result.stderr[-300:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} ({min(values):.1f}-{max(values):.1f})"


def main(names: list[str]) -> None:
    llama_cpp.llama_backend_init()
    available = ggml.extra_buffer_types()
    configs = [config for config in CONFIGS if config != "amx" or "AMX" in available]
    print(f"llama-cpp-python {llama_cpp.__version__}; extra buffer types: {available}; {physical_cores()} threads")
    print(f"{ggml.system_info()}\n")
    for name in names:
        results: dict[str, list[dict[str, float] | str]] = {config: [] for config in configs}
        for _round in range(ROUNDS):
            for config in configs:
                results[config].append(run_round(name, config))
        print(f"{name}: prefill {PREFILL} tokens, decode {DECODE} tokens, tok/s median (min-max) of {ROUNDS}")
        baseline = None
        for config in configs:
            figures = [round_ for round_ in results[config] if isinstance(round_, dict)]
            failures = [round_ for round_ in results[config] if isinstance(round_, str)]
            if not figures:
                print(f"  {config:7} {failures[0]}")
                continue
            prefill, decode = [f["prefill"] for f in figures], [f["decode"] for f in figures]
            load_s = statistics.median(f["load_s"] for f in figures)
            ratio = ""
            if baseline is not None:
                ratio = (
                    f"  vs repack: prefill {statistics.median(prefill) / baseline[0]:.2f}x, "
                    f"decode {statistics.median(decode) / baseline[1]:.2f}x"
                )
            else:
                baseline = (statistics.median(prefill), statistics.median(decode))
            print(f"  {config:7} prefill {spread(prefill)}  decode {spread(decode)}  load {load_s:.2f}s{ratio}")
        print()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        given = Path(sys.argv[2])
        print(json.dumps(measure(given if given.is_file() else ensure_model(sys.argv[2]), sys.argv[3])))
    else:
        main(sys.argv[1:] or ["smollm2", "qwen2.5-coder", "gemma3"])
