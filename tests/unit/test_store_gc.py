"""pollama.store.gc: blob garbage collection and startup maintenance.

Go references: manifest/layer.go Layer.Remove and manifest.go RemoveLayers (deletion of a model's layers),
server/images.go deleteUnusedLayers/PruneLayers (layerPruneGracePeriod = time.Hour),
server/fixblobs.go fixBlobs, server/routes.go Serve (prune skipped when Manifests(false) fails).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pollama.store import Store, gc
from pollama.store.layers import CONFIG_MEDIA_TYPE, Layer, Manifest, MediaType
from pollama.store.names import ModelName

NOW = 2_000_000_000.0
OLD = NOW - 2 * 3600
YOUNG = NOW - 60


def name(text: str) -> ModelName:
    return ModelName.parse_valid(text)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "models")
    s.ensure()
    return s


def blob(store: Store, data: bytes, mtime: float | None = None) -> str:
    digest, _ = store.blobs.write_bytes(data)
    if mtime is not None:
        os.utime(store.blobs.path(digest), (mtime, mtime))
    return digest


def stray(store: Store, filename: str, mtime: float) -> Path:
    path = store.blobs.root / filename
    path.write_bytes(b"junk")
    os.utime(path, (mtime, mtime))
    return path


def manifest_with(store: Store, model: str, *digests: str, config: str | None = None) -> Manifest:
    cfg = Layer(CONFIG_MEDIA_TYPE, config or "", 10)
    manifest = Manifest.build(cfg, [Layer(MediaType.MODEL, d, 1) for d in digests])
    store.manifests.write(name(model), manifest)
    return manifest


def blob_names(store: Store) -> set[str]:
    return {p.name for p in store.blobs.root.iterdir()}


def fname(digest: str) -> str:
    return digest.replace(":", "-")


# --- remove_unused (deleting a model's layers) ----------------------------------------------------------------


def test_remove_unused_keeps_blobs_of_other_manifests(store: Store) -> None:
    shared = blob(store, b"shared weights")
    own = blob(store, b"own template")
    config_a = blob(store, b"config a")
    config_b = blob(store, b"config b")
    manifest_with(store, "a", shared, own, config=config_a)
    manifest_with(store, "b", shared, config=config_b)

    store.manifests.remove(name("a"))
    removed = gc.remove_unused(store, [shared, own, config_a])
    assert sorted(removed) == sorted([own, config_a])
    assert blob_names(store) == {fname(shared), fname(config_b)}


def test_remove_unused_keeps_blob_used_as_config_elsewhere(store: Store) -> None:
    data = blob(store, b"used as a layer here, a config there")
    manifest_with(store, "b", config=data)
    assert gc.remove_unused(store, [data]) == []
    assert store.blobs.exists(data)


def test_remove_unused_layer_listed_twice(store: Store) -> None:
    dup = blob(store, b"duplicated layer")
    manifest_with(store, "a", dup, dup)
    # while the manifest exists, nothing goes
    assert gc.remove_unused(store, [dup, dup]) == []
    assert store.blobs.exists(dup)
    store.manifests.remove(name("a"))
    # the layer appears twice in the deleted manifest's list: removed once, no error
    assert gc.remove_unused(store, [dup, dup]) == [dup]
    assert blob_names(store) == set()


def test_remove_unused_other_manifest_lists_layer_twice(store: Store) -> None:
    dup = blob(store, b"dup")
    manifest_with(store, "a", dup)
    manifest_with(store, "b", dup, dup)
    store.manifests.remove(name("a"))
    assert gc.remove_unused(store, [dup]) == []
    assert store.blobs.exists(dup)


def test_remove_unused_ignores_corrupt_manifests(store: Store) -> None:
    # Go: "Ignore corrupt manifests to avoid blocking deletion of layers that are freshly orphaned"
    orphan = blob(store, b"orphan")
    corrupt = store.manifests.path(name("broken"))
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"{not json")
    assert gc.remove_unused(store, [orphan]) == [orphan]
    assert not store.blobs.exists(orphan)


def test_remove_unused_ignores_missing_and_invalid_digests(store: Store) -> None:
    missing = "sha256:" + "f" * 64
    assert gc.remove_unused(store, [missing, "", "not-a-digest", "../../etc/passwd"]) == []


def test_remove_unused_accepts_dash_form(store: Store) -> None:
    digest = blob(store, b"dash")
    assert gc.remove_unused(store, [fname(digest)]) == [fname(digest)]
    assert not store.blobs.exists(digest)


def test_remove_unused_ignores_grace_period(store: Store) -> None:
    # deleting a model removes its unused layers immediately, however new they are
    fresh = blob(store, b"fresh")
    assert gc.remove_unused(store, [fresh]) == [fresh]


# --- prune_unreferenced (startup pruning) -----------------------------------------------------------------------


def test_prune_removes_old_unreferenced_blobs_only(store: Store) -> None:
    used_old = blob(store, b"used", OLD)
    config = blob(store, b"config", OLD)
    blob(store, b"unused old", OLD)
    unused_young = blob(store, b"unused young", YOUNG)
    manifest_with(store, "a", used_old, config=config)

    removed = gc.prune_unreferenced(store, now=NOW)
    assert removed == 1
    assert blob_names(store) == {fname(used_old), fname(config), fname(unused_young)}


def test_prune_grace_period_boundary(store: Store) -> None:
    # Go: skip when time.Since(modTime) < time.Hour
    exactly_hour = blob(store, b"one hour", NOW - 3600)
    just_under = blob(store, b"59m59s", NOW - 3599)
    assert gc.prune_unreferenced(store, now=NOW) == 1
    assert blob_names(store) == {fname(just_under)}
    assert not store.blobs.exists(exactly_hour)


def test_prune_with_real_clock_and_utime(store: Store) -> None:
    old = blob(store, b"old")
    new = blob(store, b"new")
    past = time.time() - 3 * 3600
    os.utime(store.blobs.path(old), (past, past))
    assert gc.prune_unreferenced(store) == 1
    assert blob_names(store) == {fname(new)}


@pytest.mark.parametrize(
    "filename",
    [
        "sha256-" + "a" * 64 + "-partial",
        "sha256-" + "a" * 64 + "-partial-0",
        ".tmp-x",
        ".tmp-abc123",
        "sha256-" + "a" * 63,
        "random.bin",
        "sha256-" + "g" * 64,
    ],
)
def test_prune_deletes_old_non_digest_files(store: Store, filename: str) -> None:
    stray(store, filename, OLD)
    young = stray(store, filename + "-young", YOUNG)
    gc.prune_unreferenced(store, now=NOW)
    assert blob_names(store) == {young.name}


def test_prune_counts_removed_files(store: Store) -> None:
    blob(store, b"x", OLD)
    blob(store, b"y", OLD)
    stray(store, "sha256-" + "b" * 64 + "-partial", OLD)
    assert gc.prune_unreferenced(store, now=NOW) == 3
    assert blob_names(store) == set()


def test_prune_skips_directories(store: Store) -> None:
    directory = store.blobs.root / ("sha256-" + "d" * 64)
    directory.mkdir()
    os.utime(directory, (OLD, OLD))
    assert gc.prune_unreferenced(store, now=NOW) == 0
    assert directory.is_dir()


def test_prune_skipped_entirely_when_a_manifest_is_corrupt(store: Store) -> None:
    orphan = blob(store, b"orphan", OLD)
    partial = stray(store, "sha256-" + "e" * 64 + "-partial", OLD)
    corrupt = store.manifests.path(name("broken"))
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x00\x01garbage")
    empty_dir = store.manifests.root / "registry.ollama.ai" / "library" / "ghost"
    empty_dir.mkdir(parents=True)

    assert gc.prune_unreferenced(store, now=NOW) == 0
    assert store.blobs.exists(orphan)
    assert partial.exists()
    assert empty_dir.is_dir()  # no manifest-directory cleanup either


def test_prune_skipped_when_a_manifest_has_an_invalid_name(store: Store) -> None:
    # Serve calls manifest.Manifests(false), which returns an error for a manifest file whose path is
    # not a valid name, so pruning is skipped ("corrupt manifests detected, skipping prune operation").
    orphan = blob(store, b"orphan", OLD)
    bad = store.manifests.root / "registry.ollama.ai" / "library" / "bad name" / "latest"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(Manifest.build(Layer(CONFIG_MEDIA_TYPE, "", 0), []).raw)
    assert gc.prune_unreferenced(store, now=NOW) == 0
    assert store.blobs.exists(orphan)


def test_prune_removes_empty_manifest_directories(store: Store) -> None:
    used = blob(store, b"used", OLD)
    manifest_with(store, "a", used)
    ghost = store.manifests.root / "example.com" / "ns" / "gone"
    ghost.mkdir(parents=True)
    gc.prune_unreferenced(store, now=NOW)
    assert not (store.manifests.root / "example.com").exists()
    assert store.manifests.path(name("a")).is_file()
    assert store.blobs.exists(used)


def test_prune_with_no_blobs_dir(tmp_path: Path) -> None:
    s = Store(tmp_path / "empty")
    assert gc.prune_unreferenced(s, now=NOW) == 0


def test_prune_keeps_blobs_of_every_manifest(store: Store) -> None:
    digests = [blob(store, bytes([i]) * 10, OLD) for i in range(6)]
    manifest_with(store, "a", digests[0], digests[1], config=digests[2])
    manifest_with(store, "ns/b:t", digests[1], digests[3])
    manifest_with(store, "example.com/x/c", digests[4], digests[4])
    assert gc.prune_unreferenced(store, now=NOW) == 1
    assert blob_names(store) == {fname(d) for d in digests[:5]}


# --- fix_blob_names (server/fixblobs.go) -------------------------------------------------------------------------


def test_fix_blob_names_renames_colon_form(store: Store) -> None:
    data = b"legacy blob"
    hexdigest = hashlib.sha256(data).hexdigest()
    legacy = store.blobs.root / f"sha256:{hexdigest}"
    legacy.write_bytes(data)
    normal = blob(store, b"already fine")
    gc.fix_blob_names(store)
    assert blob_names(store) == {f"sha256-{hexdigest}", fname(normal)}
    assert (store.blobs.root / f"sha256-{hexdigest}").read_bytes() == data
    assert store.blobs.exists(f"sha256:{hexdigest}")


def test_fix_blob_names_without_blobs_dir(tmp_path: Path) -> None:
    gc.fix_blob_names(Store(tmp_path / "none"))  # no error


def test_startup_fixes_names_then_prunes(store: Store) -> None:
    old = time.time() - 2 * 3600  # startup prunes against the real clock
    data = b"legacy but used"
    hexdigest = hashlib.sha256(data).hexdigest()
    legacy = store.blobs.root / f"sha256:{hexdigest}"
    legacy.write_bytes(data)
    os.utime(legacy, (old, old))
    manifest_with(store, "a", f"sha256:{hexdigest}")
    orphan = blob(store, b"orphan", old)
    store.startup(prune=True)
    assert blob_names(store) == {f"sha256-{hexdigest}"}
    assert not store.blobs.exists(orphan)


def test_startup_without_prune_keeps_everything(store: Store) -> None:
    orphan = blob(store, b"orphan", time.time() - 2 * 3600)
    store.startup(prune=False)
    assert store.blobs.exists(orphan)


def test_remove_unused_ignores_malformed_layer_digests(store: Store) -> None:
    orphan = blob(store, b"orphan")
    odd = store.manifests.path(name("odd"))
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b'{"schemaVersion":2,"layers":[{"mediaType":"x","digest":"not-a-digest","size":1}]}')
    assert gc.remove_unused(store, [orphan]) == [orphan]
    assert gc.referenced_digests(store) == set()
