"""The converter's pure parts: safetensors reading, SentencePiece pieces, tokenizer kinds, architectures, LoRA pairs.

The proof that converted models answer as the originals do is tests/integration/test_import.py; these pin
the parsing and the refusals, with small hand-made files.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGUFReader

from pollama.convert import convert_model
from pollama.convert.architectures import ConfigError, _llama_fix, architecture_for
from pollama.convert.checkpoint import Checkpoint, CheckpointError
from pollama.convert.model import _bfloat16
from pollama.convert.sentencepiece import SentencePieceError, read_pieces
from pollama.convert.vocab import TokenizerError, _pre_tokenizer_name


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> None:
    """A safetensors file written by hand (BF16 as raw uint16), as torch's writer lays it out."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, array) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        for _dtype, array in tensors.values():
            handle.write(np.ascontiguousarray(array).tobytes())


def bf16_bits(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def test_safetensors_tensors_are_read_lazily_from_every_shard(tmp_path: Path) -> None:
    first = np.arange(6, dtype=np.float32).reshape(2, 3)
    second = np.array([1.5, -2.25], dtype=np.float16)
    halves = np.array([[1.0, -0.5], [3.0, 256.0]], dtype=np.float32)  # exact in BF16
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {"a": ("F32", first), "b": ("F16", second)})
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {"c": ("BF16", bf16_bits(halves))})
    checkpoint = Checkpoint(tmp_path)
    assert [ref.name for ref in checkpoint] == ["a", "b", "c"]
    np.testing.assert_array_equal(checkpoint["a"].load(), first)
    np.testing.assert_array_equal(checkpoint["b"].load(), second)
    loaded = checkpoint["c"].load()
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, halves)


def test_integer_tensors_are_listed_but_not_loaded(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model.safetensors", {"ids": ("I64", np.arange(4, dtype=np.int64))})
    ref = Checkpoint(tmp_path)["ids"]
    with pytest.raises(CheckpointError, match="only F32, F16 and BF16"):
        ref.load()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not a safetensors file"),
        (struct.pack("<Q", 1 << 40) + b"{}", "not a safetensors file"),
        (struct.pack("<Q", 2) + b"[]", "not a safetensors file"),
        (struct.pack("<Q", 4) + b"{]}x", "not a safetensors file"),
    ],
)
def test_corrupt_headers_are_refused(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match=problem):
        Checkpoint(tmp_path)


def test_truncated_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    write_safetensors(path, {"a": ("F32", np.zeros((64, 64), dtype=np.float32))})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        Checkpoint(tmp_path)


def test_a_tensor_in_two_shards_is_refused(tmp_path: Path) -> None:
    for shard in ("model-1.safetensors", "model-2.safetensors"):
        write_safetensors(tmp_path / shard, {"a": ("F32", np.zeros(2, dtype=np.float32))})
    with pytest.raises(CheckpointError, match="in both"):
        Checkpoint(tmp_path)


def test_no_safetensors_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no safetensors"):
        Checkpoint(tmp_path)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _piece(text: str, score: float, kind: int | None) -> bytes:
    body = _field(1, 2, text.encode()) + _field(2, 5, struct.pack("<f", score))
    return body + (_field(3, 0, _varint(kind)) if kind is not None else b"")


def test_sentencepiece_pieces_are_read_from_the_protobuf() -> None:
    model = (
        _field(1, 2, _piece("<unk>", 0.0, 2))
        + _field(1, 2, _piece("\u2581the", -1.5, None))  # type left out: NORMAL, protobuf's default
        + _field(1, 2, _piece("<0x0A>", 0.0, 6))
        + _field(2, 2, _field(3, 0, _varint(2)))  # a trainer spec, skipped
    )
    pieces = read_pieces(model)
    assert [(p.text, p.score, p.type) for p in pieces] == [
        ("<unk>", 0.0, 2),
        ("\u2581the", -1.5, 1),
        ("<0x0A>", 0.0, 6),
    ]


