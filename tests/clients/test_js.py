"""The npm clients, ollama-js and openai (pinned in ``js/package.json``), run by ``node`` against pollama.

Each case is one call of ``js/matrix.mjs``, which prints what it got as JSON. ``npm ci`` installs the
packages on first use; without ``node``, or where npm cannot install them, the tests skip and say why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent / "js"
ADDED = [{"name": "add", "arguments": {"a": 1234, "b": 5678}}]


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("no node and npm on PATH: the npm clients cannot run")
    if not (HERE / "node_modules" / "ollama").exists():
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True,
                                   timeout=300)  # fmt: skip
        if installed.returncode != 0:
            pytest.skip(f"npm ci failed in {HERE}: {installed.stderr[-500:]}")
    return node


def run(node: str, case: str, url: str) -> Any:
    done = subprocess.run([node, "matrix.mjs", case, url], cwd=HERE, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.client("npm:ollama", "chat stream")
def test_ollama_chat_stream(node: str, url: str) -> None:
    got = run(node, "ollama chat stream", url)
    assert got["chunks"] > 2 and got["done"] and got["text"]


@pytest.mark.client("npm:ollama", "tools")
def test_ollama_tools(node: str, url: str) -> None:
    assert run(node, "ollama tools", url)["calls"] == ADDED


@pytest.mark.client("npm:ollama", "format")
def test_ollama_format(node: str, url: str) -> None:
    assert run(node, "ollama format", url)["keys"] == ["name", "age"]


@pytest.mark.client("npm:ollama", "embed")
def test_ollama_embed(node: str, url: str) -> None:
    assert run(node, "ollama embed", url) == {"count": 2, "size": 384}


@pytest.mark.client("npm:ollama", "list")
def test_ollama_list(node: str, url: str) -> None:
    assert {"smol:latest", "qwen:latest", "minilm:latest"} <= set(run(node, "ollama list", url)["names"])


@pytest.mark.client("npm:openai", "chat")
def test_openai_chat(node: str, url: str) -> None:
    assert run(node, "openai chat", url)["text"]


@pytest.mark.client("npm:openai", "stream")
def test_openai_stream(node: str, url: str) -> None:
    got = run(node, "openai stream", url)
    assert got["chunks"] > 2 and got["finish"] in ("stop", "length")


@pytest.mark.client("npm:openai", "tools")
def test_openai_tools(node: str, url: str) -> None:
    assert run(node, "openai tools", url)["calls"] == ADDED


@pytest.mark.client("npm:openai", "embeddings")
def test_openai_embeddings(node: str, url: str) -> None:
    assert run(node, "openai embeddings", url) == {"count": 2, "size": 384}


@pytest.mark.client("npm:openai", "models")
def test_openai_models(node: str, url: str) -> None:
    assert {"smol:latest", "qwen:latest"} <= set(run(node, "openai models", url)["ids"])
