"""Build a model from a create request: layers, config, manifest (spec A.5).

``create_model`` yields progress events (``{"status": ...}``) and raises
domain errors (``pollama.errors``) for bad input. Layers are reused by digest; new text layers are
written as blobs; the manifest is written last, atomically, under the store
lock. On failure, blobs written for this request that nothing uses are removed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from pollama.api.native import CreateRequest
from pollama.errors import InvalidRequest, NotFound
from pollama.gocompat.human import human_number
from pollama.model.adapter import check_adapters
from pollama.model.checkpoint import (
    check_adapter_checkpoint,
    check_checkpoint,
    convert_adapter,
    convert_checkpoint,
    is_checkpoint,
)
from pollama.model.options import DEPRECATED_PARAMETERS, OPTIONS, OptionError, check_sampling, coerce_option
from pollama.model.projector import projector_mismatch
from pollama.model.quantize import SOURCE_TYPES, quantize, quantize_type
from pollama.store import InvalidDigest, Layer, Manifest, MediaType, ModelConfig, Store, gc
from pollama.store.files import TEMP_PREFIX
from pollama.store.gguf import GGUFFile, is_gguf
from pollama.store.layers import CONFIG_MEDIA_TYPE, messages_blob, params_blob
from pollama.store.models import read_gguf_header
from pollama.store.names import ModelName, parse_model_ref
from pollama.templates.gotemplate import TemplateSyntaxError
from pollama.templates.prompt import parse_template

__all__ = ["CreateTarget", "create_model", "named_blobs", "validate_create_request"]

QUANTIZED_SOURCE = "quantization is only supported for F16, BF16 and F32 models"
# Ollama's progress lines for a step that makes a layer (quantizing, converting) carry this digest.
PROGRESS_DIGEST = "0000000000000000000"
_REPLACED_TEXT_LAYERS = (MediaType.TEMPLATE, MediaType.PROMPT)
_INFO_STRINGS = {
    "model_family": "model_family",
    "base_name": "base_name",
    "quantization_level": "file_type",
    "parameter_size": "model_type",
}
_INFO_INTS = {"context_length": "context_length", "embedding_length": "embedding_length"}


def _valid_relative_path(path: str) -> bool:
    """Go's ``fs.ValidPath``: slash-separated, no empty, ``.`` or ``..`` elements, no leading slash."""
    if path == ".":
        return True
    return all(part not in ("", ".", "..") for part in path.split("/")) and "\\" not in path


@dataclass(frozen=True)
class CreateTarget:
    """A create request that passed validation: the canonical name and the typed parameters."""

    name: ModelName
    parameters: dict[str, Any]


def _named_files(request: CreateRequest) -> Iterator[tuple[str, str]]:
    for files in (request.files, request.draft_files, request.adapters):
        yield from (files or {}).items()


def named_blobs(request: CreateRequest) -> list[str]:
    """The digests of the uploaded blobs a create request names: files, draft files, adapters."""
    return [digest for _path, digest in _named_files(request)]


def validate_create_request(request: CreateRequest, store: Store) -> CreateTarget:
    """The checks made before the first progress line, so that bad input gets its own status code."""
    for path, digest in _named_files(request):
        if not _valid_relative_path(path):
            raise InvalidRequest("file path must be relative")
        try:
            present = store.blobs.exists(digest)
        except InvalidDigest:
            raise InvalidRequest("invalid digest format") from None
        if not present:
            raise InvalidRequest(f'blob "{digest}" not found')
    if request.adapters and is_checkpoint(request.adapters):
        check_adapter_checkpoint(request.adapters)
    elif len(request.adapters or {}) > 1:
        raise InvalidRequest("only one adapter is currently supported")
    if request.draft_quantize and not request.draft_files:
        raise InvalidRequest("--draft-quantize requires a DRAFT model")
    if request.draft_quantize:
        quantize_type(request.draft_quantize)
        _check_quantizable(request.draft_files or {}, store)
    if request.files and is_checkpoint(request.files):
        check_checkpoint(request.files, store.blobs.path)
    if wanted := request.quantize or request.quantization:
        quantize_type(wanted)
        _check_quantizable(request.files or {}, store)
    if request.remote_host:
        raise InvalidRequest("remote models are not supported by this server")
    name = ModelName.parse(request.model or request.name)
    if not name.is_valid():
        raise InvalidRequest("invalid model name")
    if request.template:
        try:
            parse_template(request.template)
        except TemplateSyntaxError as error:
            raise InvalidRequest(f"template error: {error}") from None
    return CreateTarget(store.manifests.resolve(name), _typed_parameters(request.parameters or {}))


