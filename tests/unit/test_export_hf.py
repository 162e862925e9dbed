"""tools/export_hf: a GGUF written back out as its Hugging Face checkpoint folder.

Each check inverts the exporter with llama.cpp's own conventions: tensor names go back through gguf's
TensorNameMap (the table convert_hf_to_gguf uses), Q/K rows through LlamaModel.permute (copied below), and
the GGUF's dequantized tensors are read with gguf.GGUFReader, not with the exporter's reader.
"""

from __future__ import annotations

import contextlib
import functools
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from gguf import (
    MODEL_ARCH,
    GGMLQuantizationType,
    GGUFReader,
    TensorNameMap,
    TokenType,
    get_tensor_name_map,
)
from gguf.quants import dequantize, quantize
from safetensors import safe_open

from pollama.store.gguf import read_gguf
from tests.ggufs import write_bare_gguf as write_gguf
from tools.export_hf import _to_bf16, export, main
from tools.test_models import ensure_model

_ARCHS = {"llama": MODEL_ARCH.LLAMA, "qwen2": MODEL_ARCH.QWEN2, "gemma3": MODEL_ARCH.GEMMA3}


def llama_permute(weights: npt.NDArray[Any], n_head: int, n_head_kv: int | None) -> npt.NDArray[Any]:
    """conversion/llama.py LlamaModel.permute, as llama.cpp's converter applies it to q_proj/k_proj."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


@functools.cache
def name_map(arch: str, n_layer: int) -> TensorNameMap:
    return get_tensor_name_map(_ARCHS[arch], n_layer)


def gguf_name(hf_name: str, arch: str, n_layer: int) -> str | None:
    """The GGUF name convert_hf_to_gguf gives a Hugging Face tensor (gguf-py's tensor_mapping)."""
    return name_map(arch, n_layer).get_name(hf_name, try_suffixes=(".weight", ".bias"))


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file (parsed here: numpy has no bfloat16) and where its data starts."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(length)), 8 + length


def read_tensor(path: Path, name: str) -> npt.NDArray[np.float32]:
    """A tensor of a safetensors file as float32, bfloat16 included."""
    header, start = safetensors_header(path)
    entry = header[name]
    begin, end = entry["data_offsets"]
    with path.open("rb") as handle:
        handle.seek(start + begin)
        raw = handle.read(end - begin)
    if entry["dtype"] == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(entry["shape"])
    dtype = {"F16": "<f2", "F32": "<f4"}[entry["dtype"]]
    return np.frombuffer(raw, dtype=dtype).astype(np.float32).reshape(entry["shape"])


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def protobuf_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: varints as int, length-delimited and fixed32 as bytes."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            yield field, varint()
        elif wire == 2:
            length = varint()
            yield field, data[pos : pos + length]
            pos += length
        elif wire == 5:
            yield field, data[pos : pos + 4]
            pos += 4
        else:
            raise AssertionError(f"unexpected wire type {wire}")


def sentencepiece_model(path: Path) -> tuple[list[tuple[str, float, int]], dict[int, Any], dict[int, Any]]:
    """tokenizer.model as (piece, score, type) triples, trainer_spec and normalizer_spec fields."""
    pieces = []
    specs: dict[int, dict[int, Any]] = {2: {}, 3: {}}
    for field, value in protobuf_fields(path.read_bytes()):
        assert isinstance(value, bytes)
        if field == 1:
            piece = dict(protobuf_fields(value))
            assert isinstance(piece[1], bytes) and isinstance(piece[2], bytes)
            pieces.append((piece[1].decode(), struct.unpack("<f", piece[2])[0], int(piece.get(3, 1))))
        else:
            specs[field] = dict(protobuf_fields(value))
    return pieces, specs[2], specs[3]


def int32(value: Any) -> int:
    """A protobuf int32 varint (negatives are 64-bit two's complement)."""
    return int(value) - (1 << 64) if int(value) >= 1 << 63 else int(value)


# --- synthetic GGUFs: the exact inverse of what the converter wrote -----------------------------------------


_N_HEAD, _N_HEAD_KV, _HEAD_DIM, _N_EMBD, _N_FF = 4, 2, 4, 16, 8


def llama_hf_tensors(rng: np.random.Generator) -> dict[str, npt.NDArray[np.float32]]:
    """A one-layer Llama checkpoint with Q/K biases and an untied head, in Hugging Face's names and layout."""

    def rand(*shape: int) -> npt.NDArray[np.float32]:
        return rng.standard_normal(shape).astype(np.float32)

    layer = "model.layers.0."
    return {
        "model.embed_tokens.weight": rand(8, _N_EMBD),
        layer + "self_attn.q_proj.weight": rand(_N_HEAD * _HEAD_DIM, _N_EMBD),
        layer + "self_attn.q_proj.bias": rand(_N_HEAD * _HEAD_DIM),
        layer + "self_attn.k_proj.weight": rand(_N_HEAD_KV * _HEAD_DIM, _N_EMBD),
        layer + "self_attn.k_proj.bias": rand(_N_HEAD_KV * _HEAD_DIM),
        layer + "self_attn.v_proj.weight": rand(_N_HEAD_KV * _HEAD_DIM, _N_EMBD),
        layer + "self_attn.o_proj.weight": rand(_N_EMBD, _N_HEAD * _HEAD_DIM),
        layer + "mlp.gate_proj.weight": rand(_N_FF, _N_EMBD),
        layer + "mlp.up_proj.weight": rand(_N_FF, _N_EMBD),
        layer + "mlp.down_proj.weight": rand(_N_EMBD, _N_FF),
        layer + "input_layernorm.weight": rand(_N_EMBD),
        layer + "post_attention_layernorm.weight": rand(_N_EMBD),
        "model.norm.weight": rand(_N_EMBD),
        "lm_head.weight": rand(8, _N_EMBD),
    }


def converted(hf: dict[str, npt.NDArray[np.float32]], arch: str) -> dict[str, npt.NDArray[np.float32]]:
    """What convert_hf_to_gguf writes for these tensors (F32): GGUF names, Llama's Q/K permutation, Gemma's +1."""
    out = {}
    for name, data in hf.items():
        if arch == "llama" and ".q_proj." in name:
            data = llama_permute(data, _N_HEAD, _N_HEAD)
        if arch == "llama" and ".k_proj." in name:
            data = llama_permute(data, _N_HEAD, _N_HEAD_KV)
        if arch == "gemma3" and name.endswith("norm.weight"):
            data = data + np.float32(1)
        target = gguf_name(name, arch, 1)
        assert target is not None, name
        out[target] = data
    return out


def hparams(arch: str) -> dict[str, Any]:
    return {
        f"{arch}.block_count": 1,
        f"{arch}.context_length": 4096,
        f"{arch}.embedding_length": _N_EMBD,
        f"{arch}.feed_forward_length": _N_FF,
        f"{arch}.attention.head_count": _N_HEAD,
        f"{arch}.attention.head_count_kv": _N_HEAD_KV,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-5,
        f"{arch}.rope.freq_base": 500000.0,
    }


def test_llama_tensors_come_back_exactly_as_hugging_face_had_them(tmp_path: Path) -> None:
    hf = llama_hf_tensors(np.random.default_rng(0))
    tokens = ["<|begin_of_text|>", "<|end_of_text|>", "a", "b", "ab", "Ġ", "Ġa", "<tool>"]
    kinds = [TokenType.CONTROL, TokenType.CONTROL, *[TokenType.NORMAL] * 5, TokenType.USER_DEFINED]
    kv = {
        **hparams("llama"),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [int(kind) for kind in kinds],
        "tokenizer.ggml.merges": ["a b", "Ġ a"],
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 1,
    }
    path = write_gguf(tmp_path / "m.gguf", "llama", kv, converted(hf, "llama"))
    out = tmp_path / "hf"
    export(path, out, dtype="f32")

    with safe_open(str(out / "model.safetensors"), framework="numpy") as exported:
        assert sorted(exported.keys()) == sorted(hf)
        for name, data in hf.items():
            np.testing.assert_array_equal(exported.get_tensor(name), data, err_msg=name)
    config = read_json(out / "config.json")
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is False and config["attention_bias"] is True
    assert config["rope_theta"] == 500000.0 and config["rms_norm_eps"] == 1e-5
    assert "head_dim" not in config  # the GGUF has no key_length: config.json had no head_dim

    tokenizer = read_json(out / "tokenizer.json")
    # Llama 3 ("llama-bpe") adds BOS: llama.cpp's default for it, kept in a TemplateProcessing step.
    template = tokenizer["post_processor"]["processors"][1]
    assert template["single"][0] == {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
    assert tokenizer["model"]["ignore_merges"] is True and tokenizer["model"]["byte_fallback"] is False
    assert [(t["id"], t["content"], t["special"]) for t in tokenizer["added_tokens"]] == [
        (0, "<|begin_of_text|>", True),
        (1, "<|end_of_text|>", True),
        (7, "<tool>", False),
    ]
    assert tokenizer["model"]["vocab"] == {token: i for i, token in enumerate(tokens[:7])}
    tokenizer_config = read_json(out / "tokenizer_config.json")
    assert tokenizer_config["add_bos_token"] is True and tokenizer_config["bos_token"] == "<|begin_of_text|>"


def test_gemma3_norms_lose_the_added_one_and_sentencepiece_pieces_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    hf = {
        name: data
        for name, data in llama_hf_tensors(rng).items()
        if not name.endswith(".bias") and name != "lm_head.weight"
    }
    layer = "model.layers.0."
    for norm in ("pre_feedforward_layernorm", "post_feedforward_layernorm"):
        hf[layer + norm + ".weight"] = rng.standard_normal(_N_EMBD).astype(np.float32)
    for norm in ("q_norm", "k_norm"):
        hf[layer + "self_attn." + norm + ".weight"] = rng.standard_normal(_HEAD_DIM).astype(np.float32)
    for name in hf:
        if name.endswith("norm.weight"):  # multiples of 1/8: "+ 1 - 1" is exact in float32
            hf[name] = np.round(hf[name] * 8) / np.float32(8)
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "▁a", "b", "  ", "<0x41>"]
    kinds = [*[TokenType.CONTROL] * 4, TokenType.NORMAL, TokenType.NORMAL, TokenType.USER_DEFINED, TokenType.BYTE]
    scores = [-1000.0, -1000.0, -1000.0, -1000.0, -1.0, -2.0, -1000.0, 0.0]
    kv = {
        **hparams("gemma3"),
        "gemma3.attention.key_length": _HEAD_DIM,
        "gemma3.attention.value_length": _HEAD_DIM,
        "gemma3.attention.sliding_window": 512,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": [int(kind) for kind in kinds],
        "tokenizer.ggml.bos_token_id": 2,
        "tokenizer.ggml.eos_token_id": 1,
        "tokenizer.ggml.unknown_token_id": 3,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.add_space_prefix": False,
    }
    path = write_gguf(tmp_path / "g.gguf", "gemma3", kv, converted(hf, "gemma3"))
    out = tmp_path / "hf"
    export(path, out, dtype="f32")

    with safe_open(str(out / "model.safetensors"), framework="numpy") as exported:
        assert sorted(exported.keys()) == sorted(hf)
        for name, data in hf.items():  # Gemma keeps Q/K rows in Hugging Face's order
            np.testing.assert_array_equal(exported.get_tensor(name), data, err_msg=name)
    config = read_json(out / "config.json")
    assert config["model_type"] == "gemma3_text" and config["head_dim"] == _HEAD_DIM
    assert config["sliding_window"] == 512 and config["sliding_window_pattern"] == 6
    assert config["layer_types"] == ["sliding_attention"] and config["tie_word_embeddings"] is True

    pieces, trainer, normalizer = sentencepiece_model(out / "tokenizer.model")
    # <unk> is SentencePiece's UNKNOWN piece; the converter made it CONTROL from added_tokens_decoder.
    # User-defined added tokens keep SentencePiece's "▁" for a space.
    expected_kinds = [*kinds[:3], TokenType.UNKNOWN, *kinds[4:]]
    assert pieces == [(t.replace(" ", "▁"), s, k) for t, s, k in zip(tokens, scores, expected_kinds, strict=True)]
    assert (trainer[3], trainer[4], trainer[35]) == (2, len(tokens), 1)  # BPE, vocab size, byte fallback
    assert [int32(trainer[f]) for f in (40, 41, 42, 43)] == [3, 2, 1, 0]  # unk, bos, eos, pad ids
    assert (normalizer[1], normalizer[3]) == (b"identity", 0)  # no dummy prefix, as add_space_prefix says
    decoder = read_json(out / "tokenizer_config.json")["added_tokens_decoder"]
    assert {int(i): (e["content"], e["special"]) for i, e in decoder.items()} == {
        0: ("<pad>", True),
        1: ("<eos>", True),
        2: ("<bos>", True),
        3: ("<unk>", True),
        6: ("▁▁", False),
    }


def test_refuses_what_it_cannot_express(tmp_path: Path) -> None:
    tensors = {"token_embd.weight": np.zeros((8, _N_EMBD), dtype=np.float32)}
    base = {**hparams("llama"), "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a"] * 8}
    unknown_pre = write_gguf(tmp_path / "pre.gguf", "llama", {**base, "tokenizer.ggml.pre": "klingon"}, tensors)
    with pytest.raises(ValueError, match="klingon"):
        export(unknown_pre, tmp_path / "a")
    other_arch = write_gguf(tmp_path / "arch.gguf", "phi3", {**hparams("phi3")}, tensors)
    with pytest.raises(ValueError, match="phi3"):
        export(other_arch, tmp_path / "b")
    stray = write_gguf(tmp_path / "stray.gguf", "llama", base, {**tensors, "rope_freqs.weight": np.ones(2, np.float32)})
    with pytest.raises(ValueError, match="rope_freqs"):
        export(stray, tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model-00001-of-00002.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not empty"):
        export(unknown_pre, tmp_path / "d")


# --- SmolLM2 (llama, byte-level BPE) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_export(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smollm2") / "hf"
    export(smollm2_path, out, dtype="f32", max_shard_bytes=100_000_000)
    return out


def test_smollm2_tensors_are_hugging_faces_and_undo_the_rotary_permutation(
    smollm2_path: Path, smollm2_export: Path
) -> None:
    index = read_json(smollm2_export / "model.safetensors.index.json")
    weight_map: dict[str, str] = index["weight_map"]
    reader = GGUFReader(smollm2_path)
    assert len(weight_map) == len(reader.tensors) == 272
    assert "lm_head.weight" not in weight_map  # tied: the GGUF has no output.weight
    hf_names = {gguf_name(name, "llama", 30): name for name in weight_map}
    with contextlib.ExitStack() as stack:
        files = {
            file: stack.enter_context(safe_open(str(smollm2_export / file), framework="numpy"))
            for file in set(weight_map.values())
        }
        for tensor in reader.tensors:
            hf_name = hf_names[tensor.name]
            got = files[weight_map[hf_name]].get_tensor(hf_name)
            if ".q_proj." in hf_name:
                assert got.shape == (9 * 64, 576)  # [n_head * head_dim, hidden], PyTorch's (out, in)
                got = llama_permute(got, 9, 9)
            elif ".k_proj." in hf_name:
                assert got.shape == (3 * 64, 576)
                got = llama_permute(got, 9, 3)
            assert np.array_equal(got, dequantize(tensor.data, tensor.tensor_type)), hf_name
        embeddings = files[weight_map["model.embed_tokens.weight"]].get_slice("model.embed_tokens.weight")
        assert embeddings.get_shape() == [49152, 576]


def test_smollm2_shards_and_index_are_consistent(smollm2_export: Path) -> None:
    index = read_json(smollm2_export / "model.safetensors.index.json")
    files = sorted(path.name for path in smollm2_export.glob("*.safetensors"))
    assert files == [f"model-{i:05d}-of-{len(files):05d}.safetensors" for i in range(1, len(files) + 1)]
    assert len(files) > 1 and set(index["weight_map"].values()) == set(files)
    total = 0
    for file in files:
        header, data_start = safetensors_header(smollm2_export / file)
        assert header.pop("__metadata__") == {"format": "pt"}
        assert data_start % 8 == 0
        assert {name for name, shard in index["weight_map"].items() if shard == file} == set(header)
        sizes = [end - begin for begin, end in (entry["data_offsets"] for entry in header.values())]
        assert all(entry["dtype"] == "F32" for entry in header.values())
        shard_bytes = sum(sizes)
        assert shard_bytes <= 100_000_000 or len(header) == 1  # a larger tensor gets a file of its own
        assert (smollm2_export / file).stat().st_size == data_start + shard_bytes
        total += shard_bytes
    assert index["metadata"]["total_size"] == total


def test_smollm2_config_and_tokenizer_files(smollm2_path: Path, smollm2_export: Path) -> None:
    gguf = read_gguf(smollm2_path)
    config = read_json(smollm2_export / "config.json")
    assert config["architectures"] == ["LlamaForCausalLM"] and config["model_type"] == "llama"
    assert {key: config[key] for key in ("hidden_size", "intermediate_size", "num_hidden_layers")} == {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
    }
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (9, 3)
    assert (config["rms_norm_eps"], config["rope_theta"], config["max_position_embeddings"]) == (1e-5, 100000.0, 8192)
    assert (config["vocab_size"], config["tie_word_embeddings"], config["torch_dtype"]) == (49152, True, "float32")
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (1, 2, 2)

    tokenizer = read_json(smollm2_export / "tokenizer.json")
    tokens: list[str] = gguf.kv["tokenizer.ggml.tokens"]
    assert tokenizer["model"]["vocab"] == {token: i for i, token in enumerate(tokens)}
    assert tokenizer["model"]["merges"] == gguf.kv["tokenizer.ggml.merges"]
    assert [t["content"] for t in tokenizer["added_tokens"]] == tokens[:17]  # the 17 control tokens
    assert all(t["special"] for t in tokenizer["added_tokens"])
    assert tokenizer["pre_tokenizer"]["pretokenizers"] == [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ]
    assert tokenizer["post_processor"]["type"] == "ByteLevel"  # no BOS added
    tokenizer_config = read_json(smollm2_export / "tokenizer_config.json")
    assert tokenizer_config["chat_template"] == gguf.chat_template
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert (tokenizer_config["add_bos_token"], tokenizer_config["add_prefix_space"]) == (False, False)
    assert read_json(smollm2_export / "special_tokens_map.json")["pad_token"]["content"] == "<|im_end|>"
    assert read_json(smollm2_export / "generation_config.json")["eos_token_id"] == 2


def test_cli_writes_the_configuration_alone_with_no_weights(smollm2_path: Path, tmp_path: Path) -> None:
    assert main([str(smollm2_path), str(tmp_path / "hf"), "--no-weights"]) == 0
    assert sorted(path.name for path in (tmp_path / "hf").iterdir()) == [
        "config.json",
        "generation_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert read_json(tmp_path / "hf" / "config.json")["torch_dtype"] == "bfloat16"
    assert main([str(smollm2_path), str(tmp_path / "hf")]) == 2  # not empty now: refused


def test_bf16_is_float32_rounded_to_nearest_even() -> None:
    values = np.array([1.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, 1.00390625, 1.01171875, 1e-45], np.float32)
    values = np.concatenate([values, np.random.default_rng(2).standard_normal(4096).astype(np.float32)])
    # gguf's own float32 -> BF16 conversion, which llama.cpp's converter writes BF16 GGUFs with.
    assert np.array_equal(_to_bf16(values), quantize(values, GGMLQuantizationType.BF16).view(np.uint16))


# --- Qwen2.5-Coder and Gemma 3: larger downloads -------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen_path() -> Path:
    return ensure_model("qwen2.5-coder")


@pytest.fixture(scope="module")
def gemma3_path() -> Path:
    return ensure_model("gemma3")


@pytest.mark.slow  # the Qwen GGUF is a 491 MB download on a fresh machine; the export takes ~12 s
def test_qwen2_coder_exports_biases_an_untied_head_and_qwens_tokenizer(qwen_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    export(qwen_path, out, dtype="f16")
    gguf = read_gguf(qwen_path)
    with safe_open(str(out / "model.safetensors"), framework="numpy") as exported:
        names = set(exported.keys())
        assert len(names) == 291 and "lm_head.weight" in names
        assert exported.get_slice("model.layers.0.self_attn.q_proj.weight").get_shape() == [896, 896]
        assert exported.get_slice("model.layers.0.self_attn.k_proj.bias").get_shape() == [128]
        assert all(gguf_name(name, "qwen2", 24) for name in names)
    reader = GGUFReader(qwen_path)
    q = next(t for t in reader.tensors if t.name == "blk.3.attn_q.weight")  # qwen2 keeps the row order
    np.testing.assert_allclose(
        read_tensor(out / "model.safetensors", "model.layers.3.self_attn.q_proj.weight"),
        dequantize(q.data, q.tensor_type),
        rtol=1e-3,
        atol=1e-4,
    )
    config = read_json(out / "config.json")
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["tie_word_embeddings"] is False
    assert (config["vocab_size"], config["rope_theta"], config["rms_norm_eps"]) == (151936, 1e6, 1e-6)

    tokenizer = read_json(out / "tokenizer.json")
    tokens: list[str] = gguf.kv["tokenizer.ggml.tokens"]
    kinds: list[int] = gguf.kv["tokenizer.ggml.token_type"]
    assert tokenizer["normalizer"] == {"type": "NFC"}
    assert tokenizer["model"]["vocab"] == {token: i for i, token in enumerate(tokens[:151643])}
    assert tokenizer["model"]["merges"] == gguf.kv["tokenizer.ggml.merges"]
    added = {t["id"]: (t["content"], t["special"]) for t in tokenizer["added_tokens"]}
    assert added == {
        i: (tokens[i], kinds[i] == TokenType.CONTROL)
        for i in range(len(tokens))
        if kinds[i] in (TokenType.CONTROL, TokenType.USER_DEFINED)
    }
    assert added[151657] == ("<tool_call>", False)  # user-defined, not special
    assert "[PAD151665]" not in json.dumps(tokenizer)  # the converter's filler for unused ids


@pytest.mark.slow  # the Gemma 3 GGUF is a download of its own on a fresh machine
def test_gemma3_270m_weights_and_sentencepiece_model(gemma3_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    export(gemma3_path, out)  # bf16, the default
    header, _ = safetensors_header(out / "model.safetensors")
    header.pop("__metadata__")
    assert len(header) == 236 and all(entry["dtype"] == "BF16" for entry in header.values())
    assert header["model.layers.0.self_attn.q_proj.weight"]["shape"] == [4 * 256, 640]
    assert header["model.layers.0.self_attn.k_norm.weight"]["shape"] == [256]
    assert header["model.embed_tokens.weight"]["shape"] == [262144, 640]
    assert all(gguf_name(name, "gemma3", 18) for name in header)

    reader = GGUFReader(gemma3_path)
    by_name = {tensor.name: tensor for tensor in reader.tensors}
    for hf_name, name in (
        ("model.layers.5.post_feedforward_layernorm.weight", "blk.5.post_ffw_norm.weight"),
        ("model.layers.5.self_attn.q_norm.weight", "blk.5.attn_q_norm.weight"),
        ("model.norm.weight", "output_norm.weight"),
    ):
        stored = dequantize(by_name[name].data, by_name[name].tensor_type)
        np.testing.assert_allclose(read_tensor(out / "model.safetensors", hf_name) + 1, stored, rtol=1e-2, atol=1e-2)
    v = by_name["blk.2.attn_v.weight"]
    expected = quantize(dequantize(v.data, v.tensor_type), GGMLQuantizationType.BF16).view(np.uint16)
    got = read_tensor(out / "model.safetensors", "model.layers.2.self_attn.v_proj.weight")
    assert np.array_equal((got.view(np.uint32) >> 16).astype(np.uint16), expected)

    gguf = read_gguf(gemma3_path)
    pieces, trainer, _ = sentencepiece_model(out / "tokenizer.model")
    tokens, scores, kinds = (gguf.kv[f"tokenizer.ggml.{key}"] for key in ("tokens", "scores", "token_type"))
    assert len(pieces) == len(tokens) == 262144 and trainer[35] == 1  # byte fallback: <0x00> .. are pieces
    assert [score for _, score, _ in pieces] == [np.float32(score) for score in scores]
    for i, (piece, _, kind) in enumerate(pieces):
        if i == 3:
            assert (piece, kind) == ("<unk>", TokenType.UNKNOWN)
        elif kinds[i] == TokenType.USER_DEFINED:
            assert (piece.replace("▁", " "), kind) == (tokens[i], kinds[i])
        else:
            assert (piece, kind) == (tokens[i], kinds[i])
    decoder = read_json(out / "tokenizer_config.json")["added_tokens_decoder"]
    assert {int(i) for i in decoder} == {
        i for i, kind in enumerate(kinds) if kind in (TokenType.CONTROL, TokenType.USER_DEFINED)
    }
    config = read_json(out / "config.json")
    assert (config["sliding_window"], config["query_pre_attn_scalar"], config["rope_local_base_freq"]) == (
        512,
        256,
        10000.0,
    )
    assert config["layer_types"].count("full_attention") == 3  # layers 5, 11 and 17
