"""Quantize on create: source MB/s of ``/api/create`` with ``quantize`` against llama.cpp's quantizer alone.

    python -m bench.quantize [ROUNDS]     # 5 rounds unless told

The source is the F16 all-MiniLM-L6-v2 GGUF of the test models. The baseline is
``llama_model_quantize`` called in this process (what ``llama-quantize`` runs) on the same file, same
threads; pollama's figure is the whole create (the quantizer in its subprocess, the output stored as a
blob, the manifest), timed by the client. Interleaved rounds, medians. The targets are Q8_0 and Q4_K_M.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp
import ollama

from tests.servers import ServerProcess
from tools.test_models import ensure_model

ROUNDS = 5
TARGETS = {"Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}


def direct_s(source: Path, target: Path, ftype: int) -> float:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread = ftype, len(os.sched_getaffinity(0))
    started = time.perf_counter()
    assert llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params) == 0
    return time.perf_counter() - started


def main(rounds: int) -> None:
    source = ensure_model("minilm")
    megabytes = source.stat().st_size / 1e6
    llama_cpp.llama_backend_init()
    with tempfile.TemporaryDirectory() as home:
        server = ServerProcess(Path(home)).start()
        try:
            client = ollama.Client(host=server.url)
            client.create_blob(source)
            digest = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
            for name, ftype in TARGETS.items():
                ours, theirs = [], []
                for index in range(rounds):
                    theirs.append(direct_s(source, Path(home) / "direct.gguf", ftype))
                    started = time.perf_counter()
                    client.create(f"q-{name.lower()}-{index}", files={"m.gguf": digest}, quantize=name)
                    ours.append(time.perf_counter() - started)
                    client.delete(f"q-{name.lower()}-{index}")
                mine, base = statistics.median(ours), statistics.median(theirs)
                print(
                    f"{name}: pollama create {megabytes / mine:6.1f} MB/s ({mine * 1000:.0f} ms), "
                    f"llama_model_quantize alone {megabytes / base:6.1f} MB/s ({base * 1000:.0f} ms), "
                    f"ratio {base / mine:.2f}"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
