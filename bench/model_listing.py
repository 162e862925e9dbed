"""Listing and showing models on a store with many models, through a real server.

    python -m bench.model_listing [number-of-models]

Creates the models from SmolLM2 (each with its own system prompt, so each has its own
manifest), then times /api/tags (first call, which reads every GGUF header, and later calls,
served from the cache) and /api/show. The baseline is the same server's GET /api/version,
which measures the HTTP round trip alone.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import ollama

from tests.servers import ServerProcess
from tools.test_models import ensure_model


def timed(client: httpx.Client, method: str, path: str, runs: int, **kwargs: object) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        client.request(method, path, **kwargs).raise_for_status()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        server = ServerProcess(Path(root)).start()
        try:
            api = ollama.Client(host=server.url)
            digest = api.create_blob(ensure_model("smollm2"))
            for index in range(count):
                api.create(f"model-{index}", files={"m.gguf": digest}, system=f"prompt {index}")
            server.restart()  # empty caches: the first listing reads every header
            with httpx.Client(base_url=server.url, timeout=120) as http:
                first = timed(http, "GET", "/api/tags", runs=1)
                warm = timed(http, "GET", "/api/tags", runs=20)
                show = timed(http, "POST", "/api/show", runs=20, json={"model": "model-0"})
                verbose = timed(http, "POST", "/api/show", runs=5, json={"model": "model-0", "verbose": True})
                baseline = timed(http, "GET", "/api/version", runs=50)
        finally:
            server.stop()
    print(f"models in store:            {count}")
    print(f"GET /api/version (baseline) {baseline * 1000:8.1f} ms")
    print(f"GET /api/tags, first call   {first * 1000:8.1f} ms  ({first / baseline:.0f}x baseline)")
    print(f"GET /api/tags, cached       {warm * 1000:8.1f} ms  ({warm / baseline:.0f}x baseline)")
    print(f"POST /api/show              {show * 1000:8.1f} ms  ({show / baseline:.0f}x baseline)")
    print(f"POST /api/show verbose      {verbose * 1000:8.1f} ms  ({verbose / baseline:.0f}x baseline)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
