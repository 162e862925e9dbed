"""The runner's command handling, in process with the real SmolLM2 GGUF: its output under concurrent
writers, health answered by the command reader, and the operations that tokenize long texts.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pollama.runner import protocol
from pollama.runner.__main__ import Runner
from pollama.runner.messages import CompletionRequest, EmbedRequest, TokenizeRequest
from pollama.runner.model import LoadedModel, LoadOptions, load
from pollama.runner.pieces import PIECE_BYTES
from pollama.runner.slots import truncate_prompt

N_CTX = 256


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Iterator[LoadedModel]:
    loaded = load(LoadOptions(path=smollm2_path, num_ctx=N_CTX, num_parallel=1, num_batch=64, num_thread=1, num_gpu=0))
    yield loaded
    loaded.close()


class SlowSink(io.BytesIO):
    """An output that yields to other threads at every write, as a full pipe would."""

    def write(self, data: Any) -> int:
        time.sleep(0.0005)
        return super().write(data)


def decode(data: bytes) -> list[dict[str, Any]]:
    decoder = protocol.Decoder()
    return [message for line in io.BytesIO(data) if (message := decoder.feed(line)) is not None]


def prose(size: int, seed: int = 5) -> str:
    """About ``size`` bytes of words, each followed by a space: random up to 512 KiB, repeated beyond."""
    rng = random.Random(seed)
    words = ["the", "sea", "was", "calm", "and", "old", "Tom", "sailed", "north", "again", "."]
    block = "".join(rng.choice(words) + " " for _ in range(min(size, 512 << 10) // 4))
    return block * max(1, size // len(block))


def test_messages_from_two_threads_never_interleave(model: LoadedModel) -> None:
    sink = SlowSink()
    runner = Runner(model, sink)
    large = [{"id": f"big{n}", "event": "tokens", "tokens": list(range(n, 300_000 + n))} for n in range(3)]
    small = [{"id": f"h{n}", "event": "health", "active": 0} for n in range(200)]

    def send_all(messages: list[dict[str, Any]]) -> None:
        for message in messages:
            runner.send(message)

    threads = [threading.Thread(target=send_all, args=(batch,)) for batch in (large, small)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = decode(sink.getvalue())
    assert sorted(received, key=lambda m: m["id"]) == sorted(large + small, key=lambda m: m["id"])


def test_health_is_answered_by_the_command_reader_at_once(model: LoadedModel) -> None:
    sink = io.BytesIO()
    runner = Runner(model, sink)
    commands = [
        {"op": "completion", "id": "1", "prompt": "hi"},
        {"op": "health", "id": "2"},
    ]
    source = io.BytesIO(b"".join(line for command in commands for line in protocol.encode(command)) + b"garbage\n")
    runner.read_commands(source)  # nothing serves the inbox: the decode loop could be busy for all we know
    (answer,) = decode(sink.getvalue())
    assert (answer["id"], answer["event"], answer["active"], answer["waiting"]) == ("2", "health", 0, 0)
    assert answer["rss_bytes"] > 0
    assert runner.inbox.get_nowait() == ("1", CompletionRequest("hi"))
    assert runner.inbox.get_nowait() is None  # the malformed line was skipped; then the end of input


def test_a_fragmented_command_is_reassembled(model: LoadedModel) -> None:
    runner = Runner(model, io.BytesIO())
    command = {"op": "tokenize", "id": "1", "content": prose(3 << 20), "add_special": False}
    lines = list(protocol.encode(command))
    assert len(lines) > 1
    runner.read_commands(io.BytesIO(b"".join(lines)))
    assert runner.inbox.get_nowait() == ("1", TokenizeRequest(command["content"]))


def run(runner: Runner, command: dict[str, Any]) -> dict[str, Any]:
    sink = runner.output
    assert isinstance(sink, io.BytesIO)
    sink.seek(0)
    sink.truncate()
    assert runner.handle(command)
    (event,) = decode(sink.getvalue())
    return event


def test_tokenize_returns_every_token_of_a_text_longer_than_a_piece(model: LoadedModel) -> None:
    runner = Runner(model, io.BytesIO())
    block = prose(PIECE_BYTES // 3).rstrip()
    text = block + (" " + block) * 6
    assert len(text.encode()) > 2 * PIECE_BYTES
    event = run(runner, {"op": "tokenize", "id": "1", "content": text})
    # Blocks of less than a piece tokenize whole; a space before a word starts a token, so they add up.
    blocks = model.tokenize(block, add_special=False) + model.tokenize(" " + block, add_special=False) * 6
    assert event["tokens"] == blocks
    assert event["tokens"] == model.tokenize(text, add_special=False)


def test_count_stops_at_its_limit(model: LoadedModel) -> None:
    runner = Runner(model, io.BytesIO())
    short = "The sea was calm."
    assert run(runner, {"op": "count", "id": "1", "content": short, "limit": 100})["count"] == len(
        model.tokenize(short, add_special=False)
    )
    assert run(runner, {"op": "count", "id": "2", "content": prose(8 << 20), "limit": 300})["count"] == 300
    missing = run(runner, {"op": "count", "id": "3", "content": short})["error"]
    assert missing == "a count request needs the field 'limit'"


def test_a_huge_prompt_becomes_a_bounded_job_that_truncates_as_the_whole_would(model: LoadedModel) -> None:
    runner = Runner(model, io.BytesIO())
    text = prose(40 << 20)
    started = time.perf_counter()
    runner.handle({"op": "completion", "id": "1", "prompt": text})
    took = time.perf_counter() - started
    (job,) = runner.engine.waiting
    assert N_CTX <= len(job.tokens) < 100_000
    whole = model.tokenize(text[: 2 * PIECE_BYTES])  # the head, tokenized in one go
    ending = model.tokenize(text[-2 * PIECE_BYTES :])[-N_CTX:]
    assert truncate_prompt(job.tokens, N_CTX, 4, model.add_bos) == truncate_prompt(
        whole[: N_CTX // 2] + ending, N_CTX, 4, model.add_bos
    )
    assert took < 5


def test_an_embedding_of_a_huge_input_keeps_its_first_tokens(model: LoadedModel) -> None:
    runner = Runner(model, io.BytesIO())
    text = prose(20 << 20)
    tokens = runner.embedding_tokens(EmbedRequest(text))
    assert tokens == model.tokenize(text[:PIECE_BYTES])[:N_CTX]
    with pytest.raises(ValueError, match="exceeds the context length"):
        runner.embedding_tokens(EmbedRequest(text, truncate=False))
