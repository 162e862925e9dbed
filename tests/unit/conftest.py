"""Fixtures shared by unit tests of more than one module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pollama.store import Store
from pollama.store.layers import CONFIG_MEDIA_TYPE, Layer, Manifest, MediaType
from pollama.store.models import StoredModel, load_model
from pollama.store.names import ModelName
from tests.unit import bytetokens


@pytest.fixture
def models(tmp_path: Path, make_gguf: Callable[..., Path]) -> Callable[[], StoredModel]:
    """A new stored model, with its own weights, each call."""
    store = Store(tmp_path / "models")
    store.ensure()
    counter = iter(range(1000))

    def make() -> StoredModel:
        number = next(counter)
        data = make_gguf(kv={"general.name": f"model {number}"}).read_bytes()
        weights, _ = store.blobs.write_bytes(data)
        config = b'{"model_format":"gguf","model_family":"llama"}'
        config_digest, _ = store.blobs.write_bytes(config)
        name = ModelName.parse_valid(f"test-{number}")
        layers = [Layer(MediaType.MODEL, weights, len(data))]
        store.manifests.write(name, Manifest.build(Layer(CONFIG_MEDIA_TYPE, config_digest, len(config)), layers))
        return load_model(store, name)

    return make


@pytest.fixture(scope="session")
def byte_tokenizer() -> Any:
    """An llguidance tokenizer of one token per byte (tests/unit/bytetokens.py)."""
    return bytetokens.byte_tokenizer()
