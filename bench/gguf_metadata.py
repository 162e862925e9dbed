"""GGUF metadata reading: pollama's header reader against the gguf package's GGUFReader.

    python -m bench.gguf_metadata

Prints, per test model, the median time of each reader over a few runs and the speed-up,
measured in the same run on the same files.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from gguf import GGUFReader

from pollama.store.gguf import read_gguf
from tools.test_models import MODELS, ensure_model


def median_seconds(action: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    print(f"{'model':<42} {'GGUFReader':>11} {'pollama':>9} {'verbose':>9} {'speed-up':>9}")
    for key in MODELS:
        path: Path = ensure_model(key)
        baseline = median_seconds(lambda p=path: GGUFReader(p), runs=3)
        ours = median_seconds(lambda p=path: read_gguf(p, max_array_length=5), runs=7)
        verbose = median_seconds(lambda p=path: read_gguf(p), runs=7)
        print(f"{path.name:<42} {baseline:>10.3f}s {ours:>8.3f}s {verbose:>8.3f}s {baseline / ours:>8.0f}x")


if __name__ == "__main__":
    main()
