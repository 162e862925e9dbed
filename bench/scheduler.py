"""What the scheduler costs and buys, against baselines measured in the same run.

    python -m bench.scheduler

(a) Memory estimate: the scheduler's pre-load estimate for each test model against what llama.cpp
    then reports allocating (``/api/ps`` size), as a ratio (above 1 = errs on the safe side).
(b) Slots: eight clients each asking for 32 tokens at once, against a server with OLLAMA_NUM_PARALLEL=1
    (the baseline: requests wait their turn) and one with 4; aggregate tok/s and the mean time a
    client waited for its first token.
(c) Fast path: the latency of a request to a loaded model (``/api/tokenize``: the scheduler and a runner
    round trip, no decoding) while a second model is loading, against the same request with nothing
    else happening. Ollama serves loaded models during another load too; this checks pollama does
    not queue them behind it. (A decode, on two cores shared with the loading runner, is slowed by
    the CPU contention itself, whoever schedules it.)
(d) Queue limit: with OLLAMA_MAX_QUEUE=2 and one long request running, how long a refused request
    takes to get its 503.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from pollama.config import Settings
from pollama.runtime.memory import runner_estimate
from pollama.runtime.options import resolve
from pollama.store import Store
from pollama.store.models import load_model
from pollama.store.names import parse_model_ref
from tests.servers import ServerProcess
from tools.test_models import ensure_model

CLIENTS = 8
TOKENS = 32
PROMPT = "Tell me a short story about a fox."


def _create(server: ServerProcess, name: str, gguf: Path) -> None:
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    with gguf.open("rb") as handle:
        httpx.post(f"{server.url}/api/blobs/{digest}", content=handle, timeout=120).raise_for_status()
    body = {"model": name, "files": {gguf.name: digest}, "stream": False}
    httpx.post(f"{server.url}/api/create", json=body, timeout=120).raise_for_status()


def _generate(server: ServerProcess, model: str, tokens: int, **extra: object) -> tuple[float, float, int]:
    """(seconds to the first token, seconds in all, tokens) of one streamed request."""
    start = time.perf_counter()
    first = None
    count = 0
    body = {"model": model, "prompt": PROMPT, "options": {"num_predict": tokens, "temperature": 0}, **extra}
    with httpx.stream("POST", f"{server.url}/api/generate", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if first is None:
                first = time.perf_counter() - start
            if '"done":true' in line:
                count = int(line.split('"eval_count":')[1].split(",")[0].rstrip("}"))
    return first or 0.0, time.perf_counter() - start, count


def memory_estimates(root: Path) -> None:
    print("(a) memory: estimate before loading vs llama.cpp's allocation")
    server = ServerProcess(root / "memory").start()
    try:
        store = Store(server.models)
        for key in ("smollm2", "qwen2.5-coder", "gemma3"):
            _create(server, key, ensure_model(key))
            httpx.post(f"{server.url}/api/generate", json={"model": key}, timeout=300).raise_for_status()
            size = next(
                m["size"] for m in httpx.get(f"{server.url}/api/ps").json()["models"] if m["name"] == f"{key}:latest"
            )
            model = load_model(store, parse_model_ref(key))
            need = runner_estimate(model.gguf(), resolve(Settings(), model, None).config)
            estimated, actual = need.total / 2**20, size / 2**20
            print(f"    {key:14} estimate {estimated:6.1f} MiB, llama.cpp {actual:6.1f} MiB ({estimated / actual:.3f})")
    finally:
        server.stop()


def slots(root: Path, gguf: Path) -> None:
    print(f"(b) {CLIENTS} clients x {TOKENS} tokens at once")
    results = {}
    for parallel in (1, 4):
        server = ServerProcess(root / f"slots{parallel}", extra_env={"OLLAMA_NUM_PARALLEL": str(parallel)}).start()
        try:
            _create(server, "smol", gguf)
            _generate(server, "smol", 1)
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
                jobs = [
                    pool.submit(_generate, server, "smol", TOKENS, options={"num_predict": TOKENS, "seed": i})
                    for i in range(CLIENTS)
                ]
                runs = [job.result() for job in jobs]
            elapsed = time.perf_counter() - start
        finally:
            server.stop()
        rate = sum(count for _, _, count in runs) / elapsed
        wait = statistics.mean(first for first, _, _ in runs)
        results[parallel] = rate
        print(f"    OLLAMA_NUM_PARALLEL={parallel}: {rate:6.1f} tok/s aggregate, mean first token after {wait:5.2f} s")
    print(f"    ratio 4 / 1: x{results[4] / results[1]:.2f}")


def fast_path(root: Path, gguf: Path) -> None:
    print("(c) a loaded model's request while another model loads")
    server = ServerProcess(root / "fast").start()

    def tokenize() -> float:
        start = time.perf_counter()
        body = {"model": "smol", "content": PROMPT}
        httpx.post(f"{server.url}/api/tokenize", json=body, timeout=300).raise_for_status()
        return time.perf_counter() - start

    try:
        _create(server, "smol", gguf)
        _create(server, "other", ensure_model("gemma3"))
        _generate(server, "smol", 1)
        quiet = statistics.median(tokenize() for _ in range(10))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            loading = pool.submit(httpx.post, f"{server.url}/api/generate", json={"model": "other"}, timeout=300)
            during = []
            while not loading.done():
                during.append(tokenize())
            load_seconds = loading.result().elapsed.total_seconds()
        worst = max(during)
        print(
            f"    alone {quiet * 1000:.1f} ms; during a {load_seconds:.2f} s load: median "
            f"{statistics.median(during) * 1000:.1f} ms, worst {worst * 1000:.1f} ms of {len(during)} requests"
        )
    finally:
        server.stop()


def refusal(root: Path, gguf: Path) -> None:
    print("(d) refusal beyond OLLAMA_MAX_QUEUE=2")
    server = ServerProcess(root / "queue", extra_env={"OLLAMA_MAX_QUEUE": "2"}).start()
    try:
        _create(server, "smol", gguf)
        _generate(server, "smol", 1)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            running = pool.submit(_generate, server, "smol", 400)
            time.sleep(0.5)
            waiting = [pool.submit(_generate, server, "smol", 1) for _ in range(2)]
            time.sleep(0.3)
            start = time.perf_counter()
            refused = httpx.post(f"{server.url}/api/generate", json={"model": "smol", "prompt": "hi"}, timeout=60)
            seconds = time.perf_counter() - start
            accepted = [future.result()[2] for future in [running, *waiting]]
        print(f"    {refused.status_code} after {seconds * 1000:.1f} ms; accepted requests produced {accepted} tokens")
    finally:
        server.stop()


def main() -> None:
    gguf = ensure_model("smollm2")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        memory_estimates(root)
        slots(root, gguf)
        fast_path(root, gguf)
        refusal(root, gguf)


if __name__ == "__main__":
    main()
