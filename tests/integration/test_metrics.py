"""``GET /metrics`` and ``POLLAMA_LOG_REQUESTS`` on a real server with SmolLM2 (README "Metrics and request logs").

One server serves every test but the last: ``POLLAMA_TEST_RUNNER_CRASH=extra-buffers`` makes its first load
crash once (``runtime.fallback`` loads it again, and every later load, the safe way), and
``POLLAMA_LOG_REQUESTS`` is on. Counters only grow, so each test compares a scrape before with one after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_inference import COUNTING, GREEDY, MODEL, create_smol, wait_for
from tests.servers import ServerProcess

NAME = f"{MODEL}:latest"  # the model label: the store's short name
SHORT = {**GREEDY, "num_predict": 6}
MARKER = "Quetzalcoatl-7731"  # in prompts, a query string and a header: never in the log

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    env = {"POLLAMA_TEST_RUNNER_CRASH": "extra-buffers", "POLLAMA_LOG_REQUESTS": "1"}
    server = ServerProcess(tmp_path_factory.mktemp("metered"), extra_env=env).start()
    try:
        create_smol(server, smollm2_path)
        yield server
    finally:
        server.stop()


def scrape(server: ServerProcess) -> Samples:
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def has(samples: Samples, name: str, **labels: str) -> bool:
    return (name, frozenset(labels.items())) in samples


def requests(samples: Samples, method: str, route: str, status: int) -> float:
    return get(samples, "pollama_http_requests_total", method=method, route=route, status=str(status))


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120)


@pytest.mark.timeout(240)
def test_answers_move_the_request_token_and_first_token_metrics(metered: ServerProcess) -> None:
    before = scrape(metered)
    chat = post(metered, "/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                       "stream": False, "options": SHORT})  # fmt: skip
    assert chat.status_code == 200, chat.text
    with httpx.stream(
        "POST", metered.url + "/api/generate", json={"model": MODEL, "prompt": "Hello", "options": SHORT}, timeout=120
    ) as response:
        generated = [httpx.Response(200, content=line).json() for line in response.iter_lines() if line]
    embedded = post(metered, "/api/embed", {"model": MODEL, "input": ["one", "two words"]})
    openai = post(metered, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                                    "max_tokens": 4, "temperature": 0})  # fmt: skip
    anthropic = post(metered, "/v1/messages", {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                               "max_tokens": 4, "temperature": 0})  # fmt: skip
    assert post(metered, "/api/chat", {}).status_code == 400
    assert httpx.get(metered.url + "/api/no/such/thing", timeout=10).status_code == 404
    after = scrape(metered)

    for method, route, status in [
        ("POST", "/api/chat", 200),
        ("POST", "/api/generate", 200),
        ("POST", "/api/embed", 200),
        ("POST", "/v1/chat/completions", 200),
        ("POST", "/v1/messages", 200),
        ("POST", "/api/chat", 400),
        ("GET", "other", 404),
    ]:
        assert requests(after, method, route, status) - requests(before, method, route, status) == 1, (route, status)
    assert not any("/api/no/such" in str(labels) for _name, labels in after)
    streamed = "pollama_http_request_duration_seconds_count"
    assert get(after, streamed, route="/api/generate") - get(before, streamed, route="/api/generate") == 1

    # Four completions, each with a first token, whichever API asked; the counts are the answers' own.
    ttft = "pollama_time_to_first_token_seconds_count"
    assert get(after, ttft, model=NAME) - get(before, ttft, model=NAME) == 4
    final = generated[-1]
    assert final["done"]
    usage = openai.json()["usage"]
    anthropic_usage = anthropic.json()["usage"]
    prompt = (
        chat.json()["prompt_eval_count"]
        + final["prompt_eval_count"]
        + embedded.json()["prompt_eval_count"]
        + usage["prompt_tokens"]
        + anthropic_usage["input_tokens"]
        + anthropic_usage["cache_read_input_tokens"]
    )
    answered = (
        chat.json()["eval_count"] + final["eval_count"] + usage["completion_tokens"] + anthropic_usage["output_tokens"]
    )
    prompt_tokens, generated_tokens = "pollama_prompt_tokens_total", "pollama_generated_tokens_total"
    assert get(after, prompt_tokens, model=NAME) - get(before, prompt_tokens, model=NAME) == prompt
    assert get(after, generated_tokens, model=NAME) - get(before, generated_tokens, model=NAME) == answered

    # The first load crashed once (the test hook), and was loaded again the safe way: once, whichever test ran first.
    assert get(after, "pollama_runner_crashes_total", model=NAME) == 1
    assert get(after, "pollama_model_loads_total", model=NAME) >= 1
    assert get(after, "pollama_loaded_models") == 1
    assert get(after, "pollama_loaded_model_memory_bytes", model=NAME, processor="cpu") > 10_000_000
    assert get(after, "pollama_queue_depth") == 0


@pytest.mark.timeout(180)
def test_a_load_and_an_unload(metered: ServerProcess) -> None:
    assert post(metered, "/api/generate", {"model": MODEL, "keep_alive": 0}).json()["done_reason"] == "unload"
    unloaded = scrape(metered)
    assert get(unloaded, "pollama_loaded_models") == 0
    assert not has(unloaded, "pollama_loaded_model_memory_bytes", model=NAME, processor="cpu")

    assert post(metered, "/api/generate", {"model": MODEL}).json()["done_reason"] == "load"
    loaded = scrape(metered)
    loads = "pollama_model_loads_total"
    assert get(loaded, loads, model=NAME) - get(unloaded, loads, model=NAME) == 1
    assert get(loaded, "pollama_loaded_models") == 1
    assert get(loaded, "pollama_loaded_model_memory_bytes", model=NAME, processor="cpu") > 10_000_000
    assert has(loaded, "pollama_loaded_model_memory_bytes", model=NAME, processor="gpu")

    assert post(metered, "/api/generate", {"model": MODEL, "keep_alive": 0}).json()["done_reason"] == "unload"
    again = scrape(metered)
    unloads = "pollama_model_unloads_total"
    assert get(again, unloads, model=NAME) - get(loaded, unloads, model=NAME) == 1
    assert get(again, "pollama_loaded_models") == 0
    assert not has(again, "pollama_loaded_model_memory_bytes", model=NAME, processor="cpu")
    assert get(again, "pollama_runner_crashes_total", model=NAME) <= 1  # an unload is no crash


@pytest.mark.timeout(180)
def test_the_queue_depth_while_a_request_waits_for_the_only_slot(metered: ServerProcess) -> None:
    long_body = {"model": MODEL, "prompt": COUNTING, "raw": True, "options": {**GREEDY, "num_predict": 2000}}
    waiting: dict[str, Any] = {}

    def second() -> None:
        waiting["response"] = post(metered, "/api/generate", {"model": MODEL, "prompt": "Hi", "stream": False,
                                                              "options": {**GREEDY, "num_predict": 2}})  # fmt: skip

    with httpx.stream("POST", metered.url + "/api/generate", json=long_body, timeout=120) as first:
        lines = first.iter_lines()
        next(lines)  # the first slot is busy answering
        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        assert wait_for(lambda: get(scrape(metered), "pollama_queue_depth") == 1, timeout=30)
    thread.join(60)  # leaving the stream hung up: the slot went to the waiting request
    assert waiting["response"].status_code == 200
    assert get(scrape(metered), "pollama_queue_depth") == 0


def log_lines(server: ServerProcess) -> list[str]:
    return [line for line in server.log_path.read_text().splitlines() if " msg=request " in line]


@pytest.mark.timeout(180)
def test_one_log_line_per_request_and_no_prompt(metered: ServerProcess) -> None:
    seen = len(log_lines(metered))
    messages = [{"role": "user", "content": f"Repeat after me: {MARKER}"}]
    body = {"model": MODEL, "messages": messages, "stream": False, "options": SHORT}
    assert post(metered, "/api/chat", body).status_code == 200
    secret = httpx.get(
        metered.url + f"/api/tags?token={MARKER}", headers={"Authorization": f"Bearer {MARKER}"}, timeout=10
    )
    assert secret.status_code == 200
    assert httpx.get(metered.url + "/api/nothing/here", timeout=10).status_code == 404
    assert wait_for(lambda: len(log_lines(metered)) >= seen + 3)
    chat, tags, missing = log_lines(metered)[seen : seen + 3]
    assert "msg=request method=POST route=/api/chat status=200 duration=" in chat
    assert chat.endswith(" client=127.0.0.1 model=smol")
    assert "msg=request method=GET route=/api/tags status=200 " in tags
    assert "msg=request method=GET path=/api/nothing/here status=404 " in missing
    log = metered.log_path.read_text()
    assert "Repeat after me" not in log and MARKER not in log


@pytest.mark.timeout(120)
def test_no_request_lines_without_the_flag(fresh_server: ServerProcess) -> None:
    fresh_server.start()
    for path in ("/api/version", "/api/tags?x=1", "/nothing/here", "/metrics"):
        httpx.get(fresh_server.url + path, timeout=10)
    time.sleep(0.5)
    scraped = scrape(fresh_server)
    assert requests(scraped, "GET", "/api/version", 200) == 1
    assert requests(scraped, "GET", "other", 404) == 1
    assert " msg=request " not in fresh_server.log_path.read_text()
