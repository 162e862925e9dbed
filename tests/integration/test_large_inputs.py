"""Inputs of tens of megabytes through a real server (SmolLM2, two parallel slots, a 512-token context).

A 40 MB prompt travels to the runner in protocol fragments and only its head and tail are tokenized:
it is answered (cut to fit) or refused as too long, quickly, by the same runner, while another answer
streams beside it. Tokenize returns every token of a text of megabytes; embed and chat cut what they
need from huge inputs without tokenizing them whole.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_inference import COUNTING, MODEL, create_smol, post, server_children, stream_lines
from tests.servers import ServerProcess

OPTIONS = {"num_ctx": 512, "num_predict": 2, "temperature": 0}  # the same context everywhere: one runner
PROMPT_TOO_LONG = (
    "the prompt is longer than the context length currently available to the model; shorten the prompt, "
    "adjust the context length in settings, or use a model with a longer context length"
)
MB = 1_000_000

pytestmark = pytest.mark.timeout(120)


def prose(size: int, seed: int = 3) -> str:
    """About ``size`` bytes of words separated by single spaces: random up to 512 KB, repeated beyond."""
    rng = random.Random(seed)
    words = ["the", "harbour", "was", "quiet", "and", "old", "Tom", "mended", "his", "nets", "again", "."]
    block = " ".join(rng.choice(words) for _ in range(min(size, 512_000) // 5))
    return " ".join([block] * max(1, size // len(block)))


HUGE = prose(40 * MB)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("large"), extra_env={"OLLAMA_NUM_PARALLEL": "2"}).start()
    try:
        create_smol(process, smollm2_path)
        yield process
    finally:
        process.stop()


@pytest.fixture
def runner(server: ServerProcess) -> int:
    """The one runner's pid, loaded by a small request; every test checks that it is still the one."""
    assert generate(server, "hi").is_success
    (pid,) = server_children(server)
    return pid


def generate(server: ServerProcess, prompt: str, **fields: Any) -> httpx.Response:
    body = {"model": MODEL, "prompt": prompt, "raw": True, "stream": False, "options": OPTIONS, **fields}
    return post(server, "/api/generate", body)


def peak_resident_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024


def test_a_huge_prompt_is_answered_from_its_head_and_tail(server: ServerProcess, runner: int) -> None:
    started = time.monotonic()
    response = generate(server, HUGE)
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["done"] is True and answer["eval_count"] <= 2
    assert 0 < answer["prompt_eval_count"] < 512
    assert server_children(server) == [runner]
    # The runner never held the prompt's tokens: tens of MB for the command itself, not gigabytes.
    assert peak_resident_bytes(runner) < 1 << 30
    assert took < 30


def test_a_huge_prompt_without_context_shift_is_refused(server: ServerProcess, runner: int) -> None:
    response = generate(server, HUGE, shift=False)
    assert (response.status_code, response.json()) == (400, {"error": PROMPT_TOO_LONG})
    assert server_children(server) == [runner]


def test_an_answer_streaming_beside_a_huge_prompt_is_unaffected(server: ServerProcess, runner: int) -> None:
    lines: list[dict[str, Any]] = []
    body = {"model": MODEL, "prompt": COUNTING, "raw": True, "options": {**OPTIONS, "num_predict": 48}}

    def stream() -> None:
        lines.extend(stream_lines(server, "/api/generate", body, timeout=90))

    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        assert generate(server, HUGE).status_code == 200
    finally:
        streaming.join(timeout=90)
    final = lines[-1]
    assert (final["done"], final["done_reason"], final["eval_count"]) == (True, "length", 48)
    assert "".join(line["response"] for line in lines).startswith(" 9, 10")
    assert server_children(server) == [runner]


def test_tokenize_returns_every_token_of_a_text_of_megabytes(server: ServerProcess, runner: int) -> None:
    block = prose(700_000, seed=5)  # under the runner's piece (1 MiB): tokenized whole, exactly

    def tokens(text: str) -> list[int]:
        response = post(server, "/api/tokenize", {"model": MODEL, "content": text, "options": OPTIONS})
        assert response.status_code == 200, response.text
        return response.json()["tokens"]

    text = block + (" " + block) * 6  # 4.9 MB: cut into pieces, sent back in fragments
    # A space before a word starts a token, so the blocks' tokens add up to the text's.
    assert tokens(text) == tokens(block) + tokens(" " + block) * 6
    assert server_children(server) == [runner]


def test_an_embedding_of_a_huge_input_keeps_what_fits(server: ServerProcess, runner: int) -> None:
    body = {"model": MODEL, "input": HUGE[: 20 * MB], "options": OPTIONS}
    response = post(server, "/api/embed", body)
    assert response.status_code == 200, response.text
    assert 0 < response.json()["prompt_eval_count"] <= 512
    refused = post(server, "/api/embed", {**body, "truncate": False})
    assert refused.status_code == 400
    assert "input length exceeds the context length" in refused.json()["error"]
    assert server_children(server) == [runner]


def test_a_chat_leaves_out_a_huge_old_message_to_fit(server: ServerProcess, runner: int) -> None:
    messages = [
        {"role": "user", "content": HUGE[: 10 * MB]},
        {"role": "assistant", "content": "That is a lot of text."},
        {"role": "user", "content": "Say hi."},
    ]
    body = {"model": MODEL, "messages": messages, "stream": False, "options": OPTIONS}
    response = post(server, "/api/chat", body)
    assert response.status_code == 200, response.text
    assert response.json()["prompt_eval_count"] < 100  # only the last turns: the huge one was counted, then dropped
    only_huge = post(server, "/api/chat", {**body, "messages": messages[:1]})
    assert only_huge.status_code == 200, only_huge.text
    assert 0 < only_huge.json()["prompt_eval_count"] < 512  # the last message stays; the runner cuts it
    assert server_children(server) == [runner]
