"""pollama behind a real nginx, configured with the shipped ``packaging/nginx/pollama.conf``.

nginx runs unprivileged in the foreground with everything (pid, logs, temp files) in a temporary
directory. Its configuration is the shipped server block with two changes only: the port it listens on
and the port it proxies to. A second server block, the same but with ``proxy_set_header Host $host;``
(as many templates have it), shows why the shipped file rewrites the Host header. Skipped where there is
no ``nginx`` binary (Debian: ``apt-get install nginx-light``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import pytest

from tests.integration.test_inference import COUNTING, MODEL, create_smol
from tests.servers import REPO, ServerProcess, free_port

SHIPPED = REPO / "packaging" / "nginx" / "pollama.conf"
ALLOWED_ORIGIN = "https://chat.example.com"
PUBLIC_HOST = "ollama.example.com"


def find_nginx() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/usr/local/nginx/sbin")


NGINX = find_nginx()
pytestmark = pytest.mark.skipif(NGINX is None, reason="no nginx binary (Debian: apt-get install nginx-light)")


def server_block(listen: int, upstream: int, *, host_line: str | None = None) -> str:
    """The shipped server block, listening on ``listen`` and proxying to ``upstream``."""
    text = SHIPPED.read_text()
    text, listens = re.subn(r"(?m)^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{listen};", text)
    text, passes = re.subn(r"proxy_pass http://127\.0\.0\.1:11434;", f"proxy_pass http://127.0.0.1:{upstream};", text)
    assert (listens, passes) == (1, 1), "the shipped file must keep one `listen 80;` and one proxy_pass"
    if host_line is not None:
        text, hosts = re.subn(r"proxy_set_header Host localhost:11434;", host_line, text)
        assert hosts == 1
    return text


def main_config(root: Path, blocks: list[str]) -> str:
    """A whole nginx.conf around the server blocks, writing nothing outside ``root``."""
    version = subprocess.run([NGINX, "-V"], capture_output=True, text=True).stderr
    temp_paths = [f"client_body_temp_path {root}/client_body;", f"proxy_temp_path {root}/proxy;"]
    # Every compiled-in module creates its temp directory at start, by default under /var/lib/nginx.
    temp_paths += [
        f"{module}_temp_path {root}/{module};"
        for module in ("fastcgi", "uwsgi", "scgi")
        if f"--without-http_{module}_module" not in version
    ]
    # Run as root (as in CI), the workers would switch to `nobody`, who cannot enter pytest's tmp directories.
    user = "user root;" if os.geteuid() == 0 else ""
    return "\n".join(
        [
            user,
            "worker_processes 1;",
            f"pid {root}/nginx.pid;",
            f"error_log {root}/error.log info;",
            "events { worker_connections 64; }",
            "http {",
            f"access_log {root}/access.log;",
            *temp_paths,
            *blocks,
            "}",
        ]
    )


@dataclass
class Proxy:
    url: str
    host_passthrough_url: str
    root: Path


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    # OLLAMA_DEBUG=1 turns on the HTTP server's access log, which shows the client address it saw.
    env = {"OLLAMA_DEBUG": "1", "OLLAMA_ORIGINS": ALLOWED_ORIGIN}
    process = ServerProcess(tmp_path_factory.mktemp("pollama"), extra_env=env).start()
    try:
        create_smol(process, smollm2_path)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: ServerProcess) -> Iterator[Proxy]:
    assert NGINX is not None
    root = tmp_path_factory.mktemp("nginx")
    shipped, passthrough = free_port(), free_port()
    blocks = [
        server_block(shipped, upstream.port),
        server_block(passthrough, upstream.port, host_line="proxy_set_header Host $host;"),
    ]
    config = root / "nginx.conf"
    config.write_text(main_config(root, blocks))
    # -e: the error log before the configuration is read (else /var/log/nginx/error.log).
    command = [NGINX, "-p", str(root), "-e", str(root / "error.log"), "-c", str(config), "-g", "daemon off;"]
    test = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{shipped}"
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, (root / "error.log").read_text()
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (root / "error.log").read_text()
                time.sleep(0.05)
        yield Proxy(url, f"http://127.0.0.1:{passthrough}", root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_root_through_the_proxy(proxy: Proxy) -> None:
    response = httpx.get(proxy.url + "/")
    assert (response.status_code, response.text) == (200, "Ollama is running")
    # A public name in the Host header, as a browser or client out there sends it: nginx rewrites it.
    response = httpx.get(proxy.url + "/api/version", headers={"Host": PUBLIC_HOST})
    assert response.status_code == 200
    assert "version" in response.json()


def test_without_the_host_rewrite_pollama_refuses_a_public_name(proxy: Proxy) -> None:
    response = httpx.get(proxy.host_passthrough_url + "/api/version", headers={"Host": PUBLIC_HOST})
    assert response.status_code == 403
    # The same block serves a local name: it is only the Host header that decides.
    assert httpx.get(proxy.host_passthrough_url + "/api/version").status_code == 200


def test_the_official_client_lists_and_chats(proxy: Proxy) -> None:
    client = ollama.Client(host=proxy.url)
    assert f"{MODEL}:latest" in [model.model for model in client.list().models]
    answer = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hello."}],
        options={"temperature": 0, "num_predict": 8},
    )
    assert answer.done and answer.message.role == "assistant" and answer.message.content
    chunks = list(
        client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Say hello."}],
            options={"temperature": 0, "num_predict": 8},
            stream=True,
        )
    )
    assert len(chunks) > 2 and chunks[-1].done


def test_streaming_is_not_buffered(proxy: Proxy) -> None:
    body = {
        "model": MODEL,
        "prompt": COUNTING,
        "raw": True,
        "options": {"temperature": 0, "num_predict": 40},
    }
    # Load the model first, so that the timed stream is all generation.
    httpx.post(proxy.url + "/api/generate", json={**body, "stream": False, "options": {"num_predict": 1}}, timeout=60)
    arrivals: list[float] = []
    lines: list[str] = []
    with httpx.stream("POST", proxy.url + "/api/generate", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        for line in response.iter_lines():
            if line:
                arrivals.append(time.monotonic())
                lines.append(line)
    assert len(lines) == 41 and '"done":true' in lines[-1]
    eval_seconds = httpx.Response(200, content=lines[-1]).json()["eval_duration"] / 1e9
    spread = arrivals[-1] - arrivals[0]
    distinct = len({round(moment, 3) for moment in arrivals})
    print(f"40 tokens: generated in {eval_seconds:.3f} s, arrived over {spread:.3f} s at {distinct} distinct ms")
    # Buffered, the lines would arrive together once the answer ends; unbuffered, as they are generated.
    assert spread > 0.5 * eval_seconds
    assert distinct >= 10
    # The first token is there well before the last.
    assert arrivals[1] - arrivals[0] < 0.5 * spread


def test_blob_upload_of_several_megabytes(proxy: Proxy, upstream: ServerProcess, tmp_path: Path) -> None:
    # Larger than nginx's default client_max_body_size (1 MB), which would answer 413.
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(6 * 1024 * 1024))
    digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    assert ollama.Client(host=proxy.url).create_blob(blob) == digest
    assert httpx.head(f"{upstream.url}/api/blobs/{digest}").status_code == 200
    assert httpx.head(f"{proxy.url}/api/blobs/{digest}").status_code == 200


def test_origins_still_apply_behind_the_proxy(proxy: Proxy) -> None:
    # After the Host rewrite no browser origin is "same origin": a web app needs OLLAMA_ORIGINS.
    refused = httpx.get(proxy.url + "/api/version", headers={"Host": PUBLIC_HOST, "Origin": f"https://{PUBLIC_HOST}"})
    assert refused.status_code == 403
    allowed = httpx.get(proxy.url + "/api/version", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_the_client_address_reaches_pollama(proxy: Proxy, upstream: ServerProcess) -> None:
    # nginx appends the address it saw (127.0.0.1) to X-Forwarded-For; pollama's HTTP server trusts a proxy on
    # loopback and takes the address before it as the client's, as its access log shows.
    httpx.get(proxy.url + "/api/tags", headers={"X-Forwarded-For": "203.0.113.7"}).raise_for_status()
    deadline = time.monotonic() + 5
    while '203.0.113.7:0 - "GET /api/tags HTTP/1.1" 200' not in upstream.log_path.read_text():
        assert time.monotonic() < deadline, upstream.log_path.read_text()[-3000:]
        time.sleep(0.05)
