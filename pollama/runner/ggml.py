"""The few ggml calls llama-cpp-python does not bind: backends, devices, CPU features, extra buffer types.

llama_cpp has loaded ggml's shared libraries already, as dependencies of libllama: from inside the
llama_cpp package, or from ``LLAMA_CPP_LIB_PATH`` when that names another build (one with the RPC
backend, docs/rpc.md). They are opened here as the very copies libllama uses. Every function is
declared here with its C signature, once.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

__all__ = [
    "Device",
    "backend_names",
    "backend_registry",
    "devices",
    "drop_extra_buffer_types",
    "extra_buffer_types",
    "proc_address",
    "registry_devices",
    "system_info",
]

_LIBRARIES = Path(llama_cpp.__file__).parent / "lib"
# enum ggml_backend_dev_type
CPU_DEVICE, GPU_DEVICE, INTEGRATED_GPU_DEVICE = 0, 1, 2
_ExtraBufferTypes = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)


def _declare(library: ctypes.CDLL, name: str, restype: object, *argtypes: object) -> None:
    function = getattr(library, name)
    function.restype = restype
    function.argtypes = list(argtypes)


def _loaded(name: str) -> ctypes.CDLL:
    """The copy of ``name`` (``libggml``) that libllama was linked with, wherever llama_cpp found it.

    Opened by its soname and only if already loaded (``RTLD_NOLOAD``): opening the package's file by
    path while libllama came from ``LLAMA_CPP_LIB_PATH`` would load a second libggml, with a backend
    registry of its own that llama.cpp never reads (and without the RPC backend of the other build).
    """
    for soname in (f"{name}.so.0", f"{name}.so"):
        try:
            return ctypes.CDLL(soname, mode=os.RTLD_NOLOAD | os.RTLD_NOW)
        except OSError:
            continue
    return ctypes.CDLL(str(_LIBRARIES / f"{name}.so"))  # a build whose libraries carry no soname


@functools.cache
def _ggml() -> ctypes.CDLL:
    library = _loaded("libggml")
    _declare(library, "ggml_backend_reg_count", ctypes.c_size_t)
    _declare(library, "ggml_backend_reg_get", ctypes.c_void_p, ctypes.c_size_t)
    _declare(library, "ggml_backend_reg_by_name", ctypes.c_void_p, ctypes.c_char_p)
    _declare(library, "ggml_backend_dev_count", ctypes.c_size_t)
    _declare(library, "ggml_backend_dev_get", ctypes.c_void_p, ctypes.c_size_t)
    _declare(library, "ggml_backend_dev_by_type", ctypes.c_void_p, ctypes.c_int)
    return library


@functools.cache
def _base() -> ctypes.CDLL:
    library = _loaded("libggml-base")
    _declare(library, "ggml_backend_reg_name", ctypes.c_char_p, ctypes.c_void_p)
    _declare(library, "ggml_backend_reg_dev_count", ctypes.c_size_t, ctypes.c_void_p)
    _declare(library, "ggml_backend_reg_dev_get", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    _declare(library, "ggml_backend_dev_backend_reg", ctypes.c_void_p, ctypes.c_void_p)
    _declare(library, "ggml_backend_dev_name", ctypes.c_char_p, ctypes.c_void_p)
    _declare(library, "ggml_backend_dev_description", ctypes.c_char_p, ctypes.c_void_p)
    _declare(library, "ggml_backend_dev_type", ctypes.c_int, ctypes.c_void_p)
    _declare(
        library,
        "ggml_backend_dev_memory",
        None,
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    )
    _declare(library, "ggml_backend_reg_get_proc_address", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
    _declare(library, "ggml_backend_buft_name", ctypes.c_char_p, ctypes.c_void_p)
    return library


@dataclass(frozen=True)
class Device:
    """A ggml device (``ggml_backend_dev_t``): what ``llama_model_params.devices`` lists."""

    handle: int
    name: str  # "CPU", "CUDA0", "RPC0"
    description: str  # for an RPC device, its server's endpoint
    kind: int  # CPU_DEVICE, GPU_DEVICE, INTEGRATED_GPU_DEVICE, ...
    backend: str  # its registry's name: "CPU", "CUDA", "RPC"
    free_memory: int
    total_memory: int


def _device(handle: int) -> Device:
    base = _base()
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    base.ggml_backend_dev_memory(handle, ctypes.byref(free), ctypes.byref(total))
    return Device(
        handle=handle,
        name=base.ggml_backend_dev_name(handle).decode(errors="replace"),
        description=(base.ggml_backend_dev_description(handle) or b"").decode(errors="replace"),
        kind=int(base.ggml_backend_dev_type(handle)),
        backend=base.ggml_backend_reg_name(base.ggml_backend_dev_backend_reg(handle)).decode(errors="replace"),
        free_memory=free.value,
        total_memory=total.value,
    )


def devices() -> list[Device]:
    """Every device of the registered backends, in llama.cpp's order (GPUs first, the CPU last)."""
    ggml = _ggml()
    return [_device(ggml.ggml_backend_dev_get(i)) for i in range(ggml.ggml_backend_dev_count())]


