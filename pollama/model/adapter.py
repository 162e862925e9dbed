"""Whether a LoRA adapter (an ``adapter`` GGUF) belongs to a model: the metadata must say so.

llama.cpp loads an adapter only if its ``general.type`` is ``adapter``, its ``adapter.type`` is
``lora`` and its ``general.architecture`` is the model's (``llama_adapter_lora_init``); those are
checked here from the headers, so that create and the first request answer a misfit with a 400 that
names both, instead of a runner that fails to load. What only the tensors tell (a pair whose shapes do
not fit the model's matrices) llama.cpp finds at load, and the runner reports it as a 400 too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from pollama.errors import InvalidRequest
from pollama.store import Layer, MediaType, Store
from pollama.store.gguf import GGUFFile
from pollama.store.models import read_gguf_header

__all__ = ["adapter_mismatch", "check_adapters", "stored_adapter_mismatch"]


def adapter_mismatch(
    model: GGUFFile, adapter: GGUFFile, *, adapter_name: str = "the adapter", model_name: str = "the model"
) -> str | None:
    """What is wrong with applying ``adapter`` to ``model``, or None when llama.cpp would load it."""
    if adapter.kind != "adapter":
        kind = f"its general.type is {adapter.kind!r}" if adapter.kind else "it has no general.type"
        return f"{adapter_name} is not an adapter: {kind}, not 'adapter'"
    adapter_type = adapter.kv.get("adapter.type")
    if adapter_type != "lora":
        return f"{adapter_name} is not a LoRA adapter: its adapter.type is {adapter_type!r}, not 'lora'"
    if adapter.architecture != model.architecture:
        return (
            f"{adapter_name} does not match {model_name}: the adapter is for {adapter.architecture!r} models, "
            f"{model_name} is a {model.architecture!r} model"
        )
    return None


@functools.lru_cache(maxsize=64)
def stored_adapter_mismatch(model_path: Path, adapter_path: Path, model_name: str = "the model") -> str | None:
    """``adapter_mismatch`` of two blobs (their paths name their contents, so the answer keeps)."""
    model, adapter = read_gguf_header(model_path), read_gguf_header(adapter_path)
    if model is None or adapter is None:
        return f"the weights of {model_name} or its adapter {adapter_path.name} are not a readable GGUF file"
    return adapter_mismatch(model, adapter, adapter_name=f"the adapter {adapter_path.name}", model_name=model_name)


def check_adapters(store: Store, layers: Sequence[Layer]) -> None:
    """A create's adapters must fit its model: InvalidRequest (400) naming both if one does not."""
    adapters = [layer for layer in layers if layer.media_type == MediaType.ADAPTER]
    if not adapters:
        return
    models = [layer for layer in layers if layer.media_type == MediaType.MODEL]
    if not models:
        raise InvalidRequest("an adapter needs a model to apply to, and no model weights were given")
    model = read_gguf_header(store.blobs.path(models[0].digest))
    if model is None:
        raise InvalidRequest("invalid GGUF file")
    model_name = f"the model {models[0].source}" if models[0].source else "the model"
    for layer in adapters:
        adapter = read_gguf_header(store.blobs.path(layer.digest))
        if adapter is None:
            raise InvalidRequest("invalid GGUF file")
        adapter_name = f"the adapter {layer.source}" if layer.source else "the adapter"
        if problem := adapter_mismatch(model, adapter, adapter_name=adapter_name, model_name=model_name):
            raise InvalidRequest(problem)