@pytest.mark.parametrize("data", [b"", b"\x0a\x05ab", b"\x0b", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"])
def test_broken_sentencepiece_models_are_refused(data: bytes) -> None:
    with pytest.raises(SentencePieceError):
        read_pieces(data)


def _byte_level(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": list(steps)}}


def test_known_pre_tokenizers_are_named_as_llama_cpp_names_them() -> None:
    smollm = _byte_level({"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True})
    assert _pre_tokenizer_name(smollm) == "smollm"
    qwen_regex = (  # Qwen2.5's tokenizer.json
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    qwen = _byte_level(
        {"type": "Split", "pattern": {"Regex": qwen_regex}, "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False},
    )
    assert _pre_tokenizer_name(qwen) == "qwen2"
    llama3 = _byte_level(
        {"type": "Split", "pattern": {"Regex": qwen_regex.replace(r"|\p{N}|", r"|\p{N}{1,3}|")}},
        {"type": "ByteLevel", "use_regex": False},
    )
    assert _pre_tokenizer_name(llama3) == "llama-bpe"
    assert _pre_tokenizer_name({"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}) == "gpt2"


def test_an_unknown_pre_tokenizer_is_refused_not_guessed() -> None:
    odd = _byte_level({"type": "Split", "pattern": {"Regex": r"\w+"}}, {"type": "ByteLevel", "use_regex": False})
    with pytest.raises(TokenizerError, match=r"pre-tokenizer \(Split:\\w\+, ByteLevel\) is not one pollama knows"):
        _pre_tokenizer_name(odd)


def test_an_unsupported_architecture_is_named() -> None:
    with pytest.raises(ConfigError, match="unsupported architecture 'Phi3ForCausalLM'; supported: .*LlamaForCausalLM"):
        architecture_for({"architectures": ["Phi3ForCausalLM"]})
    with pytest.raises(ConfigError, match="names no architecture"):
        architecture_for({})
    assert architecture_for({"architectures": ["MistralForCausalLM"]}).name == "llama"


def test_llama_q_and_k_rows_are_interleaved_per_head() -> None:
    # One head of 4 dims: Hugging Face stores the rotary halves [x0 x1 | y0 y1]; llama.cpp wants x0 y0 x1 y1.
    rows = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    config = {"num_attention_heads": 1, "num_key_value_heads": 1}
    fixed = _llama_fix("model.layers.0.self_attn.q_proj.weight", rows, config)
    assert fixed[:, 0].tolist() == [0.0, 2.0, 1.0, 3.0]
    assert _llama_fix("model.layers.0.self_attn.v_proj.weight", rows, config) is rows


def test_bfloat16_rounds_to_nearest_even() -> None:
    values = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -2.5, np.inf, np.nan], dtype=np.float32)
    bits = _bfloat16(values)
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    assert widened[:5].tolist() == [1.0, 1.0, 1.0 + 2**-6, -2.5, np.inf]  # ties go to the even mantissa
    assert np.isnan(widened[5])


def _tiny_llama(folder: Path, dtype: str = "F32") -> dict[str, np.ndarray]:
    """A two-layer llama-style checkpoint with a byte-level BPE tokenizer of 8 tokens."""
    rng = np.random.default_rng(0)
    hidden, heads, kv_heads, ffn, vocab = 8, 2, 1, 16, 8
    shapes = {
        "model.embed_tokens.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
        "lm_head.weight": (vocab, hidden),
    }
    for layer in range(2):
        prefix = f"model.layers.{layer}"
        shapes |= {
            f"{prefix}.input_layernorm.weight": (hidden,),
            f"{prefix}.post_attention_layernorm.weight": (hidden,),
            f"{prefix}.self_attn.q_proj.weight": (hidden, hidden),
            f"{prefix}.self_attn.k_proj.weight": (hidden // heads * kv_heads, hidden),
            f"{prefix}.self_attn.v_proj.weight": (hidden // heads * kv_heads, hidden),
            f"{prefix}.self_attn.o_proj.weight": (hidden, hidden),
            f"{prefix}.mlp.gate_proj.weight": (ffn, hidden),
            f"{prefix}.mlp.up_proj.weight": (ffn, hidden),
            f"{prefix}.mlp.down_proj.weight": (hidden, ffn),
        }
    arrays = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    stored = {name: (dtype, bf16_bits(a) if dtype == "BF16" else a.astype(np.float16 if dtype == "F16" else np.float32))
              for name, a in arrays.items()}  # fmt: skip
    write_safetensors(folder / "model.safetensors", stored)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "num_hidden_layers": 2,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "bos_token_id": 0,
        "eos_token_id": 1,
    }
    (folder / "config.json").write_text(json.dumps(config))
    _write_tokenizer(folder)
    return arrays


def _write_tokenizer(folder: Path) -> None:
    """A byte-level BPE tokenizer of 8 tokens."""
    vocab_map = {t: i for i, t in enumerate(["<s>", "</s>", "a", "b", "ab", "c", "Ġ", "Ġa"])}
    tokenizer = {
        "version": "1.0",
        "added_tokens": [
            {"id": 0, "content": "<s>", "special": True},
            {"id": 1, "content": "</s>", "special": True},
        ],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "model": {"type": "BPE", "vocab": vocab_map, "merges": ["a b", "Ġ a"]},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ messages }}"})
    )


@pytest.mark.parametrize(("dtype", "outtype"), [("F32", "f16"), ("BF16", "bf16"), ("F16", "f32")])
def test_a_small_llama_checkpoint_converts_as_llama_cpp_would(tmp_path: Path, dtype: str, outtype: str) -> None:
    arrays = _tiny_llama(tmp_path, dtype)
    target = tmp_path / "out.gguf"
    steps: list[tuple[int, int]] = []
    converted = convert_model(
        tmp_path, target, outtype=outtype, progress=lambda done, total: steps.append((done, total))
    )
    assert converted.architecture == "llama" and converted.tensors == 21
    assert steps[-1] == (21, 21) and len(steps) == 21
    reader = GGUFReader(target)
    kv = {field.name: field.contents() for field in reader.fields.values() if not field.name.startswith("GGUF.")}
    assert (
        kv["general.architecture"] == "llama" and kv["general.file_type"] == {"f16": 1, "bf16": 32, "f32": 0}[outtype]
    )
    assert kv["llama.attention.head_count_kv"] == 1 and kv["llama.rope.dimension_count"] == 4
    assert kv["tokenizer.ggml.model"] == "gpt2" and kv["tokenizer.ggml.pre"] == "gpt2"
    assert kv["tokenizer.ggml.tokens"][:3] == ["<s>", "</s>", "a"] and kv["tokenizer.ggml.token_type"][:3] == [3, 3, 1]
    assert kv["tokenizer.ggml.merges"] == ["a b", "Ġ a"]
    assert kv["tokenizer.ggml.bos_token_id"] == 0 and kv["tokenizer.chat_template"] == "{{ messages }}"
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    assert tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    assert tensors["blk.0.attn_q.weight"].tensor_type.name == outtype.upper()
    # The q rows come out in llama.cpp's rotary order; the values survive the dtype round trip.
    expected = _llama_fix("q_proj.weight", arrays["model.layers.0.self_attn.q_proj.weight"], {"num_attention_heads": 2})
    raw = np.asarray(tensors["blk.0.attn_q.weight"].data)
    bits = raw.view(np.uint16).astype(np.uint32) << 16  # GGUFReader hands BF16 over as bytes
    stored = bits.view(np.float32) if outtype == "bf16" else raw.astype(np.float32)
    np.testing.assert_allclose(stored.reshape(expected.shape), expected, rtol=1e-2, atol=1e-2)


def test_a_checkpoint_missing_its_tokenizer_is_refused(tmp_path: Path) -> None:
    _tiny_llama(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="has no tokenizer.json or tokenizer.model"):
        convert_model(tmp_path, tmp_path / "out.gguf")


def test_a_tensor_the_architecture_lacks_is_refused(tmp_path: Path) -> None:
    _tiny_llama(tmp_path)
    write_safetensors(tmp_path / "extra.safetensors", {"model.vision_tower.weight": ("F32", np.zeros(2, np.float32))})
    with pytest.raises(ConfigError, match="cannot convert tensor model.vision_tower.weight"):
        convert_model(tmp_path, tmp_path / "out.gguf")


def _convert_tiny(folder: Path, config: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> tuple[Any, Any]:
    """Convert a one-layer checkpoint of random F32 tensors; the arrays written and the GGUF's reader."""
    rng = np.random.default_rng(1)
    arrays = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    write_safetensors(folder / "model.safetensors", {name: ("F32", array) for name, array in arrays.items()})
    base = {"hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "num_hidden_layers": 1}
    (folder / "config.json").write_text(json.dumps({**base, "vocab_size": 8, **config}))
    _write_tokenizer(folder)
    convert_model(folder, folder / "out.gguf", outtype="f32")
    return arrays, GGUFReader(folder / "out.gguf")


_ATTENTION = {
    "model.embed_tokens.weight": (8, 8),
    "model.norm.weight": (8,),
    "model.layers.0.input_layernorm.weight": (8,),
    "model.layers.0.post_attention_layernorm.weight": (8,),
    "model.layers.0.self_attn.q_proj.weight": (8, 8),
    "model.layers.0.self_attn.k_proj.weight": (4, 8),
    "model.layers.0.self_attn.v_proj.weight": (4, 8),
    "model.layers.0.self_attn.o_proj.weight": (8, 8),
}


def test_mixtral_experts_are_stacked_per_layer_in_expert_order(tmp_path: Path) -> None:
    experts = {
        f"model.layers.0.block_sparse_moe.experts.{x}.{w}.weight": (6, 8) if w != "w2" else (8, 6)
        for x in (2, 0, 1)  # the file need not list them in order
        for w in ("w1", "w2", "w3")
    }
    shapes = {**_ATTENTION, "model.layers.0.block_sparse_moe.gate.weight": (3, 8), **experts}
    config = {"architectures": ["MixtralForCausalLM"], "num_local_experts": 3, "num_experts_per_tok": 2}
    arrays, reader = _convert_tiny(tmp_path, config, shapes)
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    gate = np.asarray(tensors["blk.0.ffn_gate_exps.weight"].data)
    assert gate.shape == (3, 6, 8)
    for x in range(3):
        np.testing.assert_array_equal(gate[x], arrays[f"model.layers.0.block_sparse_moe.experts.{x}.w1.weight"])
    assert np.asarray(tensors["blk.0.ffn_down_exps.weight"].data).shape == (3, 8, 6)
    assert "blk.0.ffn_up_exps.weight" in tensors and tensors["blk.0.ffn_gate_inp.weight"].tensor_type.name == "F32"
    assert reader.fields["llama.expert_count"].contents() == 3
    assert reader.fields["llama.expert_used_count"].contents() == 2


def test_a_mixtral_checkpoint_missing_an_expert_is_refused(tmp_path: Path) -> None:
    experts = {f"model.layers.0.block_sparse_moe.experts.{x}.w1.weight": (6, 8) for x in (0, 1)}
    config = {"architectures": ["MixtralForCausalLM"], "num_local_experts": 3, "num_experts_per_tok": 2}
    with pytest.raises(ConfigError, match="lacks experts of layer 0"):
        _convert_tiny(tmp_path, config, {**_ATTENTION, **experts})


def test_gemma_norms_are_stored_plus_one_and_an_lm_head_is_dropped(tmp_path: Path) -> None:
    mlp = {f"model.layers.0.mlp.{m}.weight": (16, 8) for m in ("gate_proj", "up_proj")}
    shapes = {
        **_ATTENTION,
        **mlp,
        "model.layers.0.mlp.down_proj.weight": (8, 16),
        "model.layers.0.pre_feedforward_layernorm.weight": (8,),
        "model.layers.0.post_feedforward_layernorm.weight": (8,),
        "lm_head.weight": (8, 8),
    }
    config = {
        "architectures": ["Gemma2ForCausalLM"],
        "head_dim": 4,
        "intermediate_size": 16,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        "sliding_window": 32,
    }
    arrays, reader = _convert_tiny(tmp_path, config, shapes)
    tensors = {tensor.name: np.asarray(tensor.data) for tensor in reader.tensors}
    post_ffw = arrays["model.layers.0.post_feedforward_layernorm.weight"]
    np.testing.assert_allclose(tensors["blk.0.post_ffw_norm.weight"], post_ffw + 1, rtol=1e-6)
    np.testing.assert_allclose(tensors["output_norm.weight"], arrays["model.norm.weight"] + 1, rtol=1e-6)
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight"], arrays["model.layers.0.self_attn.q_proj.weight"])
    assert "output.weight" not in tensors  # Gemma's output is its embedding matrix
    assert reader.fields["gemma2.attn_logit_softcapping"].contents() == 50.0


def test_qwen3_keeps_its_q_and_k_norms_and_rotary_order(tmp_path: Path) -> None:
    mlp = {f"model.layers.0.mlp.{m}.weight": (16, 8) for m in ("gate_proj", "up_proj")}
    shapes = {
        **_ATTENTION,
        **mlp,
        "model.layers.0.mlp.down_proj.weight": (8, 16),
        "model.layers.0.self_attn.q_norm.weight": (4,),
        "model.layers.0.self_attn.k_norm.weight": (4,),
    }
    config = {"architectures": ["Qwen3ForCausalLM"], "head_dim": 4, "intermediate_size": 16, "rope_theta": 1e6}
    arrays, reader = _convert_tiny(tmp_path, config, shapes)
    tensors = {tensor.name: np.asarray(tensor.data) for tensor in reader.tensors}
    np.testing.assert_array_equal(tensors["blk.0.attn_q_norm.weight"], arrays["model.layers.0.self_attn.q_norm.weight"])
    # Qwen's rotary halves are what llama.cpp's NEOX rope expects: no reordering, unlike Llama.
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight"], arrays["model.layers.0.self_attn.q_proj.weight"])
    assert reader.fields["qwen3.attention.key_length"].contents() == 4
