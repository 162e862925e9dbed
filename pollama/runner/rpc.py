"""Devices on other machines: llama.cpp's RPC backend, which splits one model's layers over several hosts.

Each other machine runs ``ggml-rpc-server`` (docs/rpc.md). The runner adds each server as llama-server's
``--rpc`` does (llama.cpp common/arg.cpp, ``add_rpc_devices``): the RPC backend's registry
(``ggml_backend_reg_by_name("RPC")``), the ``ggml_backend_rpc_add_server`` it exports, which connects
to a server and returns a registry of the server's devices. Those devices, then the local GPUs, are
the model's ``llama_model_params.devices``; llama.cpp spreads the offloaded layers over them in
proportion to their free memory, and the rest stays on the local CPU.

ggml-rpc aborts the whole process when a server cannot be reached or fails the handshake, and waits
without limit on a server that accepted the connection but is serving another client (it serves one
at a time). So each server is greeted here first, in its own protocol and with a timeout: a message
that names the server instead of an abort or a hang.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Sequence

import llama_cpp

from pollama.runner import ggml

__all__ = ["GREETING_TIMEOUT", "PROTOCOL", "RpcError", "greet", "missing_backend", "offload_devices"]

# RPC_PROTO_MAJOR_VERSION and RPC_PROTO_MINOR_VERSION of ggml-rpc.h in the llama.cpp that
# llama-cpp-python 0.3.36 vendors: a server must have the same major and no newer minor version.
PROTOCOL = (7, 0)
GREETING_TIMEOUT = 10.0  # seconds for connecting, and again for the answer to the greeting
_HELLO = 14  # RPC_CMD_HELLO, "must be always 14" (ggml-rpc.cpp)
_CAPS_SIZE = 24  # RPC_CONN_CAPS_SIZE: transport capabilities; all zero asks for plain TCP
_REPLY_SIZE = 4 + _CAPS_SIZE  # rpc_msg_hello_rsp: major, minor, patch, padding, capabilities
_AddServer = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)  # ggml_backend_rpc_add_server


class RpcError(Exception):
    """The RPC servers cannot be used: this build lacks the backend, or a server does not answer."""


def missing_backend() -> str:
    """What to do about a llama.cpp built without the RPC backend, as exactly as it can be said."""
    version = llama_cpp.__version__
    return (
        "POLLAMA_RPC_SERVERS is set, but the installed llama-cpp-python has no RPC backend (it was built "
        "without GGML_RPC). Reinstall it with the backend: "
        f'CMAKE_ARGS="-DGGML_RPC=ON" pip install --force-reinstall --no-binary llama-cpp-python '
        f"llama-cpp-python=={version}, or point LLAMA_CPP_LIB_PATH at the library directory of a llama.cpp "
        f"of the same version built with -DGGML_RPC=ON -DBUILD_SHARED_LIBS=ON (docs/rpc.md)"
    )


def offload_devices(endpoints: Sequence[str], timeout: float = GREETING_TIMEOUT) -> list[ggml.Device]:
    """The devices a model split over ``endpoints`` is offloaded to: each server's, in order, then the
    local GPUs. llama.cpp's own choice puts RPC servers first too: the first layers (and the input)
    then cross the network once per step, not back and forth."""
    registry = ggml.backend_registry("RPC") if llama_cpp.llama_supports_rpc() else None
    if registry is None:
        raise RpcError(missing_backend())
    address = ggml.proc_address(registry, "ggml_backend_rpc_add_server")
    if address is None:
        raise RpcError("this llama.cpp's RPC backend does not export ggml_backend_rpc_add_server")
    add_server = _AddServer(address)
    remote: list[ggml.Device] = []
    for endpoint in endpoints:
        greet(endpoint, timeout)
        server = add_server(endpoint.encode())
        if not server:
            raise RpcError(f"the RPC server {endpoint} offers no devices")
        remote += ggml.registry_devices(server)
    return remote + _local_gpus()


def _local_gpus() -> list[ggml.Device]:
    """The GPUs llama.cpp would choose by itself: discrete ones, else the integrated ones of one backend.

    (llama.cpp also drops a GPU that a second backend shows again under the same device id; builds of
    llama-cpp-python carry one GPU backend, so none is seen twice here.)
    """
    local = [device for device in ggml.devices() if device.backend != "RPC"]
    discrete = [device for device in local if device.kind == ggml.GPU_DEVICE]
    if discrete:
        return discrete
    integrated = [device for device in local if device.kind == ggml.INTEGRATED_GPU_DEVICE]
    return [device for device in integrated if device.backend == integrated[0].backend]


def greet(endpoint: str, timeout: float = GREETING_TIMEOUT) -> tuple[int, int, int]:
    """Connect to a ``ggml-rpc-server`` and exchange its HELLO, as llama.cpp is about to; returns the
    server's protocol version. RpcError, naming the server and the likely cause, when that fails.

    The greeting's connection is closed at once: the server then waits for its next client, llama.cpp.
    """
    host, _, port = endpoint.rpartition(":")
    try:
        # llama.cpp resolves with gethostbyname: IPv4 only.
        address = str(socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
    except (OSError, ValueError, UnicodeError) as error:
        raise RpcError(f"cannot resolve the RPC server {endpoint} to an IPv4 address: {_reason(error)}") from None
    try:
        connection = socket.create_connection((address, int(port)), timeout=timeout)
    except OSError as error:
        raise RpcError(
            f"cannot connect to the RPC server {endpoint}: {_reason(error)} (is ggml-rpc-server running there "
            f"on port {port}, started with -H set to an address this machine can reach?)"
        ) from None
    with connection:
        try:
            connection.sendall(struct.pack("<BQ", _HELLO, _CAPS_SIZE) + bytes(_CAPS_SIZE))
            (size,) = struct.unpack("<Q", _receive(connection, 8))
            reply = _receive(connection, size) if size == _REPLY_SIZE else b""
        except TimeoutError:
            raise RpcError(
                f"the RPC server {endpoint} accepted the connection but did not answer within {timeout:g} s: "
                "ggml-rpc-server serves one client at a time, so another model or program may be using it"
            ) from None
        except OSError as error:
            raise RpcError(f"the RPC server {endpoint} broke off the handshake: {_reason(error)}") from None
    if not reply:
        raise RpcError(f"{endpoint} did not answer as a ggml-rpc-server (a server of another llama.cpp version?)")
    major, minor, patch = reply[0], reply[1], reply[2]
    if major != PROTOCOL[0] or minor > PROTOCOL[1]:
        raise RpcError(
            f"the RPC server {endpoint} speaks RPC protocol {major}.{minor}.{patch}, this llama.cpp "
            f"{PROTOCOL[0]}.{PROTOCOL[1]}: run a ggml-rpc-server built from the same llama.cpp version "
            f"(the one llama-cpp-python {llama_cpp.__version__} vendors)"
        )
    return major, minor, patch


def _receive(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("connection closed")
        data += chunk
    return data


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return (error.strerror if isinstance(error, OSError) else None) or str(error) or type(error).__name__
