"""Opt-in API keys on a real server: each API's 401, the open paths, key files, the warning for an open
server, and the official clients (``ollama``, ``openai``, ``anthropic``) and the CLI passing a key their
own way. A server without keys (every other test) checks nothing.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from pollama.cli.client import NO_KEY, WRONG_KEY
from tests.integration.conftest import upload
from tests.servers import ServerProcess, free_port

KEYS = ("key-one-0123456789", "key-two-9876543210")
MODEL = "smol"
OPENAI_SHAPE = {"type": "invalid_request_error", "param": None, "code": "invalid_api_key"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("keyed"), extra_env={"POLLAMA_API_KEYS": ",".join(KEYS)}).start()
    yield process
    process.stop()


def request(server: ServerProcess, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": "nope", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    content = None if method in ("GET", "HEAD") else httpx.Request(method, "/", json=body).content
    return httpx.request(method, server.url + path, headers=headers, content=content, timeout=30)


def error_message(path: str, body: dict[str, Any]) -> str:
    """The message of a 401, checking that the body is in the shape of ``path``'s API."""
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        assert set(body["error"]) == {"type", "message"}
        return body["error"]["message"]
    if path.startswith("/v1/"):
        assert set(body) == {"error"} and {key: body["error"][key] for key in OPENAI_SHAPE} == OPENAI_SHAPE
        return body["error"]["message"]
    assert set(body) == {"error"} and isinstance(body["error"], str)
    return body["error"]


