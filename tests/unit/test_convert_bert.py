"""The BERT converter: all-MiniLM-L6-v2 as a GGUF that llama.cpp loads and embeds with, like sentence-transformers.

The metadata checks pin what llama.cpp's ``convert_hf_to_gguf.py`` writes for this model (compared key by key and
tensor by tensor against its output when the converter was written). The embedding check ties three things
together: a numpy BERT forward pass over the GGUF's weights must match sentence-transformers' own numbers (so the
tensors mean what their names say), and llama.cpp's mean-pooled embedding must match that forward pass (so
llama.cpp reads the file as intended).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pollama.store.gguf import GGUFFile, read_gguf
from tools.test_models import ensure_model

SENTENCE = "This is a test sentence"
# What the Hugging Face tokenizer gives: [CLS] this is a test sentence [SEP].
SENTENCE_IDS = [101, 2023, 2003, 1037, 3231, 6251, 102]
# sentence-transformers 6.2.0 (torch 2.15, CPU) on the original safetensors: the first 8 values of the normalised
# embedding of SENTENCE, and the norm of the mean-pooled token states before normalising.
REFERENCE_FIRST_8 = [0.071552, 0.06848, 0.006603, 0.10177, 0.011122, 0.000245, 0.016587, -0.012005]
REFERENCE_POOLED_NORM = 5.170661

LAYERS = 6
HIDDEN = 384
HEADS = 12
FEED_FORWARD = 1536
VOCAB = 30522
BLOCK_TENSORS = (
    "attn_output_norm",
    "attn_output",
    "attn_k",
    "attn_q",
    "attn_v",
    "ffn_up",
    "layer_output_norm",
    "ffn_down",
)


@pytest.fixture(scope="module")
def minilm_path() -> Path:
    return ensure_model("minilm")


@pytest.fixture(scope="module")
def minilm(minilm_path: Path) -> GGUFFile:
    return read_gguf(minilm_path)


def test_architecture_metadata(minilm: GGUFFile) -> None:
    assert minilm.architecture == "bert"
    assert minilm.kind == "model"
    assert minilm.file_type == "F16"
    assert minilm.kv["general.name"] == "all-MiniLM-L6-v2"
    assert minilm.kv["general.size_label"] == "23M"
    expected = {
        "context_length": 512,
        "embedding_length": HIDDEN,
        "feed_forward_length": FEED_FORWARD,
        "block_count": LAYERS,
        "attention.head_count": HEADS,
        "attention.layer_norm_epsilon": 1e-12,
        "attention.causal": False,
        "pooling_type": 1,  # mean, from 1_Pooling/config.json
    }
    assert {key: minilm.get(key) for key in expected} == expected


def test_tokenizer_metadata(minilm: GGUFFile) -> None:
    kv = minilm.kv
    assert kv["tokenizer.ggml.model"] == "bert"
    assert kv["tokenizer.ggml.pre"] == "jina-v2-en"  # sic: the reference converter's hash lookup says so
    assert kv["tokenizer.ggml.token_type_count"] == 2
    special = {
        "bos_token_id": 101,  # [CLS]
        "eos_token_id": 102,  # [SEP]
        "seperator_token_id": 102,
        "unknown_token_id": 100,
        "padding_token_id": 0,
        "mask_token_id": 103,
        "add_bos_token": True,
        "add_eos_token": True,
        "add_sep_token": False,
        "normalizer.lowercase": True,
    }
    assert {key: kv.get(f"tokenizer.ggml.{key}") for key in special} == special
    assert "tokenizer.ggml.cls_token_id" not in kv  # the writer has no setter for it: the reference skips it too

    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == VOCAB
    # Special tokens stay whole (CONTROL); WordPiece "##" continuations lose the marker and word starts gain "▁".
    assert [tokens[i] for i in (0, 100, 101, 102, 103)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert [i for i, kind in enumerate(types) if kind != 1] == [0, 100, 101, 102, 103]
    assert {types[i] for i in (0, 100, 101, 102, 103)} == {3}
    assert [tokens[i] for i in SENTENCE_IDS[1:-1]] == ["▁this", "▁is", "▁a", "▁test", "▁sentence"]
    assert tokens[1] == "▁[unused0]"
    assert tokens[2015] == "s"  # "##s"


def test_tensor_names_types_and_shapes(minilm: GGUFFile) -> None:
    tensors = {tensor.name: tensor for tensor in minilm.tensors}
    expected_names = {
        f"{stem}.{suffix}"
        for stem in ("token_embd_norm", *(f"blk.{n}.{name}" for n in range(LAYERS) for name in BLOCK_TENSORS))
        for suffix in ("weight", "bias")
    } | {"token_embd.weight", "token_types.weight", "position_embd.weight"}
    assert set(tensors) == expected_names
    assert len(minilm.tensors) == len(expected_names) == 101
    assert minilm.tensors[0].name == "token_embd_norm.bias"  # checkpoint order, as the reference writes them

    # GGUF shapes are ggml's: innermost dimension first.
    assert tensors["token_embd.weight"].shape == (HIDDEN, VOCAB)
    assert tensors["position_embd.weight"].shape == (HIDDEN, 512)
    assert tensors["token_types.weight"].shape == (HIDDEN, 2)
    assert tensors["blk.0.ffn_up.weight"].shape == (HIDDEN, FEED_FORWARD)
    assert tensors["blk.0.ffn_down.weight"].shape == (FEED_FORWARD, HIDDEN)
    assert tensors["blk.5.attn_q.weight"].shape == (HIDDEN, HIDDEN)
    # Matrices are F16 except the position and token-type embeddings; norms and biases stay F32.
    f16 = {name for name, tensor in tensors.items() if tensor.type == "F16"}
    assert f16 == {"token_embd.weight"} | {
        f"blk.{n}.{name}.weight"
        for n in range(LAYERS)
        for name in ("attn_output", "attn_k", "attn_q", "attn_v", "ffn_up", "ffn_down")
    }
    assert {tensor.type for tensor in tensors.values()} == {"F16", "F32"}
    assert minilm.parameter_count == 22_565_376


@pytest.mark.slow
def test_llama_cpp_embedding_matches_sentence_transformers(minilm_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    reference_pooled = _numpy_bert_mean_pooled(minilm_path, SENTENCE_IDS)
    reference = reference_pooled / np.linalg.norm(reference_pooled)
    # The numpy forward pass reads the converted weights: agreeing with sentence-transformers proves their layout.
    assert np.allclose(reference[:8], REFERENCE_FIRST_8, atol=1e-3)
    assert np.linalg.norm(reference_pooled) == pytest.approx(REFERENCE_POOLED_NORM, rel=1e-3)

    llm = llama_cpp.Llama(model_path=str(minilm_path), embedding=True, n_ctx=512, verbose=False)
    try:
        assert llm.tokenize(SENTENCE.encode()) == SENTENCE_IDS
        pooled = np.asarray(llm.embed(SENTENCE), dtype=np.float64)  # mean pooled, not normalised
    finally:
        llm.close()
    assert pooled.shape == (HIDDEN,)
    assert np.linalg.norm(pooled) == pytest.approx(REFERENCE_POOLED_NORM, rel=1e-2)  # CLS pooling would differ
    embedding = pooled / np.linalg.norm(pooled)
    assert float(embedding @ reference) > 0.99
    assert np.allclose(embedding[:8], REFERENCE_FIRST_8, atol=1e-3)


def _numpy_bert_mean_pooled(path: Path, ids: list[int]) -> np.ndarray:
    """BERT's encoder in plain numpy (float64, exact-erf GELU, as Hugging Face runs it), mean pooled over ``ids``."""
    from gguf import GGUFReader

    weights = {tensor.name: np.asarray(tensor.data, dtype=np.float64) for tensor in GGUFReader(path).tensors}

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return x @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]

    def layer_norm(x: np.ndarray, name: str) -> np.ndarray:
        centred = x - x.mean(axis=-1, keepdims=True)
        scaled = centred / np.sqrt((centred**2).mean(axis=-1, keepdims=True) + 1e-12)
        return scaled * weights[f"{name}.weight"] + weights[f"{name}.bias"]

    erf = np.vectorize(math.erf)
    count, head_size = len(ids), HIDDEN // HEADS
    x = weights["token_embd.weight"][ids] + weights["position_embd.weight"][:count] + weights["token_types.weight"][0]
    x = layer_norm(x, "token_embd_norm")
    for n in range(LAYERS):
        block = f"blk.{n}"
        q, k, v = (
            linear(x, f"{block}.attn_{part}").reshape(count, HEADS, head_size).transpose(1, 0, 2) for part in "qkv"
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(head_size)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        x = layer_norm(
            x + linear(attended.transpose(1, 0, 2).reshape(count, HIDDEN), f"{block}.attn_output"),
            f"{block}.attn_output_norm",
        )
        hidden = linear(x, f"{block}.ffn_up")
        hidden = 0.5 * hidden * (1 + erf(hidden / math.sqrt(2)))
        x = layer_norm(x + linear(hidden, f"{block}.ffn_down"), f"{block}.layer_output_norm")
    return x.mean(axis=0)
