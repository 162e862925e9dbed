"""The store's JSON formats: manifests, their layers and media types, and model configs.

These match Ollama byte for byte in structure (field names, order, omitted
empties), so a store written by either program loads in the other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from pollama.gocompat import gojson

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "CorruptManifest",
    "Layer",
    "Manifest",
    "MediaType",
    "ModelConfig",
    "messages_blob",
    "params_blob",
]

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"


class MediaType:
    MODEL = "application/vnd.ollama.image.model"
    PROJECTOR = "application/vnd.ollama.image.projector"
    ADAPTER = "application/vnd.ollama.image.adapter"
    DRAFT = "application/vnd.ollama.image.draft"
    TEMPLATE = "application/vnd.ollama.image.template"
    PROMPT = "application/vnd.ollama.image.prompt"  # legacy name of TEMPLATE
    SYSTEM = "application/vnd.ollama.image.system"
    PARAMS = "application/vnd.ollama.image.params"
    MESSAGES = "application/vnd.ollama.image.messages"
    LICENSE = "application/vnd.ollama.image.license"
    TENSOR = "application/vnd.ollama.image.tensor"
    JSON = "application/vnd.ollama.image.json"
    EMBED = "application/vnd.ollama.image.embed"  # deprecated, ignored


class CorruptManifest(ValueError):
    pass


def _typed(value: Any, kind: type, field_name: str, default: Any) -> Any:
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CorruptManifest(f"{field_name}: expected a JSON {kind.__name__}")
    return value


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str
    size: int
    source: str = ""  # "from": the model this layer was taken from
    name: str = ""  # tensor or file name, for safetensors models

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.source:
            out["from"] = self.source
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, data: Any) -> Layer:
        """Decode a layer with Go's strictness: wrong types are errors, ``null`` means empty."""
        data = _typed(data, dict, "layer", {})
        return cls(
            media_type=_typed(data.get("mediaType"), str, "mediaType", ""),
            digest=_typed(data.get("digest"), str, "digest", ""),
            size=_typed(data.get("size"), int, "size", 0),
            source=_typed(data.get("from"), str, "from", ""),
            name=_typed(data.get("name"), str, "name", ""),
        )


@dataclass(frozen=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]
    schema_version: int = 2
    media_type: str = MANIFEST_MEDIA_TYPE
    raw: bytes = b""  # the bytes on disk; the model's digest is their sha256

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def size(self) -> int:
        return self.config.size + sum(layer.size for layer in self.layers)

    def all_layers(self) -> tuple[Layer, ...]:
        return (*self.layers, self.config) if self.config.digest else self.layers

    def layers_of(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]

    @classmethod
    def build(cls, config: Layer, layers: list[Layer]) -> Manifest:
        body = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
        return cls(config=config, layers=tuple(layers), raw=gojson.dumps(body, newline=True))

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise CorruptManifest(str(err)) from None
        data = _typed(data, dict, "manifest", {})
        return cls(
            config=Layer.from_json(data.get("config")),
            layers=tuple(Layer.from_json(layer) for layer in _typed(data.get("layers"), list, "layers", [])),
            schema_version=_typed(data.get("schemaVersion"), int, "schemaVersion", 0),
            media_type=_typed(data.get("mediaType"), str, "mediaType", ""),
            raw=raw,
        )


@dataclass
class ModelConfig:
    """The config blob (Ollama's ``ConfigV2``)."""

    model_format: str = ""
    model_family: str = ""
    model_families: list[str] | None = None
    model_type: str = ""  # shown as parameter_size
    file_type: str = ""  # shown as quantization_level
    renderer: str = ""
    parser: str = ""
    requires: str = ""
    remote_host: str = ""
    remote_model: str = ""
    capabilities: list[str] = field(default_factory=list)
    context_length: int = 0
    embedding_length: int = 0
    base_name: str = ""
    draft: dict[str, str] | None = None
    architecture: str = "amd64"
    os: str = "linux"

    _ALWAYS = (
        "model_format",
        "model_family",
        "model_families",
        "model_type",
        "file_type",
        "architecture",
        "os",
    )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in self._ALWAYS or value:
                out[spec.name] = value
        return out

    def encode(self) -> bytes:
        return gojson.dumps(self.to_json(), newline=True)

    @classmethod
    def parse(cls, raw: bytes) -> ModelConfig:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise CorruptManifest(f"config: {err}") from None
        if not isinstance(data, dict):
            raise CorruptManifest("config is not an object")
        known = {spec.name for spec in fields(cls)}
        values = {key: value for key, value in data.items() if key in known and value is not None}
        config = cls(**values)
        config.capabilities = [str(c) for c in config.capabilities or [] if isinstance(c, str)]
        return config


def params_blob(parameters: dict[str, Any]) -> bytes:
    """A params layer: the options as a JSON object, keys sorted as Go sorts map keys."""
    return gojson.dumps(dict(sorted(parameters.items())), newline=True)


def messages_blob(messages: list[dict[str, Any]]) -> bytes:
    """A messages layer: the MESSAGE history as a JSON array."""
    return gojson.dumps(messages, newline=True)
