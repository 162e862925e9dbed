"""The runner's side of RPC: greeting a ggml-rpc-server before llama.cpp connects (which aborts the process
on any failure, or waits forever on a busy server), and the build without the RPC backend.

The fake servers here speak the HELLO exchange of ggml-rpc.cpp: a command byte (14), the request's
size as 8 bytes and 24 bytes of transport capabilities; the answer's size, then major, minor and
patch version, a padding byte and 24 bytes of capabilities.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import llama_cpp
import pytest

from pollama.runner import ggml, rpc

HELLO_REQUEST = struct.pack("<BQ", 14, 24) + bytes(24)
Answer = Callable[[socket.socket], None]


def hello_reply(major: int, minor: int, patch: int) -> bytes:
    return struct.pack("<Q", 28) + bytes([major, minor, patch, 0]) + bytes(24)


@contextmanager
def fake_server(answer: Answer | None) -> Iterator[str]:
    """A listening socket on loopback; ``answer`` gets each accepted connection (None: never accept)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            if answer is not None:
                answer(connection)

    thread = threading.Thread(target=serve, daemon=True) if answer is not None else None
    if thread is not None:
        thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        if thread is not None:
            thread.join(timeout=2)


def replying(reply: bytes) -> Answer:
    def answer(connection: socket.socket) -> None:
        request = b""
        while len(request) < len(HELLO_REQUEST):
            chunk = connection.recv(64)
            if not chunk:
                return
            request += chunk
        assert request == HELLO_REQUEST
        connection.sendall(reply)

    return answer


def hang_up(connection: socket.socket) -> None:
    """Close the connection at once (``fake_server`` closes it on return)."""


def test_a_server_of_the_same_protocol_is_greeted() -> None:
    with fake_server(replying(hello_reply(*rpc.PROTOCOL, 0))) as endpoint:
        assert rpc.greet(endpoint, timeout=5) == (*rpc.PROTOCOL, 0)


def test_an_older_minor_version_is_fine_a_newer_one_is_not() -> None:
    major, minor = rpc.PROTOCOL
    if minor > 0:
        with fake_server(replying(hello_reply(major, minor - 1, 3))) as endpoint:
            rpc.greet(endpoint, timeout=5)
    with (
        fake_server(replying(hello_reply(major, minor + 1, 0))) as endpoint,
        pytest.raises(rpc.RpcError, match=f"speaks RPC protocol {major}.{minor + 1}.0, this llama.cpp"),
    ):
        rpc.greet(endpoint, timeout=5)
    with (
        fake_server(replying(hello_reply(major + 1, 0, 0))) as endpoint,
        pytest.raises(rpc.RpcError, match="run a ggml-rpc-server built from the same llama.cpp version"),
    ):
        rpc.greet(endpoint, timeout=5)


def test_nobody_listening_is_named() -> None:
    with fake_server(None) as endpoint:
        pass  # closed: the port is free again
    with pytest.raises(rpc.RpcError, match=f"cannot connect to the RPC server {endpoint}: Connection refused"):
        rpc.greet(endpoint, timeout=5)


def test_a_busy_server_times_out_instead_of_hanging() -> None:
    # The kernel accepts the connection into the backlog; ggml-rpc-server, busy with its one client, never reads it.
    with (
        fake_server(None) as endpoint,
        pytest.raises(rpc.RpcError, match="did not answer within 0.3 s: ggml-rpc-server serves one client"),
    ):
        rpc.greet(endpoint, timeout=0.3)


def test_something_else_on_the_port_is_not_taken_for_a_server() -> None:
    with (
        fake_server(replying(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as endpoint,
        pytest.raises(rpc.RpcError, match="did not answer as a ggml-rpc-server"),
    ):
        rpc.greet(endpoint, timeout=5)
    with fake_server(hang_up) as endpoint, pytest.raises(rpc.RpcError, match="broke off the handshake"):
        rpc.greet(endpoint, timeout=5)


def test_a_host_that_does_not_resolve_is_named() -> None:
    with pytest.raises(rpc.RpcError, match="cannot resolve the RPC server no-such-host.invalid:50052"):
        rpc.greet("no-such-host.invalid:50052", timeout=5)


@pytest.mark.skipif(bool(llama_cpp.llama_supports_rpc()), reason="this llama-cpp-python has the RPC backend")
def test_a_build_without_the_backend_says_how_to_get_one() -> None:
    with pytest.raises(rpc.RpcError) as raised:
        rpc.offload_devices(["127.0.0.1:50052"])
    message = str(raised.value)
    assert "has no RPC backend" in message
    assert (
        'CMAKE_ARGS="-DGGML_RPC=ON" pip install --force-reinstall --no-binary llama-cpp-python '
        f"llama-cpp-python=={llama_cpp.__version__}"
    ) in message
    assert "LLAMA_CPP_LIB_PATH" in message and "-DGGML_RPC=ON -DBUILD_SHARED_LIBS=ON" in message


def test_the_device_calls_answer() -> None:
    cpu = [device for device in ggml.devices() if device.kind == ggml.CPU_DEVICE]
    assert [device.backend for device in cpu] == ["CPU"]
    assert cpu[0].total_memory >= cpu[0].free_memory > 0
    registry = ggml.backend_registry("CPU")
    assert registry is not None
    assert [device.handle for device in ggml.registry_devices(registry)] == [cpu[0].handle]
    assert ggml.backend_registry("no such backend") is None
    assert ggml.proc_address(registry, "no_such_function") is None
    assert ggml.proc_address(registry, "ggml_backend_set_n_threads") is not None


def test_ggml_is_the_copy_libllama_loaded() -> None:
    """One libggml in the process: the one llama_cpp's libllama linked (LLAMA_CPP_LIB_PATH's, if set)."""
    ggml.backend_names()
    with open("/proc/self/maps") as maps:
        mapped = {line.split()[-1] for line in maps if "/libggml" in line}
    assert len({Path(path).name.split(".so")[0] for path in mapped}) == len(mapped), mapped
