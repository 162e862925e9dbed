"""Decode speed with a JSON-schema ``format`` against the same decode unconstrained, in one run.

    python -m bench.structured [smollm2 qwen2.5-coder]

(a) pollama: a runner subprocess decoding a chat prompt that asks for a long JSON list, with the
    schema's llguidance constraint and without it (same prompt, greedy, same token budget); the
    rates are the runner's own eval counters. Ratio = constrained / unconstrained.
(b) For comparison, what Ollama does: llama.cpp's GBNF grammar sampler (llama-cpp-python's
    json_schema_to_gbnf of the same schema) in a bare in-process decode loop, against the same loop
    without it. Runs are interleaved, as this VM's speed drifts.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import llama_cpp
from llama_cpp import llama_grammar

from pollama.runner.messages import CompletionRequest, Control, DoneEvent, Sampling
from pollama.runner.model import drop_unsafe_buffer_types
from pollama.runtime.devices import physical_cores
from pollama.runtime.process import RunnerConfig, RunnerProcess
from pollama.service.structured import grammar_for_format
from tools.test_models import ensure_model

TOKENS = 160
RUNS = 3
SCHEMA = {
    "type": "object",
    "properties": {
        "products": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "price": {"type": "number"}, "stock": {"type": "integer"}},
                "required": ["name", "price", "stock"],
            },
            "minItems": 30,
        }
    },
    "required": ["products"],
}
PROMPT = (
    "<|im_start|>user\nList thirty products of a hardware store as JSON with name, price and stock."
    "<|im_end|>\n<|im_start|>assistant\n"
)


async def runner_rates(path: Path, threads: int) -> tuple[list[float], list[float]]:
    runner = RunnerProcess(RunnerConfig(model_path=path, num_ctx=2048, num_thread=threads, num_gpu=0))
    await runner.start(180)
    grammar = grammar_for_format(SCHEMA)

    async def rate(options: dict[str, object]) -> float:
        sampling = Sampling.from_options({"temperature": 0, "num_predict": TOKENS})
        request = CompletionRequest(PROMPT, sampling, Control.from_options(options))
        async for event in runner.completion(request):
            if isinstance(event, DoneEvent):
                return event.eval_count / event.eval_duration * 1e9
        return 0.0

    free, constrained = [], []
    try:
        await rate({"grammar": grammar})  # warm-up, and llguidance's one-off tokenizer build
        for _ in range(RUNS):
            free.append(await rate({}))
            constrained.append(await rate({"grammar": grammar}))
    finally:
        await runner.close()
    return free, constrained


class BareLoop:
    """llama.cpp decoding in this process, with or without its GBNF grammar sampler (Ollama's way)."""

    def __init__(self, path: Path, threads: int):
        llama_cpp.llama_backend_init()
        drop_unsafe_buffer_types()  # the same weight buffers as the runner (AMX crashes, see runner.model)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        context = llama_cpp.llama_context_default_params()
        context.n_ctx, context.n_batch, context.n_ubatch = 2048, 512, 512
        context.n_threads = context.n_threads_batch = threads
        self.context = llama_cpp.llama_init_from_model(self.model, context)
        self.memory = llama_cpp.llama_get_memory(self.context)
        self.gbnf = llama_grammar.json_schema_to_gbnf(json.dumps(SCHEMA)).encode()

    def rate(self, constrained: bool) -> float:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if constrained:
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_grammar(self.vocab, self.gbnf, b"root")
            )
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        llama_cpp.llama_memory_clear(self.memory, True)
        text = PROMPT.encode()
        prompt = (llama_cpp.llama_token * (len(text) + 8))()
        count = llama_cpp.llama_tokenize(self.vocab, text, len(text), prompt, len(text) + 8, True, True)
        llama_cpp.llama_decode(self.context, llama_cpp.llama_batch_get_one(prompt, count))
        one = (llama_cpp.llama_token * 1)()
        start, produced = time.perf_counter(), 0
        for _ in range(TOKENS):
            token = llama_cpp.llama_sampler_sample(chain, self.context, -1)
            if llama_cpp.llama_vocab_is_eog(self.vocab, token):
                break
            one[0] = token
            llama_cpp.llama_decode(self.context, llama_cpp.llama_batch_get_one(one, 1))
            produced += 1
        elapsed = time.perf_counter() - start
        llama_cpp.llama_sampler_free(chain)
        return produced / elapsed

    def close(self) -> None:
        llama_cpp.llama_free(self.context)
        llama_cpp.llama_model_free(self.model)


def bench(key: str) -> None:
    path = ensure_model(key)
    threads = physical_cores()
    print(f"\n== {key} ({path.name}), {threads} threads, {TOKENS} tokens")
    free, constrained = asyncio.run(runner_rates(path, threads))
    ours = statistics.median(constrained) / statistics.median(free)
    print(
        f"pollama (llguidance)   unconstrained {statistics.median(free):6.1f} tok/s   "
        f"schema {statistics.median(constrained):6.1f} tok/s   ratio {ours:.3f}"
    )
    loop = BareLoop(path, threads)
    try:
        loop.rate(True)  # warm-up
        pairs = [(loop.rate(False), loop.rate(True)) for _ in range(RUNS)]
    finally:
        loop.close()
    plain, gbnf = statistics.median(p for p, _ in pairs), statistics.median(g for _, g in pairs)
    print(
        f"llama.cpp GBNF sampler unconstrained {plain:6.1f} tok/s   schema {gbnf:6.1f} tok/s   ratio {gbnf / plain:.3f}"
    )


def main() -> None:
    for key in sys.argv[1:] or ["smollm2", "qwen2.5-coder"]:
        bench(key)


if __name__ == "__main__":
    main()
