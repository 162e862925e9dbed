"""The few ggml calls llama-cpp-python does not bind: backends, CPU features, extra buffer types.

ggml's shared libraries ship beside llama.cpp's inside the llama_cpp package; llama_cpp has loaded
them already, so opening them again returns the same handles. Every function is declared here with
its C signature, once.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterable
from pathlib import Path

import llama_cpp

__all__ = ["backend_names", "drop_extra_buffer_types", "extra_buffer_types", "system_info"]

_LIBRARIES = Path(llama_cpp.__file__).parent / "lib"
_CPU_DEVICE = 0  # enum ggml_backend_dev_type: GGML_BACKEND_DEVICE_TYPE_CPU
_ExtraBufferTypes = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)


def _declare(library: ctypes.CDLL, name: str, restype: object, *argtypes: object) -> None:
    function = getattr(library, name)
    function.restype = restype
    function.argtypes = list(argtypes)


@functools.cache
def _ggml() -> ctypes.CDLL:
    library = ctypes.CDLL(str(_LIBRARIES / "libggml.so"))
    _declare(library, "ggml_backend_reg_count", ctypes.c_size_t)
    _declare(library, "ggml_backend_reg_get", ctypes.c_void_p, ctypes.c_size_t)
    _declare(library, "ggml_backend_dev_by_type", ctypes.c_void_p, ctypes.c_int)
    return library


@functools.cache
def _base() -> ctypes.CDLL:
    library = ctypes.CDLL(str(_LIBRARIES / "libggml-base.so"))
    _declare(library, "ggml_backend_reg_name", ctypes.c_char_p, ctypes.c_void_p)
    _declare(library, "ggml_backend_dev_backend_reg", ctypes.c_void_p, ctypes.c_void_p)
    _declare(library, "ggml_backend_reg_get_proc_address", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
    _declare(library, "ggml_backend_buft_name", ctypes.c_char_p, ctypes.c_void_p)
    return library


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
    device = _ggml().ggml_backend_dev_by_type(_CPU_DEVICE)
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