def backend_registry(name: str) -> int | None:
    """The registered backend called ``name`` (``ggml_backend_reg_t``); None when this build has none."""
    return _ggml().ggml_backend_reg_by_name(name.encode()) or None


def registry_devices(registry: int) -> list[Device]:
    """The devices of one backend registry, registered globally or not (an RPC server's)."""
    base = _base()
    return [
        _device(base.ggml_backend_reg_dev_get(registry, i)) for i in range(base.ggml_backend_reg_dev_count(registry))
    ]


def proc_address(registry: int, name: str) -> int | None:
    """A function a backend exports through its registry (``ggml_backend_reg_get_proc_address``)."""
    return _base().ggml_backend_reg_get_proc_address(registry, name.encode()) or None


def backend_names() -> list[str]:
    """The ggml backends this llama.cpp build registered ("CPU", "CUDA", ...)."""
    ggml, base = _ggml(), _base()
    return [
        base.ggml_backend_reg_name(ggml.ggml_backend_reg_get(i)).decode() for i in range(ggml.ggml_backend_reg_count())
    ]


def system_info() -> str:
    """llama.cpp's one-line summary of the CPU features and options it was built with and found."""
    return llama_cpp.llama_print_system_info().decode(errors="replace").strip().rstrip("|").strip()


def _extra_buffer_list() -> ctypes.Array[ctypes.c_void_p] | None:
    """The CPU backend's null-terminated list of extra buffer types, the very array llama.cpp reads."""
    device = _ggml().ggml_backend_dev_by_type(CPU_DEVICE)
    if not device:
        return None
    base = _base()
    address = base.ggml_backend_reg_get_proc_address(
        base.ggml_backend_dev_backend_reg(device), b"ggml_backend_dev_get_extra_bufts"
    )
    if not address:
        return None
    entries = _ExtraBufferTypes(address)(device)
    if not entries:
        return None
    count = 0
    while entries[count]:
        count += 1
    return ctypes.cast(entries, ctypes.POINTER(ctypes.c_void_p * (count + 1))).contents


def extra_buffer_types() -> list[str]:
    """Names of the buffer types the CPU backend offers for repacked weights, in preference order."""
    entries = _extra_buffer_list()
    if entries is None:
        return []
    return [_base().ggml_backend_buft_name(entry).decode() for entry in entries if entry]


def drop_extra_buffer_types(names: Iterable[str]) -> list[str]:
    """Take buffer types out of the list llama.cpp chooses weight buffers from; returns what was dropped.

    llama.cpp offers no parameter for this, only all of them or none (``use_extra_bufts``); its list
    is a static array it reads at every model load, so dropping entries there, before the load,
    keeps the others (the generic CPU repack) while the one dropped (AMX) is never chosen.
    """
    entries = _extra_buffer_list()
    if entries is None:
        return []
    unwanted = set(names)
    kept: list[int | None] = []
    dropped: list[int | None] = []
    for entry in entries[: len(entries) - 1]:
        (dropped if _base().ggml_backend_buft_name(entry).decode() in unwanted else kept).append(entry)
    for index in range(len(entries)):
        entries[index] = kept[index] if index < len(kept) else None
    return [_base().ggml_backend_buft_name(entry).decode() for entry in dropped]
