"""llama.cpp's own tools as baselines: llama-server (and llama-bench) built from the llama.cpp that the pinned
llama-cpp-python vendors, so both sides run the same kernels.

``../shared/tools/build-llama-anchors.sh`` builds them into ``~/.cache/llama-anchors-<version>/bin`` (about
ten minutes on two cores, cached after); ``LLAMA_ANCHORS_BIN`` points elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx

from tests.servers import free_port

__all__ = ["LlamaServer", "anchor", "llama_server", "required_anchor"]


@dataclass(frozen=True)
class LlamaServer:
    url: str
    pid: int


def anchor(name: str) -> Path | None:
    """The built tool ``name`` (``llama-server``, ``llama-bench``), or None where it has not been built."""
    configured = os.environ.get("LLAMA_ANCHORS_BIN")
    version = metadata.version("llama_cpp_python")
    folder = Path(configured) if configured else Path.home() / ".cache" / f"llama-anchors-{version}" / "bin"
    path = folder / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def required_anchor(name: str) -> Path:
    """The built tool ``name``; where it is not built, the script exits saying how to build it."""
    path = anchor(name)
    if path is None:
        sys.exit(f"{name} is not built: run ../shared/tools/build-llama-anchors.sh first")
    return path


@contextmanager
def llama_server(binary: Path, model: Path, arguments: list[str], log: Path) -> Iterator[LlamaServer]:
    """A llama-server on ``model`` with ``arguments``, on a free loopback port, once it is healthy."""
    port = free_port()
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), *arguments]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {process.returncode}; see {log}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not become healthy in 120 s; see {log}")
            time.sleep(0.2)
        yield LlamaServer(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