ENDPOINTS = [
    ("GET", "/api/version"),
    ("GET", "/api/tags"),
    ("POST", "/api/show"),
    ("POST", "/api/chat"),
    ("GET", "/api/ps"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/no/such/path"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/messages"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_api_refuses_a_missing_or_wrong_key_in_its_own_shape(
    keyed: ServerProcess, method: str, path: str
) -> None:
    missing = request(keyed, method, path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in error_message(path, missing.json())

    wrong = request(keyed, method, path, {"Authorization": f"Bearer {KEYS[0]}x"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert error_message(path, wrong.json()) == "unauthorized: invalid API key"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/version", 200),
        ("GET", "/api/tags", 200),
        ("POST", "/api/show", 404),
        ("GET", "/v1/models", 200),
        ("POST", "/v1/chat/completions", 404),
        ("POST", "/v1/messages", 404),
    ],
)
def test_either_key_is_let_through(keyed: ServerProcess, method: str, path: str, status: int) -> None:
    for key in KEYS:
        assert request(keyed, method, path, {"Authorization": f"Bearer {key}"}).status_code == status


def test_anthropic_messages_take_x_api_key(keyed: ServerProcess) -> None:
    assert request(keyed, "POST", "/v1/messages", {"x-api-key": KEYS[1]}).status_code == 404
    wrong = request(keyed, "POST", "/v1/messages", {"x-api-key": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    # Anthropic's header is Anthropic's: the native and OpenAI APIs want a bearer token.
    assert request(keyed, "GET", "/api/tags", {"x-api-key": KEYS[1]}).status_code == 401


def test_key_is_checked_before_the_body_is_read(keyed: ServerProcess) -> None:
    # A body far over the limit, announced but never sent: the answer is the 401 (not the body limit's
    # 413, nor a wait for the body), and the connection is closed.
    with socket.create_connection(("127.0.0.1", keyed.port), timeout=10) as connection:
        head = f"POST /api/create HTTP/1.1\r\nHost: 127.0.0.1:{keyed.port}\r\nContent-Length: {1 << 40}\r\n\r\n"
        connection.sendall(head.encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"connection: close" in answer.lower()


def test_health_check_stays_open(keyed: ServerProcess) -> None:
    assert httpx.get(keyed.url + "/").text == "Ollama is running"
    assert httpx.head(keyed.url + "/").status_code == 200
    assert httpx.post(keyed.url + "/").status_code == 401


def test_browser_preflight_still_answered_and_401_readable(keyed: ServerProcess) -> None:
    origin = {"Origin": "http://localhost:3000"}
    preflight = httpx.options(
        keyed.url + "/api/chat",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    # The refusal carries CORS headers, so a page can read why; a foreign origin is still a 403 first.
    refused = httpx.get(keyed.url + "/api/tags", headers=origin)
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "http://localhost:3000"
    allowed = httpx.get(keyed.url + "/api/tags", headers={**origin, "Authorization": f"Bearer {KEYS[0]}"})
    assert allowed.status_code == 200
    assert httpx.get(keyed.url + "/api/tags", headers={"Origin": "http://evil.example"}).status_code == 403


def test_keys_from_a_file_and_the_start_log(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys, one per line\n\nfile-key-aaaaaaaa\n  file-key-bbbbbbbb  \n# file-key-cccccccc\n")
    server = ServerProcess(tmp_path / "server", extra_env={"POLLAMA_API_KEYS_FILE": str(keys)}).start()
    try:
        for key, status in [("file-key-aaaaaaaa", 200), ("file-key-bbbbbbbb", 200), ("file-key-cccccccc", 401)]:
            assert request(server, "GET", "/api/tags", {"Authorization": f"Bearer {key}"}).status_code == status
        assert (
            request(server, "GET", "/api/tags", {"Authorization": "Bearer # team keys, one per line"}).status_code
            == 401
        )
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "'POLLAMA_API_KEYS': '2 keys'" in log
    assert "file-key" not in log
    assert "anyone who can reach" not in log


def serve_error(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    server = ServerProcess(tmp_path, extra_env=env)
    (tmp_path / "home").mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pollama", "serve"], env=server.env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("content", "error"),
    [(None, "cannot read .*: No such file or directory"), ("# nothing but comments\n\n", "holds no keys")],
    ids=["missing file", "only comments"],
)
def test_unusable_key_file_stops_the_start(tmp_path: Path, content: str | None, error: str) -> None:
    keys = tmp_path / "keys.txt"
    if content is not None:
        keys.write_text(content)
    result = serve_error(tmp_path, POLLAMA_API_KEYS_FILE=str(keys))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: POLLAMA_API_KEYS_FILE: ")
    assert re.search(error, last), last


def test_open_server_on_every_interface_warns_once(tmp_path: Path) -> None:
    port = free_port()
    open_server = ServerProcess(tmp_path / "open", port=port, extra_env={"OLLAMA_HOST": f"0.0.0.0:{port}"}).start()
    open_server.stop()
    warnings = [line for line in open_server.log_path.read_text().splitlines() if "anyone who can reach" in line]
    assert len(warnings) == 1
    assert "level=WARNING" in warnings[0] and "POLLAMA_API_KEYS" in warnings[0]

    port = free_port()
    env = {"OLLAMA_HOST": f"0.0.0.0:{port}", "POLLAMA_API_KEYS": KEYS[0]}
    keyed_server = ServerProcess(tmp_path / "keyed", port=port, extra_env=env).start()
    try:
        assert request(keyed_server, "GET", "/api/tags").status_code == 401
    finally:
        keyed_server.stop()
    assert "anyone who can reach" not in keyed_server.log_path.read_text()


# --- the official clients -------------------------------------------------------------------------


def test_ollama_client_sends_ollama_api_key(keyed: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=keyed.url).list()
    assert refused.value.status_code == 401 and "missing API key" in refused.value.error
    # Its own way: OLLAMA_API_KEY from the environment, sent as a bearer token ...
    monkeypatch.setenv("OLLAMA_API_KEY", KEYS[1])
    assert ollama.Client(host=keyed.url).list().models == []
    # ... or an explicit header.
    monkeypatch.delenv("OLLAMA_API_KEY")
    assert ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEYS[0]}"}).ps().models == []


def test_openai_client_api_key(keyed: ServerProcess) -> None:
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=keyed.url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert refused.value.code == "invalid_api_key" and refused.value.status_code == 401
    assert openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEYS[0], max_retries=0).models.list().object == "list"


def test_anthropic_client_api_key(keyed: ServerProcess) -> None:
    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 401
    client = anthropic.Anthropic(base_url=keyed.url, api_key=KEYS[1], max_retries=0)
    with pytest.raises(anthropic.NotFoundError):  # past the key: the model is what is missing
        client.messages.create(model="absent", max_tokens=4, messages=[{"role": "user", "content": "hi"}])


def test_one_real_answer_through_each_client(keyed: ServerProcess, smollm2_path: Path) -> None:
    native = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEYS[0]}"})
    assert native.create(MODEL, files={"smol.gguf": upload(native, smollm2_path)}).status == "success"
    options = {"temperature": 0, "num_predict": 4}
    assert native.generate(model=MODEL, prompt="Hi", options=options).done

    chat = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEYS[1], max_retries=0).chat.completions.create(
        model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}]
    )
    assert chat.choices[0].message.content

    message = anthropic.Anthropic(base_url=keyed.url, api_key=KEYS[0], max_retries=0).messages.create(
        model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content and message.usage.output_tokens > 0


# --- the CLI --------------------------------------------------------------------------------------


def cli(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return server.cli(*args, env=env)


def test_cli_sends_ollama_api_key(keyed: ServerProcess) -> None:
    listed = cli(keyed, "list", OLLAMA_API_KEY=KEYS[1])
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("NAME")
    assert cli(keyed, "ps", OLLAMA_API_KEY=KEYS[0]).returncode == 0


@pytest.mark.parametrize(
    ("env", "message"), [({}, NO_KEY), ({"OLLAMA_API_KEY": "wrong"}, WRONG_KEY)], ids=["no key", "wrong key"]
)
def test_cli_without_the_right_key_says_so(keyed: ServerProcess, env: dict[str, str], message: str) -> None:
    for args in (["list"], ["show", "x"], ["ps"], ["push", "x"]):
        result = cli(keyed, *args, **env)
        assert result.returncode == 1
        assert result.stderr.strip() == f"Error: {message}", (args, result.stderr)
    version = cli(keyed, "-v", **env)
    assert version.stdout.splitlines()[0] == f"Warning: {message}"
