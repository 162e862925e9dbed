"""Requests that arrive together with the same long system prompt: evaluated once, copied to the other slots.

    python -m bench.shared_prefix [--clients 4] [--system-words 600] [--rounds 3]

N clients send at once a chat with a long system prompt and a question of their own (SmolLM2, greedy,
16 tokens, ``OLLAMA_NUM_PARALLEL`` = N). The baseline, in the same run and the same server: the same
requests except that each system prompt starts with a different word, so no two share a prefix. Every
round uses system prompts not seen before (nothing is cached from an earlier round). Reported, medians:
the mean time to the first token, the wall time of the burst, and the sum of the answers'
``prompt_eval_duration`` (``prompt_eval_count`` is the whole prompt, cached or not, as in Ollama).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tools.test_models import ensure_model

WORDS = ["the", "keeper", "of", "the", "lighthouse", "wrote", "down", "every", "ship", "that", "passed", "and"]


def system_prompt(words: int, first: str) -> str:
    return first + " " + " ".join(WORDS[index % len(WORDS)] for index in range(words))


async def burst(url: str, systems: list[str]) -> tuple[float, float, float]:
    """(mean seconds to the first token, wall seconds, total prompt-eval seconds) of one burst."""

    async def one(http: httpx.AsyncClient, index: int, system: str) -> tuple[float, float]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": f"Question {index}: who?"}]
        body = {"model": "bench", "messages": messages, "options": {"temperature": 0, "num_predict": 16}}
        began = time.perf_counter()
        first = 0.0
        prompt_seconds = 0.0
        async with http.stream("POST", url + "/api/chat", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not first and '"content":""' not in line:
                    first = time.perf_counter() - began
                if '"done":true' in line:
                    prompt_seconds = httpx.Response(200, content=line).json()["prompt_eval_duration"] / 1e9
        return first, prompt_seconds

    async with httpx.AsyncClient(timeout=600) as http:
        began = time.perf_counter()
        results = await asyncio.gather(*(one(http, index, system) for index, system in enumerate(systems)))
        wall = time.perf_counter() - began
    return statistics.mean(first for first, _ in results), wall, sum(seconds for _, seconds in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--system-words", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prefix-") as tmp:
        server = ServerProcess(Path(tmp), {"OLLAMA_NUM_PARALLEL": str(args.clients)}).start()
        try:
            install(server, "bench", ensure_model("smollm2"))
            asyncio.run(burst(server.url, [system_prompt(8, "warm")] * args.clients))
            figures: dict[str, list[tuple[float, float, float]]] = {"shared": [], "distinct": []}
            for round_index in range(args.rounds):
                for kind in ("shared", "distinct") if round_index % 2 == 0 else ("distinct", "shared"):
                    heads = [f"r{round_index}{kind}{client if kind == 'distinct' else ''}" for client in
                             range(args.clients)]  # fmt: skip
                    systems = [system_prompt(args.system_words, head) for head in heads]
                    figures[kind].append(asyncio.run(burst(server.url, systems)))
        finally:
            server.stop()
    print(f"SmolLM2, {args.clients} clients at once, a {args.system_words}-word system prompt, {args.rounds} rounds")
    print(f"{'':<10} {'mean TTFT s':>12} {'burst s':>9} {'prompt eval s (sum)':>20}")
    for kind, runs in figures.items():
        medians = [statistics.median(run[index] for run in runs) for index in range(3)]
        print(f"{kind:<10} {medians[0]:12.2f} {medians[1]:9.2f} {medians[2]:20.2f}")
    shared, distinct = ([statistics.median(run[index] for run in figures[kind]) for index in range(3)]
                        for kind in ("shared", "distinct"))  # fmt: skip
    ratios = [a / b for a, b in zip(shared, distinct, strict=True)]
    print(f"{'ratio':<10} {ratios[0]:11.2f}x {ratios[1]:8.2f}x {ratios[2]:19.2f}x")


if __name__ == "__main__":
    main()
