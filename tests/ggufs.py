"""Small but valid GGUF files for tests, written with the ``gguf`` package's writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter

__all__ = ["write_gguf"]


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
    writer = GGUFWriter(path, arch)
    writer.add_block_count(1)
    writer.add_context_length(2048)
    writer.add_embedding_length(8)
    if file_type is not None:
        writer.add_file_type(file_type)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(8)])
    for key, value in (kv or {}).items():
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
    for name, data in (tensors or {"token_embd.weight": np.zeros((2, 4), dtype=np.float32)}).items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
