"""GGUF metadata: key/values and tensor descriptions, read without loading weights.

Types and names come from the ``gguf`` package. The header is parsed here, from
a memory map with ``struct``: ``gguf.GGUFReader`` builds a numpy view per
vocabulary string and needs seconds per model (2 s for SmolLM2, 11 s for
Gemma 3 270M), where this takes milliseconds.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, GGUFValueType, LlamaFileType

__all__ = ["GGUFError", "GGUFFile", "TensorInfo", "file_type_name", "is_gguf", "read_gguf"]

MAGIC = b"GGUF"

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_MAX_COUNT = 1 << 40  # anything larger is a corrupt header, not a real count
_MAX_TENSOR_DIMENSIONS = 4  # GGML_MAX_DIMS
_VERSIONS = (1, 2, 3)


class GGUFError(ValueError):
    pass


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: str
    shape: tuple[int, ...]

    @property
    def element_count(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class GGUFFile:
    version: int
    kv: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    array_lengths: dict[str, int] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        return str(self.kv.get("general.architecture") or "unknown")

    @property
    def kind(self) -> str:
        return str(self.kv.get("general.type") or "")

    @property
    def parameter_count(self) -> int:
        return sum(tensor.element_count for tensor in self.tensors)

    @property
    def file_type(self) -> str:
        # Ollama reports "unknown" for file type 0, which is F32 in llama.cpp's table: only a missing
        # key is unknown here.
        value = self.kv.get("general.file_type")
        return file_type_name(value) if isinstance(value, int) else "unknown"

    @property
    def chat_template(self) -> str:
        value = self.kv.get("tokenizer.chat_template")
        return value if isinstance(value, str) else ""

    def get(self, key: str, default: Any = None) -> Any:
        """Look a key up as Ollama does: keys outside general./tokenizer. get the architecture prefix."""
        if not key.startswith(("general.", "tokenizer.")):
            key = f"{self.architecture}.{key}"
        return self.kv.get(key, default)

    def has(self, key: str) -> bool:
        return self.get(key) is not None


def file_type_name(value: int) -> str:
    """The quantization name of ``general.file_type`` (``Q4_K_M``, ``F16``...)."""
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_") if name != "GUESSED" else "unknown"


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) in (MAGIC, MAGIC[::-1])
    except OSError:
        return False


def read_gguf(path: Path, *, max_array_length: int | None = None) -> GGUFFile:
    """Read a GGUF header. Arrays longer than ``max_array_length`` are left out of ``kv``."""
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _Parser(data, max_array_length).parse()
    except (ValueError, OSError) as err:
        if isinstance(err, GGUFError):
            raise
        raise GGUFError(f"invalid GGUF file: {err}") from err
    except (struct.error, IndexError, UnicodeDecodeError) as err:
        raise GGUFError(f"invalid GGUF file: {err}") from err


class _Parser:
    def __init__(self, data: mmap.mmap, max_array_length: int | None) -> None:
        self.data = data
        self.offset = 0
        self.max_array_length = max_array_length
        self.order = "<"
        self.version = 0
        self.array_lengths: dict[str, int] = {}

    def parse(self) -> GGUFFile:
        self._detect_byte_order()
        self.offset = 8
        count_format = "I" if self.version == 1 else "Q"
        tensor_count = self._count(count_format)
        kv_count = self._count(count_format)
        kv: dict[str, Any] = {}
        for _ in range(kv_count):
            key = self._string()
            value_type = self._value_type()
            if value_type is GGUFValueType.ARRAY:
                value = self._array(key, limit=self.max_array_length)
            else:
                value = self._value(value_type)
            if value is not _SKIPPED:
                kv[key] = value
        placements = [self._tensor() for _ in range(tensor_count)]
        self._check_tensor_data(kv, placements)
        return GGUFFile(
            version=self.version,
            kv=kv,
            tensors=[tensor for tensor, _offset in placements],
            array_lengths=self.array_lengths,
        )

    def _detect_byte_order(self) -> None:
        # Big-endian files carry either a byte-swapped magic or the plain magic with a swapped version.
        magic = bytes(self.data[:4])
        if magic not in (MAGIC, MAGIC[::-1]) or len(self.data) < 8:
            raise GGUFError("invalid GGUF file: bad magic")
        (little,) = struct.unpack_from("<I", self.data, 4)
        (big,) = struct.unpack_from(">I", self.data, 4)
        if magic == MAGIC[::-1] or (little not in _VERSIONS and big in _VERSIONS):
            self.order, self.version = ">", big
        else:
            self.version = little
        if self.version not in _VERSIONS:
            raise GGUFError(f"unsupported GGUF version {self.version}")

    def _advance(self, size: int) -> int:
        start = self.offset
        if size < 0 or start + size > len(self.data):
            raise GGUFError("invalid GGUF file: unexpected end of file")
        self.offset = start + size
        return start

    def _scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(self.order + fmt, self.data, self._advance(struct.calcsize(fmt)))
        return value

    def _count(self, fmt: str) -> int:
        value = self._scalar(fmt)
        if value > _MAX_COUNT:
            raise GGUFError("invalid GGUF file: implausible count")
        return value

    def _length(self) -> int:
        return self._count("I" if self.version == 1 else "Q")

    def _value_type(self) -> GGUFValueType:
        code = self._scalar("I")
        try:
            return GGUFValueType(code)
        except ValueError:
            raise GGUFError(f"invalid GGUF file: unknown value type {code}") from None

    def _string(self) -> str:
        length = self._length()
        start = self._advance(length)
        return self.data[start : self.offset].decode("utf-8", errors="replace")

    def _value(self, value_type: GGUFValueType) -> Any:
        if value_type is GGUFValueType.STRING:
            return self._string()
        value = self._scalar(_SCALARS[value_type])
        if value_type is GGUFValueType.FLOAT32:
            return float(str(np.float32(value)))  # the shortest decimal, as Go prints float32
        return value

    def _array(self, key: str | None, limit: int | None) -> Any:
        """An array; longer than ``limit`` it is skipped. ``key`` records the length of a top-level array."""
        item_type = self._value_type()
        length = self._length()
        if key is not None:
            self.array_lengths[key] = length
        keep = limit is None or length <= limit
        if item_type is GGUFValueType.ARRAY:
            values = [self._array(None, None if keep else 0) for _ in range(length)]
            return values if keep else _SKIPPED
        if item_type is GGUFValueType.STRING:
            if keep:
                return [self._string() for _ in range(length)]
            for _ in range(length):
                self._advance(self._length())
            return _SKIPPED
        fmt = _SCALARS[item_type]
        start = self._advance(struct.calcsize(fmt) * length)
        if not keep:
            return _SKIPPED
        values = list(struct.unpack_from(f"{self.order}{length}{fmt}", self.data, start))
        if item_type is GGUFValueType.FLOAT32:
            values = [float(str(np.float32(v))) for v in values]
        return values

    def _tensor(self) -> tuple[TensorInfo, int]:
        name = self._string()
        dimensions = self._scalar("I")
        if dimensions > _MAX_TENSOR_DIMENSIONS:
            raise GGUFError(f"invalid GGUF file: tensor {name!r} has {dimensions} dimensions")
        shape = tuple(self._length() for _ in range(dimensions))
        type_id = self._scalar("I")
        offset = self._scalar("Q")
        try:
            type_name = GGMLQuantizationType(type_id).name
        except ValueError:
            type_name = f"type_{type_id}"
        return TensorInfo(name=name, type=type_name, shape=shape), offset

    def _check_tensor_data(self, kv: dict[str, Any], placements: list[tuple[TensorInfo, int]]) -> None:
        alignment = kv.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0:
            alignment = GGUF_DEFAULT_ALIGNMENT
        data_start = -(-self.offset // alignment) * alignment
        for tensor, offset in placements:
            try:
                block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType[tensor.type]]
            except KeyError:
                continue  # a type newer than this gguf package: its size is unknown here
            size = tensor.element_count // block * block_bytes
            if data_start + offset + size > len(self.data):
                raise GGUFError(f"invalid GGUF file: tensor {tensor.name!r} offset+size exceeds file size")


_SKIPPED = object()
