"""A model split over a real ``ggml-rpc-server`` (docs/rpc.md), and the errors when that cannot be done.

The split needs a llama.cpp built with the RPC backend, which the llama-cpp-python wheels are not: the
tests that split look for one in ``POLLAMA_TEST_RPC_BUILD`` (default
``~/.cache/llama-anchors-0.3.36/build-rpc/bin``: the llama.cpp that llama-cpp-python 0.3.36 vendors,
configured with ``-DGGML_RPC=ON -DBUILD_SHARED_LIBS=ON``), holding ``libllama.so``, ``libggml-rpc.so``
and ``ggml-rpc-server``, and skip without one. The server's runners load that build through
``LLAMA_CPP_LIB_PATH``. The error of a build without the backend is checked with the installed one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import llama_cpp
import pytest

from pollama.runner import rpc
from tests.integration.test_scheduler import install
from tests.servers import ServerProcess, free_port
from tools.test_models import ensure_model

BUILD = Path(
    os.environ.get("POLLAMA_TEST_RPC_BUILD") or Path.home() / ".cache" / "llama-anchors-0.3.36" / "build-rpc" / "bin"
)
NEEDED = ("libllama.so", "libggml.so", "libggml-rpc.so", "ggml-rpc-server")
missing = [name for name in NEEDED if not (BUILD / name).exists()]
needs_rpc_build = pytest.mark.skipif(
    bool(missing),
    reason=f"no llama.cpp built with -DGGML_RPC=ON in {BUILD} (lacks {', '.join(missing)}); "
    "set POLLAMA_TEST_RPC_BUILD to its bin directory (docs/rpc.md)",
)
# Greedy, so that a split model must say exactly what the whole one says.
GREEDY = {"temperature": 0, "seed": 42, "num_predict": 24, "num_ctx": 512}
PROMPT = "Name three colours of the rainbow."


@dataclass
class RpcServer:
    process: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def resident_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def clients(self) -> int:
        return self.log.read_text(errors="replace").count("Accepted client connection")


@pytest.fixture
def rpc_server(tmp_path: Path) -> Iterator[RpcServer]:
    port = free_port()
    log = tmp_path / "rpc-server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(BUILD / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(port), "-t", str(os.cpu_count() or 1)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = RpcServer(process, f"127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 20
        while True:  # the greeting is a client of its own: it leaves the server ready for the next
            try:
                rpc.greet(server.endpoint, timeout=2)
                break
            except rpc.RpcError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"ggml-rpc-server did not start: {log.read_text(errors='replace')}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def generate(server: ServerProcess, model: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/generate",
        json={"model": model, "prompt": PROMPT, "stream": False, "options": GREEDY},
        timeout=60,
    )


def serve(root: Path, **env: str) -> ServerProcess:
    server = ServerProcess(root, extra_env=env).start()
    install(server, "smol", ensure_model("smollm2"))
    return server


@needs_rpc_build
def test_a_model_split_over_an_rpc_server_says_what_the_whole_one_says(tmp_path: Path, rpc_server: RpcServer) -> None:
    whole = serve(tmp_path / "whole", LLAMA_CPP_LIB_PATH=str(BUILD))
    try:
        expected = generate(whole, "smol")
    finally:
        whole.stop()
    assert expected.status_code == 200, expected.text

    before, clients = rpc_server.resident_bytes(), rpc_server.clients()
    split = serve(tmp_path / "split", LLAMA_CPP_LIB_PATH=str(BUILD), POLLAMA_RPC_SERVERS=rpc_server.endpoint)
    try:
        answer = generate(split, "smol")
        assert answer.status_code == 200, answer.text
        # The weights went to the RPC server: its memory grew by them (SmolLM2's layers are 92 MiB of 96).
        grown = rpc_server.resident_bytes() - before
        assert grown > 80 << 20, f"the RPC server grew by {grown >> 20} MiB only"
        assert rpc_server.clients() > clients
        # llama.cpp reported the layers' buffers on the RPC device, which /api/ps counts as offloaded.
        (running,) = httpx.get(f"{split.url}/api/ps", timeout=10).json()["models"]
        assert running["size_vram"] > 80 << 20, running
        assert answer.json()["response"] == expected.json()["response"]
        assert answer.json()["eval_count"] == expected.json()["eval_count"] > 0
    finally:
        split.stop()


@needs_rpc_build
def test_an_unreachable_rpc_server_is_an_error_not_a_crash(tmp_path: Path) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    server = serve(tmp_path, LLAMA_CPP_LIB_PATH=str(BUILD), POLLAMA_RPC_SERVERS=nobody)
    try:
        started = time.monotonic()
        answer = generate(server, "smol")
        assert answer.status_code == 500
        assert f"cannot connect to the RPC server {nobody}: Connection refused" in answer.json()["error"]
        assert time.monotonic() - started < 30  # no fallback ladder of four more tries, no hang
        assert httpx.get(f"{server.url}/api/version", timeout=10).status_code == 200
    finally:
        server.stop()


@pytest.mark.skipif(bool(llama_cpp.llama_supports_rpc()), reason="the installed llama-cpp-python has the RPC backend")
def test_a_build_without_the_rpc_backend_says_which_flag_it_needs(tmp_path: Path) -> None:
    server = serve(tmp_path, POLLAMA_RPC_SERVERS=f"127.0.0.1:{free_port()}")
    try:
        answer = generate(server, "smol")
        assert answer.status_code == 500
        error = answer.json()["error"]
        assert "the installed llama-cpp-python has no RPC backend (it was built without GGML_RPC)" in error
        assert (
            'CMAKE_ARGS="-DGGML_RPC=ON" pip install --force-reinstall --no-binary llama-cpp-python '
            f"llama-cpp-python=={llama_cpp.__version__}"
        ) in error
        assert "LLAMA_CPP_LIB_PATH" in error
        assert httpx.get(f"{server.url}/api/version", timeout=10).status_code == 200
    finally:
        server.stop()


def test_a_wrong_server_list_stops_the_start(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, extra_env={"POLLAMA_RPC_SERVERS": "10.0.0.2:50052,[::1]:50052"})
    (tmp_path / "home").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "pollama", "serve"], env=server.env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Error: POLLAMA_RPC_SERVERS: '[::1]:50052': llama.cpp's RPC client reaches servers over IPv4 only" in (
        result.stderr
    )
