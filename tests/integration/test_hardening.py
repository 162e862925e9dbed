"""Bad input never crashes, exhausts or hangs the server (issue 20's table, the HTTP-level rows).

Each test sends what a fuzzer or a careless client sent, to a real server with SmolLM2, and checks
the clear 4xx (or the finished stream), that the server and its runner are still fine afterwards,
and that the log holds one line per event and no traceback.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pollama.server.limits import BODY_TIMED_OUT, BODY_TOO_LARGE
from pollama.server.shutdown import SHUTTING_DOWN
from tests.integration.test_inference import COUNTING, GREEDY, MODEL, create_smol
from tests.servers import ServerProcess

BODY_LIMIT = 1 << 20
SHORT = {**GREEDY, "num_predict": 2}
# Every route that reads a JSON body, with a body that is otherwise valid.
JSON_ROUTES = {
    "/api/generate": {"model": MODEL, "prompt": "hi", "stream": False, "options": SHORT},
    "/api/chat": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False, "options": SHORT},
    "/api/embed": {"model": MODEL, "input": "hi"},
    "/api/tokenize": {"model": MODEL, "content": "hi"},
    "/api/show": {"model": MODEL, "system": "hi"},
    "/v1/chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "/v1/completions": {"model": MODEL, "prompt": "hi", "max_tokens": 2},
    "/v1/embeddings": {"model": MODEL, "input": "hi"},
    "/v1/messages": {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]},
}


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("hardened"),
        extra_env={
            "OLLAMA_MAX_BODY_SIZE": str(BODY_LIMIT),
            "OLLAMA_HEADER_TIMEOUT": "1s",
            "OLLAMA_BODY_TIMEOUT": "1s",
        },
    ).start()
    create_smol(server, smollm2_path)
    yield server
    server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]


@pytest.fixture
def http(hardened: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hardened.url, timeout=120) as session:
        yield session


def post_raw(http: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return http.post(path, content=body, headers={"content-type": "application/json"})


def error_of(response: httpx.Response) -> str:
    error = response.json()["error"]
    return error["message"] if isinstance(error, dict) else error


def still_serves(http: httpx.Client) -> None:
    response = http.post("/api/generate", json=JSON_ROUTES["/api/generate"])
    assert response.status_code == 200, response.text
    assert response.json()["done"] is True


# --- JSON that Python's decoder would let through or choke on --------------------------------------


@pytest.mark.parametrize("path", sorted(JSON_ROUTES))
def test_deep_nesting_is_a_400(http: httpx.Client, path: str) -> None:
    response = post_raw(http, path, b"[" * 5000 + b"]" * 5000)
    assert response.status_code == 400
    assert "nested deeper than 128 levels" in error_of(response)


def test_deep_nesting_inside_a_valid_request_is_a_400(http: httpx.Client) -> None:
    nested = "[" * 200 + "]" * 200
    body = f'{{"model": "{MODEL}", "prompt": "hi", "format": {{"type": "object", "x": {nested}}}}}'
    response = post_raw(http, "/api/generate", body.encode())
    assert response.status_code == 400
    assert error_of(response) == "invalid JSON: nested deeper than 128 levels"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_a_400(http: httpx.Client, literal: bytes) -> None:
    body = b'{"model": "smol", "prompt": "hi", "options": {"temperature": ' + literal + b"}}"
    response = post_raw(http, "/api/generate", body)
    assert response.status_code == 400
    assert error_of(response).startswith("invalid JSON: ")


@pytest.mark.parametrize("path", sorted(JSON_ROUTES))
def test_lone_surrogates_become_replacement_characters(http: httpx.Client, path: str) -> None:
    # Go's decoder turns an unpaired surrogate into U+FFFD; so does pollama's, on every route.
    body = json.dumps(JSON_ROUTES[path]).replace('"hi"', '"hi \\ud800 \\udfff"').encode()
    assert b"\\ud800" in body
    response = post_raw(http, path, body)
    assert response.status_code == 200, response.text


def test_a_lone_surrogate_is_read_as_u_fffd(http: httpx.Client) -> None:
    def tokens(raw_content: str) -> list[int]:
        body = '{"model": "smol", "content": "' + raw_content + '"}'
        response = post_raw(http, "/api/tokenize", body.encode())
        assert response.status_code == 200, response.text
        return response.json()["tokens"]

    assert tokens("a \\ud800 b") == tokens("a \\ufffd b")
    assert tokens("\\ud83d\\ude00") == tokens("\U0001f600")  # a real pair still joins


# --- option values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_thread": 1_000_000}, 'option "num_thread" must be at most 512'),
        ({"num_parallel": 100_000}, 'option "num_parallel" must be at most 256'),
        ({"top_k": "many"}, 'option "top_k" must be of type integer'),
        ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
        ({"stop": "x"}, 'option "stop" must be of type array'),
        ({"num_ctx": 10**30}, 'option "num_ctx" is out of range for an integer'),
    ],
)
def test_bad_option_values_are_a_400(http: httpx.Client, options: dict, message: str) -> None:
    response = http.post("/api/generate", json={"model": MODEL, "prompt": "hi", "stream": False, "options": options})
    assert (response.status_code, error_of(response)) == (400, message)


def test_huge_keep_alive_means_forever(http: httpx.Client) -> None:
    body = b'{"model": "smol", "prompt": "hi", "stream": false, "keep_alive": 1e300, "options": {"num_predict": 1}}'
    response = post_raw(http, "/api/generate", body)
    assert response.status_code == 200, response.text
    (loaded,) = http.get("/api/ps").json()["models"]
    assert loaded["expires_at"][:4] > "2200"
    http.post("/api/generate", json={"model": MODEL, "keep_alive": "5m"})  # back to normal for the other tests


@pytest.mark.parametrize("context", [[-1], [10**9]])
def test_context_with_invalid_token_ids_is_a_400(http: httpx.Client, context: list[int]) -> None:
    body = {"model": MODEL, "prompt": "hi", "context": context, "stream": False, "options": SHORT}
    response = http.post("/api/generate", json=body)
    assert response.status_code == 400
    assert error_of(response) == f"invalid token id {context[0]}"
    still_serves(http)


def test_an_option_name_cannot_forge_a_log_line(http: httpx.Client, hardened: ServerProcess) -> None:
    options = {**SHORT, "evil\nlevel=ERROR source=forged msg=owned": 1}
    response = http.post("/api/generate", json={"model": MODEL, "prompt": "hi", "stream": False, "options": options})
    assert response.status_code == 200
    lines = hardened.log_path.read_text().splitlines()
    assert not [line for line in lines if line.startswith("level=ERROR source=forged")]
    assert [line for line in lines if "evil\\nlevel=ERROR source=forged msg=owned" in line]


# --- bodies and connections -------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413(http: httpx.Client) -> None:
    big = b'{"model": "smol", "prompt": "' + b"a" * BODY_LIMIT + b'"}'
    response = post_raw(http, "/api/generate", big)
    assert (response.status_code, error_of(response)) == (413, BODY_TOO_LARGE)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = http.post("/api/generate", content=chunks())
    assert (response.status_code, error_of(response)) == (413, BODY_TOO_LARGE)
    still_serves(http)


def test_blob_uploads_are_not_bound_by_the_json_limit(http: httpx.Client) -> None:
    import hashlib

    blob = b"\x00" * (2 * BODY_LIMIT)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    assert http.post(f"/api/blobs/{digest}", content=blob).status_code == 201


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_until_closed(sock: socket.socket) -> bytes:
    """The whole answer: headers and body may arrive in separate segments."""
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer


def test_a_body_that_stops_arriving_is_a_408(hardened: ServerProcess) -> None:
    with _connect(hardened) as sock:
        sock.sendall(b'POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"model"')
        started = time.monotonic()
        answer = _read_until_closed(sock)  # returns only once the server has closed the connection
        assert time.monotonic() - started < 5
        assert answer.startswith(b"HTTP/1.1 408")
        assert BODY_TIMED_OUT.encode() in answer


def test_half_open_connections_are_closed(hardened: ServerProcess, http: httpx.Client) -> None:
    sockets = [_connect(hardened) for _ in range(200)]
    try:
        for index, sock in enumerate(sockets):
            if index % 2:
                sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: loc")  # headers that never end
        assert http.get("/api/version").status_code == 200  # the server answers meanwhile
        time.sleep(2.5)
        for sock in sockets:
            sock.settimeout(2)
            assert sock.recv(4096) == b""  # closed by the server
    finally:
        for sock in sockets:
            sock.close()


def test_a_client_leaving_mid_body_is_logged_once(hardened: ServerProcess, http: httpx.Client) -> None:
    before = hardened.log_path.read_text().count("client disconnected before sending its whole request")
    for _ in range(5):
        with _connect(hardened) as sock:
            sock.sendall(b'POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{"mod')
            time.sleep(0.1)
    assert http.get("/api/version").status_code == 200
    time.sleep(0.5)
    log = hardened.log_path.read_text()
    assert log.count("client disconnected before sending its whole request") - before == 5
    assert "ClientDisconnect" not in log


# --- shutdown ----------------------------------------------------------------------------------------


def test_sigterm_ends_a_stream_with_an_error_line(tmp_path: Path, smollm2_path: Path) -> None:
    server = ServerProcess(tmp_path / "server").start()
    try:
        create_smol(server, smollm2_path)
        lines: list[dict] = []
        streaming = threading.Event()

        def read() -> None:
            body = {"model": MODEL, "prompt": COUNTING, "raw": True, "options": GREEDY}
            with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=60) as response:
                for line in response.iter_lines():
                    lines.append(json.loads(line))
                    streaming.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert streaming.wait(60)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        reader.join(30)
        assert not reader.is_alive()
        assert server.process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        server.stop()
    assert lines[-1] == {"error": SHUTTING_DOWN}
    assert len(lines) > 2 and all("response" in line for line in lines[:-1])
    assert "Traceback" not in server.log_path.read_text()
