"""Integration fixtures: a real server process, and the official ``ollama`` client pointed at it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield process
    process.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for tests that restart it or need an empty store."""
    process = ServerProcess(tmp_path / "server")
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url)


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as session:
        yield session


def upload(client: ollama.Client, path: Path) -> str:
    """Upload a file as a blob with the official client; return its digest."""
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    client.create_blob(path)
    return digest
