"""Inference speed through the HTTP API against llama-cpp-python driving the same model in-process.

    python -m bench.inference [smollm2|qwen2.5-coder ...]

(a) Single stream: prefill and decode tok/s of a bare in-process decode loop (llama.cpp's low-level
    API, same thread count, greedy, no server), then the same through /api/generate; the ratio
    is HTTP / in-process. Server rates are its own eval counters; "client" decode divides the
    tokens by the wall time the client saw between the first and the last token.
(b) Aggregate decode tok/s with 1, 2 and 4 concurrent streaming clients against a server with
    OLLAMA_NUM_PARALLEL=4, as a ratio to one client.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import llama_cpp
import ollama

from pollama.runtime.devices import physical_cores
from tests.servers import ServerProcess
from tools.test_models import ensure_model

PREFILL_TOKENS = 384
DECODE_TOKENS = 128
RUNS = 3
CONTEXT = 4096
PROMPT = "Write a long story about a lighthouse keeper and the sea. "


def in_process(path: Path, threads: int) -> tuple[float, float]:
    """(prefill tok/s, decode tok/s) of a bare llama.cpp loop: the ceiling the server is measured against."""
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = CONTEXT, 512, 512
    params.n_threads = params.n_threads_batch = threads
    context = llama_cpp.llama_init_from_model(model, params)
    vocab = llama_cpp.llama_model_get_vocab(model)
    memory = llama_cpp.llama_get_memory(context)
    text = (PROMPT * 64).encode()
    buffer = (llama_cpp.llama_token * len(text))()
    count = llama_cpp.llama_tokenize(vocab, text, len(text), buffer, len(text), True, False)
    prompt = list(buffer[: min(count, PREFILL_TOKENS)])
    sampler = llama_cpp.llama_sampler_init_greedy()
    prefill, decode = [], []
    for _ in range(RUNS + 1):  # the first run warms up
        llama_cpp.llama_memory_clear(memory, True)
        tokens = (llama_cpp.llama_token * len(prompt))(*prompt)
        start = time.perf_counter()
        llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(tokens, len(prompt)))
        token = llama_cpp.llama_sampler_sample(sampler, context, -1)
        middle = time.perf_counter()
        one = (llama_cpp.llama_token * 1)()
        for _ in range(DECODE_TOKENS - 1):
            one[0] = token
            llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(one, 1))
            token = llama_cpp.llama_sampler_sample(sampler, context, -1)
        end = time.perf_counter()
        prefill.append(len(prompt) / (middle - start))
        decode.append((DECODE_TOKENS - 1) / (end - middle))
    llama_cpp.llama_sampler_free(sampler)
    llama_cpp.llama_free(context)
    llama_cpp.llama_model_free(model)
    return statistics.median(prefill[1:]), statistics.median(decode[1:])


def _raw_prompt(client: httpx.Client, model: str, salt: int) -> str:
    """A prompt of PREFILL_TOKENS tokens that no earlier request shares a prefix with (no prompt cache)."""
    text = f"{salt}. " + PROMPT * 64
    tokens = client.post("/api/tokenize", json={"model": model, "content": text}).json()["tokens"]
    return client.post("/api/detokenize", json={"model": model, "tokens": tokens[:PREFILL_TOKENS]}).json()["content"]


TOPICS = ("a lighthouse keeper", "a dragon who bakes bread", "a lost robot", "two rival chess players")


def stream_generate(url: str, model: str, prompt: str, results: list[dict[str, float]], *, raw: bool = True) -> None:
    body = {
        "model": model,
        "prompt": prompt,
        "raw": raw,
        "options": {"temperature": 0, "num_predict": DECODE_TOKENS, "num_ctx": CONTEXT},
    }
    first = last = 0.0
    with httpx.Client(base_url=url, timeout=600) as client, client.stream("POST", "/api/generate", json=body) as reply:
        for line in reply.iter_lines():
            now = time.perf_counter()
            event = json.loads(line)
            if not event["done"]:
                first = first or now
                last = now
            else:
                results.append({**event, "first": first, "last": last})


def over_http(server: ServerProcess, model: str) -> tuple[float, float, float]:
    """(prefill tok/s, decode tok/s by the server's counters, decode tok/s as the client saw it)."""
    with httpx.Client(base_url=server.url, timeout=600) as client:
        prefill, decode, seen = [], [], []
        for run in range(RUNS + 1):
            results: list[dict[str, float]] = []
            stream_generate(server.url, model, _raw_prompt(client, model, run), results)
            event = results[0]
            if run == 0:
                continue  # warm-up
            prefill.append(event["prompt_eval_count"] / event["prompt_eval_duration"] * 1e9)
            decode.append(event["eval_count"] / event["eval_duration"] * 1e9)
            seen.append((event["eval_count"] - 1) / (event["last"] - event["first"]))
    return statistics.median(prefill), statistics.median(decode), statistics.median(seen)


def aggregate(server: ServerProcess, model: str, clients: int) -> float:
    """Generated tokens per second of wall time with ``clients`` concurrent streams (chat-templated
    story prompts, which the models answer at length, so every stream runs to ``DECODE_TOKENS``)."""
    prompts = [f"Write a long story about {topic}." for topic in TOPICS[:clients]]
    results: list[dict[str, float]] = []
    threads = [
        threading.Thread(target=stream_generate, args=(server.url, model, prompt, results), kwargs={"raw": False})
        for prompt in prompts
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    counts = [int(event["eval_count"]) for event in results]
    if min(counts) < DECODE_TOKENS:
        print(f"  (note: a stream ended early: {counts} tokens)")
    return sum(counts) / elapsed


def bench(key: str) -> None:
    path = ensure_model(key)
    threads = physical_cores()
    print(f"\n== {key} ({path.name}), {threads} threads")
    base_prefill, base_decode = in_process(path, threads)
    with tempfile.TemporaryDirectory() as root:
        server = ServerProcess(Path(root), extra_env={"OLLAMA_NUM_PARALLEL": "4"}).start()
        try:
            api = ollama.Client(host=server.url)
            api.create(model="bench", files={path.name: api.create_blob(path)})
            prefill, decode, seen = over_http(server, "bench")
            for label, baseline, rate in (("prefill", base_prefill, prefill), ("decode ", base_decode, decode)):
                print(
                    f"{label}  in-process {baseline:8.1f} tok/s   http {rate:8.1f} tok/s   ratio {rate / baseline:.3f}"
                )
            print(f"decode   as the client saw it            {seen:8.1f} tok/s   ratio {seen / base_decode:.3f}")
            aggregate(server, "bench", 4)  # warm-up: the first parallel batches allocate buffers
            single = aggregate(server, "bench", 1)
            for clients in (1, 2, 4):
                rate = single if clients == 1 else aggregate(server, "bench", clients)
                print(f"aggregate {clients} client(s) {rate:8.1f} tok/s   x{rate / single:.2f} of one client")
        finally:
            server.stop()


def main(keys: list[str]) -> None:
    for key in keys or ["smollm2", "qwen2.5-coder"]:
        bench(key)


if __name__ == "__main__":
    main(sys.argv[1:])
