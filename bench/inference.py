"""Inference speed through the HTTP API against llama-cpp-python driving the same model in-process.

    python -m bench.inference [smollm2|qwen2.5-coder ...]

(a) Single stream: prefill and decode tok/s of a bare in-process decode loop (llama.cpp's low-level
    API, same thread count, greedy, no server) and the same through /api/generate, runs interleaved;
    the ratio is HTTP / in-process. Server rates are its own eval counters; "client" decode divides the
    tokens by the wall time the client saw between the first and the last token.
(b) Aggregate decode tok/s with 1, 2 and 4 concurrent streams, as a ratio to one: first a runner
    subprocess driven over its pipe (no HTTP), then streaming HTTP clients against a server with
    OLLAMA_NUM_PARALLEL=4. The prompts are chat-templated for ChatML (SmolLM2, Qwen).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import llama_cpp
import ollama

from pollama.runner.model import drop_unsafe_buffer_types
from pollama.runtime.devices import physical_cores
from pollama.runtime.process import RunnerConfig, RunnerProcess
from tests.servers import ServerProcess
from tools.test_models import ensure_model

PREFILL_TOKENS = 384
DECODE_TOKENS = 128
RUNS = 3
CONTEXT = 4096
PROMPT = "Write a long story about a lighthouse keeper and the sea. "


class BareLoop:
    """A bare llama.cpp prefill + greedy decode loop in this process: the ceiling the server is measured against."""

    def __init__(self, path: Path, threads: int):
        llama_cpp.llama_backend_init()
        drop_unsafe_buffer_types()  # the same weight buffers as the runner (AMX crashes, see runner.model)
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = CONTEXT, 512, 512
        params.n_threads = params.n_threads_batch = threads
        self.context = llama_cpp.llama_init_from_model(self.model, params)
        self.memory = llama_cpp.llama_get_memory(self.context)
        self.sampler = llama_cpp.llama_sampler_init_greedy()

    def measure(self, prompt: list[int]) -> tuple[float, float]:
        """(prefill tok/s, decode tok/s) of one run."""
        llama_cpp.llama_memory_clear(self.memory, True)
        tokens = (llama_cpp.llama_token * len(prompt))(*prompt)
        start = time.perf_counter()
        llama_cpp.llama_decode(self.context, llama_cpp.llama_batch_get_one(tokens, len(prompt)))
        token = llama_cpp.llama_sampler_sample(self.sampler, self.context, -1)
        middle = time.perf_counter()
        one = (llama_cpp.llama_token * 1)()
        for _ in range(DECODE_TOKENS - 1):
            one[0] = token
            llama_cpp.llama_decode(self.context, llama_cpp.llama_batch_get_one(one, 1))
            token = llama_cpp.llama_sampler_sample(self.sampler, self.context, -1)
        end = time.perf_counter()
        return len(prompt) / (middle - start), (DECODE_TOKENS - 1) / (end - middle)

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.sampler)
        llama_cpp.llama_free(self.context)
        llama_cpp.llama_model_free(self.model)


def _raw_prompt(client: httpx.Client, model: str, salt: int) -> str:
    """A prompt of PREFILL_TOKENS tokens that no earlier request shares a prefix with (no prompt cache)."""
    text = f"{salt}. " + PROMPT * 64
    tokens = client.post("/api/tokenize", json={"model": model, "content": text}).json()["tokens"]
    return client.post("/api/detokenize", json={"model": model, "tokens": tokens[:PREFILL_TOKENS]}).json()["content"]


TOPICS = ("a lighthouse keeper", "a dragon who bakes bread", "a lost robot", "two rival chess players")


async def stream_generate(client: httpx.AsyncClient, model: str, prompt: str, *, raw: bool = True) -> dict[str, float]:
    """One streaming generate; the final event plus when the first and last text lines arrived.

    Lines before the last are only timed, not decoded: the client should cost the 2-core machine
    as little as possible, or it slows the server it measures.
    """
    body = {
        "model": model,
        "prompt": prompt,
        "raw": raw,
        "options": {"temperature": 0, "num_predict": DECODE_TOKENS, "num_ctx": CONTEXT},
    }
    first = last = 0.0
    final = ""
    async with client.stream("POST", "/api/generate", json=body) as reply:
        async for line in reply.aiter_lines():
            if '"done":true' in line:
                final = line
                break
            last = time.perf_counter()
            first = first or last
    return {**json.loads(final), "first": first, "last": last}


def run_clients(url: str, model: str, prompts: list[str], *, raw: bool) -> tuple[list[dict[str, float]], float]:
    """Run one streaming generate per prompt, all at once; their final events and the wall time."""

    async def run() -> list[dict[str, float]]:
        async with httpx.AsyncClient(base_url=url, timeout=600) as client:
            return await asyncio.gather(*(stream_generate(client, model, prompt, raw=raw) for prompt in prompts))

    start = time.perf_counter()
    results = asyncio.run(run())
    return results, time.perf_counter() - start


def single_stream(server: ServerProcess, model: str, baseline: BareLoop) -> dict[str, tuple[float, float]]:
    """Prefill and decode tok/s, in-process against HTTP, runs interleaved so both see the same machine.

    Each entry is (in-process, http); "seen" is the decode rate the client observed between its
    first and last token lines, the rest are the server's own counters.
    """
    figures: dict[str, list[tuple[float, float]]] = {"prefill": [], "decode": [], "seen": []}
    with httpx.Client(base_url=server.url, timeout=600) as client:
        for run in range(RUNS + 2):
            prompt = _raw_prompt(client, model, run)
            tokens = client.post("/api/tokenize", json={"model": model, "content": prompt}).json()["tokens"]
            base_prefill, base_decode = baseline.measure(tokens)
            (event,), _elapsed = run_clients(server.url, model, [prompt], raw=True)
            if run == 0:
                continue  # warm-up
            figures["prefill"].append((base_prefill, event["prompt_eval_count"] / event["prompt_eval_duration"] * 1e9))
            figures["decode"].append((base_decode, event["eval_count"] / event["eval_duration"] * 1e9))
            figures["seen"].append((base_decode, (event["eval_count"] - 1) / (event["last"] - event["first"])))
    return {
        name: (statistics.median(b for b, _ in pairs), statistics.median(h for _, h in pairs))
        for name, pairs in figures.items()
    }


def aggregate(server: ServerProcess, model: str, clients: int) -> float:
    """Generated tokens per second of wall time with ``clients`` concurrent streams (chat-templated
    story prompts, which the models answer at length, so every stream runs to ``DECODE_TOKENS``)."""
    prompts = [f"Write a long story about {topic}." for topic in TOPICS[:clients]]
    results, elapsed = run_clients(server.url, model, prompts, raw=False)
    counts = [int(event["eval_count"]) for event in results]
    if min(counts) < DECODE_TOKENS:
        print(f"  (note: a stream ended early: {counts} tokens)")
    return sum(counts) / elapsed


def runner_aggregate(path: Path, threads: int) -> dict[int, float]:
    """Aggregate decode tok/s of a runner subprocess driven over its pipe, without HTTP in between:
    what continuous batching gives before the server and clients take their share of the cores."""

    async def run() -> dict[int, float]:
        runner = RunnerProcess(RunnerConfig(model_path=path, num_ctx=CONTEXT, num_parallel=4, num_thread=threads))
        await runner.start(120)

        async def one(topic: str) -> int:
            prompt = f"<|im_start|>user\nWrite a long story about {topic}.<|im_end|>\n<|im_start|>assistant\n"
            options = {"temperature": 0, "num_predict": DECODE_TOKENS}
            async for event in runner.completion(prompt, options):
                if event["event"] == "done":
                    return int(event["eval_count"])
            return 0

        rates: dict[int, list[float]] = {1: [], 2: [], 4: []}
        try:
            await one(TOPICS[0])  # warm-up
            for _ in range(RUNS):
                for clients in rates:
                    start = time.perf_counter()
                    counts = await asyncio.gather(*(one(topic) for topic in TOPICS[:clients]))
                    rates[clients].append(sum(counts) / (time.perf_counter() - start))
        finally:
            await runner.close()
        return {clients: statistics.median(values) for clients, values in rates.items()}

    return asyncio.run(run())


def bench(key: str) -> None:
    path = ensure_model(key)
    threads = physical_cores()
    print(f"\n== {key} ({path.name}), {threads} threads")
    direct = runner_aggregate(path, threads)
    baseline = BareLoop(path, threads)
    with tempfile.TemporaryDirectory() as root:
        server = ServerProcess(Path(root), extra_env={"OLLAMA_NUM_PARALLEL": "4"}).start()
        try:
            api = ollama.Client(host=server.url)
            api.create(model="bench", files={path.name: api.create_blob(path)})
            for name, (base, http) in single_stream(server, "bench", baseline).items():
                print(f"{name:8} in-process {base:8.1f} tok/s   http {http:8.1f} tok/s   ratio {http / base:.3f}")
            aggregate(server, "bench", 4)  # warm-up: the first parallel batches allocate buffers
            rates = {n: statistics.median(aggregate(server, "bench", n) for _ in range(RUNS)) for n in (1, 2, 4)}
            single = rates[1]
            for clients, rate in direct.items():
                print(f"runner alone {clients} stream(s) {rate:8.1f} tok/s   x{rate / direct[1]:.2f} of one stream")
            for clients, rate in rates.items():
                print(f"aggregate {clients} client(s) {rate:8.1f} tok/s   x{rate / single:.2f} of one client")
        finally:
            server.stop()
            baseline.close()


def main(keys: list[str]) -> None:
    for key in keys or ["smollm2", "qwen2.5-coder"]:
        bench(key)


if __name__ == "__main__":
    main(sys.argv[1:])
