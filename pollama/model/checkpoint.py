"""Importing a Hugging Face checkpoint on create: uploaded safetensors files converted to a GGUF blob.

The uploaded files are blobs named by digest; the converter wants a folder. A scratch folder of symbolic
links gives it one without copying a byte, and the conversion runs as ``python -m pollama.convert`` (see
pollama.model.tool). What can be checked from config.json alone is checked before the first progress line,
so an unsupported architecture keeps its 400.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

from pollama.convert.architectures import ConfigError, architecture_for
from pollama.errors import InvalidRequest
from pollama.model.tool import run_step

__all__ = ["check_adapter_checkpoint", "check_checkpoint", "convert_adapter", "convert_checkpoint", "is_checkpoint"]

_PROGRESS = re.compile(rb"^converting (?P<done>\d+)/(?P<total>\d+)$")
BlobPath = Callable[[str], Path]


def is_checkpoint(files: Mapping[str, str]) -> bool:
    return any(path.endswith(".safetensors") for path in files)


def check_checkpoint(files: Mapping[str, str], blob_path: BlobPath) -> None:
    """The checks that need no conversion: a config.json naming an architecture we convert."""
    configs = [path for path in files if path == "config.json"]
    if not configs:
        raise InvalidRequest("the safetensors model has no config.json")
    try:
        config = json.loads(blob_path(files[configs[0]]).read_bytes())
        if not isinstance(config, dict):
            raise ConfigError("config.json is not a JSON object")
        architecture_for(config)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest("config.json is not valid JSON") from None
    except ConfigError as error:
        raise InvalidRequest(str(error)) from None


def check_adapter_checkpoint(files: Mapping[str, str]) -> None:
    if "adapter_config.json" not in files:
        raise InvalidRequest("the safetensors adapter has no adapter_config.json")


async def convert_checkpoint(
    files: Mapping[str, str], blob_path: BlobPath, target: Path, name: str
) -> AsyncIterator[tuple[int, int]]:
    """Write the GGUF of the checkpoint ``files`` make up at ``target``, yielding (tensors done, tensors)."""
    async for progress in _converted(files, blob_path, [str(target), "--name", name]):
        yield progress


async def convert_adapter(
    files: Mapping[str, str], blob_path: BlobPath, base_model: Path, target: Path
) -> AsyncIterator[tuple[int, int]]:
    """Write the GGUF LoRA of the PEFT adapter ``files`` make up, for ``base_model``, at ``target``."""
    async for progress in _converted(files, blob_path, [str(target), "--adapter-for", str(base_model)]):
        yield progress


async def _converted(files: Mapping[str, str], blob_path: BlobPath, args: list[str]) -> AsyncIterator[tuple[int, int]]:
    with tempfile.TemporaryDirectory(prefix="pollama-checkpoint-") as folder:
        for relative, digest in files.items():
            link = Path(folder, relative)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(blob_path(digest))
        async for progress in run_step("pollama.convert", [folder, *args], _PROGRESS, "conversion"):
            yield progress
