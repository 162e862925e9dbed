"""A stored model resolved: its manifest, config, weights paths and text layers."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pollama.store.gguf import GGUFError, GGUFFile, read_gguf
from pollama.store.layers import CorruptManifest, Manifest, MediaType, ModelConfig
from pollama.store.names import ModelName

if TYPE_CHECKING:
    from pollama.store import Store

__all__ = ["StoredModel", "load_model", "read_gguf_header"]

log = logging.getLogger(__name__)

# Arrays longer than this are token tables; /api/show leaves them out unless verbose.
SUMMARY_ARRAY_LIMIT = 5


@lru_cache(maxsize=128)
def _cached_summary(path: str) -> GGUFFile | None:
    try:
        return read_gguf(Path(path), max_array_length=SUMMARY_ARRAY_LIMIT)
    except GGUFError as err:
        log.warning("couldn't read model file path=%s error=%s", path, err)
        return None


def read_gguf_header(path: Path, *, full: bool = False) -> GGUFFile | None:
    """GGUF metadata, or None if unreadable.

    Without ``full`` the long arrays (token tables) are left out and the result is cached: a
    blob's path names its content, so it never goes stale.
    """
    if not full:
        return _cached_summary(str(path))
    try:
        return read_gguf(path)
    except GGUFError as err:
        log.warning("couldn't read model file path=%s error=%s", path, err)
        return None


@dataclass
class StoredModel:
    name: ModelName
    manifest: Manifest
    modified_ns: int
    config: ModelConfig
    model_path: Path | None = None
    parent_model: str = ""
    projector_paths: list[Path] = field(default_factory=list)
    adapter_paths: list[Path] = field(default_factory=list)
    draft_path: Path | None = None
    template: str | None = None  # None: the model has no TEMPLATE layer
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)

    @property
    def short_name(self) -> str:
        return self.name.display_shortest()

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def gguf(self, *, full: bool = False) -> GGUFFile | None:
        """The weights' GGUF metadata (see ``read_gguf_header``); None for other formats."""
        if self.model_path is None or self.config.model_format not in ("", "gguf"):
            return None
        return read_gguf_header(self.model_path, full=full)

    def quantization_level(self) -> str:
        level = self.config.file_type
        if level in ("", "unknown") and (gguf := self.gguf()) is not None:
            return gguf.file_type
        return level

    def details(self, *, with_lengths: bool = False) -> dict[str, Any]:
        details: dict[str, Any] = {
            "parent_model": self.parent_model,
            "format": self.config.model_format,
            "family": self.config.model_family,
            "families": self.config.model_families,
            "parameter_size": self.config.model_type,
            "quantization_level": self.quantization_level(),
        }
        if with_lengths:
            gguf = self.gguf()
            context = self.config.context_length or (gguf.get("context_length") if gguf else 0)
            embedding = self.config.embedding_length or (gguf.get("embedding_length") if gguf else 0)
            if context:
                details["context_length"] = context
            if embedding:
                details["embedding_length"] = embedding
        return details


def load_model(store: Store, name: ModelName) -> StoredModel:
    """Resolve a model from its manifest. Raises ``FileNotFoundError`` or ``CorruptManifest``."""
    stored = store.manifests.read(name)
    manifest = stored.manifest
    config = ModelConfig()
    if manifest.config.digest:
        config = ModelConfig.parse(store.blobs.read_bytes(manifest.config.digest))
    model = StoredModel(name=name, manifest=manifest, modified_ns=stored.modified_ns, config=config)
    for layer in manifest.layers:
        path = store.blobs.path(layer.digest)
        media_type = layer.media_type
        if media_type == MediaType.MODEL:
            model.model_path = path
            model.parent_model = layer.source
        elif media_type == MediaType.PROJECTOR:
            model.projector_paths.append(path)
        elif media_type == MediaType.ADAPTER:
            model.adapter_paths.append(path)
        elif media_type == MediaType.DRAFT:
            model.draft_path = path
        elif media_type in (MediaType.TEMPLATE, MediaType.PROMPT):
            model.template = _text(path)
        elif media_type == MediaType.SYSTEM:
            model.system = _text(path)
        elif media_type == MediaType.LICENSE:
            model.licenses.append(_text(path))
        elif media_type == MediaType.PARAMS:
            model.parameters = _json(path, dict)
        elif media_type == MediaType.MESSAGES:
            model.messages = _json(path, list)
    return model


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _json(path: Path, kind: type) -> Any:
    try:
        value = json.loads(path.read_bytes())
    except ValueError as err:
        raise CorruptManifest(f"{path.name}: {err}") from None
    if not isinstance(value, kind):
        raise CorruptManifest(f"{path.name}: expected a JSON {kind.__name__}")
    return value
