"""Tokens per second of a model split over ggml-rpc-server (docs/rpc.md) against the same model whole.

    python -m bench.rpc [smollm2|qwen2.5-coder ...]

Needs a llama.cpp built with the RPC backend (``POLLAMA_TEST_RPC_BUILD``, as tests/integration/test_rpc.py).
One ``ggml-rpc-server`` on loopback and three ``pollama serve``, all on that build (``LLAMA_CPP_LIB_PATH``):
the model whole on the local CPU; every layer on the RPC server; half the layers there (``num_gpu``),
half here. Runs interleaved, greedy, medians of the runs: prompt tok/s from the server's counters of a
one-token request, generated tok/s as a streaming client sees them.
On loopback the two processes share one machine's cores, so this measures the RPC overhead (a round
trip per graph, activations copied through TCP), not what a second machine's cores would add.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pollama.runner import rpc
from tests.integration.test_rpc import BUILD
from tests.integration.test_scheduler import install
from tests.servers import ServerProcess, free_port
from tools.test_models import ensure_model

RUNS = 3
PREDICT = 128
PROMPT = "Write a long story about a lighthouse keeper and the sea. " * 8


def prefill_rate(server: ServerProcess, options: dict[str, Any], salt: int) -> float:
    """Prompt tok/s of one request for a single token. The RPC backend computes asynchronously:
    llama_decode returns once the graph is sent, and the wait for it falls into the first sample,
    which the server counts as generation; both counters together are the prompt's time."""
    result = _request(server, options, salt, predict=1)
    seconds = (result["prompt_eval_duration"] + result["eval_duration"]) / 1e9
    return float(result["prompt_eval_count"]) / seconds


def decode_rate(server: ServerProcess, options: dict[str, Any], salt: int) -> float:
    """Generated tok/s as a streaming client sees it, between the first token and the last."""
    body = _body(options, salt, PREDICT)
    first = last = 0.0
    count = 0
    with httpx.stream("POST", f"{server.url}/api/generate", json={**body, "stream": True}, timeout=600) as reply:
        for line in reply.iter_lines():
            if '"done":true' in line:
                count = int(json.loads(line)["eval_count"])
                break
            last = time.perf_counter()
            first = first or last
    return (count - 1) / (last - first)


def _body(options: dict[str, Any], salt: int, predict: int) -> dict[str, Any]:
    return {
        "model": "m",
        "prompt": f"{salt}. {PROMPT}",  # a fresh prefix: no prompt cache
        "options": {"temperature": 0, "seed": 1, "num_predict": predict, "num_ctx": 2048, **options},
    }


def _request(server: ServerProcess, options: dict[str, Any], salt: int, *, predict: int) -> dict[str, Any]:
    reply = httpx.post(
        f"{server.url}/api/generate", json={**_body(options, salt, predict), "stream": False}, timeout=600
    )
    reply.raise_for_status()
    result: dict[str, Any] = reply.json()
    return result


def main(keys: list[str]) -> None:
    threads = os.cpu_count() or 1
    for key in keys or ["smollm2"]:
        path = ensure_model(key)
        with tempfile.TemporaryDirectory() as root:
            port = free_port()
            log = Path(root) / "rpc-server.log"
            with log.open("wb") as output:
                rpc_server = subprocess.Popen(
                    [str(BUILD / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(port), "-t", str(threads)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            endpoint = f"127.0.0.1:{port}"
            servers: dict[str, ServerProcess] = {}
            try:
                for _ in range(100):
                    try:
                        rpc.greet(endpoint, timeout=2)
                        break
                    except rpc.RpcError:
                        time.sleep(0.1)
                lib = {"LLAMA_CPP_LIB_PATH": str(BUILD)}
                servers["whole"] = ServerProcess(Path(root) / "whole", extra_env=lib).start()
                servers["split"] = ServerProcess(
                    Path(root) / "split", extra_env={**lib, "POLLAMA_RPC_SERVERS": endpoint}
                ).start()
                for server in servers.values():
                    install(server, "m", path)
                blocks = _block_count(servers["whole"])
                # num_gpu explicit in both split cases: -1 would reuse whichever runner is loaded.
                cases = {
                    "whole, local CPU": (servers["whole"], {}),
                    "all layers on RPC": (servers["split"], {"num_gpu": blocks + 1}),
                    "half on RPC (num_gpu)": (servers["split"], {"num_gpu": (blocks + 1) // 2}),
                }
                rates: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
                for run in range(RUNS):
                    for number, (name, (server, options)) in enumerate(cases.items()):
                        salt = 2 * (run * len(cases) + number)
                        rates[name].append(
                            (prefill_rate(server, options, salt), decode_rate(server, options, salt + 1))
                        )
                print(f"{key}: {threads} threads on each side, median of {RUNS} runs, {PREDICT} tokens generated")
                for name, values in rates.items():
                    prefill = statistics.median(value[0] for value in values)
                    decode = statistics.median(value[1] for value in values)
                    print(f"  {name:<24} prefill {prefill:8.1f} tok/s   decode {decode:7.1f} tok/s")
            finally:
                for server in servers.values():
                    server.stop()
                rpc_server.terminate()
                rpc_server.wait()


def _block_count(server: ServerProcess) -> int:
    info = httpx.post(f"{server.url}/api/show", json={"model": "m"}, timeout=60).json()["model_info"]
    return int(next(value for name, value in info.items() if name.endswith(".block_count")))


if __name__ == "__main__":
    main(sys.argv[1:])
