"""llama.cpp's log, passed on to stderr and read for the buffer sizes it reports while loading.

llama.cpp has no call that says how much memory a context took on which device, but it logs every
buffer it allocates (``CUDA0 KV buffer size =  1920.00 MiB``). Those lines are the truth that
``/api/ps`` reports, as in Ollama, which reads the same lines from llama-server.
"""

from __future__ import annotations

import ctypes
import re
import sys
from dataclasses import dataclass, field

import llama_cpp

__all__ = ["BufferLog", "is_gpu_buffer", "parse_buffer_line"]

_BUFFER = re.compile(r"(\S+)\s+(model|KV|compute|output|RS)\s+buffer size\s*=\s*([\d.]+)\s*MiB")
_OFFLOADED = re.compile(r"offloaded\s+(\d+)/(\d+)\s+layers to GPU")
_DEBUG, _ERROR, _CONTINUE = 1, 4, 5  # ggml_log_level values
_FUNCTION = re.compile(r"^\w+: ")  # the "llama_adapter_lora_init_from_file_ptr: " a message starts with


def parse_buffer_line(text: str) -> tuple[str, str, int] | None:
    """``(backend, kind, bytes)`` of a buffer-size line; None for any other line."""
    match = _BUFFER.search(text)
    if match is None or "matches expectation" in text:
        return None
    backend, kind, mib = match.groups()
    return backend, kind, int(float(mib) * (1 << 20))


def is_gpu_buffer(backend: str) -> bool:
    """CPU buffers (mapped, repacked) and pinned host memory are system memory; the rest is a device's."""
    return not (backend in ("CPU", "BLAS") or backend.startswith("CPU_") or backend.endswith("_Host"))


@dataclass
class BufferLog:
    """Collects buffer sizes from llama.cpp's log; installed before the model loads."""

    buffers: dict[tuple[str, str], int] = field(default_factory=dict)
    verbose: bool = False
    layers: tuple[int, int] = (0, 0)  # (offloaded, total)
    last_error: str = ""  # the last error llama.cpp logged, without the function name it starts with
    _last_level: int = 0

    def install(self) -> None:
        self._callback = llama_cpp.llama_log_callback(self._on_log)  # kept: llama.cpp holds a raw pointer
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _on_log(self, level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", errors="replace")
        continued = level == _CONTINUE
        level = self._last_level if continued else level
        self._last_level = level
        if parsed := parse_buffer_line(line):
            backend, kind, size = parsed
            # A KV cache split into parts (sliding-window layers) logs one line per part.
            key = (backend, kind)
            self.buffers[key] = self.buffers.get(key, 0) + size if kind == "KV" else size
        if level == _ERROR:
            self.last_error = self.last_error + line if continued else _FUNCTION.sub("", line, count=1)
        if offloaded := _OFFLOADED.search(line):
            self.layers = (int(offloaded.group(1)), int(offloaded.group(2)))
        if level != _DEBUG or self.verbose:
            sys.stderr.write(line)

    def sizes(self) -> tuple[int, int]:
        """``(total, on GPUs)`` in bytes; a model wholly on GPUs counts as all VRAM, as Ollama reports it
        (the token embeddings llama.cpp leaves in mapped system memory are not worth a "CPU/GPU" split)."""
        total = sum(self.buffers.values())
        vram = sum(size for (backend, _kind), size in self.buffers.items() if is_gpu_buffer(backend))
        offloaded, layers = self.layers
        if vram and layers and offloaded >= layers:
            return vram, vram
        return total, vram
