"""pollama.store.manifests: named manifests on disk.

Go references: manifest/manifest.go (WriteManifest, Manifests, ParseNamedManifest, Remove),
manifest/paths.go (PruneDirectory), server/routes.go getExistingName.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pollama.store.files import WriteFailed
from pollama.store.layers import CONFIG_MEDIA_TYPE, CorruptManifest, Layer, Manifest, MediaType
from pollama.store.manifests import ManifestStore, StoredManifest
from pollama.store.names import ModelName

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
DC = "sha256:" + "c" * 64


def make_manifest(*digests: str, config: str = DC) -> Manifest:
    return Manifest.build(Layer(CONFIG_MEDIA_TYPE, config, 10), [Layer(MediaType.MODEL, d, 100) for d in digests])


@pytest.fixture
def store(tmp_path: Path) -> ManifestStore:
    root = tmp_path / "models" / "manifests"
    root.mkdir(parents=True)
    return ManifestStore(root)


def name(text: str) -> ModelName:
    return ModelName.parse_valid(text)


def write_raw(store: ManifestStore, parts: tuple[str, ...], raw: bytes) -> Path:
    path = store.root.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- layout and writing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("llama3", ("registry.ollama.ai", "library", "llama3", "latest")),
        ("llama3.2:1b", ("registry.ollama.ai", "library", "llama3.2", "1b")),
        ("user/model:v1", ("registry.ollama.ai", "user", "model", "v1")),
        ("example.com:5000/ns/m:t", ("example.com:5000", "ns", "m", "t")),
        ("hf.co/bartowski/SmolLM2-GGUF:Q4_K_M", ("hf.co", "bartowski", "SmolLM2-GGUF", "Q4_K_M")),
    ],
)
def test_path_layout(store: ManifestStore, text: str, parts: tuple[str, ...]) -> None:
    assert store.path(name(text)) == store.root.joinpath(*parts)


def test_write_and_read(store: ManifestStore) -> None:
    manifest = make_manifest(D1)
    stored = store.write(name("llama3"), manifest)
    path = store.root / "registry.ollama.ai" / "library" / "llama3" / "latest"
    assert path.read_bytes() == manifest.raw
    assert isinstance(stored, StoredManifest)
    assert stored.name == name("llama3")
    assert stored.manifest == manifest
    assert stored.modified_ns == path.stat().st_mtime_ns
    # Ollama creates directories 0755 and files via os.Create (0644 less umask); we write 0644
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)

    read = store.read(name("llama3"))
    assert read.manifest.raw == manifest.raw
    assert read.manifest.digest == hashlib.sha256(manifest.raw).hexdigest()
    assert read.modified_ns == path.stat().st_mtime_ns


def test_write_leaves_no_temp_files(store: ManifestStore) -> None:
    store.write(name("a"), make_manifest(D1))
    store.write(name("a"), make_manifest(D2))  # overwrite
    assert all_files(store.root) == [os.path.join("registry.ollama.ai", "library", "a", "latest")]
    assert store.read(name("a")).manifest.layers[0].digest == D2


def test_write_is_atomic_on_failure(store: ManifestStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(name("a"), make_manifest(D1))
    original = store.path(name("a")).read_bytes()

    def boom(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(WriteFailed, match="write manifest: disk full"):
        store.write(name("a"), make_manifest(D2))
    monkeypatch.undo()
    # the old manifest is intact and no temporary file is left beside it
    assert store.path(name("a")).read_bytes() == original
    assert all_files(store.root) == [os.path.join("registry.ollama.ai", "library", "a", "latest")]


def test_read_missing_and_corrupt(store: ManifestStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.read(name("missing"))
    write_raw(store, ("registry.ollama.ai", "library", "bad", "latest"), b"{not json")
    with pytest.raises(CorruptManifest):
        store.read(name("bad"))


def test_layer_digests(store: ManifestStore) -> None:
    store.write(name("a"), make_manifest(D1, D2))
    assert store.layer_digests(name("a")) == [D1, D2, DC]
    assert store.layer_digests(name("missing")) == []
    write_raw(store, ("registry.ollama.ai", "library", "bad", "latest"), b"garbage")
    assert store.layer_digests(name("bad")) == []


# --- names() / list() (Go: Manifests, glob manifests/*/*/*/*) ---------------------------------------------------


def test_list_returns_all_readable_manifests(store: ManifestStore) -> None:
    store.write(name("a"), make_manifest(D1))
    store.write(name("user/b:v2"), make_manifest(D2))
    store.write(name("example.com/ns/c:t"), make_manifest(D1, D2))
    found, corrupt = store.list()
    assert corrupt == []
    assert set(found) == {name("a"), name("user/b:v2"), name("example.com/ns/c:t")}
    assert found[name("user/b:v2")].manifest.layers[0].digest == D2
    assert all(stored.name == key for key, stored in found.items())


def test_list_collects_corrupt_manifests(store: ManifestStore) -> None:
    store.write(name("good"), make_manifest(D1))
    write_raw(store, ("registry.ollama.ai", "library", "bad", "latest"), b"{")
    write_raw(store, ("registry.ollama.ai", "library", "empty", "latest"), b"")
    found, corrupt = store.list()
    assert set(found) == {name("good")}
    assert sorted(corrupt, key=str) == sorted([name("bad"), name("empty")], key=str)


def test_list_reports_manifest_with_wrong_field_type_as_corrupt(store: ManifestStore) -> None:
    # Go's json decoder fails on {"schemaVersion":"two"}; it must count as corrupt, not crash the listing.
    store.write(name("good"), make_manifest(D1))
    write_raw(store, ("registry.ollama.ai", "library", "typed", "latest"), b'{"schemaVersion":"two","layers":[]}')
    found, corrupt = store.list()
    assert set(found) == {name("good")}
    assert corrupt == [name("typed")]


def test_list_skips_invalid_names_and_other_depths(store: ManifestStore) -> None:
    store.write(name("good"), make_manifest(D1))
    raw = make_manifest(D2).raw
    # invalid parts (Go: ParseNameFromFilepath + IsValid, "bad manifest name")
    write_raw(store, ("registry.ollama.ai", "library", "bad name", "latest"), raw)
    write_raw(store, ("registry.ollama.ai", "library", "-dash", "latest"), raw)
    write_raw(store, ("registry.ollama.ai", "name.space", "m", "latest"), raw)  # no dots in a namespace
    write_raw(store, ("registry.ollama.ai", "library", "m", ".hidden"), raw)
    # not four levels deep: the glob manifests/*/*/*/* does not see them
    write_raw(store, ("registry.ollama.ai", "library", "toplevel"), raw)
    write_raw(store, ("registry.ollama.ai", "library", "deep", "er", "latest"), raw)
    write_raw(store, ("stray",), raw)
    # a directory where a tag file would be is not a manifest
    (store.root / "registry.ollama.ai" / "library" / "dir" / "latest").mkdir(parents=True)
    found, corrupt = store.list()
    assert set(found) == {name("good")}
    assert corrupt == []
    assert store.names() == [name("good")]


def test_list_skips_temporary_files(store: ManifestStore) -> None:
    store.write(name("good"), make_manifest(D1))
    write_raw(store, ("registry.ollama.ai", "library", "good", ".tmp-12345"), b"{partial")
    found, corrupt = store.list()
    assert set(found) == {name("good")}
    assert corrupt == []


def test_list_on_missing_root(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path / "nothing")
    assert store.names() == []
    assert store.list() == ({}, [])


def test_names_keep_on_disk_casing(store: ManifestStore) -> None:
    store.write(name("Example.COM/NS/Model:Tag"), make_manifest(D1))
    (found,) = store.names()
    assert found.parts == ("Example.COM", "NS", "Model", "Tag")


# --- resolve() (Go: getExistingName) ---------------------------------------------------------------------------


def test_resolve_without_existing_models(store: ManifestStore) -> None:
    assert store.resolve(name("LLAMA3:Q4")).parts == ("registry.ollama.ai", "library", "LLAMA3", "Q4")


def test_resolve_case_insensitive(store: ManifestStore) -> None:
    store.write(name("llama3"), make_manifest(D1))
    resolved = store.resolve(name("LLaMA3:LATEST"))
    assert resolved.parts == ("registry.ollama.ai", "library", "llama3", "latest")
    assert resolved.scheme == "https"


def test_resolve_canonicalizes_each_part_independently(store: ManifestStore) -> None:
    # getExistingName replaces every part that matches some existing name's part, part by part.
    store.write(name("Example.com/MyNS/other:v1"), make_manifest(D1))
    store.write(name("llama3:Q4_K_M"), make_manifest(D2))
    resolved = store.resolve(name("EXAMPLE.COM/myns/LLAMA3:q4_k_m"))
    assert resolved.parts == ("Example.com", "MyNS", "llama3", "Q4_K_M")
    # a new tag of an existing model keeps the request's tag casing
    assert store.resolve(name("Llama3:NewTag")).parts == ("registry.ollama.ai", "library", "llama3", "NewTag")


def test_resolve_exact_match_is_identity(store: ManifestStore) -> None:
    store.write(name("Mixed/Case:Tag"), make_manifest(D1))
    assert store.resolve(name("Mixed/Case:Tag")).parts == ("registry.ollama.ai", "Mixed", "Case", "Tag")


# --- remove() (Go: Manifest.Remove -> PruneDirectory(manifests)) -------------------------------------------------


def test_remove_prunes_empty_directories(store: ManifestStore) -> None:
    store.write(name("example.com/ns/only:t"), make_manifest(D1))
    store.write(name("keep"), make_manifest(D1))
    store.write(name("keep:other"), make_manifest(D2))
    store.remove(name("example.com/ns/only:t"))
    assert not (store.root / "example.com").exists()
    assert store.root.is_dir()
    store.remove(name("keep:other"))
    # the model directory still holds "latest"
    assert all_files(store.root) == [os.path.join("registry.ollama.ai", "library", "keep", "latest")]
    store.remove(name("keep"))
    assert list(store.root.iterdir()) == []
    assert store.root.is_dir()


def test_remove_prunes_unrelated_empty_directories_too(store: ManifestStore) -> None:
    # PruneDirectory walks the whole manifests tree
    (store.root / "registry.ollama.ai" / "library" / "ghost").mkdir(parents=True)
    store.write(name("a"), make_manifest(D1))
    store.write(name("b"), make_manifest(D1))
    store.remove(name("a"))
    assert not (store.root / "registry.ollama.ai" / "library" / "ghost").exists()
    assert not (store.root / "registry.ollama.ai" / "library" / "a").exists()
    assert (store.root / "registry.ollama.ai" / "library" / "b" / "latest").is_file()


def test_remove_does_not_follow_symlinks(store: ManifestStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "empty"
    outside.mkdir(parents=True)
    link = store.root / "linked"
    link.symlink_to(outside, target_is_directory=True)
    store.write(name("a"), make_manifest(D1))
    store.remove(name("a"))
    assert link.is_symlink()
    assert outside.is_dir()


def test_remove_missing_raises(store: ManifestStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.remove(name("missing"))
