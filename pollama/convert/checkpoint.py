"""A Hugging Face checkpoint's tensors, read lazily from its safetensors files.

A safetensors file is an 8-byte header length, a JSON header naming each tensor's dtype, shape and byte
range, then the raw bytes. The header is all that is read up front; a tensor's bytes are mapped only when
it is asked for, so converting a checkpoint larger than memory holds one tensor at a time. Sharded
checkpoints (``model-00001-of-00003.safetensors`` ...) are one checkpoint: every ``*.safetensors`` file
of the folder, top level only, as Hugging Face writes them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FLOAT_DTYPES", "Checkpoint", "CheckpointError", "TensorRef", "read_json_object"]

# safetensors dtype -> numpy dtype of the stored bytes, for the types weights can be converted from. BF16 has
# no numpy type: its 16 bits are the high half of an F32, widened in TensorRef.load.
_LOADABLE: dict[str, np.dtype[np.generic]] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
FLOAT_DTYPES = tuple(_LOADABLE)
# Bytes per element of every safetensors dtype: other tensors (integer buffers, FP8) may sit beside the
# weights and are checked for size even when they are not converted.
_SIZES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit; a larger "header" is a corrupt file


class CheckpointError(ValueError):
    """The checkpoint cannot be read: a corrupt header, an unsupported dtype, a missing tensor."""


@dataclass(frozen=True)
class TensorRef:
    name: str
    dtype: str  # the safetensors dtype
    shape: tuple[int, ...]  # PyTorch order (outermost first)
    path: Path
    offset: int  # from the start of the file
    nbytes: int

    def load(self) -> np.ndarray:
        """The tensor as F32 or F16 (BF16 widened to F32), mapped from the file rather than read into memory."""
        if self.dtype not in _LOADABLE:
            raise CheckpointError(f"tensor {self.name} is {self.dtype}; only F32, F16 and BF16 weights can be imported")
        numpy_dtype = _LOADABLE[self.dtype]
        count = int(np.prod(self.shape, dtype=np.int64))
        raw = np.memmap(self.path, dtype=numpy_dtype, mode="r", offset=self.offset, shape=(count,))
        if self.dtype == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32).reshape(self.shape)
        return np.asarray(raw).reshape(self.shape)


class Checkpoint:
    """Every tensor of the safetensors files in a folder, by name."""

    def __init__(self, folder: Path) -> None:
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"no safetensors files in {folder.name}")
        self.tensors: dict[str, TensorRef] = {}
        for path in files:
            for ref in _read_header(path):
                if ref.name in self.tensors:
                    first = self.tensors[ref.name].path.name
                    raise CheckpointError(f"tensor {ref.name} is in both {first} and {path.name}")
                self.tensors[ref.name] = ref
        self.files = files

    def __iter__(self) -> Iterator[TensorRef]:
        return iter(self.tensors.values())

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __getitem__(self, name: str) -> TensorRef:
        return self.tensors[name]

    @property
    def nbytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


def _read_header(path: Path) -> Iterator[TensorRef]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path.name} is not a safetensors file")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > min(_MAX_HEADER, size - 8):
            raise CheckpointError(f"{path.name} is not a safetensors file")
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"{path.name} is not a safetensors file") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name} is not a safetensors file")
    data_start = 8 + header_size
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        yield _tensor_ref(path, name, entry, data_start, size)


def _tensor_ref(path: Path, name: str, entry: object, data_start: int, size: int) -> TensorRef:
    try:
        assert isinstance(entry, dict)
        dtype, shape, (begin, end) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
    except (AssertionError, KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path.name}: tensor {name} has a malformed header entry") from None
    if dtype not in _SIZES:
        raise CheckpointError(f"tensor {name} has an unknown dtype {dtype}")
    count = int(np.prod(shape, dtype=np.int64))
    if end - begin != count * _SIZES[dtype] or begin < 0 or data_start + end > size:
        raise CheckpointError(f"{path.name}: tensor {name}'s data does not match its shape (a truncated file?)")
    return TensorRef(name, dtype, shape, path, data_start + begin, end - begin)


def read_json_object(path: Path, *, missing: str) -> dict[str, Any]:
    """One of the checkpoint's JSON files, which must hold an object; ``missing`` is the error when it is absent."""
    try:
        with path.open(encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        raise CheckpointError(missing) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path.name} is not a JSON object")
    return value
