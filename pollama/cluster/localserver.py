"""The ``pollama serve`` of one replica: a child process on the replica's node, unchanged.

Each replica runs the single-machine server (its scheduler, its runners) as it is, on a free port of
its node, with a key of the cluster's so that only the cluster talks to it. The child gets SIGTERM
when the replica's process dies, however it dies, so a killed replica leaves no server or runner
behind.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

__all__ = ["LocalServer", "LocalServerError", "free_port", "server_environment"]

_PR_SET_PDEATHSIG = 1
_START_TIMEOUT = 120.0


class LocalServerError(RuntimeError):
    pass


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalServer:
    def __init__(self, host: str, port: int, key: str, env: Mapping[str, str], log_path: Path) -> None:
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        self.key = key
        self.log_path = log_path
        self._env = {**env, "OLLAMA_HOST": f"{self.url.removeprefix('http://')}"}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pollama", "serve"], env=self._env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalServerError(f"pollama serve exited with {self._process.returncode}: {self._tail()}")
            try:
                httpx.get(self.url + "/api/version", headers=self.auth, timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise LocalServerError(f"pollama serve did not answer within {_START_TIMEOUT:.0f} s: {self._tail()}")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self) -> None:
        """SIGTERM (the server unloads its runners), then SIGKILL after its grace period."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"


def server_environment(base: Mapping[str, str], overrides: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """The child's environment: the node's, the cluster's settings over it, the cluster's keys; never
    TLS (the cluster's ingress talks plain HTTP to it on the node) nor a keys file (keys are given)."""
    env = {name: value for name, value in base.items() if not name.startswith(("POLLAMA_TLS_", "POLLAMA_API_KEYS"))}
    env.update(overrides)
    env["POLLAMA_API_KEYS"] = ",".join(keys)
    return env
