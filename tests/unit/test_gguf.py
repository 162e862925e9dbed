"""pollama.store.gguf: our fast GGUF header reader, checked against the ``gguf`` package's GGUFReader.

Go references: fs/ggml/ggml.go (Decode, KV.FileType, keyValue), fs/ggml/gguf.go (containerGGUF.Decode,
gguf.Decode), fs/ggml/type.go (FileType.String), fs/gguf/gguf.go (MaxTensorDims = 4).
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFEndian, GGUFReader, GGUFValueType, GGUFWriter

from pollama.store.gguf import GGUFError, GGUFFile, TensorInfo, file_type_name, is_gguf, read_gguf
from tests.ggufs import write_gguf

T = GGUFValueType


# --- helpers ------------------------------------------------------------------------------------------------


def shortest_float32(value: float) -> float:
    """The shortest decimal that rounds to the same float32: what Go prints for a float32."""
    bits = np.float32(value).tobytes()
    exact = float(np.float32(value))
    for digits in range(1, 10):
        text = f"{exact:.{digits}g}"
        with np.errstate(over="ignore"):
            if np.float32(float(text)).tobytes() == bits:
                return float(text)
    raise AssertionError("unreachable")


def reader_value(field: Any) -> Any:
    """A GGUFReader field as the plain Python value our reader should produce."""
    types = field.types
    value = field.contents()
    if types[0] is T.FLOAT32:
        return shortest_float32(value)
    if types[0] is T.ARRAY and types[-1] is T.FLOAT32:
        return [shortest_float32(v) for v in value]
    return value


def reader_kv(path: Path) -> dict[str, Any]:
    reader = GGUFReader(path)
    return {key: reader_value(field) for key, field in reader.fields.items() if not key.startswith("GGUF.")}


def reader_tensors(path: Path) -> list[TensorInfo]:
    reader = GGUFReader(path)
    return [TensorInfo(t.name, t.tensor_type.name, tuple(int(d) for d in t.shape)) for t in reader.tensors]


def write(path: Path, build: Any, *, endianess: GGUFEndian = GGUFEndian.LITTLE, arch: str = "llama") -> Path:
    writer = GGUFWriter(path, arch, endianess=endianess)
    build(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def all_types(writer: GGUFWriter) -> None:
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -5)
    writer.add_uint16("t.u16", 65000)
    writer.add_int16("t.i16", -30000)
    writer.add_uint32("t.u32", 4_000_000_000)
    writer.add_int32("t.i32", -2_000_000_000)
    writer.add_uint64("t.u64", 2**64 - 1)
    writer.add_int64("t.i64", -(2**63))
    writer.add_float32("t.f32", 1e-5)
    writer.add_float32("t.f32b", 0.1)
    writer.add_float32("t.f32c", 10000.0)
    writer.add_float32("t.f32d", -3.4028234663852886e38)
    writer.add_float64("t.f64", 0.1)
    writer.add_bool("t.true", True)
    writer.add_bool("t.false", False)
    writer.add_string("t.str", "héllo <&> \u2603\n\ttabs")
    writer.add_key_value("t.empty", "", T.STRING)  # add_string skips empty strings
    writer.add_array("t.strs", ["a", "", "ünïcode", "x" * 300])
    writer.add_array("t.ints", [1, -2, 3])
    writer.add_array("t.floats", [0.1, 1e-5, 2.5, -0.0])
    writer.add_array("t.bools", [True, False, True])
    writer.add_key_value("t.u8s", [0, 1, 255], T.ARRAY, sub_type=T.UINT8)
    writer.add_key_value("t.i8s", [-128, 127], T.ARRAY, sub_type=T.INT8)
    writer.add_key_value("t.u16s", [0, 65535], T.ARRAY, sub_type=T.UINT16)
    writer.add_key_value("t.i16s", [-32768, 32767], T.ARRAY, sub_type=T.INT16)
    writer.add_key_value("t.u32s", [0, 4294967295], T.ARRAY, sub_type=T.UINT32)
    writer.add_key_value("t.u64s", [0, 2**64 - 1], T.ARRAY, sub_type=T.UINT64)
    writer.add_key_value("t.i64s", [-(2**63), 2**63 - 1], T.ARRAY, sub_type=T.INT64)
    writer.add_key_value("t.f64s", [0.1, -1e300], T.ARRAY, sub_type=T.FLOAT64)
    writer.add_context_length(4096)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(500000.0)
    writer.add_file_type(GGMLQuantizationType.Q8_0)  # any value: here 8 (= Q5_0 as a file type)
    writer.add_tensor("token_embd.weight", np.zeros((3, 4), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((8,), dtype=np.float16))
    writer.add_tensor("blk.0.ids", np.zeros((2, 3), dtype=np.int32))
    writer.add_tensor("q8", np.zeros((2, 68), dtype=np.uint8), raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("q4k", np.zeros((1, 144), dtype=np.uint8), raw_dtype=GGMLQuantizationType.Q4_K)


ALL_TYPES_EXPECTED = {
    "general.architecture": "llama",
    "t.u8": 200,
    "t.i8": -5,
    "t.u16": 65000,
    "t.i16": -30000,
    "t.u32": 4_000_000_000,
    "t.i32": -2_000_000_000,
    "t.u64": 2**64 - 1,
    "t.i64": -(2**63),
    "t.f32": 1e-05,
    "t.f32b": 0.1,
    "t.f32c": 10000.0,
    "t.f32d": -3.4028235e38,
    "t.f64": 0.1,
    "t.true": True,
    "t.false": False,
    "t.str": "héllo <&> \u2603\n\ttabs",
    "t.empty": "",
    "t.strs": ["a", "", "ünïcode", "x" * 300],
    "t.ints": [1, -2, 3],
    "t.floats": [0.1, 1e-05, 2.5, -0.0],
    "t.bools": [True, False, True],
    "t.u8s": [0, 1, 255],
    "t.i8s": [-128, 127],
    "t.u16s": [0, 65535],
    "t.i16s": [-32768, 32767],
    "t.u32s": [0, 4294967295],
    "t.u64s": [0, 2**64 - 1],
    "t.i64s": [-(2**63), 2**63 - 1],
    "t.f64s": [0.1, -1e300],
    "llama.context_length": 4096,
    "llama.attention.layer_norm_rms_epsilon": 1e-06,
    "llama.rope.freq_base": 500000.0,
    "general.file_type": 8,
}

ALL_TYPES_TENSORS = [
    TensorInfo("token_embd.weight", "F32", (4, 3)),
    TensorInfo("blk.0.attn_q.weight", "F16", (8,)),
    TensorInfo("blk.0.ids", "I32", (3, 2)),
    TensorInfo("q8", "Q8_0", (64, 2)),
    TensorInfo("q4k", "Q4_K", (256, 1)),
]


@pytest.fixture
def all_types_path(tmp_path: Path) -> Path:
    return write(tmp_path / "all.gguf", all_types)


# --- agreement with GGUFReader ------------------------------------------------------------------------------


def test_default_test_gguf_matches_reader(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", chat_template="{{ .Prompt }}")
    parsed = read_gguf(path)
    assert parsed.version == 3
    assert parsed.kv == reader_kv(path)
    assert list(parsed.kv) == list(reader_kv(path))  # same order as in the file
    assert parsed.tensors == reader_tensors(path)
    assert parsed.kv["tokenizer.ggml.tokens"] == [f"tok{i}" for i in range(8)]
    assert parsed.kv["llama.context_length"] == 2048
    assert parsed.architecture == "llama"
    assert parsed.file_type == "Q4_K_M"
    assert parsed.chat_template == "{{ .Prompt }}"
    assert parsed.tensors == [TensorInfo("token_embd.weight", "F32", (4, 2))]
    assert parsed.parameter_count == 8


def test_every_value_type_matches_reader(all_types_path: Path) -> None:
    parsed = read_gguf(all_types_path)
    assert parsed.kv == reader_kv(all_types_path)
    assert parsed.kv == ALL_TYPES_EXPECTED
    assert parsed.tensors == reader_tensors(all_types_path) == ALL_TYPES_TENSORS
    # Python types: bools stay bools, ints stay ints
    assert parsed.kv["t.true"] is True and parsed.kv["t.false"] is False
    assert all(type(v) is bool for v in parsed.kv["t.bools"])
    assert type(parsed.kv["t.u8"]) is int and type(parsed.kv["t.f32"]) is float


def test_float32_values_are_shortest_decimals(all_types_path: Path) -> None:
    kv = read_gguf(all_types_path).kv
    # exactly what Go prints for these float32 values (strconv.FormatFloat(v, 'g', -1, 32))
    assert kv["t.f32"] == 1e-05 and repr(kv["t.f32"]) == "1e-05"
    assert repr(kv["t.f32b"]) == "0.1"
    assert repr(kv["llama.attention.layer_norm_rms_epsilon"]) == "1e-06"
    assert kv["t.floats"][:3] == [0.1, 1e-05, 2.5]
    assert [repr(v) for v in kv["t.floats"]] == ["0.1", "1e-05", "2.5", "-0.0"]
    # float64 keeps full precision
    assert kv["t.f64"] == 0.1


def test_parameter_count_is_sum_of_elements(all_types_path: Path) -> None:
    reader = GGUFReader(all_types_path)
    parsed = read_gguf(all_types_path)
    assert parsed.parameter_count == sum(int(t.n_elements) for t in reader.tensors)
    assert parsed.parameter_count == 12 + 8 + 6 + 128 + 256
    assert [t.element_count for t in parsed.tensors] == [12, 8, 6, 128, 256]


def test_parameter_count_ignores_stored_general_parameter_count(tmp_path: Path) -> None:
    def build(w: GGUFWriter) -> None:
        w.add_uint64("general.parameter_count", 999_999)
        w.add_tensor("a", np.zeros((5, 7), dtype=np.float32))
        w.add_tensor("b", np.zeros((3,), dtype=np.float32))

    parsed = read_gguf(write(tmp_path / "p.gguf", build))
    assert parsed.parameter_count == 38


def test_no_tensors(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.gguf", lambda w: w.add_string("general.name", "x"))
    parsed = read_gguf(path)
    assert parsed.tensors == []
    assert parsed.parameter_count == 0
    assert parsed.kv == {"general.architecture": "llama", "general.name": "x"}


def test_array_lengths_recorded_for_every_array(all_types_path: Path) -> None:
    parsed = read_gguf(all_types_path)
    reader = GGUFReader(all_types_path)
    expected = {key: len(field.data) for key, field in reader.fields.items() if field.types[0] is T.ARRAY}
    assert parsed.array_lengths == expected
    assert parsed.array_lengths["t.strs"] == 4
    assert parsed.array_lengths["t.u64s"] == 2


def test_nested_arrays(tmp_path: Path) -> None:
    def build(w: GGUFWriter) -> None:
        w.add_array("t.nested", [[1, 2], [3, 4, 5]])
        w.add_array("t.nested_strs", [["a"], ["b", "c"]])
        w.add_uint32("t.after", 7)
        w.add_tensor("x", np.zeros((2,), dtype=np.float32))

    path = write(tmp_path / "nested.gguf", build)
    reader = GGUFReader(path)
    assert reader.fields["t.nested"].types[:2] == [T.ARRAY, T.ARRAY]
    parsed = read_gguf(path)
    assert parsed.kv["t.nested"] == [[1, 2], [3, 4, 5]]
    assert parsed.kv["t.nested_strs"] == [["a"], ["b", "c"]]
    assert parsed.kv["t.after"] == 7
    assert parsed.tensors == reader_tensors(path)
    # the length recorded for a key is that of its own (outer) array
    assert parsed.array_lengths["t.nested"] == 2
    assert parsed.array_lengths["t.nested_strs"] == 2


def test_nested_array_with_long_inner_array_and_limit(tmp_path: Path) -> None:
    def build(w: GGUFWriter) -> None:
        w.add_array("t.nested", [list(range(10)), [1]])
        w.add_uint32("t.after", 7)

    parsed = read_gguf(write(tmp_path / "nested.gguf", build), max_array_length=5)
    # either the whole value or nothing, never a placeholder object inside the list
    assert parsed.kv.get("t.nested") in (None, [list(range(10)), [1]])
    assert parsed.kv["t.after"] == 7


# --- endianness ---------------------------------------------------------------------------------------------


def test_big_endian_gguf_writer_file_matches_reader(tmp_path: Path) -> None:
    # gguf-py (and llama.cpp's --bigendian conversion) write the magic as the bytes "GGUF" and every
    # other field big-endian; GGUFReader detects the byte order from the version field.
    path = write(tmp_path / "be.gguf", all_types, endianess=GGUFEndian.BIG)
    assert path.read_bytes()[:8] == b"GGUF\x00\x00\x00\x03"
    parsed = read_gguf(path)
    assert parsed.kv == reader_kv(path) == ALL_TYPES_EXPECTED
    assert parsed.tensors == reader_tensors(path) == ALL_TYPES_TENSORS


def test_big_endian_with_reversed_magic(tmp_path: Path) -> None:
    # Ollama's FILE_MAGIC_GGUF_BE (0x47475546 read little-endian: the bytes "FUGG") selects big-endian.
    be = write(tmp_path / "be.gguf", all_types, endianess=GGUFEndian.BIG)
    fugg = tmp_path / "fugg.gguf"
    fugg.write_bytes(b"FUGG" + be.read_bytes()[4:])
    assert is_gguf(fugg)
    parsed = read_gguf(fugg)
    assert parsed.version == 3
    assert parsed.kv == ALL_TYPES_EXPECTED
    assert parsed.tensors == ALL_TYPES_TENSORS


# --- max_array_length ---------------------------------------------------------------------------------------


def test_max_array_length_leaves_long_arrays_out(tmp_path: Path) -> None:
    def build(w: GGUFWriter) -> None:
        w.add_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(10)])
        w.add_array("tokenizer.ggml.scores", [float(i) for i in range(10)])
        w.add_array("tokenizer.ggml.token_type", list(range(6)))
        w.add_array("t.five", [1, 2, 3, 4, 5])
        w.add_array("t.short_strs", ["x", "y"])
        w.add_uint32("llama.context_length", 8192)
        w.add_string("t.after", "still here")
        w.add_tensor("w", np.zeros((4, 4), dtype=np.float32))

    path = write(tmp_path / "long.gguf", build)
    limited = read_gguf(path, max_array_length=5)
    full = read_gguf(path)
    assert "tokenizer.ggml.tokens" not in limited.kv
    assert "tokenizer.ggml.scores" not in limited.kv
    assert "tokenizer.ggml.token_type" not in limited.kv
    assert limited.kv["t.five"] == [1, 2, 3, 4, 5]  # at the limit: kept
    assert limited.kv["t.short_strs"] == ["x", "y"]
    assert limited.kv["llama.context_length"] == 8192
    assert limited.kv["t.after"] == "still here"
    assert limited.array_lengths == {
        "tokenizer.ggml.tokens": 10,
        "tokenizer.ggml.scores": 10,
        "tokenizer.ggml.token_type": 6,
        "t.five": 5,
        "t.short_strs": 2,
    }
    assert full.array_lengths == limited.array_lengths
    assert full.kv["tokenizer.ggml.tokens"] == [f"t{i}" for i in range(10)]
    assert {k: v for k, v in full.kv.items() if k in limited.kv} == limited.kv
    assert limited.tensors == full.tensors == reader_tensors(path)
    assert limited.parameter_count == 16


def test_max_array_length_zero_drops_all_arrays(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", kv={"t.list": [1, 2]})
    parsed = read_gguf(path, max_array_length=0)
    assert "tokenizer.ggml.tokens" not in parsed.kv and "t.list" not in parsed.kv
    assert parsed.array_lengths == {"tokenizer.ggml.tokens": 8, "t.list": 2}
    assert parsed.kv["llama.context_length"] == 2048


# --- lookups (Go keyValue: keys outside general./tokenizer. get the architecture prefix) --------------------


def test_get_adds_architecture_prefix(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", arch="qwen2", kv={"qwen2.pooling_type": 1, "general.name": "n"})
    parsed = read_gguf(path)
    assert parsed.get("context_length") == 2048
    assert parsed.get("block_count") == 1
    assert parsed.get("embedding_length") == 8
    assert parsed.get("pooling_type") == 1
    assert parsed.has("pooling_type")
    assert parsed.get("general.name") == "n"
    assert parsed.get("general.architecture") == "qwen2"
    assert parsed.get("tokenizer.ggml.tokens") == [f"tok{i}" for i in range(8)]
    # a full key outside general./tokenizer. is prefixed again, as in Go
    assert parsed.get("qwen2.context_length") is None
    assert parsed.get("vision.block_count") is None
    assert not parsed.has("vision.block_count")
    assert parsed.get("missing", 42) == 42
    assert parsed.get("general.missing", "d") == "d"


def test_architecture_defaults_to_unknown() -> None:
    gguf = GGUFFile(version=3, kv={"unknown.context_length": 5, "general.type": "adapter"})
    assert gguf.architecture == "unknown"
    assert gguf.get("context_length") == 5
    assert gguf.kind == "adapter"
    assert gguf.chat_template == ""
    assert gguf.file_type == "unknown"
    assert gguf.parameter_count == 0


# --- file types (fs/ggml/type.go FileType.String, KV.FileType) ----------------------------------------------

# llama_ftype order, as in Go's iota list; None marks ids removed from GGUF (String() -> "unknown")
GO_FILE_TYPES = [
    "F32", "F16", "Q4_0", "Q4_1", None, None, None, "Q8_0", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M",
    "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ2_XXS", "IQ2_XS", "Q2_K_S", "IQ3_XS",
    "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ3_M", "IQ2_S", "IQ2_M", "IQ4_XS", "IQ1_M", "BF16", None, None,
    None, "TQ1_0", "TQ2_0", "MXFP4_MOE", "NVFP4", "Q1_0",
]  # fmt: skip


@pytest.mark.parametrize(("value", "expected"), list(enumerate(GO_FILE_TYPES)))
def test_file_type_names(value: int, expected: str | None) -> None:
    assert file_type_name(value) == (expected or "unknown")


@pytest.mark.parametrize("value", [41, 100, 1024, 2**32 - 1, -1])
def test_file_type_unknown_values(value: int) -> None:
    assert file_type_name(value) == "unknown"


@pytest.mark.parametrize(
    ("value", "expected"), [(1, "F16"), (2, "Q4_0"), (7, "Q8_0"), (15, "Q4_K_M"), (32, "BF16"), (4, "unknown")]
)
def test_file_type_property(tmp_path: Path, value: int, expected: str) -> None:
    assert read_gguf(write_gguf(tmp_path / "m.gguf", file_type=value)).file_type == expected


def test_file_type_missing_is_unknown(tmp_path: Path) -> None:
    assert read_gguf(write_gguf(tmp_path / "m.gguf", file_type=None)).file_type == "unknown"


def test_file_type_zero_is_f32_and_only_a_missing_key_is_unknown(tmp_path: Path) -> None:
    # Ollama's KV.FileType() treats 0 like a missing key ("unknown"); 0 is F32 in llama.cpp's table, and
    # pollama reports it as such (documented on GGUFFile.file_type).
    assert read_gguf(write_gguf(tmp_path / "f32.gguf", file_type=0)).file_type == "F32"
    assert read_gguf(write_gguf(tmp_path / "none.gguf", file_type=None)).file_type == "unknown"


# --- is_gguf ------------------------------------------------------------------------------------------------


def test_is_gguf(tmp_path: Path) -> None:
    assert is_gguf(write_gguf(tmp_path / "m.gguf"))
    (tmp_path / "text").write_text("FROM llama3\n")
    assert not is_gguf(tmp_path / "text")
    (tmp_path / "short").write_bytes(b"GG")
    assert not is_gguf(tmp_path / "short")
    assert not is_gguf(tmp_path / "missing")
    assert not is_gguf(tmp_path)


# --- invalid input ------------------------------------------------------------------------------------------


def header(*, version: int = 3, tensors: int = 0, kvs: int = 0, order: str = "<") -> bytes:
    return b"GGUF" + struct.pack(order + "IQQ", version, tensors, kvs)


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: str, value: int) -> bytes:
    return gstr(key) + struct.pack("<II", T.UINT32, value)


def tensor_info(name: str, shape: tuple[int, ...], type_id: int = 0, offset: int = 0) -> bytes:
    return (
        gstr(name)
        + struct.pack("<I", len(shape))
        + struct.pack(f"<{len(shape)}Q", *shape)
        + struct.pack("<IQ", type_id, offset)
    )


def test_handmade_minimal_file(tmp_path: Path) -> None:
    path = tmp_path / "min.gguf"
    path.write_bytes(header(tensors=1, kvs=1) + kv_u32("general.file_type", 15) + tensor_info("w", (4, 2)) + bytes(64))
    parsed = read_gguf(path)
    assert parsed.kv == {"general.file_type": 15}
    assert parsed.tensors == [TensorInfo("w", "F32", (4, 2))]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"G",
        b"GGUF",
        b"GGUF\x03\x00",
        b"GGML" + bytes(60),
        b"\x00" * 64,
        b"FROM llama3\nPARAMETER temperature 1\n",
        b"PK\x03\x04" + bytes(100),  # a zip (safetensors archives etc.)
        b"\x93NUMPY" + bytes(100),
    ],
    ids=["empty", "one-byte", "magic-only", "short-version", "ggml", "zeros", "modelfile", "zip", "npy"],
)
def test_not_gguf_raises(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x"
    path.write_bytes(data)
    with pytest.raises(GGUFError):
        read_gguf(path)


def test_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(GGUFError):
        read_gguf(tmp_path)


def test_gguf_error_is_value_error() -> None:
    assert issubclass(GGUFError, ValueError)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "body",
    [
        # invalid value type
        header(kvs=1) + gstr("k") + struct.pack("<I", 13) + bytes(16),
        header(kvs=1) + gstr("k") + struct.pack("<I", 0xFFFFFFFF) + bytes(16),
        # invalid array item type
        header(kvs=1) + gstr("k") + struct.pack("<IIQ", T.ARRAY, 99, 1) + bytes(16),
        # a key whose length runs past the end of the file
        header(kvs=1) + struct.pack("<Q", 2**40) + b"abc",
        header(kvs=1) + struct.pack("<Q", 2**63) + b"abc",
        header(kvs=1) + struct.pack("<Q", 2**64 - 1) + b"abc",
        # huge counts with nothing behind them
        header(kvs=2**64 - 1),
        header(kvs=2**40 - 1) + kv_u32("a", 1),
        header(tensors=2**64 - 1),
        header(tensors=2**39) + tensor_info("w", (1,)),
        # huge arrays with nothing behind them, kept or skipped
        header(kvs=1) + gstr("k") + struct.pack("<IIQ", T.ARRAY, T.UINT64, 2**40) + bytes(64),
        header(kvs=1) + gstr("k") + struct.pack("<IIQ", T.ARRAY, T.UINT8, 2**64 - 1) + bytes(64),
        header(kvs=1) + gstr("k") + struct.pack("<IIQ", T.ARRAY, T.STRING, 2**40) + gstr("a") * 4,
        header(kvs=1) + gstr("k") + struct.pack("<IIQ", T.ARRAY, T.ARRAY, 2**40) + bytes(64),
        header(kvs=1) + gstr("k") + struct.pack("<IQ", T.STRING, 2**62) + b"abc",
        # a string array element longer than the file
        header(kvs=1) + gstr("k") + struct.pack("<IIQ", T.ARRAY, T.STRING, 2) + gstr("a") + struct.pack("<Q", 2**50),
        # a tensor with more dimensions than anything sane
        header(tensors=1) + gstr("w") + struct.pack("<I", 2**31) + bytes(64),
        # a tensor shape running past the end
        header(tensors=1) + gstr("w") + struct.pack("<I", 4) + struct.pack("<Q", 2),
    ],
    ids=[
        "value-type-13",
        "value-type-max",
        "array-item-type-99",
        "key-len-2^40",
        "key-len-2^63",
        "key-len-max",
        "kv-count-max",
        "kv-count-2^40",
        "tensor-count-max",
        "tensor-count-2^39",
        "u64-array-2^40",
        "u8-array-max",
        "str-array-2^40",
        "nested-array-2^40",
        "string-len-2^62",
        "str-array-elem-2^50",
        "dims-2^31",
        "shape-truncated",
    ],
)
@pytest.mark.parametrize("limit", [None, 5], ids=["all", "limited"])
def test_corrupt_headers_raise_quickly(tmp_path: Path, body: bytes, limit: int | None) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(body)
    started = time.monotonic()
    with pytest.raises(GGUFError):
        read_gguf(path, max_array_length=limit)
    assert time.monotonic() - started < 5


def test_tensor_with_more_than_four_dimensions_raises(tmp_path: Path) -> None:
    # fs/ggml/gguf.go: dims > fsgguf.MaxTensorDims (4) -> "tensor %q dimensions %d exceeds maximum %d"
    path = write(tmp_path / "5d.gguf", lambda w: w.add_tensor("five", np.zeros((1, 1, 1, 2, 3), dtype=np.float32)))
    with pytest.raises(GGUFError):
        read_gguf(path)


def test_unknown_tensor_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.gguf"
    path.write_bytes(header(tensors=1) + tensor_info("w", (2,), type_id=250) + bytes(64))
    assert read_gguf(path).tensors == [TensorInfo("w", "type_250", (2,))]


def test_invalid_utf8_in_strings_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "u.gguf"
    path.write_bytes(header(kvs=1) + gstr("k") + struct.pack("<I", T.STRING) + gstr(b"\xff\xfeok"))
    parsed = read_gguf(path)
    assert parsed.kv["k"].endswith("ok")


# --- truncation and fuzzing ---------------------------------------------------------------------------------


def _layout(path: Path) -> tuple[int, int]:
    """(end of the tensor infos, end of the last tensor's data) according to GGUFReader."""
    reader = GGUFReader(path)
    last = reader.tensors[-1]
    infos_end = last.field.offset + sum(part.nbytes for part in last.field.parts)
    data_end = max(int(t.data_offset + t.n_bytes) for t in reader.tensors)  # data_offset is absolute
    return infos_end, data_end


@pytest.fixture
def small_gguf(tmp_path: Path) -> Path:
    return write_gguf(
        tmp_path / "small.gguf",
        kv={"llama.rope.freq_base": 10000.0, "general.name": "tiny", "t.list": [1, 2, 3]},
        tensors={"a": np.ones((2, 4), dtype=np.float32), "b": np.ones((3,), dtype=np.float16)},
        chat_template="{{ .Prompt }}",
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("limit", [None, 2], ids=["all", "limited"])
def test_every_header_truncation_raises(tmp_path: Path, small_gguf: Path, limit: int | None) -> None:
    data = small_gguf.read_bytes()
    infos_end, _ = _layout(small_gguf)
    cut_path = tmp_path / "cut.gguf"
    accepted, wrong = [], []
    for cut in range(infos_end):
        cut_path.write_bytes(data[:cut])
        try:
            read_gguf(cut_path, max_array_length=limit)
        except GGUFError:
            continue
        except Exception as err:  # noqa: BLE001 - anything but GGUFError is a failure
            wrong.append((cut, type(err).__name__))
            continue
        accepted.append(cut)
    assert wrong == []
    assert accepted == [], f"header truncated at these offsets (of {infos_end}) was accepted"


@pytest.mark.timeout(60)
def test_truncated_tensor_data_raises(tmp_path: Path, small_gguf: Path) -> None:
    # fs/ggml/gguf.go Decode: "tensor %q offset+size (%d) exceeds file size (%d)"
    data = small_gguf.read_bytes()
    infos_end, data_end = _layout(small_gguf)
    cut_path = tmp_path / "cut.gguf"
    accepted = []
    for cut in sorted({infos_end, infos_end + 1, (infos_end + data_end) // 2, data_end - 1}):
        cut_path.write_bytes(data[:cut])
        try:
            read_gguf(cut_path)
        except GGUFError:
            continue
        accepted.append(cut)
    assert accepted == [], f"files cut inside the tensor data (which ends at {data_end}) were accepted"


def test_untruncated_and_padded_files_parse(tmp_path: Path, small_gguf: Path) -> None:
    data = small_gguf.read_bytes()
    _, data_end = _layout(small_gguf)
    exact = tmp_path / "exact.gguf"
    exact.write_bytes(data[:data_end])
    assert read_gguf(exact).tensors == read_gguf(small_gguf).tensors == reader_tensors(small_gguf)
    longer = tmp_path / "longer.gguf"
    longer.write_bytes(data + bytes(1000))
    assert read_gguf(longer).kv == read_gguf(small_gguf).kv


@pytest.mark.timeout(120)
def test_random_corruption_raises_only_gguf_error(tmp_path: Path, small_gguf: Path) -> None:
    data = small_gguf.read_bytes()
    infos_end, _ = _layout(small_gguf)
    rng = random.Random(1234)
    path = tmp_path / "fuzz.gguf"
    wrong = []
    for i in range(1500):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(4, infos_end)
            if rng.random() < 0.3:
                mutated[position] = 0xFF
            else:
                mutated[position] = rng.randrange(256)
        if rng.random() < 0.3:
            mutated = mutated[: rng.randrange(4, len(mutated))]
        path.write_bytes(bytes(mutated))
        for limit in (None, 2):
            try:
                read_gguf(path, max_array_length=limit)
            except GGUFError:
                pass
            except Exception as err:  # noqa: BLE001
                wrong.append((i, limit, type(err).__name__, str(err)[:80]))
    assert wrong == []


# --- a real model -------------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_smollm2_matches_reader(smollm2_path: Path) -> None:
    reader = GGUFReader(smollm2_path)
    parsed = read_gguf(smollm2_path)
    scalar = {
        key: reader_value(f)
        for key, f in reader.fields.items()
        if not key.startswith("GGUF.") and f.types[0] is not T.ARRAY
    }
    assert {key: value for key, value in parsed.kv.items() if key in scalar} == scalar
    arrays = {key: f for key, f in reader.fields.items() if f.types and f.types[0] is T.ARRAY}
    assert set(parsed.kv) == set(scalar) | set(arrays)
    assert parsed.array_lengths == {key: len(f.data) for key, f in arrays.items()}
    assert parsed.kv["tokenizer.ggml.tokens"][:3] == [
        str(bytes(reader.fields["tokenizer.ggml.tokens"].parts[idx]), "utf-8")
        for idx in reader.fields["tokenizer.ggml.tokens"].data[:3]
    ]
    assert [(t.name, t.type, t.shape) for t in parsed.tensors] == [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape)) for t in reader.tensors
    ]
    assert parsed.parameter_count == sum(int(t.n_elements) for t in reader.tensors)
    assert parsed.architecture == "llama"
    assert parsed.file_type == "Q4_1"
    assert parsed.get("context_length") == int(reader.fields["llama.context_length"].contents())
    assert parsed.chat_template == reader.fields["tokenizer.chat_template"].contents()
    assert "<|im_start|>" in parsed.chat_template

    limited = read_gguf(smollm2_path, max_array_length=5)
    assert "tokenizer.ggml.tokens" not in limited.kv
    assert limited.array_lengths == parsed.array_lengths
    assert limited.tensors == parsed.tensors
    assert {k: v for k, v in parsed.kv.items() if k in limited.kv} == limited.kv
