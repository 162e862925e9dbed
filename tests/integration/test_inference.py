"""Running a model through a real server: generate, chat, embeddings, tokenize, and the runner's lifecycle.

One server (``OLLAMA_NUM_PARALLEL=1``) with SmolLM2-135M-Instruct created once as ``smol`` serves most
tests; a second one with two parallel slots serves the concurrency test. Requests go through the
official ``ollama`` client where it can express them, and through httpx where the exact wire shape
matters (absent keys, error bodies, disconnects).
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from tests.ggufs import write_gguf
from tests.integration.conftest import upload
from tests.servers import ServerProcess

MODEL = "smol"
WHY = "Why is the sky blue?"
OPEN_ENDED = "Tell me a story about a cat."
# A raw prompt the model keeps continuing ("9, 10, 11, ...") without ever stopping on its own.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"
GREEDY = {"temperature": 0, "seed": 7}
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")


# --- fixtures and helpers -------------------------------------------------------------------------


def create_smol(server: ServerProcess, gguf: Path) -> None:
    client = ollama.Client(host=server.url)
    assert client.create(MODEL, files={"smol.gguf": upload(client, gguf)}).status == "success"


@pytest.fixture(scope="module")
def smol(server: ServerProcess, smollm2_path: Path) -> str:
    create_smol(server, smollm2_path)
    return MODEL


@pytest.fixture(scope="module")
def parallel_server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("parallel"), extra_env={"OLLAMA_NUM_PARALLEL": "2"}).start()
    try:
        create_smol(process, smollm2_path)
        yield process
    finally:
        process.stop()


def post(server: ServerProcess, path: str, body: dict[str, Any], timeout: float = 60) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=timeout)


def stream_lines(server: ServerProcess, path: str, body: dict[str, Any], timeout: float = 60) -> list[dict]:
    with httpx.stream("POST", server.url + path, json=body, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        return [httpx.Response(200, content=line).json() for line in response.iter_lines() if line]


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert (response.status_code, response.json()) == (status, {"error": message})


def assert_metrics(response: Any) -> None:
    values = response if isinstance(response, dict) else response.model_dump()
    for name in METRICS:
        assert isinstance(values[name], int) and values[name] > 0, (name, values.get(name))
    assert values["total_duration"] >= values["load_duration"]
    assert values["total_duration"] >= values["eval_duration"]


def assert_created_at(value: str) -> None:
    assert RFC3339.match(value), value
    moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", value.replace("Z", "+00:00")))
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 300


def server_children(server: ServerProcess, needle: str = "pollama.runner") -> list[int]:
    """The server's child processes whose command line contains ``needle`` (zombies have none)."""
    assert server.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server.process.pid and needle in cmdline:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def runner_option(server: ServerProcess, flag: str) -> str:
    (runner,) = server_children(server)
    arguments = cmdline(runner)
    return arguments[arguments.index(flag) + 1]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(predicate: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def tokenize(server: ServerProcess, text: str) -> list[int]:
    response = post(server, "/api/tokenize", {"model": MODEL, "content": text})
    assert response.status_code == 200, response.text
    return response.json()["tokens"]


def long_text(tokens_wanted: int, seed: int) -> str:
    """Text of about ``tokens_wanted`` tokens that no earlier request has put in the prompt cache."""
    rng = random.Random(seed)
    words = ("apple", "river", "stone", "cloud", "garden", "window", "silver", "music", "forest", "engine", "paper")
    return f"{seed} " + " ".join(rng.choice(words) for _ in range(tokens_wanted))


def generate_text(client: ollama.Client, prompt: str = OPEN_ENDED, **options: Any) -> str:
    return client.generate(MODEL, prompt, options=options).response


# --- /api/generate ----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
class TestGenerate:
    def test_non_streaming(self, client: ollama.Client, smol: str) -> None:
        response = client.generate(smol, WHY, options={**GREEDY, "num_predict": 16})
        assert response.model == "smol"
        assert response.done is True
        assert response.done_reason in ("stop", "length")
        assert response.response.strip()
        assert_metrics(response)
        assert response.context and all(isinstance(token, int) for token in response.context)
        assert_created_at(response.created_at)

    def test_streaming(self, client: ollama.Client, smol: str) -> None:
        chunks = list(client.generate(smol, WHY, options={**GREEDY, "num_predict": 16}, stream=True))
        *partial, last = chunks
        assert partial and all(chunk.done is False for chunk in partial)
        assert all(chunk.done_reason is None and chunk.context is None for chunk in partial)
        assert all(chunk.model == "smol" for chunk in chunks)
        assert last.done is True and last.done_reason in ("stop", "length")
        assert_metrics(last)
        assert last.context
        text = "".join(chunk.response for chunk in chunks)
        assert text.strip()
        # The same greedy request without streaming answers the same text.
        assert client.generate(smol, WHY, options={**GREEDY, "num_predict": 16}).response == text

    def test_model_name_is_echoed_as_given(self, server: ServerProcess, smol: str) -> None:
        body = {"model": "smol:latest", "prompt": WHY, "stream": False, "options": {**GREEDY, "num_predict": 2}}
        assert post(server, "/api/generate", body).json()["model"] == "smol:latest"
        lines = stream_lines(server, "/api/generate", {**body, "stream": True})
        assert {line["model"] for line in lines} == {"smol:latest"}
        for line in lines:
            assert_created_at(line["created_at"])

    def test_context_holds_prompt_and_answer(self, server: ServerProcess, smol: str) -> None:
        body = {"model": smol, "prompt": WHY, "stream": False, "options": {**GREEDY, "num_predict": 12}}
        answer = post(server, "/api/generate", body).json()
        assert answer["done_reason"] == "length"
        content = post(server, "/api/detokenize", {"model": smol, "tokens": answer["context"]}).json()["content"]
        assert WHY in content
        assert content.endswith(answer["response"])

    def test_raw_has_no_context(self, server: ServerProcess, smol: str) -> None:
        body = {
            "model": smol,
            "prompt": COUNTING,
            "raw": True,
            "stream": False,
            "options": {**GREEDY, "num_predict": 6},
        }
        answer = post(server, "/api/generate", body).json()
        assert answer["response"].strip()
        assert "context" not in answer
        assert_metrics(answer)
        lines = stream_lines(server, "/api/generate", {**body, "stream": True})
        assert lines[-1]["done"] is True
        assert all("context" not in line for line in lines)

    def test_raw_continues_the_text_as_given(self, client: ollama.Client, smol: str) -> None:
        text = client.generate(smol, COUNTING, raw=True, options={**GREEDY, "num_predict": 8}).response
        assert text.startswith(" 9, 10")

    def test_num_predict_limits_the_answer(self, client: ollama.Client, smol: str) -> None:
        response = client.generate(smol, OPEN_ENDED, options={**GREEDY, "num_predict": 10})
        assert response.eval_count == 10
        assert response.done_reason == "length"
        chunks = list(client.generate(smol, OPEN_ENDED, options={**GREEDY, "num_predict": 7}, stream=True))
        assert (chunks[-1].eval_count, chunks[-1].done_reason) == (7, "length")

    def test_end_of_generation_is_stop(self, client: ollama.Client, smol: str) -> None:
        response = client.generate(smol, "Say hello.", options={**GREEDY, "num_predict": 64})
        assert response.done_reason == "stop"
        assert 0 < response.eval_count < 64
        assert "<|im_end|>" not in response.response

    def test_context_continues_a_conversation(self, client: ollama.Client, smol: str) -> None:
        first = client.generate(smol, "My name is Alice.", options={**GREEDY, "num_predict": 8})
        second = client.generate(smol, "What is my name?", context=first.context, options={**GREEDY, "num_predict": 8})
        assert second.done and second.response
        assert len(second.context) > len(first.context)


# --- /api/chat --------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
class TestChat:
    MESSAGES = [{"role": "user", "content": "Name three colours."}]

    def test_non_streaming(self, client: ollama.Client, smol: str) -> None:
        response = client.chat(smol, self.MESSAGES, options={**GREEDY, "num_predict": 16})
        assert response.model == "smol"
        assert response.message.role == "assistant"
        assert response.message.content.strip()
        assert response.done is True and response.done_reason in ("stop", "length")
        assert_metrics(response)
        assert_created_at(response.created_at)

    def test_streaming_joins_to_the_non_streamed_answer(self, client: ollama.Client, smol: str) -> None:
        options = {"temperature": 0, "seed": 3, "num_predict": 16}
        chunks = list(client.chat(smol, self.MESSAGES, options=options, stream=True))
        *partial, last = chunks
        assert partial and all(not chunk.done for chunk in partial)
        assert all(chunk.message.role == "assistant" for chunk in chunks)
        assert last.done and last.done_reason in ("stop", "length")
        assert_metrics(last)
        streamed = "".join(chunk.message.content for chunk in chunks)
        assert streamed.strip()
        assert client.chat(smol, self.MESSAGES, options=options).message.content == streamed

    def test_chat_has_no_context(self, server: ServerProcess, smol: str) -> None:
        body = {"model": smol, "messages": self.MESSAGES, "stream": False, "options": {**GREEDY, "num_predict": 2}}
        assert "context" not in post(server, "/api/chat", body).json()


# --- sampling: determinism, stop sequences ---------------------------------------------------------


@pytest.mark.timeout(120)
class TestSampling:
    def test_temperature_zero_is_deterministic(self, client: ollama.Client, smol: str) -> None:
        first = generate_text(client, temperature=0, num_predict=24)
        assert first.strip()
        assert generate_text(client, temperature=0, num_predict=24) == first

    def test_same_seed_same_text(self, client: ollama.Client, smol: str) -> None:
        first = generate_text(client, temperature=0.8, seed=42, num_predict=24)
        assert generate_text(client, temperature=0.8, seed=42, num_predict=24) == first

    def test_different_seeds_differ(self, client: ollama.Client, smol: str) -> None:
        texts = {generate_text(client, temperature=0.8, seed=seed, num_predict=24) for seed in (1, 2, 3)}
        assert len(texts) >= 2

    @pytest.mark.parametrize("fragment", [False, True], ids=["word", "inside-a-word"])
    def test_stop_sequence_cuts_before_it(self, client: ollama.Client, smol: str, fragment: bool) -> None:
        full = generate_text(client, WHY, **GREEDY, num_predict=24)
        words = [word for word in re.findall(r"[A-Za-z]{5,}", full) if full.count(word) == 1]
        assert words, full
        word = words[len(words) // 2]
        stop = word[1:4] if fragment else word
        expected = full[: full.index(stop)]

        response = client.generate(smol, WHY, options={**GREEDY, "num_predict": 24, "stop": [stop]})
        assert response.response == expected
        assert response.done_reason == "stop"

        chunks = list(client.generate(smol, WHY, options={**GREEDY, "num_predict": 24, "stop": [stop]}, stream=True))
        assert "".join(chunk.response for chunk in chunks) == expected
        assert all(stop not in chunk.response for chunk in chunks)
        assert chunks[-1].done_reason == "stop"


# --- logprobs ---------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
class TestLogprobs:
    def test_one_entry_per_token_with_sorted_alternatives(self, client: ollama.Client, smol: str) -> None:
        response = client.generate(
            smol, OPEN_ENDED, options={**GREEDY, "num_predict": 5}, logprobs=True, top_logprobs=3
        )
        assert response.eval_count == 5
        entries = response.logprobs
        assert entries is not None and len(entries) == 5
        for entry in entries:
            assert entry.logprob <= 0
            alternatives = entry.top_logprobs
            assert len(alternatives) == 3
            values = [alternative.logprob for alternative in alternatives]
            assert values == sorted(values, reverse=True)
            assert all(value <= 0 for value in values)
            # Greedy sampling picks the most likely token.
            assert (alternatives[0].token, alternatives[0].logprob) == (entry.token, entry.logprob)
        assert "".join(entry.token for entry in entries) == response.response

    def test_bytes_are_the_tokens_utf8(self, server: ServerProcess, smol: str) -> None:
        # The official client's Logprob model has no ``bytes``: read the wire.
        body = {
            "model": smol,
            "prompt": OPEN_ENDED,
            "stream": False,
            "logprobs": True,
            "top_logprobs": 3,
            "options": {**GREEDY, "num_predict": 5},
        }
        entries = post(server, "/api/generate", body).json()["logprobs"]
        assert len(entries) == 5
        for entry in entries:
            assert list(entry) == ["token", "logprob", "bytes", "top_logprobs"]
            assert bytes(entry["bytes"]) == entry["token"].encode()
            for alternative in entry["top_logprobs"]:
                assert list(alternative) == ["token", "logprob", "bytes"]
                assert bytes(alternative["bytes"]) == alternative["token"].encode()

    def test_streamed_logprobs_match_tokens(self, server: ServerProcess, smol: str) -> None:
        body = {"model": smol, "prompt": OPEN_ENDED, "logprobs": True, "options": {**GREEDY, "num_predict": 6}}
        lines = stream_lines(server, "/api/generate", body)
        entries = [entry for line in lines for entry in line.get("logprobs") or ()]
        assert len(entries) == 6
        assert all("top_logprobs" not in entry for entry in entries)
        assert "".join(entry["token"] for entry in entries) == "".join(line["response"] for line in lines)

    def test_chat_logprobs(self, client: ollama.Client, smol: str) -> None:
        response = client.chat(
            smol,
            [{"role": "user", "content": OPEN_ENDED}],
            options={**GREEDY, "num_predict": 4},
            logprobs=True,
            top_logprobs=2,
        )
        assert response.logprobs is not None and len(response.logprobs) == 4
        assert all(len(entry.top_logprobs) == 2 for entry in response.logprobs)

    @pytest.mark.parametrize("value", [21, -1])
    def test_top_logprobs_out_of_range(self, server: ServerProcess, smol: str, value: int) -> None:
        for path, extra in (("/api/generate", {"prompt": "hi"}), ("/api/chat", {"messages": []})):
            body = {"model": smol, "logprobs": True, "top_logprobs": value, **extra}
            assert_error(post(server, path, body), 400, "top_logprobs must be between 0 and 20")

    def test_no_logprobs_unless_asked(self, server: ServerProcess, smol: str) -> None:
        body = {"model": smol, "prompt": OPEN_ENDED, "stream": False, "options": {**GREEDY, "num_predict": 3}}
        assert "logprobs" not in post(server, "/api/generate", body).json()
        lines = stream_lines(server, "/api/generate", {**body, "stream": True})
        assert all("logprobs" not in line for line in lines)
        chat = {
            "model": smol,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": False,
            "options": body["options"],
        }
        assert "logprobs" not in post(server, "/api/chat", chat).json()


# --- load / unload ----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
class TestLoadAndUnload:
    def test_generate_load_then_unload(self, server: ServerProcess, client: ollama.Client, smol: str) -> None:
        loaded = client.generate(smol)
        assert (loaded.done, loaded.done_reason, loaded.response) == (True, "load", "")
        assert len(server_children(server)) == 1

        unloaded = post(server, "/api/generate", {"model": smol, "keep_alive": 0})
        assert unloaded.status_code == 200
        body = unloaded.json()
        assert (body["model"], body["response"], body["done"], body["done_reason"]) == ("smol", "", True, "unload")
        assert wait_for(lambda: not server_children(server))

    def test_chat_load_then_unload(self, server: ServerProcess, client: ollama.Client, smol: str) -> None:
        loaded = client.chat(smol)
        assert (loaded.done, loaded.done_reason) == (True, "load")
        assert (loaded.message.role, loaded.message.content) == ("assistant", "")
        assert len(server_children(server)) == 1

        body = post(server, "/api/chat", {"model": smol, "messages": [], "keep_alive": 0}).json()
        assert body["done_reason"] == "unload" and body["done"] is True
        assert body["message"] == {"role": "assistant", "content": ""}
        assert wait_for(lambda: not server_children(server))

    def test_keep_alive_zero_unloads_after_the_request(self, server: ServerProcess, client: ollama.Client, smol: str):
        response = client.generate(smol, WHY, options={**GREEDY, "num_predict": 2}, keep_alive=0)
        assert response.response
        assert wait_for(lambda: not server_children(server))


@pytest.mark.timeout(120)
def test_keep_alive_duration_expires_the_runner(server: ServerProcess, client: ollama.Client, smol: str) -> None:
    client.generate(smol, WHY, options={**GREEDY, "num_predict": 1}, keep_alive="1s")
    assert server_children(server)
    assert wait_for(lambda: not server_children(server), timeout=10)


@pytest.mark.timeout(120)
def test_other_num_ctx_reloads_the_runner(server: ServerProcess, client: ollama.Client, smol: str) -> None:
    client.generate(smol)
    (before,) = server_children(server)
    assert runner_option(server, "--ctx-size") == "4096"
    client.generate(smol, WHY, options={**GREEDY, "num_predict": 1, "num_ctx": 1024})
    assert wait_for(lambda: server_children(server) != [before])
    assert not alive(before)
    assert runner_option(server, "--ctx-size") == "1024"
    # a request that does not ask for num_ctx may use the loaded runner, or go back to the default
    client.generate(smol, WHY, options={**GREEDY, "num_predict": 1})
    assert len(server_children(server)) == 1


@pytest.mark.timeout(120)
def test_prompt_longer_than_the_context(server: ServerProcess, smol: str) -> None:
    prompt = long_text(400, seed=11)
    body = {
        "model": smol,
        "prompt": prompt,
        "raw": True,
        "stream": False,
        "options": {"num_ctx": 256, "num_predict": 2},
    }
    refused = post(server, "/api/generate", {**body, "shift": False})
    assert_error(
        refused,
        400,
        "the prompt is longer than the context length currently available to the model; shorten the prompt, "
        "adjust the context length in settings, or use a model with a longer context length",
    )
    shifted = post(server, "/api/generate", body)
    assert shifted.status_code == 200, shifted.text
    assert shifted.json()["done"] is True
    assert shifted.json()["prompt_eval_count"] < 256


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
class TestErrors:
    def test_unknown_model(self, server: ServerProcess, client: ollama.Client, smol: str) -> None:
        assert_error(post(server, "/api/generate", {"model": "nope", "prompt": "hi"}), 404, "model 'nope' not found")
        chat = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
        assert_error(post(server, "/api/chat", chat), 404, "model 'nope' not found")
        missing = 'model "nope" not found, try pulling it first'
        assert_error(post(server, "/api/embed", {"model": "nope", "input": "hi"}), 404, missing)
        assert_error(post(server, "/api/embeddings", {"model": "nope", "prompt": "hi"}), 404, missing)
        with pytest.raises(ollama.ResponseError) as raised:
            client.generate("nope", "hi")
        assert raised.value.status_code == 404

    @pytest.mark.parametrize("extra", [{"system": "be brief"}, {"context": [1, 2, 3]}, {"template": "{{ .Prompt }}"}])
    def test_raw_with_template_system_or_context(self, server: ServerProcess, smol: str, extra: dict) -> None:
        body = {"model": smol, "prompt": "hi", "raw": True, **extra}
        assert_error(post(server, "/api/generate", body), 400, "raw mode does not support template, system, or context")

    def test_think_on_a_model_that_cannot(self, server: ServerProcess, client: ollama.Client, smol: str) -> None:
        hi = [{"role": "user", "content": "hi"}]
        for path, extra in (("/api/generate", {"prompt": "hi"}), ("/api/chat", {"messages": hi})):
            response = post(server, path, {"model": smol, "think": True, **extra})
            assert response.status_code == 400
            assert response.json()["error"].endswith(" does not support thinking")
        with pytest.raises(ollama.ResponseError) as raised:
            client.chat(smol, [{"role": "user", "content": "hi"}], think=True)
        assert raised.value.status_code == 400
        # think:false is fine on any model
        body = {"model": smol, "prompt": "hi", "think": False, "stream": False, "options": {"num_predict": 1}}
        assert post(server, "/api/generate", body).status_code == 200

    @pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
    def test_think_error_names_the_model_as_requested(self, server: ServerProcess, smol: str, path: str) -> None:
        body = {"model": smol, "think": True, "prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}
        assert_error(post(server, path, body), 400, '"smol" does not support thinking')

    @pytest.mark.parametrize(("value", "shown"), [("extreme", '"extreme"'), (1, "1")], ids=["string", "number"])
    def test_invalid_think_value(self, server: ServerProcess, smol: str, value: Any, shown: str) -> None:
        message = f'invalid think value: {shown} (must be "high", "medium", "low", "max", true, or false)'
        assert_error(post(server, "/api/generate", {"model": smol, "prompt": "hi", "think": value}), 400, message)

    @pytest.mark.parametrize(
        ("keep_alive", "message"),
        [("10", 'time: missing unit in duration "10"'), ([], "Unsupported type: '[]interface {}'")],
    )
    def test_bad_keep_alive(self, server: ServerProcess, smol: str, keep_alive: Any, message: str) -> None:
        assert_error(
            post(server, "/api/generate", {"model": smol, "prompt": "hi", "keep_alive": keep_alive}), 400, message
        )
        chat = {"model": smol, "messages": [{"role": "user", "content": "hi"}], "keep_alive": keep_alive}
        assert_error(post(server, "/api/chat", chat), 400, message)

    def test_missing_model(self, server: ServerProcess, smol: str) -> None:
        hi = [{"role": "user", "content": "hi"}]
        assert_error(post(server, "/api/chat", {"messages": hi}), 400, "model is required")
        assert_error(post(server, "/api/embed", {"input": "hi"}), 400, "model is required")
        assert_error(post(server, "/api/embeddings", {"prompt": "hi"}), 400, "model is required")
        for path in ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/tokenize"):
            assert_error(httpx.post(server.url + path), 400, "missing request body")

    def test_generate_without_a_model(self, server: ServerProcess, smol: str) -> None:
        assert_error(post(server, "/api/generate", {"prompt": "hi"}), 404, "model '' not found")
        assert_error(httpx.post(server.url + "/api/generate", content=b"null"), 404, "model '' not found")

    def test_capabilities(self, server: ServerProcess, client: ollama.Client, smol: str, tmp_path: Path) -> None:
        full = "registry.ollama.ai/library/smol:latest"
        body = {"model": smol, "prompt": "def f(", "suffix": "return 1"}
        assert_error(post(server, "/api/generate", body), 400, f"{full} does not support insert")
        tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
        chat = {"model": smol, "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
        assert_error(post(server, "/api/chat", chat), 400, f"{full} does not support tools")

        embedder = write_gguf(tmp_path / "bert.gguf", arch="bert", kv={"bert.pooling_type": 1})
        assert client.create("embedder", files={"bert.gguf": upload(client, embedder)}).status == "success"
        body = {"model": "embedder", "prompt": "hi"}
        assert_error(post(server, "/api/generate", body), 400, '"embedder" does not support generate')
        chat = {"model": "embedder", "messages": [{"role": "user", "content": "hi"}]}
        assert_error(post(server, "/api/chat", chat), 400, '"embedder" does not support chat')

    def test_option_of_the_wrong_type(self, server: ServerProcess, smol: str) -> None:
        message = 'option "top_k" must be of type integer'
        body = {"model": smol, "prompt": "hi", "options": {"top_k": "x"}}
        # Ollama answers 500; the request is what is wrong, so pollama answers 400.
        assert_error(post(server, "/api/generate", body), 400, message)
        assert_error(post(server, "/api/generate", {**body, "stream": False}), 400, message)
        chat = {"model": smol, "messages": [{"role": "user", "content": "hi"}], "options": {"top_k": "x"}}
        assert_error(post(server, "/api/chat", chat), 400, message)


# --- prompt cache -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_next_chat_turn_reuses_the_cached_prompt(server: ServerProcess, client: ollama.Client, smol: str) -> None:
    client.generate(smol, keep_alive=0)  # a fresh runner: nothing cached
    assert wait_for(lambda: not server_children(server))
    messages = [
        {"role": "system", "content": "You are a geography teacher who answers in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    first = client.chat(smol, messages, options={**GREEDY, "num_predict": 16})
    answer = first.message.content
    full_first = first.prompt_eval_count
    assert full_first > 30  # the whole rendered conversation was evaluated

    question = "And what is the capital of Germany?"
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": question}]
    body = {"model": smol, "messages": messages, "options": {**GREEDY, "num_predict": 4}, "stream": False}
    second = httpx.post(f"{server.url}/api/chat", json=body, timeout=60).json()
    full_second = full_first + len(tokenize(server, answer)) + len(tokenize(server, question))
    # prompt_eval_count is the whole prompt, as Ollama counts it; prompt_cached_count (beyond Ollama)
    # says how much of it the cache held, so only the new turn was evaluated.
    assert full_second <= second["prompt_eval_count"] <= full_second + 20  # plus the new turn's role markers
    evaluated = second["prompt_eval_count"] - second["prompt_cached_count"]
    assert evaluated <= len(tokenize(server, question)) + 16
    assert second["prompt_cached_count"] > full_second / 2


# --- UTF-8 ------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("prompt", "raw"),
    [("Emoji: 😀 😃 😄 😁 😆 😅 🤣 😂", True), ("Translate to Chinese: The sky is blue.", False)],
    ids=["emoji", "chinese"],
)
def test_streamed_text_is_whole_characters(server: ServerProcess, smol: str, prompt: str, raw: bool) -> None:
    body = {"model": smol, "prompt": prompt, "raw": raw, "logprobs": True, "options": {**GREEDY, "num_predict": 24}}
    lines = stream_lines(server, "/api/generate", body)
    text = "".join(line["response"] for line in lines)
    assert all("\ufffd" not in line["response"] for line in lines), [line["response"] for line in lines]
    assert any(ord(char) > 0x2000 for char in text), text  # the answer really has multi-byte characters
    # The tokens' bytes, joined, are exactly the streamed text.
    joined = bytes(byte for line in lines for entry in line.get("logprobs") or () for byte in entry["bytes"])
    assert joined.decode() == text


# --- concurrency, disconnects -----------------------------------------------------------------------


class TimedStream(threading.Thread):
    """A streaming generate on its own thread, recording when each line arrived."""

    def __init__(self, server: ServerProcess, prompt: str, num_predict: int):
        super().__init__(daemon=True)
        self.body = {"model": MODEL, "prompt": prompt, "raw": True, "options": {**GREEDY, "num_predict": num_predict}}
        self.server = server
        self.lines: list[tuple[float, dict]] = []
        self.first = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.server.url + "/api/generate", json=self.body, timeout=120) as response:
                for line in response.iter_lines():
                    if line:
                        self.lines.append((time.monotonic(), httpx.Response(200, content=line).json()))
                        self.first.set()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            self.first.set()

    @property
    def text(self) -> str:
        return "".join(line.get("response", "") for _, line in self.lines)


@pytest.mark.timeout(180)
def test_two_parallel_streams_overlap(parallel_server: ServerProcess) -> None:
    letters = "a, b, c, d, e, f, g,"
    alone = {}
    for prompt in (COUNTING, letters):
        solo = TimedStream(parallel_server, prompt, 32)
        solo.run()
        assert solo.error is None
        alone[prompt] = solo.text

    first = TimedStream(parallel_server, COUNTING, 48)
    second = TimedStream(parallel_server, letters, 32)
    first.start()
    assert first.first.wait(60)
    second.start()
    first.join(120)
    second.join(120)
    assert first.error is None and second.error is None
    assert runner_option(parallel_server, "--parallel") == "2"
    for stream, limit in ((first, 48), (second, 32)):
        final = stream.lines[-1][1]
        assert final["done"] is True and final["done_reason"] == "length" and final["eval_count"] == limit
    # The second answer started before the first one finished.
    assert second.lines[0][0] < first.lines[-1][0]
    # No cross-talk: each stream continued its own prompt.
    assert first.text.startswith(" 9, 10, 11")
    assert second.text.startswith(" h, i, j")
    assert first.text.startswith(alone[COUNTING])
    assert second.text == alone[letters]


@pytest.mark.timeout(120)
def test_one_slot_serves_requests_in_turn(server: ServerProcess, smol: str) -> None:
    first = TimedStream(server, COUNTING, 16)
    second = TimedStream(server, "a, b, c, d, e, f, g,", 8)
    first.start()
    assert first.first.wait(60)
    second.start()
    first.join(60)
    second.join(60)
    assert first.error is None and second.error is None
    assert runner_option(server, "--parallel") == "1"
    assert first.lines[-1][1]["eval_count"] == 16 and second.lines[-1][1]["eval_count"] == 8
    assert second.lines[0][0] >= first.lines[-1][0]  # it waited for the only slot
    assert first.text.startswith(" 9, 10") and second.text.startswith(" h, i")


@pytest.mark.timeout(120)
def abandon_a_long_answer(server: ServerProcess, path: str = "/api/generate") -> None:
    """Start a 2000-token stream (20 s and more here), read two lines, hang up."""
    body: dict[str, Any] = {"model": MODEL, "options": {**GREEDY, "num_predict": 2000}}
    if path == "/api/generate":
        body |= {"prompt": COUNTING, "raw": True}
    else:
        body |= {"messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]}
    with httpx.stream("POST", server.url + path, json=body, timeout=60) as response:
        lines = response.iter_lines()
        next(lines)
        next(lines)


@pytest.fixture
def own_server(fresh_server: ServerProcess, smollm2_path: Path) -> ServerProcess:
    """A server of the test's own with ``smol``: for tests that may leave it wedged."""
    fresh_server.start()
    create_smol(fresh_server, smollm2_path)
    return fresh_server


@pytest.mark.timeout(120)
def test_disconnect_mid_answer_frees_the_slot(own_server: ServerProcess) -> None:
    client = ollama.Client(host=own_server.url)
    abandon_a_long_answer(own_server)
    assert runner_option(own_server, "--parallel") == "1"
    started = time.monotonic()
    answer = client.generate(MODEL, WHY, options={**GREEDY, "num_predict": 4})
    assert answer.done and answer.response
    assert time.monotonic() - started < 10


@pytest.mark.timeout(120)
def test_disconnect_mid_answer_gives_the_slot_back_at_once(own_server: ServerProcess) -> None:
    client = ollama.Client(host=own_server.url, timeout=5)  # the bug can wedge the slot for minutes
    for path in ("/api/generate", "/api/generate", "/api/chat"):
        abandon_a_long_answer(own_server, path)
        answer = client.generate(MODEL, WHY, options={**GREEDY, "num_predict": 2})
        assert answer.load_duration < 1.5e9, path  # load_duration includes waiting for a free slot


@pytest.mark.timeout(120)
def test_disconnect_during_prompt_evaluation(server: ServerProcess, client: ollama.Client, smol: str) -> None:
    prompt = long_text(3000, seed=int(time.time()))
    body = {"model": smol, "prompt": prompt, "raw": True, "options": {"num_ctx": 4096, "num_predict": 2000}}
    client.generate(smol, "", options={"num_ctx": 4096})  # loaded first: the request below only evaluates
    with pytest.raises(httpx.ReadTimeout):  # no line yet: the prompt is still being evaluated
        httpx.post(server.url + "/api/generate", json=body, timeout=httpx.Timeout(30, read=1.0))
    started = time.monotonic()
    answer = client.generate(smol, WHY, options={**GREEDY, "num_predict": 4})
    assert answer.done and answer.response
    # The cancel lands between decode steps: at worst after the 512-token chunk in flight (~2 s on two
    # busy cores), long before the rest of the 3000-token prompt would have been evaluated.
    assert answer.load_duration < 4e9
    assert time.monotonic() - started < 10


# --- runner failures --------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_runner_killed_mid_stream(server: ServerProcess, client: ollama.Client, smol: str) -> None:
    chunks = client.generate(smol, COUNTING, raw=True, options={**GREEDY, "num_predict": 2000}, stream=True)
    received = 0
    killed = None
    with pytest.raises(ollama.ResponseError) as raised:
        for _chunk in chunks:
            received += 1
            if received == 3:
                (killed,) = server_children(server)
                os.kill(killed, signal.SIGKILL)
            assert received < 500, "the stream went on after its runner was killed"
    assert killed is not None
    assert raised.value.error  # the final {"error": ...} line
    assert httpx.get(server.url + "/", timeout=10).status_code == 200

    answer = client.generate(smol, WHY, options={**GREEDY, "num_predict": 4})
    assert answer.done and answer.response
    (runner,) = server_children(server)
    assert runner != killed


@pytest.mark.timeout(120)
def test_idle_runner_killed(server: ServerProcess, client: ollama.Client, smol: str) -> None:
    client.generate(smol)
    (killed,) = server_children(server)
    os.kill(killed, signal.SIGKILL)
    assert wait_for(lambda: not Path(f"/proc/{killed}").exists())  # the server has reaped it
    answer = client.generate(smol, WHY, options={**GREEDY, "num_predict": 4})
    assert answer.done and answer.response
    (runner,) = server_children(server)
    assert runner != killed


@pytest.mark.timeout(120)
def test_request_right_after_the_runner_died(server: ServerProcess, smol: str) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as session:  # a kept-alive connection: no connect delay
        for _ in range(3):
            session.post("/api/generate", json={"model": smol})
            (killed,) = server_children(server)
            os.kill(killed, signal.SIGKILL)
            body = {"model": smol, "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
            response = session.post("/api/generate", json=body)
            assert response.status_code == 200, response.text


@pytest.mark.timeout(120)
def test_runners_end_with_the_server(fresh_server: ServerProcess, smollm2_path: Path) -> None:
    fresh_server.start()
    create_smol(fresh_server, smollm2_path)
    client = ollama.Client(host=fresh_server.url)

    client.generate(MODEL)
    (runner,) = server_children(fresh_server)
    fresh_server.stop()  # SIGTERM: a clean shutdown stops its runners
    assert wait_for(lambda: not alive(runner), timeout=10)

    fresh_server.start()
    client.generate(MODEL)
    (runner,) = server_children(fresh_server)
    assert fresh_server.process is not None
    fresh_server.process.kill()  # SIGKILL: the runner notices its server is gone and exits
    fresh_server.process.wait()
    assert wait_for(lambda: not alive(runner), timeout=10)


def assert_load_fails_cleanly(server: ServerProcess, client: ollama.Client, model: str) -> None:
    """Every model-running route answers 500 naming the load failure, promptly, and leaves nothing behind."""
    hi = [{"role": "user", "content": "hi"}]
    requests = [
        ("/api/generate", {"prompt": "hi"}),
        ("/api/generate", {"prompt": "hi", "stream": False}),
        ("/api/chat", {"messages": hi}),
        ("/api/embed", {"input": "hi"}),
    ]
    for path, extra in requests:
        started = time.monotonic()
        response = post(server, path, {"model": model, **extra}, timeout=60)
        assert time.monotonic() - started < 30
        assert response.status_code == 500, (path, response.text)
        message = response.json()["error"]
        assert "load" in message.lower(), message
    assert httpx.get(server.url + "/", timeout=10).status_code == 200
    assert wait_for(lambda: len(server_children(server)) <= 1)  # no half-started runner lingers
    # the good model still works next to it
    assert client.generate(MODEL, WHY, options={**GREEDY, "num_predict": 2}).done


@pytest.mark.timeout(120)
def test_truncated_weights_fail_with_a_clear_error(
    server: ServerProcess, client: ollama.Client, smol: str, smollm2_path: Path, tmp_path: Path
) -> None:
    # A distinct copy (one more trailing byte block, so another digest) that /api/create accepts...
    copy = tmp_path / "copy.gguf"
    with smollm2_path.open("rb") as source, copy.open("wb") as target:
        shutil.copyfileobj(source, target)
        target.write(bytes(64))
    digest = upload(client, copy)
    assert client.create("truncated", files={"copy.gguf": digest}).status == "success"
    # ...whose blob then loses all but its header and the first tensors (a disk gone bad).
    os.truncate(server.models / "blobs" / digest.replace(":", "-"), 2 << 20)
    assert_load_fails_cleanly(server, client, "truncated")


@pytest.mark.timeout(120)
def test_unloadable_gguf_fails_with_a_clear_error(
    server: ServerProcess, client: ollama.Client, smol: str, tmp_path: Path
) -> None:
    # A valid GGUF header that says llama, but with none of the tensors a llama model needs.
    digest = upload(client, write_gguf(tmp_path / "tiny.gguf"))
    assert client.create("unloadable", files={"tiny.gguf": digest}).status == "success"
    assert_load_fails_cleanly(server, client, "unloadable")


# --- embeddings -------------------------------------------------------------------------------------


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


@pytest.mark.timeout(120)
class TestEmbed:
    def test_batch_is_normalized_and_ordered(self, client: ollama.Client, smol: str) -> None:
        response = client.embed(smol, ["hello", "world", "hello"])
        assert response.model == "smol"
        vectors = response.embeddings
        assert len(vectors) == 3
        assert len({len(vector) for vector in vectors}) == 1 and len(vectors[0]) > 8
        assert all(abs(norm(vector) - 1) < 1e-4 for vector in vectors)
        assert vectors[0] == vectors[2]
        assert vectors[0] != vectors[1]
        assert response.prompt_eval_count > 0
        assert response.total_duration > 0 and response.load_duration > 0

    def test_dimensions_truncates_and_renormalizes(self, client: ollama.Client, smol: str) -> None:
        (vector,) = client.embed(smol, "hello", dimensions=8).embeddings
        assert len(vector) == 8
        assert abs(norm(vector) - 1) < 1e-4

    def test_invalid_input_type(self, server: ServerProcess, smol: str) -> None:
        for value in (5, ["a", 5], {"a": 1}):
            assert_error(post(server, "/api/embed", {"model": smol, "input": value}), 400, "invalid input type")

    @pytest.mark.parametrize("value", ["", []])
    def test_empty_input_loads_only(self, server: ServerProcess, smol: str, value: Any) -> None:
        response = post(server, "/api/embed", {"model": smol, "input": value})
        assert response.status_code == 200
        assert response.json() == {"model": "smol", "embeddings": []}

    def test_legacy_embeddings_are_not_normalized(self, client: ollama.Client, smol: str) -> None:
        legacy = client.embeddings(smol, "hello").embedding
        assert abs(norm(legacy) - 1) > 1e-3
        (normalized,) = client.embed(smol, "hello").embeddings
        scale = norm(legacy)
        assert all(abs(a / scale - b) < 1e-4 for a, b in zip(legacy, normalized, strict=True))

    def test_legacy_empty_prompt(self, server: ServerProcess, smol: str) -> None:
        response = post(server, "/api/embeddings", {"model": smol, "prompt": ""})
        assert (response.status_code, response.json()) == (200, {"embedding": []})

    @pytest.mark.parametrize(
        "num_ctx",
        [
            256,
            16,
        ],
    )
    def test_input_longer_than_the_context(self, server: ServerProcess, smol: str, num_ctx: int) -> None:
        text = "The quick brown fox jumps over the lazy dog. " * 40
        assert len(tokenize(server, text)) > num_ctx
        body = {"model": smol, "input": text, "options": {"num_ctx": num_ctx}}
        refused = post(server, "/api/embed", {**body, "truncate": False})
        assert refused.status_code == 400
        assert "input length exceeds the context length" in refused.json()["error"]
        truncated = post(server, "/api/embed", body)
        assert truncated.status_code == 200, truncated.text
        answer = truncated.json()
        assert len(answer["embeddings"]) == 1
        assert 0 < answer["prompt_eval_count"] <= num_ctx


# --- tokenize / detokenize --------------------------------------------------------------------------


@pytest.mark.timeout(120)
class TestTokenize:
    def test_round_trip(self, server: ServerProcess, smol: str) -> None:
        text = "Hello, world! 你好 😀 naïve"
        response = post(server, "/api/tokenize", {"model": smol, "content": text})
        assert response.status_code == 200
        body = response.json()
        assert body["model"] == "smol"
        assert body["tokens"] and all(isinstance(token, int) for token in body["tokens"])
        back = post(server, "/api/detokenize", {"model": smol, "tokens": body["tokens"]})
        assert back.status_code == 200
        assert back.json() == {"model": "smol", "content": text}

    def test_add_special(self, server: ServerProcess, smol: str) -> None:
        plain = post(server, "/api/tokenize", {"model": smol, "content": "hi"}).json()["tokens"]
        special = post(server, "/api/tokenize", {"model": smol, "content": "hi", "add_special": True}).json()["tokens"]
        assert special[-len(plain) :] == plain

    @pytest.mark.parametrize("tokens", [[10**9], [-1]])
    def test_invalid_token_id(self, server: ServerProcess, smol: str, tokens: list[int]) -> None:
        response = post(server, "/api/detokenize", {"model": smol, "tokens": tokens})
        assert response.status_code == 400
        assert response.json()["error"]

    def test_unknown_model(self, server: ServerProcess, smol: str) -> None:
        assert_error(post(server, "/api/tokenize", {"model": "nope", "content": "hi"}), 404, "model 'nope' not found")
        assert_error(post(server, "/api/detokenize", {"model": "nope", "tokens": [1]}), 404, "model 'nope' not found")
