"""What a request asks of a model: the merged options and the runner they need.

Options layer as in Ollama: defaults, then the model's PARAMETERs, then the request's
``options``. The load-time ones become a ``RunnerConfig`` (a runner with another config is
another runner); the rest travel with each request to the runner's sampler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pollama.config import MAX_DRAFT_TOKENS, Settings
from pollama.errors import Failed, InvalidRequest
from pollama.model.adapter import stored_adapter_mismatch
from pollama.model.capabilities import capabilities_of
from pollama.model.options import OPTIONS, UNSUPPORTED_OPTIONS, OptionError, check_sampling, coerce_options
from pollama.model.projector import stored_projector_mismatch
from pollama.runtime.devices import physical_cores
from pollama.runtime.process import RunnerConfig
from pollama.store.models import StoredModel

__all__ = ["DEFAULT_OPTIONS", "Resolved", "resolve"]

log = logging.getLogger(__name__)

DEFAULT_DRAFT_NUM_PREDICT = 4  # Ollama's, for a model with a draft

DEFAULT_OPTIONS: dict[str, Any] = {
    "num_keep": 4,
    "seed": -1,
    "num_predict": -1,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_last_n": 64,
    "temperature": 0.8,
    "repeat_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
MIN_CONTEXT_LENGTH = 4
MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ: a context cannot hold more
MIN_VISION_CONTEXT_LENGTH = 2048  # an image alone takes hundreds of tokens
# Architectures whose llama.cpp memory cannot hold several sequences well (Ollama's list).
SINGLE_SEQUENCE_ARCHITECTURES = frozenset(
    {
        "mllama", "qwen3vl", "qwen3vlmoe", "qwen35", "qwen35moe", "qwen3next", "lfm2", "lfm2moe",
        "nemotron_h", "nemotron_h_moe", "nemotron_h_omni",
    }
)  # fmt: skip
_KV_CACHE_TYPES = ("f16", "q8_0", "q4_0")


@dataclass(frozen=True)
class Resolved:
    config: RunnerConfig
    options: dict[str, Any]  # every option, merged; what the runner's sampler reads


def resolve(
    settings: Settings, model: StoredModel, request_options: dict[str, Any] | None, *, default_num_ctx: int = 4096
) -> Resolved:
    """Merge options and size the runner; wrong option types are errors with Ollama's messages.

    ``default_num_ctx`` is the hardware tier (4096 without a big GPU), used when neither the request,
    the model nor ``OLLAMA_CONTEXT_LENGTH`` says otherwise.
    """
    try:
        requested, unknown = coerce_options(request_options or {})
    except OptionError as error:
        raise InvalidRequest(str(error)) from None  # Ollama answers 500: but the request is what is wrong
    for name in unknown:
        if name not in UNSUPPORTED_OPTIONS:
            log.warning("invalid option provided: %s", name)
    options = {**DEFAULT_OPTIONS, **model.parameters, **{k: v for k, v in requested.items() if v is not None}}
    try:
        check_sampling({**(request_options or {}), **options})
    except OptionError as error:
        raise InvalidRequest(str(error)) from None

    if model.model_path is None:
        raise Failed(f"{model.short_name} has no model weights to load")
    if model.projector_paths and (problem := stored_projector_mismatch(model.model_path, model.projector_paths[0])):
        raise InvalidRequest(problem)
    for adapter in model.adapter_paths:
        if problem := stored_adapter_mismatch(model.model_path, adapter, model.short_name):
            raise InvalidRequest(problem)
    gguf = model.gguf()
    trained = int(gguf.get("context_length", 0) or 0) if gguf else 0
    capabilities = capabilities_of(model)
    embedding = "embedding" in capabilities and "completion" not in capabilities
    num_ctx = int(options.get("num_ctx") or settings.context_length or default_num_ctx)
    if trained:
        num_ctx = min(num_ctx, trained)
    num_ctx = max(num_ctx, MIN_VISION_CONTEXT_LENGTH if "vision" in capabilities else MIN_CONTEXT_LENGTH)
    single = embedding or (gguf is not None and gguf.architecture in SINGLE_SEQUENCE_ARCHITECTURES)
    options["num_ctx"] = num_ctx
    num_thread = int(options.get("num_thread") or 0)
    if num_thread > settings.limits.max_threads:
        raise InvalidRequest(f'option "num_thread" must be at most {settings.limits.max_threads}')
    num_parallel = 1 if single else max(1, int(options.get("num_parallel") or settings.num_parallel))
    if num_parallel > MAX_SEQUENCES:
        raise InvalidRequest(f'option "num_parallel" must be at most {MAX_SEQUENCES}')
    # A batch beyond the whole context could never fill, yet the runner would allocate it.
    num_batch = min(int(options.get("num_batch") or (min(2048, num_ctx) if embedding else 512)), num_ctx * num_parallel)
    draft_tokens = 0 if embedding else _draft_tokens(settings, model, options)
    kv_cache_type = settings.kv_cache_type.lower() if settings.kv_cache_type.lower() in _KV_CACHE_TYPES else "f16"
    config = RunnerConfig(
        model_path=model.model_path,
        num_ctx=num_ctx,
        num_parallel=num_parallel,
        num_batch=max(1, num_batch),
        num_thread=num_thread if num_thread > 0 else physical_cores(),
        num_gpu=int(options.get("num_gpu", -1)),
        main_gpu=int(options.get("main_gpu", -1)),
        use_mmap=bool(options.get("use_mmap", True)),
        flash_attention=settings.flash_attention,
        kv_cache_type=kv_cache_type,
        embedding=embedding,
        projector_path=model.projector_paths[0] if model.projector_paths else None,
        adapter_paths=tuple(model.adapter_paths),
        rpc_servers=settings.rpc_servers,
        draft_tokens=draft_tokens,
        draft_model_path=model.draft_path if draft_tokens else None,
    )
    return Resolved(config=config, options={k: v for k, v in options.items() if not _load_time(k)})


def _draft_tokens(settings: Settings, model: StoredModel, options: dict[str, Any]) -> int:
    """Drafts a step: ``draft_num_predict`` (4 by default, as in Ollama) with a DRAFT model, else n-gram ones."""
    if model.draft_path is None:
        return settings.draft_tokens  # Ollama ignores draft_num_predict without a draft model
    count = int(options.get("draft_num_predict", DEFAULT_DRAFT_NUM_PREDICT))
    if count > MAX_DRAFT_TOKENS:
        raise InvalidRequest(f'option "draft_num_predict" must be at most {MAX_DRAFT_TOKENS}')
    return max(0, count)


def _load_time(name: str) -> bool:
    spec = OPTIONS.get(name)
    return spec is not None and spec.load_time and name != "num_ctx"