@dataclass
class _Build:
    """The manifest being assembled."""

    store: Store
    layers: list[Layer] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # blobs this request created

    def reuse(self, digest: str, media_type: str, source: str, name: str = "") -> Layer:
        if not self.store.blobs.exists(digest):
            raise InvalidRequest(f'blob "{digest}" not found')
        self.store.blobs.touch(digest)
        layer = Layer(media_type, digest, self.store.blobs.size(digest), source=source, name=name)
        self.layers.append(layer)
        self.statuses.append(f"using existing layer {digest}")
        return layer

    def write(self, data: bytes, media_type: str) -> Layer:
        digest, created = self.store.blobs.write_bytes(data)
        if created:
            self.written.append(digest)
        self.statuses.append(f"{'creating new' if created else 'using existing'} layer {digest}")
        layer = Layer(media_type, digest, len(data))
        self.layers.append(layer)
        return layer

    def remove(self, *media_types: str) -> None:
        self.layers = [layer for layer in self.layers if layer.media_type not in media_types]

    def existing(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]


async def create_model(
    request: CreateRequest, target: CreateTarget, store: Store, *, prune: bool
) -> AsyncIterator[dict[str, Any]]:
    build = _Build(store)
    config = ModelConfig(renderer=request.renderer, parser=request.parser, requires=request.requires)
    try:
        async for event in _collect_layers(request, build, config):
            yield event
        await run_in_threadpool(_check_projectors, build)
        await run_in_threadpool(check_adapters, build.store, build.layers)
        if wanted := request.quantize or request.quantization:
            async for event in _quantized(build, quantize_type(wanted)):
                yield event
        if request.draft_quantize:
            async for event in _quantized(build, quantize_type(request.draft_quantize), MediaType.DRAFT):
                yield event
        _apply_info(request.info, config)
        await run_in_threadpool(_apply_gguf_metadata, build, config)
        await run_in_threadpool(_apply_text_layers, request, target.parameters, build)
        config_layer = await run_in_threadpool(_write_config, build, config)
        for status in build.statuses:
            yield {"status": status}
        yield {"status": "writing manifest"}
        async with store.lock:
            await run_in_threadpool(_commit, build, config_layer, target.name, prune)
        yield {"status": "success"}
    except BaseException:
        gc.remove_unused(store, build.written)
        raise


async def _collect_layers(request: CreateRequest, build: _Build, config: ModelConfig) -> AsyncIterator[dict[str, Any]]:
    if request.from_:
        await run_in_threadpool(_layers_from_model, request.from_, build, config)
    elif request.files is not None:
        kind = await run_in_threadpool(_detect_type, request.files, build.store)
        if kind == "safetensors":
            async for event in _converted(build, request.files, _short_name(request)):
                yield event
        elif kind == "gguf":
            for path in sorted(request.files):
                yield {"status": "parsing GGUF"}
                await run_in_threadpool(_add_gguf_layer, build, request.files[path], path, None)
        else:
            raise InvalidRequest("unknown type")
    else:
        raise InvalidRequest("neither 'from' or 'files' was specified")

    if request.adapters and is_checkpoint(request.adapters):
        async for event in _converted_adapter(build, request.adapters):
            yield event
    elif request.adapters:
        for path, digest in request.adapters.items():
            yield {"status": "parsing GGUF"}
            await run_in_threadpool(_add_gguf_layer, build, digest, path, MediaType.ADAPTER)
    draft_files = request.draft_files or {}
    for path in sorted(draft_files):
        yield {"status": "parsing GGUF"}
        await run_in_threadpool(_add_gguf_layer, build, draft_files[path], path, MediaType.DRAFT)


def _layers_from_model(reference: str, build: _Build, config: ModelConfig) -> None:
    try:
        source = build.store.manifests.resolve(parse_model_ref(reference))
    except ValueError:
        raise InvalidRequest("invalid model name") from None
    try:
        stored = build.store.manifests.read(source)
    except FileNotFoundError:
        raise NotFound(f"model '{reference}' not found") from None
    short = source.display_shortest()
    for layer in stored.manifest.layers:
        build.reuse(layer.digest, layer.media_type, short, layer.name)
    if stored.manifest.config.digest and build.store.blobs.exists(stored.manifest.config.digest):
        base = ModelConfig.parse(build.store.blobs.read_bytes(stored.manifest.config.digest))
        config.renderer = config.renderer or base.renderer
        config.parser = config.parser or base.parser
        config.requires = config.requires or base.requires
        config.model_format = config.model_format or base.model_format
        config.capabilities = config.capabilities or base.capabilities


def _detect_type(files: dict[str, str], store: Store) -> str:
    if is_checkpoint(files):
        return "safetensors"
    for path, digest in files.items():
        if path.endswith(".gguf") or is_gguf(store.blobs.path(digest)):
            return "gguf"
    return ""


