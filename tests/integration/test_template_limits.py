"""A request's template cannot make the server spend without end: it answers 400 and goes on serving."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import ollama
import pytest

from tests.servers import ServerProcess

pytestmark = pytest.mark.timeout(120)

ENDLESS = "{{ range 1000000000 }}x{{ end }}"  # grew the server by ~107 MB per million iterations, until killed


@pytest.fixture(scope="module")
def model(server: ServerProcess, smollm2_path: Path) -> str:
    api = ollama.Client(host=server.url)
    api.create("limited", files={"model.gguf": api.create_blob(smollm2_path)}, template="{{ .Prompt }}")
    return "limited"


@pytest.mark.parametrize("stream", [True, False])
def test_a_request_template_past_the_step_limit_is_refused(http: httpx.Client, model: str, stream: bool) -> None:
    reply = http.post("/api/generate", json={"model": model, "prompt": "hi", "template": ENDLESS, "stream": stream})
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]
    assert re.fullmatch(r'template: :1:\d+: executing "" exceeds the limit of 1000000 steps', message), message

    answer = http.post(
        "/api/generate", json={"model": model, "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["done"] is True
