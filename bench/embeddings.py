"""Embedding throughput (inputs/s) of all-MiniLM-L6-v2 through pollama, llama-server and sentence-transformers.

    python -m bench.embeddings [--inputs 256] [--rounds 5] [--st-python /path/to/python]

The same inputs (short sentences of 8 to 20 words), the same thread count, in interleaved rounds; the
figure is the median inputs/s, the spread (min-max) after it, and the ratio is pollama's batched request
against each line, from the same run:

* ``pollama, one request``: every input in one ``/api/embed`` (what clients send for a list);
* ``pollama, one per request``: one ``/api/embed`` per input, in turn (a client that loops);
* ``llama-server``: ``/v1/embeddings`` with every input, ``--embedding --pooling mean`` and as many slots as
  pollama packs sequences (skipped where ``../shared/tools/build-llama-anchors.sh`` has not built it);
* ``sentence-transformers``: ``encode`` (batch size 32) on the original safetensors checkpoint, run by a
  Python that has it and torch (``--st-python``; skipped without one).

Each line also reports the smallest cosine between its vectors and pollama's (the same model: near 1).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np

from bench.anchors import anchor, llama_server
from pollama.runner.model import EMBEDDING_SEQUENCES
from pollama.runtime.devices import physical_cores
from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tools.test_models import cache_dir, ensure_model

VOCABULARY = (
    "the a quick lazy small large bright dark old new river mountain city forest engineer teacher model server "
    "runs builds reads writes finds keeps sends answers quietly slowly today every under over beside with data "
    "network memory question story garden window morning evening light sound"
)
WORDS = VOCABULARY.split()

ST_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(int(sys.argv[2]))
    model = SentenceTransformer(sys.argv[1], device="cpu")
    for line in sys.stdin:
        inputs = json.loads(line)
        began = time.perf_counter()
        vectors = model.encode(inputs, batch_size=32, normalize_embeddings=True)
        print(json.dumps({"seconds": time.perf_counter() - began, "vectors": vectors.tolist()}), flush=True)
    """
)

Run = Callable[[list[str]], list[list[float]]]


def sentences(count: int) -> list[str]:
    chooser = random.Random(7)
    return [
        " ".join(chooser.choice(WORDS) for _ in range(chooser.randint(8, 20))).capitalize() + "." for _ in range(count)
    ]


def pollama_batched(http: httpx.Client) -> Run:
    def run(inputs: list[str]) -> list[list[float]]:
        reply = http.post("/api/embed", json={"model": "minilm", "input": inputs})
        reply.raise_for_status()
        return list(reply.json()["embeddings"])

    return run


def pollama_each(http: httpx.Client) -> Run:
    def run(inputs: list[str]) -> list[list[float]]:
        vectors = []
        for text in inputs:
            reply = http.post("/api/embed", json={"model": "minilm", "input": text})
            reply.raise_for_status()
            vectors.append(reply.json()["embeddings"][0])
        return vectors

    return run


def openai_style(http: httpx.Client) -> Run:
    def run(inputs: list[str]) -> list[list[float]]:
        reply = http.post("/v1/embeddings", json={"model": "minilm", "input": inputs})
        reply.raise_for_status()
        return [item["embedding"] for item in sorted(reply.json()["data"], key=lambda item: item["index"])]

    return run


@contextmanager
def sentence_transformers(python: str, threads: int) -> Iterator[Run]:
    checkpoint = cache_dir() / "all-MiniLM-L6-v2.F16.checkpoint"
    process = subprocess.Popen(
        [python, "-c", ST_SCRIPT, str(checkpoint), str(threads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def run(inputs: list[str]) -> list[list[float]]:
        stdin.write(json.dumps(inputs) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError("sentence-transformers exited")
        return list(json.loads(line)["vectors"])

    try:
        yield run
    finally:
        stdin.close()
        process.wait(timeout=30)


def min_cosine(vectors: list[list[float]], reference: list[list[float]]) -> float:
    a, b = np.asarray(vectors), np.asarray(reference)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--st-python", default="", help="a Python with sentence-transformers and torch")
    args = parser.parse_args()
    threads = physical_cores()
    inputs = sentences(args.inputs)
    model = ensure_model("minilm")
    print(f"all-MiniLM-L6-v2 F16, {len(inputs)} inputs, {threads} threads, median of {args.rounds} rounds")
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        server = ServerProcess(root / "pollama").start()
        stack.callback(server.stop)
        install(server, "minilm", model)
        http = stack.enter_context(httpx.Client(base_url=server.url, timeout=600))
        systems: dict[str, Run] = {
            "pollama, one request": pollama_batched(http),
            "pollama, one per request": pollama_each(http),
        }
        binary = anchor("llama-server")
        if binary is None:
            print("llama-server: not built (../shared/tools/build-llama-anchors.sh); skipped")
        else:
            slots = str(EMBEDDING_SEQUENCES)
            arguments = ["--embedding", "--pooling", "mean", "-t", str(threads), "-np", slots,
                         "-c", str(512 * EMBEDDING_SEQUENCES), "-b", "512", "-ub", "512", "--no-webui"]  # fmt: skip
            llama = stack.enter_context(llama_server(binary, model, arguments, root / "llama-server.log"))
            print(f"llama-server: {' '.join(arguments)}")
            systems["llama-server"] = openai_style(stack.enter_context(httpx.Client(base_url=llama.url, timeout=600)))
        if args.st_python:
            systems["sentence-transformers"] = stack.enter_context(sentence_transformers(args.st_python, threads))
        else:
            print("sentence-transformers: no --st-python; skipped")
        report(systems, inputs, args.rounds)


def report(systems: dict[str, Run], inputs: list[str], rounds: int) -> None:
    names = list(systems)
    reference = systems[names[0]](inputs)  # also warms every system up
    agreement = {name: min_cosine(systems[name](inputs), reference) for name in names}
    rates: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            began = time.perf_counter()
            systems[name](inputs)
            rates[name].append(len(inputs) / (time.perf_counter() - began))
    ours = statistics.median(rates[names[0]])
    print(f"\n{'system':<26} {'inputs/s':>22} {'pollama ÷ this':>15} {'min cosine':>11}")
    for name in names:
        rate = statistics.median(rates[name])
        spread = f"({min(rates[name]):.0f}-{max(rates[name]):.0f})"
        print(f"{name:<26} {rate:8.1f} {spread:>13} {ours / rate:14.2f}x {agreement[name]:11.5f}")


if __name__ == "__main__":
    main()
