"""Small but valid GGUF files for tests, written with the ``gguf`` package's writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter

__all__ = ["write_bare_gguf", "write_gguf"]


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    kv: dict[str, Any] | None = None,
    tensors: dict[str, np.ndarray] | None = None,
    chat_template: str | None = None,
    file_type: int | None = 15,
) -> Path:
    """Write a GGUF with ``general.architecture=arch``, the given keys and tensors (default: one tiny tensor)."""
    defaults: dict[str, Any] = {
        f"{arch}.block_count": 1,
        f"{arch}.context_length": 2048,
        f"{arch}.embedding_length": 8,
    }
    if file_type is not None:
        defaults["general.file_type"] = file_type
    if chat_template is not None:
        defaults["tokenizer.chat_template"] = chat_template
    defaults["tokenizer.ggml.tokens"] = [f"tok{i}" for i in range(8)]
    tensors = tensors or {"token_embd.weight": np.zeros((2, 4), dtype=np.float32)}
    return write_bare_gguf(path, arch, {**defaults, **(kv or {})}, tensors)


def write_bare_gguf(path: Path, arch: str, kv: dict[str, Any], tensors: dict[str, np.ndarray]) -> Path:
    """Write a GGUF with exactly these keys (ints as uint32, floats as float32) and tensors."""
    writer = GGUFWriter(path, arch)
    for key, value in kv.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, list):
            writer.add_array(key, value)
        else:
            writer.add_string(key, str(value))
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