def _gguf_media_type(gguf: GGUFFile) -> str:
    if gguf.kind == "adapter":
        return MediaType.ADAPTER
    if gguf.kind in ("projector", "mmproj"):
        return MediaType.PROJECTOR
    if not gguf.get("block_count") and gguf.get("vision.block_count"):
        return MediaType.PROJECTOR
    if (
        gguf.architecture == "clip"
        and not gguf.get("block_count")
        and (gguf.get("has_vision_encoder") or gguf.get("has_audio_encoder"))
    ):
        return MediaType.PROJECTOR
    return MediaType.MODEL


def _add_gguf_layer(build: _Build, digest: str, source: str, media_type: str | None) -> None:
    path = build.store.blobs.path(digest)  # checked by validate_create_request
    if not is_gguf(path):
        raise InvalidRequest("supplied file was not in GGUF format")
    gguf = read_gguf_header(path)
    if gguf is None:
        raise InvalidRequest("invalid GGUF file")
    build.reuse(digest, media_type or _gguf_media_type(gguf), source)


def _check_quantizable(files: dict[str, str], store: Store) -> None:
    """Refuse quantized weights before the first progress line, so the refusal keeps its 400."""
    for digest in files.values():
        gguf = read_gguf_header(store.blobs.path(digest)) if is_gguf(store.blobs.path(digest)) else None
        if gguf is not None and _gguf_media_type(gguf) == MediaType.MODEL and gguf.file_type not in SOURCE_TYPES:
            raise InvalidRequest(QUANTIZED_SOURCE)


async def _quantized(build: _Build, wanted: str, media_type: str = MediaType.MODEL) -> AsyncIterator[dict[str, Any]]:
    """Replace the model (or draft) layer by its weights quantized to ``wanted``, with Ollama's progress lines."""
    models = build.existing(media_type)
    if not models:
        raise InvalidRequest("quantization needs model weights")
    layer = models[0]
    source = build.store.blobs.path(layer.digest)
    gguf = await run_in_threadpool(read_gguf_header, source)
    if gguf is None or gguf.file_type not in SOURCE_TYPES:
        raise InvalidRequest(QUANTIZED_SOURCE)  # a model named by "from"
    kind = "draft model" if media_type == MediaType.DRAFT else "model"
    status = f"quantizing {gguf.file_type} {kind} to {wanted}"
    yield {"status": status}
    async with _scratch_file(build.store) as output:
        async for done, total in quantize(source, output, wanted, len(os.sched_getaffinity(0))):
            yield {"status": status, "digest": PROGRESS_DIGEST, "total": total, "completed": done}
        quantized = await run_in_threadpool(_stored, build, output, media_type)
    build.layers[build.layers.index(layer)] = replace(quantized, source=layer.source, name=layer.name)


async def _converted(build: _Build, files: dict[str, str], name: str) -> AsyncIterator[dict[str, Any]]:
    """The model layer converted from the safetensors checkpoint that ``files`` make up."""
    status = "converting model"
    yield {"status": status}
    async with _scratch_file(build.store) as output:
        async for done, total in convert_checkpoint(files, build.store.blobs.path, output, name):
            yield {"status": status, "digest": PROGRESS_DIGEST, "total": total, "completed": done}
        build.layers.append(await run_in_threadpool(_stored, build, output, MediaType.MODEL))


def _short_name(request: CreateRequest) -> str:
    """The converted model's ``general.name``: the name being created, without namespace or tag."""
    return ModelName.parse(request.model or request.name).model


async def _converted_adapter(build: _Build, files: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    """The adapter layer converted from a PEFT LoRA checkpoint, for the model layer collected before it."""
    models = build.existing(MediaType.MODEL)
    if not models:
        raise InvalidRequest("an adapter needs a model to apply to, and no model weights were given")
    status = "converting adapter"
    yield {"status": status}
    base = build.store.blobs.path(models[0].digest)
    async with _scratch_file(build.store) as output:
        async for done, total in convert_adapter(files, build.store.blobs.path, base, output):
            yield {"status": status, "digest": PROGRESS_DIGEST, "total": total, "completed": done}
        build.layers.append(await run_in_threadpool(_stored, build, output, MediaType.ADAPTER))


@contextlib.asynccontextmanager
async def _scratch_file(store: Store) -> AsyncIterator[Path]:
    """A path beside the blobs for a step's output: removed after, and by gc if the server dies first."""
    store.blobs.ensure()
    handle, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=store.blobs.root)
    os.close(handle)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _stored(build: _Build, path: Path, media_type: str) -> Layer:
    """A step's output stored as a blob, as the layer it becomes."""
    digest, created = _store_file(build.store, path)
    if created:
        build.written.append(digest)
    build.statuses.append(f"creating new layer {digest}")
    return Layer(media_type, digest, build.store.blobs.size(digest))


