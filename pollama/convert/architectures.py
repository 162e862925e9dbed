"""What each supported Hugging Face architecture becomes in GGUF: its hyperparameters and tensor fix-ups.

Each entry mirrors the model class of llama.cpp's converter (``conversion/llama.py``, ``qwen.py``,
``gemma.py``, ``bert.py``): the llama.cpp architecture, the ``config.json`` fields written as metadata, the
tensors dropped, and the changes made to tensor data (Llama's rotary Q/K row order, Gemma's norm offset).
Tensor names are translated by gguf's own ``TensorNameMap``, the table llama.cpp's converter uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGUFWriter, RopeScalingType

__all__ = ["ARCHITECTURES", "Architecture", "ConfigError", "architecture_for"]

Config = Mapping[str, Any]


class ConfigError(ValueError):
    """config.json lacks a field the architecture needs, or names an architecture we cannot convert."""


@dataclass(frozen=True)
class Architecture:
    arch: MODEL_ARCH
    write_hparams: Callable[[GGUFWriter, Config], None]
    # Changes a tensor's data given its Hugging Face name; None when the data is written as read.
    fix_tensor: Callable[[str, np.ndarray, Config], np.ndarray] | None = None
    skipped: tuple[str, ...] = ()  # Hugging Face name prefixes (after normalisation) that are not converted
    name_prefix_dropped: str = ""  # a prefix some checkpoints of the architecture put on every tensor
    experts: bool = False  # per-expert tensors are stacked into one tensor per layer and kind
    # The embedding matrix keeps only the tokenizer's rows (Gemma 3 pads it past its vocabulary).
    trim_embeddings: bool = False

    @property
    def name(self) -> str:
        return MODEL_ARCH_NAMES[self.arch]


def architecture_for(config: Config) -> Architecture:
    """The architecture of a checkpoint's config.json; ConfigError naming it when it is not supported."""
    names = config.get("architectures") or []
    if not isinstance(names, list) or not names:
        raise ConfigError("config.json names no architecture")
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    raise ConfigError(f"unsupported architecture {names[0]!r}; supported: {', '.join(sorted(ARCHITECTURES))}")


def require(config: Config, *keys: str) -> Any:
    """The first of ``keys`` that config.json has (architectures name the same thing differently)."""
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    raise ConfigError(f"config.json has no {keys[0]}")


def _rope_parameters(config: Config) -> Mapping[str, Any]:
    """RoPE settings: transformers 5's ``rope_parameters`` or the older top-level fields."""
    parameters = config.get("rope_parameters") or {}
    if "full_attention" in parameters:
        parameters = parameters["full_attention"]
    scaling = config.get("rope_scaling") or {}
    merged = {**scaling, **parameters}
    if "rope_theta" not in merged and config.get("rope_theta") is not None:
        merged["rope_theta"] = config["rope_theta"]
    if "rope_type" not in merged and "type" in merged:
        merged["rope_type"] = merged["type"]
    return merged


def _common_hparams(writer: GGUFWriter, config: Config) -> None:
    """What llama.cpp's TextModel writes for every text model."""
    writer.add_block_count(require(config, "num_hidden_layers", "n_layer", "n_layers"))
    if (context := config.get("max_position_embeddings")) is not None:
        writer.add_context_length(context)
    writer.add_embedding_length(require(config, "hidden_size", "n_embd", "dim"))
    if (feed_forward := config.get("intermediate_size")) is not None:
        writer.add_feed_forward_length(feed_forward)
    writer.add_head_count(require(config, "num_attention_heads", "n_head", "n_heads"))
    if (heads_kv := config.get("num_key_value_heads")) is not None:
        writer.add_head_count_kv(heads_kv)
    rope = _rope_parameters(config)
    factor = rope.get("factor")
    if rope.get("rope_type") == "linear" and factor is not None:
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(factor)
    elif rope.get("rope_type") == "yarn" and factor is not None:
        writer.add_rope_scaling_type(RopeScalingType.YARN)
        writer.add_rope_scaling_factor(factor)
        writer.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    elif rope.get("rope_type") not in (None, "default"):
        raise ConfigError(f"unsupported rope scaling {rope['rope_type']!r}")
    if (theta := rope.get("rope_theta")) is not None:
        writer.add_rope_freq_base(theta)
    if (rms_eps := config.get("rms_norm_eps")) is not None:
        writer.add_layer_norm_rms_eps(rms_eps)
    if (experts := config.get("num_local_experts") or config.get("num_experts")) is not None:
        writer.add_expert_count(experts)
        writer.add_expert_used_count(require(config, "num_experts_per_tok"))
    if (head_dim := config.get("head_dim")) is not None:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def _llama_hparams(writer: GGUFWriter, config: Config) -> None:
    _common_hparams(writer, config)
    writer.add_vocab_size(require(config, "vocab_size"))
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    writer.add_rope_dimension_count(head_dim)


