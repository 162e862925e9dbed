"""A checkpoint's tokenizer as GGUF ``tokenizer.*`` metadata, as llama.cpp's converter writes it.

Three kinds, by what the folder holds: a SentencePiece ``tokenizer.model`` (llama.cpp's ``llama`` tokenizer:
Gemma, Llama 2, Mistral), a byte-level BPE ``tokenizer.json`` (``gpt2``: SmolLM, Qwen, Llama 3) and a WordPiece
``tokenizer.json`` (``bert``). Special token ids, merges, the add-BOS/EOS flags and the chat template come
from gguf's own ``SpecialVocab``, which reads tokenizer_config.json and config.json as the converter does.

llama.cpp's converter names a BPE pre-tokenizer by hashing how ``transformers`` tokenizes a probe text. We
read the pre-tokenizer's definition in tokenizer.json instead and know the common ones by their shape; an
unknown one is refused rather than guessed, since a wrong guess tokenizes text subtly wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, SpecialVocab, TokenType

from pollama.convert.checkpoint import read_json_object
from pollama.convert.sentencepiece import read_pieces

__all__ = ["TokenizerError", "add_vocab"]

_UNUSED_SCORE = -1000.0
_PADDING_SCORE = -10000.0
# Byte-level BPE pre-tokenizers by their definition in tokenizer.json (see _pre_tokenizer_shape).
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_PATTERN = _QWEN2_PATTERN.replace(r"|\p{N}|", r"|\p{N}{1,3}|")  # numbers in groups of up to three
PRE_TOKENIZERS: dict[tuple[str, ...], str] = {
    ("Digits:individual", "ByteLevel:regex"): "smollm",
    (f"Split:{_QWEN2_PATTERN}", "ByteLevel"): "qwen2",
    (f"Split:{_LLAMA3_PATTERN}", "ByteLevel"): "llama-bpe",
    ("ByteLevel:regex",): "gpt2",
}


class TokenizerError(ValueError):
    """The tokenizer files are missing, malformed or of a kind we cannot convert."""


def add_vocab(writer: GGUFWriter, folder: Path, config: Mapping[str, Any]) -> int:
    """Write the tokenizer of the checkpoint in ``folder``; returns how many tokens the vocabulary has."""
    if (folder / "tokenizer.model").is_file():
        return _add_sentencepiece(writer, folder, config)
    tokenizer = read_json_object(
        folder / "tokenizer.json", missing="the checkpoint has no tokenizer.json or tokenizer.model"
    )
    model = tokenizer.get("model") or {}
    if model.get("type") == "BPE" and not model.get("byte_fallback"):
        return _add_byte_level_bpe(writer, folder, config, tokenizer)
    if model.get("type") == "WordPiece":
        return _add_wordpiece(writer, folder, config, tokenizer)
    raise TokenizerError(f"unsupported tokenizer: a {model.get('type')} tokenizer.json without a tokenizer.model")


def _add_sentencepiece(writer: GGUFWriter, folder: Path, config: Mapping[str, Any]) -> int:
    pieces = read_pieces((folder / "tokenizer.model").read_bytes())
    size = int(config.get("vocab_size") or len(pieces))
    tokens = [f"[PAD{i}]" for i in range(size)]
    scores = [_PADDING_SCORE] * size
    types = [int(TokenType.UNUSED)] * size
    for token_id, piece in enumerate(pieces[:size]):
        tokens[token_id], scores[token_id], types[token_id] = piece.text, piece.score, piece.type

    added_file = folder / "added_tokens.json"
    if added_file.is_file():
        for text, token_id in read_json_object(added_file, missing="").items():
            if 0 <= token_id < size:
                tokens[token_id], scores[token_id], types[token_id] = text, _UNUSED_SCORE, int(TokenType.USER_DEFINED)
    for token_id, entry in _added_tokens_decoder(folder).items():
        if 0 <= token_id < size:
            text = entry["content"]
            if entry.get("special") or _looks_special(text):
                types[token_id] = int(TokenType.CONTROL)
            else:
                text = text.replace("\u2581", " ")  # llama.cpp expects user-defined tokens pre-normalized
                types[token_id] = int(TokenType.USER_DEFINED)
            tokens[token_id], scores[token_id] = text, _UNUSED_SCORE

    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    special = SpecialVocab(folder, n_vocab=len(tokens))
    special.add_to_gguf(writer, quiet=True)
    unknown = [token_id for token_id, piece in enumerate(pieces[:size]) if piece.type == TokenType.UNKNOWN]
    if "unk" not in special.special_token_ids and unknown:
        # SpecialVocab finds <unk> through tokenizer.json; without one, the model's own UNKNOWN piece says it.
        writer.add_unk_token_id(unknown[0])
    return len(tokens)


def _add_byte_level_bpe(
    writer: GGUFWriter, folder: Path, config: Mapping[str, Any], tokenizer: Mapping[str, Any]
) -> int:
    by_id = {token_id: text for text, token_id in tokenizer["model"]["vocab"].items()}
    added = {entry["id"]: entry for entry in tokenizer.get("added_tokens", [])}
    by_id.update((token_id, entry["content"]) for token_id, entry in added.items())
    size = int(config.get("vocab_size") or max(by_id) + 1)
    if max(by_id) >= size:
        raise TokenizerError(f"tokenizer.json has token ids up to {max(by_id)}, beyond vocab_size {size}")
    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(size):
        text = by_id.get(token_id)
        if text is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(TokenType.UNUSED)
        elif token_id in added and (added[token_id].get("special") or _looks_special(text)):
            tokens.append(text)
            types.append(TokenType.CONTROL)
        elif token_id in added:
            tokens.append(text.replace("\u2581", " "))
            types.append(TokenType.USER_DEFINED)
        else:
            tokens.append(text)
            types.append(TokenType.NORMAL)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    SpecialVocab(folder, load_merges=True).add_to_gguf(writer, quiet=True)
    return len(tokens)


def _pre_tokenizer_name(tokenizer: Mapping[str, Any]) -> str:
    shape = _pre_tokenizer_shape(tokenizer.get("pre_tokenizer"))
    if shape not in PRE_TOKENIZERS:
        raise TokenizerError(
            f"unsupported tokenizer: its pre-tokenizer ({', '.join(shape) or 'none'}) is not one pollama knows"
        )
    return PRE_TOKENIZERS[shape]


def _pre_tokenizer_shape(pre_tokenizer: Any) -> tuple[str, ...]:
    """What decides how text is split: each step's type and its pattern or splitting flag."""
    if not isinstance(pre_tokenizer, dict):
        return ()
    steps = pre_tokenizer.get("pretokenizers", []) if pre_tokenizer.get("type") == "Sequence" else [pre_tokenizer]
    shape = []
    for step in steps:
        kind = step.get("type", "?")
        if kind == "Split":
            pattern = step.get("pattern") or {}
            shape.append(f"Split:{pattern.get('Regex', pattern.get('String'))}")
        elif kind == "Digits":
            shape.append("Digits:individual" if step.get("individual_digits") else "Digits")
        elif kind == "ByteLevel":
            shape.append("ByteLevel:regex" if step.get("use_regex", True) else "ByteLevel")
        else:
            shape.append(kind)
    return tuple(shape)


