"""pollama against llama-server on the same GGUF, same threads, slots and context: the bar Ollama sets.

    python -m bench.versus_llama_server [smollm2 qwen2.5-coder] [--rounds 3]

Since v0.33 Ollama drives llama.cpp's llama-server per model, so llama-server, built from the llama.cpp
that the pinned llama-cpp-python vendors (``../shared/tools/build-llama-anchors.sh``, see bench.anchors),
is what pollama is measured against. Both get the model's GGUF, ``THREADS`` threads, 4 slots of
``CONTEXT`` tokens each and a 512-token batch; both are sent the same raw text (no chat template) with
greedy sampling and a prompt that runs to the token limit. In interleaved rounds (the order alternates),
medians with the spread (min-max) after them, ratios pollama / llama-server from the same run:

* single-stream decode tok/s (128 tokens) and prefill tok/s (a 512-token prompt, new each time so that
  no cache helps), from each server's own counters;
* aggregate tok/s with 1, 2, 4 and 8 concurrent clients (each streams two 64-token answers; tokens over
  wall time), and the mean time to the first token with 8;
* CPU per generated token over the concurrency runs: all of pollama (server and runner processes) and
  all of llama-server, and pollama's server process alone (HTTP, JSON, scheduling: what is not llama.cpp).

On a CPU with AMX llama-server runs with ``--no-repack`` (its AMX buffers crash, see runner.model); pollama
drops only AMX and keeps the generic repack, which for these models' quantizations does not change speed
(README, bench.buffer_types).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.anchors import llama_server, required_anchor
from pollama.runtime.devices import physical_cores
from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tools.test_models import ensure_model

THREADS = min(physical_cores(), 8)
SLOTS = 4
CONTEXT = 2048
BATCH = 512
DECODE_TOKENS = 128
LOAD_TOKENS = 64
CLIENTS = (1, 2, 4, 8)
STORY = "The lighthouse keeper counted the ships that passed, one by one, and wrote each name in his log. "
COUNTING = "Count from {start} to 100000, one number per line, and never stop:\n{start}\n"
TICK = 1 / os.sysconf("SC_CLK_TCK")


@dataclass
class Answer:
    first: float  # seconds to the first token
    tokens: int
    prompt_tokens: int
    prompt_rate: float  # the server's own prefill tok/s
    decode_rate: float  # the server's own decode tok/s


@dataclass
class Server:
    """One side: how to ask it for a streamed completion, and the processes whose CPU counts."""

    name: str
    url: str
    pid: int
    parse: Callable[[list[dict[str, object]]], tuple[int, int, float, float]]
    body: Callable[[str, int], dict[str, object]]
    path: str
    figures: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.figures.setdefault(key, []).append(value)


def pollama_side(server: ServerProcess) -> Server:
    def body(prompt: str, tokens: int) -> dict[str, object]:
        options = {"temperature": 0, "num_predict": tokens, "num_ctx": CONTEXT, "num_thread": THREADS}
        return {"model": "bench", "prompt": prompt, "raw": True, "stream": True, "options": options}

    def parse(lines: list[dict[str, object]]) -> tuple[int, int, float, float]:
        done = lines[-1]
        prompt, evaluated = int(done["prompt_eval_count"]), int(done["eval_count"])  # type: ignore[call-overload]
        prompt_ns, eval_ns = int(done["prompt_eval_duration"]), int(done["eval_duration"])  # type: ignore[call-overload]
        return evaluated, prompt, prompt / prompt_ns * 1e9, evaluated / eval_ns * 1e9

    assert server.process is not None
    return Server("pollama", server.url, server.process.pid, parse, body, "/api/generate")


def llama_server_side(url: str, pid: int) -> Server:
    def body(prompt: str, tokens: int) -> dict[str, object]:
        return {"prompt": prompt, "n_predict": tokens, "temperature": 0, "stream": True, "cache_prompt": True}

    def parse(lines: list[dict[str, object]]) -> tuple[int, int, float, float]:
        timings = lines[-1]["timings"]
        assert isinstance(timings, dict)
        return (int(timings["predicted_n"]), int(timings["prompt_n"]), float(timings["prompt_per_second"]),
                float(timings["predicted_per_second"]))  # fmt: skip

    return Server("llama-server", url, pid, parse, body, "/completion")


async def complete(http: httpx.AsyncClient, side: Server, prompt: str, tokens: int) -> Answer:
    began = time.perf_counter()
    first = 0.0
    lines: list[dict[str, object]] = []
    async with http.stream("POST", side.url + side.path, json=side.body(prompt, tokens)) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            line = line.removeprefix("data: ").strip()
            if not line:
                continue
            event = json.loads(line)
            if not first and (event.get("response") or event.get("content")):
                first = time.perf_counter() - began
            lines.append(event)
    generated, prompt_tokens, prompt_rate, decode_rate = side.parse(lines)
    return Answer(first, generated, prompt_tokens, prompt_rate, decode_rate)


def tree_ticks(pid: int) -> tuple[int, int]:
    """(CPU ticks of ``pid`` alone, of ``pid`` and every process below it)."""
    own = total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += ticks
        if current == pid:
            own = ticks
    return own, total


async def concurrent(http: httpx.AsyncClient, side: Server, clients: int, salt: int) -> list[Answer]:
    """``clients`` clients at once, each streaming two answers in turn."""

    async def client(index: int) -> list[Answer]:
        starts = (salt * 1000 + index * 10 + turn for turn in range(2))
        return [await complete(http, side, COUNTING.format(start=start), LOAD_TOKENS) for start in starts]

    return [answer for answers in await asyncio.gather(*(client(i) for i in range(clients))) for answer in answers]


async def one_round(sides: list[Server], salt: int) -> None:
    # A connection per request: a kept-alive one that a server closes while idle fails the next request.
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for side in sides:
            decode = await complete(http, side, COUNTING.format(start=salt), DECODE_TOKENS)
            side.add("decode tok/s", decode.decode_rate)
            long_prompt = f"{salt} {side.name}. " + STORY * 30  # a new prompt every time: nothing cached
            prefill = await complete(http, side, long_prompt, 1)
            side.add("prefill tok/s", prefill.prompt_rate)
            side.add("prefill prompt tokens", prefill.prompt_tokens)
            generated = 0
            own_before, total_before = tree_ticks(side.pid)
            for clients in CLIENTS:
                began = time.perf_counter()
                answers = await concurrent(http, side, clients, salt)
                wall = time.perf_counter() - began
                tokens = sum(answer.tokens for answer in answers)
                generated += tokens
                side.add(f"{clients} clients tok/s", tokens / wall)
                if clients == CLIENTS[-1]:
                    side.add(f"{clients} clients TTFT s", statistics.mean(answer.first for answer in answers))
            own_after, total_after = tree_ticks(side.pid)
            side.add("CPU ms/token, all", (total_after - total_before) * TICK * 1000 / generated)
            if side.name == "pollama":
                side.add("CPU ms/token, server process", (own_after - own_before) * TICK * 1000 / generated)


def bench(key: str, rounds: int, binary: Path) -> None:
    path = ensure_model(key)
    print(f"\n== {key} ({path.name}): {THREADS} threads, {SLOTS} slots x {CONTEXT} tokens, batch {BATCH}")
    with tempfile.TemporaryDirectory(prefix="bench-vs-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        server = ServerProcess(root / "pollama", {"OLLAMA_NUM_PARALLEL": str(SLOTS)}).start()
        stack.callback(server.stop)
        install(server, "bench", path)
        arguments = ["-t", str(THREADS), "-np", str(SLOTS), "-c", str(CONTEXT * SLOTS), "-b", str(BATCH),
                     "-ub", str(BATCH), "--no-webui"]  # fmt: skip
        if has_amx():
            arguments.append("--no-repack")
        llama = stack.enter_context(llama_server(binary, path, arguments, root / "llama-server.log"))
        print(f"llama-server {' '.join(arguments)}")
        sides = [pollama_side(server), llama_server_side(llama.url, llama.pid)]
        asyncio.run(one_round(sides, 0))  # warm up: loads, first allocations
        for side in sides:
            side.figures.clear()
        for index in range(rounds):
            asyncio.run(one_round(sides if index % 2 == 0 else sides[::-1], index + 1))
        report(sides)


def has_amx() -> bool:
    with open("/proc/cpuinfo") as cpuinfo:
        return "amx_int8" in cpuinfo.read()


def report(sides: list[Server]) -> None:
    ours, theirs = sides
    print(f"{'':<30} {'pollama':>22} {'llama-server':>22} {'ratio':>7}")
    for key in ours.figures:
        if key not in theirs.figures:
            values = ours.figures[key]
            print(f"{key:<30} {statistics.median(values):10.2f} ({min(values):.2f}-{max(values):.2f})")
            continue
        a, b = ours.figures[key], theirs.figures[key]
        spread_a, spread_b = f"({min(a):.1f}-{max(a):.1f})", f"({min(b):.1f}-{max(b):.1f})"
        ratio = statistics.median(a) / statistics.median(b)
        print(f"{key:<30} {statistics.median(a):8.2f} {spread_a:>13} {statistics.median(b):8.2f} {spread_b:>13}"
              f" {ratio:6.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["smollm2", "qwen2.5-coder"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = required_anchor("llama-server")
    for key in args.models:
        bench(key, args.rounds, binary)


if __name__ == "__main__":
    main()