def _required_shape(writer: GGUFWriter, config: Config) -> None:
    """The sizes every model's config.json states, for the architectures that take them as they are."""
    writer.add_block_count(require(config, "num_hidden_layers"))
    writer.add_context_length(require(config, "max_position_embeddings"))
    writer.add_embedding_length(require(config, "hidden_size"))
    writer.add_feed_forward_length(require(config, "intermediate_size"))
    writer.add_head_count(require(config, "num_attention_heads"))


def _gemma2_hparams(writer: GGUFWriter, config: Config) -> None:
    _required_shape(writer, config)
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    writer.add_layer_norm_rms_eps(require(config, "rms_norm_eps"))
    writer.add_key_length(require(config, "head_dim"))
    writer.add_value_length(config["head_dim"])
    writer.add_attn_logit_softcapping(require(config, "attn_logit_softcapping"))
    writer.add_final_logit_softcapping(require(config, "final_logit_softcapping"))
    writer.add_sliding_window(require(config, "sliding_window"))


def _gemma3_hparams(writer: GGUFWriter, config: Config) -> None:
    # Gemma 3's config.json leaves out fields whose transformers defaults llama.cpp's converter fills in.
    writer.add_block_count(require(config, "num_hidden_layers"))
    writer.add_context_length(config.get("max_position_embeddings", 131072))
    writer.add_embedding_length(require(config, "hidden_size"))
    writer.add_feed_forward_length(require(config, "intermediate_size"))
    writer.add_head_count(config.get("num_attention_heads", 8))
    writer.add_head_count_kv(config.get("num_key_value_heads", 4))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_key_length(config.get("head_dim", 256))
    writer.add_value_length(config.get("head_dim", 256))
    writer.add_rope_freq_base(_rope_parameters(config).get("rope_theta", 1_000_000.0))
    if (softcap := config.get("final_logit_softcapping")) is not None:
        writer.add_final_logit_softcapping(softcap)
    if config.get("sliding_window_pattern") != 1:
        writer.add_sliding_window(require(config, "sliding_window"))


def _bert_hparams(writer: GGUFWriter, config: Config) -> None:
    _required_shape(writer, config)
    writer.add_layer_norm_eps(require(config, "layer_norm_eps"))
    writer.add_causal_attention(False)


def _permute_rotary(rows: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's Llama keeps each head's rotary halves apart; llama.cpp wants them interleaved."""
    return rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _llama_fix(name: str, data: np.ndarray, config: Config) -> np.ndarray:
    heads = config["num_attention_heads"]
    if name.endswith(("q_proj.weight", "q_proj.bias")):
        return _permute_rotary(data, heads)
    if name.endswith(("k_proj.weight", "k_proj.bias")):
        return _permute_rotary(data, config.get("num_key_value_heads") or heads)
    return data


def _gemma_fix(name: str, data: np.ndarray, config: Config) -> np.ndarray:
    # Gemma's RMSNorm scales by (1 + weight); llama.cpp's by weight.
    if name.endswith("norm.weight"):
        return data + np.float32(1.0)
    return data


_LLAMA = Architecture(MODEL_ARCH.LLAMA, _llama_hparams, _llama_fix)
ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": _LLAMA,
    "MistralForCausalLM": _LLAMA,
    "MixtralForCausalLM": Architecture(MODEL_ARCH.LLAMA, _llama_hparams, _llama_fix, experts=True),
    "Qwen2ForCausalLM": Architecture(MODEL_ARCH.QWEN2, _common_hparams),
    "Qwen3ForCausalLM": Architecture(MODEL_ARCH.QWEN3, _common_hparams),
    # llama.cpp ties Gemma's output to the embeddings; AutoAWQ checkpoints carry an lm_head it does not use.
    "Gemma2ForCausalLM": Architecture(MODEL_ARCH.GEMMA2, _gemma2_hparams, _gemma_fix, skipped=("lm_head.",)),
    "Gemma3ForCausalLM": Architecture(MODEL_ARCH.GEMMA3, _gemma3_hparams, _gemma_fix, trim_embeddings=True),
    # The embedding path uses neither BERT's pooler nor its masked-LM / next-sentence heads.
    "BertModel": Architecture(
        MODEL_ARCH.BERT,
        _bert_hparams,
        skipped=("embeddings.position_ids", "pooler.", "cls.predictions", "cls.seq_relationship"),
        name_prefix_dropped="bert.",
    ),
}
ARCHITECTURES["BertForMaskedLM"] = ARCHITECTURES["BertModel"]
