"""The client matrix: the libraries people point at Ollama, pointed at one real ``pollama serve``, unchanged.

One server for the whole matrix, with the test models under short names: ``smol`` (SmolLM2, chat and
format), ``qwen`` (Qwen2.5-Coder-0.5B, tools), ``minilm`` (all-MiniLM-L6-v2, embeddings). Each test says
which client it exercises and which everyday path (``@pytest.mark.client(name, path)``); at the end of the
session the outcomes go to ``$POLLAMA_CLIENT_MATRIX`` (default ``.pytest_cache/client-matrix.json``), from
which ``python -m tools.works_with`` writes the README's "Works with" table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_scheduler import install
from tests.servers import ServerProcess
from tools.test_models import ensure_model

MODELS = {"smol": "smollm2", "qwen": "qwen2.5-coder", "minilm": "minilm"}
RESULTS = Path(os.environ.get("POLLAMA_CLIENT_MATRIX") or Path(".pytest_cache") / "client-matrix.json")
# What a client's answer may take: a few tokens are enough to prove the path.
SHORT = 8

_outcomes: dict[tuple[str, str], str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "client(name, path): the client library and the everyday path a test covers")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("clients"), {"OLLAMA_NUM_PARALLEL": "2"}).start()
    for name, model in MODELS.items():
        install(process, name, ensure_model(model))
    yield process
    process.stop()
    # Ollama warns about an option it does not know and ignores it, and so do we: no client of the
    # matrix should need that (a new client version that does must be looked at, and said so here).
    ignored = [line for line in process.log_path.read_text(errors="replace").splitlines() if "invalid option" in line]
    assert not ignored, f"clients sent options the server ignored: {ignored[:5]}"


@pytest.fixture(scope="session")
def url(server: ServerProcess) -> str:
    return server.url


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    client = dict(report.user_properties).get("client")
    if not isinstance(client, tuple):
        return
    key = (str(client[0]), str(client[1]))
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(key)
        _outcomes[key] = "failed" if "failed" in (previous, report.outcome) else report.outcome


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("client")
    if marker is not None:
        item.user_properties.append(("client", tuple(marker.args)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _outcomes:
        return
    clients: dict[str, Any] = {}
    for (name, path), outcome in sorted(_outcomes.items()):
        entry = clients.setdefault(name, {"version": _version(name), "paths": {}})
        entry["paths"][path] = outcome
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"clients": clients}, indent=2) + "\n")


def _version(name: str) -> str:
    if name.startswith("npm:"):
        lock = Path(__file__).parent / "js" / "package.json"
        return str(json.loads(lock.read_text())["dependencies"].get(name.removeprefix("npm:"), "?"))
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"
