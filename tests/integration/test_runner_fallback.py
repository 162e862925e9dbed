"""A runner that crashes while loading or on its first decode heals itself, on any machine.

``POLLAMA_TEST_RUNNER_CRASH`` makes a real runner die of SIGSEGV, as llama.cpp's AMX kernels do on
Sapphire Rapids, whenever it runs in a configuration the variable names as unsafe; a real server then
goes through crash, retry in a safer configuration, answer, and a remembered configuration that the
next start uses from the beginning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from tests.integration.test_inference import GREEDY, MODEL, WHY, cmdline, create_smol, server_children, wait_for
from tests.servers import ServerProcess

SIGSEGV = "signal: sigsegv (segmentation fault)"
SHORT = {**GREEDY, "num_predict": 4}


@pytest.fixture
def crashing(tmp_path: Path, smollm2_path: Path) -> Iterator[Callable]:
    servers: list[ServerProcess] = []

    def start(unsafe: str) -> ServerProcess:
        server = ServerProcess(
            tmp_path / "server", extra_env={"POLLAMA_TEST_RUNNER_CRASH": unsafe, "OLLAMA_DEBUG": "1"}
        ).start()
        servers.append(server)
        create_smol(server, smollm2_path)
        return server

    yield start
    for server in servers:
        server.stop()


def remembered(server: ServerProcess) -> dict:
    path = server.root / "home" / ".ollama" / "runner-fallbacks.json"
    (entry,) = json.loads(path.read_text())["models"].values()
    return entry


def runner_arguments(server: ServerProcess) -> list[str]:
    (runner,) = server_children(server)
    return cmdline(runner)


def log_text(server: ServerProcess) -> str:
    return server.log_path.read_text()


def runner_starts(server: ServerProcess) -> int:
    return log_text(server).count("runner: system info:")


@pytest.mark.timeout(180)
def test_a_crash_while_loading_is_retried_safer_and_remembered(crashing: Callable) -> None:
    server = crashing("extra-buffers")
    client = ollama.Client(host=server.url)

    answer = client.generate(MODEL, WHY, options=SHORT)
    assert answer.done and answer.response

    log = log_text(server)
    assert re.search(
        rf"the runner for {MODEL}:latest crashed while loading \({re.escape(SIGSEGV)}\); loading it again with "
        r"llama.cpp's repacked CPU weight buffers off\. It loads that way on this machine from now on \(remembered in "
        rf"{re.escape(str(server.root / 'home' / '.ollama' / 'runner-fallbacks.json'))}",
        log,
    ), log[-3000:]
    assert runner_starts(server) == 2
    arguments = runner_arguments(server)
    assert "--no-extra-buffers" in arguments and "--no-mmap" not in arguments
    entry = remembered(server)
    assert entry["fallbacks"] == ["no-extra-buffers"]
    assert entry["cause"] == f"crashed while loading: {SIGSEGV}"

    # The next start of the server loads it the safe way at once: no crash first.
    server.restart()
    assert client.generate(MODEL, WHY, options=SHORT).done
    after_restart = log_text(server).split("Listening on")[-1]
    assert "crashed while loading" not in after_restart
    assert after_restart.count("runner: system info:") == 1
    assert f"{MODEL}:latest starts with llama.cpp's repacked CPU weight buffers off" in after_restart
    assert "--no-extra-buffers" in runner_arguments(server)


@pytest.mark.timeout(180)
def test_each_crash_goes_one_step_further(crashing: Callable) -> None:
    server = crashing("extra-buffers,mmap")
    chat = ollama.Client(host=server.url).chat(MODEL, [{"role": "user", "content": WHY}], options=SHORT)
    assert chat.message.content
    assert runner_starts(server) == 3
    arguments = runner_arguments(server)
    assert "--no-extra-buffers" in arguments and "--no-mmap" in arguments
    assert arguments[arguments.index("--flash-attn") + 1] == "auto"
    assert remembered(server)["fallbacks"] == ["no-extra-buffers", "no-mmap"]


@pytest.mark.timeout(180)
def test_a_crash_on_the_first_request_decode_runs_the_request_again(crashing: Callable) -> None:
    server = crashing("extra-buffers,request")
    client = ollama.Client(host=server.url)
    chunks = list(client.generate(MODEL, WHY, options=SHORT, stream=True))
    assert chunks[-1].done and "".join(chunk.response for chunk in chunks)

    log = log_text(server)
    assert f"the runner for {MODEL}:latest crashed on its first decode ({SIGSEGV})" in log
    assert f"a runner crashed before its first answer ({SIGSEGV}); running the request again" in log
    assert "--no-extra-buffers" in runner_arguments(server)
    assert remembered(server)["cause"] == f"crashed on its first decode: {SIGSEGV}"


@pytest.mark.timeout(180)
def test_an_embedding_request_is_run_again_too(crashing: Callable) -> None:
    server = crashing("extra-buffers,request")
    embedded = ollama.Client(host=server.url).embed(MODEL, "hello")
    assert len(embedded.embeddings) == 1 and len(embedded.embeddings[0]) > 100
    assert remembered(server)["fallbacks"] == ["no-extra-buffers"]


@pytest.mark.timeout(180)
def test_a_model_that_crashes_in_every_configuration_fails_clearly(crashing: Callable) -> None:
    server = crashing("always")
    response = httpx.post(
        server.url + "/api/generate", json={"model": MODEL, "prompt": WHY, "stream": False}, timeout=120
    )
    assert response.status_code == 500
    message = response.json()["error"]
    assert message.startswith(f"llama runner process has terminated: {SIGSEGV} while loading, ")
    assert "flash attention off" in message  # every step was tried
    assert "; the runner's last output: " in message and not message.endswith("sigsegv")
    assert runner_starts(server) == 4
    assert httpx.get(server.url + "/", timeout=10).status_code == 200
    assert wait_for(lambda: server_children(server) == [])

    # The next request tries the safest configuration once, not every one again.
    again = httpx.post(server.url + "/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": WHY}]})
    assert again.status_code == 500 and SIGSEGV in again.json()["error"]
    assert runner_starts(server) == 5


@pytest.mark.timeout(60)
def test_the_debug_log_shows_the_machine_and_the_build(crashing: Callable) -> None:
    server = crashing("")
    line = next(line for line in log_text(server).splitlines() if "system info: llama-cpp-python=" in line)
    assert re.search(r"llama-cpp-python=\d+\.\d+\.\d+ backends=\S*CPU\S* CPU : ", line), line
    assert "AVX" in line or "NEON" in line or "SSE3" in line
