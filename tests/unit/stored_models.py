"""Stored models built in memory, for unit tests of what follows from a model's layers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pollama.store.layers import CONFIG_MEDIA_TYPE, Layer, Manifest, ModelConfig
from pollama.store.models import StoredModel
from pollama.store.names import ModelName


def bare_model(name: str, model_path: Path, **fields: Any) -> StoredModel:
    """A stored model that no store holds: its weights and ``fields`` (adapters, draft, parameters) as given."""
    config = Layer(CONFIG_MEDIA_TYPE, "sha256:" + "0" * 64, 2)
    return StoredModel(
        name=ModelName.parse_valid(name),
        manifest=Manifest.build(config, []),
        modified_ns=0,
        config=ModelConfig(model_format="gguf"),
        model_path=model_path,
        **fields,
    )
