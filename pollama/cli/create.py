"""``pollama create``: turn a Modelfile into a create request, upload its files, follow progress.

This is the client half of creating a model, like Ollama's ``parser.CreateRequest``
and ``cmd.CreateHandler``: paths in the Modelfile are resolved against its
directory, local files are hashed and uploaded as blobs, and names that are not
paths become ``from``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pollama.cli.client import Client
from pollama.cli.progress import Progress
from pollama.model.modelfile import ModelfileError, ModelfileFields, parse_modelfile

__all__ = ["CreateError", "ModelfileRequest", "build_request", "run_create"]


class CreateError(Exception):
    pass


@dataclass
class ModelfileRequest:
    body: dict[str, Any]
    uploads: dict[str, Path] = field(default_factory=dict)  # digest -> local file
    warnings: list[str] = field(default_factory=list)


def expand_path(text: str, relative_to: Path) -> Path:
    """A Modelfile path: absolute, ``~``/``~user``-relative, or relative to the Modelfile."""
    if text.startswith("~"):
        return Path(os.path.expanduser(text)).absolute()
    path = Path(text)
    return path.absolute() if path.is_absolute() else (relative_to / path).absolute()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.resolve().open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


_FALLBACK_WEIGHTS = (
    "consolidated*.safetensors",
    "pytorch_model*.bin",
    "consolidated*.pth",
    "*.gguf",
    "*.bin",
)


def _first_glob(directory: Path, *patterns: str) -> list[Path]:
    for pattern in patterns:
        found = sorted(directory.glob(pattern))
        if found:
            return found
    return []


def files_for_model(directory: Path) -> list[Path]:
    """The files of a model directory that a create uploads (Ollama's ``filesForModel``).

    A PEFT adapter folder (``ADAPTER ./lora``) has ``adapter_model.safetensors`` for weights.
    """
    weights = sorted(directory.glob("model*.safetensors")) or sorted(directory.glob("adapter_model*.safetensors"))
    if weights:
        weights += sorted(directory.glob("*/model*.safetensors"))
    else:
        weights = _first_glob(directory, *_FALLBACK_WEIGHTS)
    if not weights:
        raise CreateError("no Modelfile or safetensors files found")
    extras = sorted({*directory.glob("*.json"), *directory.glob("**/*.json")})
    extras += sorted(directory.glob("chat_template.jinja"))
    extras += _first_glob(directory, "tokenizer.model", "**/tokenizer.model")
    files = []
    root = directory.resolve()
    for path in [*weights, *extras]:
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise CreateError(f"insecure path: {os.path.relpath(resolved, root)}")
        files.append(resolved)
    return list(dict.fromkeys(files))


def _digests(path: Path) -> dict[Path, str]:
    """Every file behind a Modelfile path, with its digest; ``FileNotFoundError`` if absent."""
    if path.is_dir():
        return {file: file_digest(file) for file in files_for_model(path)}
    if not path.exists():
        raise FileNotFoundError(path)
    return {path: file_digest(path)}


def _request_names(files: dict[Path, str]) -> dict[str, str]:
    """Name each file for the request: relative to their common directory, else by base name."""
    names: dict[str, str] = {}
    root = Path(os.path.commonpath([file.parent for file in files])) if len(files) > 1 else None
    for file, digest in files.items():
        name = file.name
        if root is not None and file.is_relative_to(root):
            name = file.relative_to(root).as_posix()
        names[name] = digest
    return names


def _looks_like_path(text: str) -> bool:
    # A model name never starts with these, so a missing file is reported as one, not as a bad name.
    return text.startswith(("./", "../", "/", "~", ".\\")) or text.endswith((".gguf", ".safetensors", ".bin"))


def build_request(model: str, fields: ModelfileFields, relative_to: Path) -> ModelfileRequest:
    request = ModelfileRequest(body={"model": model}, warnings=list(fields.warnings))
    files: dict[Path, str] = {}
    model_paths: list[Path] = []
    for source in fields.models:
        path = expand_path(source, relative_to)
        try:
            found = _digests(path)
        except FileNotFoundError:
            if _looks_like_path(source):
                raise CreateError(f"stat {path}: no such file or directory") from None
            request.body["from"] = source
            continue
        model_paths.append(path.resolve())
        files.update(found)
    adapters: dict[Path, str] = {}
    for source in fields.adapters:
        adapters = _existing(expand_path(source, relative_to))
    drafts: dict[Path, str] = {}
    for source in fields.drafts:
        path = expand_path(source, relative_to)
        if path.resolve() in model_paths:
            raise CreateError(f"DRAFT must not reference the same local path as FROM: {path}")
        drafts.update(_existing(path))

    for key, found in (("files", files), ("adapters", adapters), ("draft_files", drafts)):
        if found:
            request.body[key] = _request_names(found)
            request.uploads.update({digest: file for file, digest in found.items()})
    optional = {
        "template": fields.template,
        "system": fields.system,
        "renderer": fields.renderer,
        "parser": fields.parser,
        "requires": fields.requires,
        "license": fields.licenses or None,
        "parameters": fields.parameters or None,
        "messages": fields.messages or None,
    }
    request.body.update({key: value for key, value in optional.items() if value is not None})
    return request


def _existing(path: Path) -> dict[Path, str]:
    try:
        return _digests(path)
    except FileNotFoundError:
        raise CreateError(f"stat {path}: no such file or directory") from None


def read_modelfile(path: Path | None) -> tuple[ModelfileFields, Path]:
    """Parse the Modelfile (``FROM .`` when none is given and ``./Modelfile`` is absent)."""
    if path is None:
        default = Path("Modelfile")
        text: bytes = default.read_bytes() if default.is_file() else b"FROM .\n"
        directory = Path.cwd()
    else:
        if not path.is_file():
            raise CreateError("specified Modelfile wasn't found")
        text = path.read_bytes()
        directory = path.absolute().parent
    try:
        return parse_modelfile(text).fields(), directory
    except ModelfileError as err:
        raise CreateError(str(err)) from None


def run_create(
    client: Client,
    model: str,
    modelfile: Path | None,
    progress: Progress,
    *,
    quantize: str = "",
    draft_quantize: str = "",
) -> None:
    fields, directory = read_modelfile(modelfile)
    status = "gathering model components"
    spinner = progress.spin(status)
    request = build_request(model, fields, directory)
    if quantize:
        request.body["quantize"] = quantize
    if draft_quantize:
        request.body["draft_quantize"] = draft_quantize
    for warning in request.warnings:
        progress.console.print(warning)
    for digest, path in request.uploads.items():
        if client.blob_exists(digest):
            continue
        size = max(path.stat().st_size, 1)
        spinner = progress.spin(f"copying file {digest} 0%")

        def update(sent: int, spinner: Any = spinner, digest: str = digest, size: int = size) -> None:
            spinner.message = f"copying file {digest} {100 * sent // size}%"

        client.upload_blob(digest, path, update)
        spinner.message = f"copying file {digest} 100%"
    for event in client.create(request.body):
        if event.get("status") and event["status"] != status:
            status = event["status"]
            spinner = progress.spin(status)
        if event.get("total"):  # quantizing: tensors done of all
            spinner.message = f"{status} {100 * int(event.get('completed') or 0) // int(event['total'])}%"