def _add_wordpiece(writer: GGUFWriter, folder: Path, config: Mapping[str, Any], tokenizer: Mapping[str, Any]) -> int:
    """The WordPiece vocabulary in llama.cpp's form: word starts marked with U+2581 instead of "##" on the rest."""
    added = {entry["id"]: entry for entry in tokenizer.get("added_tokens", [])}
    by_id = {token_id: token for token, token_id in tokenizer["model"]["vocab"].items()}
    by_id.update((token_id, entry["content"]) for token_id, entry in added.items())
    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(int(config.get("vocab_size") or len(by_id))):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(TokenType.UNUSED)
        elif token_id in added and added[token_id].get("special"):
            tokens.append(token)  # control tokens are matched whole: no phantom space
            types.append(TokenType.CONTROL)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(TokenType.USER_DEFINED if token_id in added else TokenType.NORMAL)

    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    # The converter's hash of every bert-base-uncased WordPiece vocabulary; llama.cpp ignores it for WPM.
    writer.add_tokenizer_pre("jina-v2-en")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    SpecialVocab(folder, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)
    normalizer = tokenizer.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        if normalizer.get("lowercase") is not None:
            writer.add_bool("tokenizer.ggml.normalizer.lowercase", bool(normalizer["lowercase"]))
        if normalizer.get("strip_accents") is not None:
            writer.add_bool("tokenizer.ggml.normalizer.strip_accents", bool(normalizer["strip_accents"]))
    return len(tokens)


def _added_tokens_decoder(folder: Path) -> dict[int, dict[str, Any]]:
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return {}
    decoder = read_json_object(path, missing="").get("added_tokens_decoder") or {}
    return {int(token_id): entry for token_id, entry in decoder.items()}


def _looks_special(text: str) -> bool:
    """Added tokens some models forget to mark special, recognised as llama.cpp's converter does."""
    return (
        text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (text.startswith("<|") and text.endswith("|>"))
        or (text.startswith("<｜") and text.endswith("｜>"))
        or (text.startswith("<unused") and text.endswith(">"))
    )
