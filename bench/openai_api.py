"""What the OpenAI translation costs, and what ``n`` buys, against baselines measured in the same run.

    python -m bench.openai_api

(a) Overhead: the same greedy 64-token chat streamed through ``/api/chat`` (the baseline) and through
    ``/v1/chat/completions`` with the ``openai`` SDK, interleaved five times on SmolLM2: time to the
    first token and tokens/s as seen by the client.
(b) ``n=4`` in one request against four requests one after another, on a server with
    ``OLLAMA_NUM_PARALLEL=4`` (the choices decode side by side) — wall time for four 48-token answers.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import openai

from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tools.test_models import ensure_model

TOKENS = 64
MESSAGES = [{"role": "user", "content": "Tell me a short story about a fox."}]
GREEDY = {"temperature": 0, "seed": 1}


def _native(http: httpx.Client) -> tuple[float, float]:
    body = {"model": "smol", "messages": MESSAGES, "options": {**GREEDY, "num_predict": TOKENS}}
    start = time.perf_counter()
    first, count = 0.0, 0
    with http.stream("POST", "/api/chat", json=body) as response:
        for line in response.iter_lines():
            event = json.loads(line)
            if event["message"].get("content"):
                first = first or time.perf_counter() - start
                count += 1
    return first, count / (time.perf_counter() - start - first)


def _openai(client: openai.OpenAI) -> tuple[float, float]:
    start = time.perf_counter()
    first, count = 0.0, 0
    stream = client.chat.completions.create(
        model="smol",
        messages=MESSAGES,
        max_tokens=TOKENS,
        stream=True,
        temperature=0,
        seed=1,  # type: ignore[arg-type]
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter() - start
            count += 1
    return first, count / (time.perf_counter() - start - first)


def main() -> None:
    gguf = ensure_model("smollm2")
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(Path(scratch) / "server", extra_env={"OLLAMA_NUM_PARALLEL": "4"}).start()
        try:
            install(server, "smol", gguf)
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            http = httpx.Client(base_url=server.url, timeout=120)  # one connection, as the SDK keeps
            _native(http)  # load the model
            native, translated = [], []
            for _ in range(5):
                native.append(_native(http))
                translated.append(_openai(client))
            n_first = statistics.median(first for first, _ in native) * 1000
            o_first = statistics.median(first for first, _ in translated) * 1000
            n_rate = statistics.median(rate for _, rate in native)
            o_rate = statistics.median(rate for _, rate in translated)
            print(f"first token: /api/chat {n_first:.0f} ms, /v1 (SDK) {o_first:.0f} ms ({o_first / n_first:.2f}x)")
            print(f"tokens/s:    /api/chat {n_rate:.1f}, /v1 (SDK) {o_rate:.1f} ({o_rate / n_rate:.2f}x)")

            def timed(run: object) -> float:
                start = time.perf_counter()
                run()  # type: ignore[operator]
                return time.perf_counter() - start

            ask = {"model": "smol", "messages": MESSAGES, "max_tokens": 48, "temperature": 0.8, "seed": 1}
            together = statistics.median(timed(lambda: client.chat.completions.create(**ask, n=4)) for _ in range(3))
            apart = statistics.median(
                timed(lambda: [client.chat.completions.create(**ask) for _ in range(4)]) for _ in range(3)
            )
            print(f"4 answers:   n=4 in one request {together:.2f}s, 4 requests in turn {apart:.2f}s "
                  f"({apart / together:.2f}x faster)")  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    main()