def _store_file(store: Store, path: Path) -> tuple[str, bool]:
    """Store a file as a blob; its digest and whether the blob is new."""
    with store.blobs.writer() as writer, path.open("rb") as source:
        while block := source.read(1 << 20):
            writer.write(block)
        existed = store.blobs.exists(writer.digest)
        return writer.commit(), not existed


def _check_projectors(build: _Build) -> None:
    """A projector must fit the model it is created with (llama.cpp would refuse to load the pair)."""
    models, projectors = build.existing(MediaType.MODEL), build.existing(MediaType.PROJECTOR)
    if not (models and projectors):
        return
    model = read_gguf_header(build.store.blobs.path(models[0].digest))
    for layer in projectors:
        projector = read_gguf_header(build.store.blobs.path(layer.digest))
        if model is None or projector is None:
            raise InvalidRequest("invalid GGUF file")
        if problem := projector_mismatch(model, projector):
            raise InvalidRequest(problem)


def _apply_info(info: dict[str, Any] | None, config: ModelConfig) -> None:
    if not info:
        return
    capabilities = info.get("capabilities")
    if isinstance(capabilities, list):
        config.capabilities = [*config.capabilities, *(c for c in capabilities if isinstance(c, str))]
    for key, attribute in _INFO_STRINGS.items():
        if key in info:
            if not isinstance(info[key], str):
                raise InvalidRequest(f'info field "{key}" must be a string')
            setattr(config, attribute, info[key])
    if config.model_family:
        config.model_families = [config.model_family]
    for key, attribute in _INFO_INTS.items():
        if key in info:
            value = info[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequest(f'info field "{key}" must be a number')
            if value < 0 or not math.isfinite(value) or int(value) != value:
                raise InvalidRequest(f'info field "{key}" must be a non-negative integer')
            setattr(config, attribute, int(value))


def _apply_gguf_metadata(build: _Build, config: ModelConfig) -> None:
    for layer in build.layers:
        if layer.media_type not in (MediaType.MODEL, MediaType.DRAFT):
            continue
        gguf = read_gguf_header(build.store.blobs.path(layer.digest))
        if gguf is None:
            raise InvalidRequest("invalid GGUF file")
        if layer.media_type == MediaType.DRAFT:
            config.draft = {"model_format": "gguf", "architecture": gguf.architecture}
            continue
        config.model_format = config.model_format or "gguf"
        config.model_family = config.model_family or gguf.architecture
        config.model_type = config.model_type or human_number(gguf.parameter_count)
        config.file_type = config.file_type or gguf.file_type
        config.model_families = [*(config.model_families or []), gguf.architecture]


def _typed_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for key, value in parameters.items():
        if key in DEPRECATED_PARAMETERS:
            continue
        if key not in OPTIONS:
            raise InvalidRequest(f"unknown parameter '{key}'")
        try:
            typed[key] = coerce_option(key, value)
        except OptionError as err:
            raise InvalidRequest(str(err)) from None
    try:
        check_sampling(typed)
    except OptionError as err:
        raise InvalidRequest(str(err)) from None
    return typed


def _apply_text_layers(request: CreateRequest, requested_parameters: dict[str, Any], build: _Build) -> None:
    if request.template:
        build.remove(*_REPLACED_TEXT_LAYERS)
        build.write(request.template.encode(), MediaType.TEMPLATE)
    if request.system:
        build.remove(MediaType.SYSTEM)
        build.write(request.system.encode(), MediaType.SYSTEM)
    licenses = [request.license] if isinstance(request.license, str) else request.license or []
    for text in licenses:
        if text:
            build.write(text.encode(), MediaType.LICENSE)

    parameters = dict(requested_parameters)
    for layer in build.existing(MediaType.PARAMS):
        inherited = _json_object(build.store.blobs.read_bytes(layer.digest))
        for key, value in inherited.items():
            parameters.setdefault(key, value)
    if parameters:
        build.remove(MediaType.PARAMS)
        build.write(params_blob(parameters), MediaType.PARAMS)

    if request.messages:
        build.remove(MediaType.MESSAGES)
        messages = [message.dump() for message in request.messages]
        build.write(messages_blob(messages), MediaType.MESSAGES)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _write_config(build: _Build, config: ModelConfig) -> Layer:
    digest, created = build.store.blobs.write_bytes(config.encode())
    if created:
        build.written.append(digest)
    return Layer(CONFIG_MEDIA_TYPE, digest, build.store.blobs.size(digest))


def _commit(build: _Build, config_layer: Layer, name: ModelName, prune: bool) -> None:
    for layer in (*build.layers, config_layer):
        if not build.store.blobs.exists(layer.digest):
            raise InvalidRequest(f'blob "{layer.digest}" not found')
    previous = build.store.manifests.layer_digests(name)
    build.store.manifests.write(name, Manifest.build(config_layer, build.layers))
    build.written.clear()  # referenced now
    if prune and previous:
        gc.remove_unused(build.store, previous)
