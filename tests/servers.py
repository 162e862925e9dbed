"""A real ``pollama serve`` process on a free port, with its own store and home directory."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["ServerProcess", "free_port"]

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OLLAMA_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(overrides)
    return env


@dataclass
class ServerProcess:
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def tls_cert(self) -> str | None:
        """The certificate of a server started with ``POLLAMA_TLS_CERT`` (self-signed: what clients trust)."""
        return self.extra_env.get("POLLAMA_TLS_CERT")

    @property
    def env(self) -> dict[str, str]:
        defaults = {
            "HOME": str(self.root / "home"),
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(self.models),
        }
        return clean_environment(**{**defaults, **self.extra_env})

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def start(self) -> ServerProcess:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pollama", "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                verify = ssl.create_default_context(cafile=self.tls_cert) if self.tls_cert else True
                httpx.head(self.url + "/", timeout=1, verify=verify).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def cli(
        self, *args: str, input: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``pollama <args>`` against this server (``env``: variables to add or change)."""
        return subprocess.run(
            [sys.executable, "-m", "pollama", *args],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=120,
        )
