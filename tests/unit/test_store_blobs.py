"""pollama.store.blobs: content-addressed blob files.

Go references: manifest/paths.go BlobsPath, manifest/layer.go NewLayer, server/routes.go CreateBlobHandler.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from pollama.store.blobs import (
    BlobStore,
    DigestMismatch,
    InvalidDigest,
    digest_filename,
    normalize_digest,
)

HEX = "ab" * 32
UPPER_HEX = "AB" * 32


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    store = BlobStore(tmp_path / "blobs")
    store.ensure()
    return store


def listing(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.root))


# --- digest normalization (Go: regexp "^sha256[:-][0-9a-fA-F]{64}$") ---------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (f"sha256:{HEX}", f"sha256:{HEX}"),
        (f"sha256-{HEX}", f"sha256:{HEX}"),
        # the hex keeps its case, as Ollama's BlobsPath keeps it
        (f"sha256:{UPPER_HEX}", f"sha256:{UPPER_HEX}"),
        (f"sha256-{UPPER_HEX}", f"sha256:{UPPER_HEX}"),
        (f"sha256:{'0123456789abcdefABCDEF'}{'0' * 42}", f"sha256:0123456789abcdefABCDEF{'0' * 42}"),
    ],
)
def test_normalize_digest_accepts_both_separators(given: str, expected: str) -> None:
    assert normalize_digest(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sha256",
        "sha256:",
        "sha256-",
        HEX,  # no algorithm
        f"sha256:{HEX[:-1]}",  # 63 hex digits
        f"sha256:{HEX}0",  # 65 hex digits
        f"sha256:{HEX[:-1]}g",  # not hex
        f"sha512:{HEX}",
        f"SHA256:{HEX}",  # the algorithm is case-sensitive in Go's pattern
        f"sha256_{HEX}",
        f"sha256::{HEX}",
        f"sha256/{HEX}",
        f" sha256:{HEX}",
        f"sha256:{HEX} ",
        f"sha256:{HEX}\n",  # Go's $ without (?m) matches only at the very end
        f"sha256-{HEX}-partial",
        f"sha256-{HEX}-partial-0",
        "../../etc/passwd",
        f"sha256:{HEX}/../x",
    ],
)
def test_normalize_digest_rejects_invalid(bad: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        normalize_digest(bad)
    # Go's manifest.ErrInvalidDigestFormat
    assert str(info.value) == "invalid digest format"
    assert isinstance(info.value, ValueError)


def test_digest_filename_uses_dash() -> None:
    assert digest_filename(f"sha256:{HEX}") == f"sha256-{HEX}"
    assert digest_filename(f"sha256-{HEX}") == f"sha256-{HEX}"
    assert digest_filename(f"sha256:{UPPER_HEX}") == f"sha256-{UPPER_HEX}"


def test_blob_path_layout(blobs: BlobStore) -> None:
    assert blobs.path(f"sha256:{HEX}") == blobs.root / f"sha256-{HEX}"
    assert blobs.path(f"sha256-{HEX}") == blobs.root / f"sha256-{HEX}"


@pytest.mark.parametrize("bad", ["../manifests/x", f"sha256:{HEX}/..", "sha256:zz", ""])
def test_blob_path_rejects_invalid_digests(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidDigest):
        blobs.path(bad)


# --- BlobWriter ---------------------------------------------------------------------------------------------


def test_writer_commits_under_verified_digest(blobs: BlobStore) -> None:
    data = b"hello world\n" * 1000
    writer = blobs.writer()
    for start in range(0, len(data), 777):
        writer.write(data[start : start + 777])
    assert writer.size == len(data)
    assert writer.digest == sha(data)
    # nothing is visible under a digest name before the commit
    assert not blobs.exists(sha(data))
    digest = writer.commit(sha(data))
    assert digest == sha(data)
    assert listing(blobs) == [digest.replace(":", "-")]
    path = blobs.root / digest.replace(":", "-")
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert blobs.exists(digest)
    assert blobs.size(digest) == len(data)
    assert blobs.read_bytes(digest) == data


def test_writer_commit_without_expected_digest(blobs: BlobStore) -> None:
    writer = blobs.writer()
    writer.write(b"abc")
    digest = writer.commit()
    assert digest == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert listing(blobs) == ["sha256-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]


def test_writer_commit_accepts_dash_form_expected_digest(blobs: BlobStore) -> None:
    data = b"dash form"
    writer = blobs.writer()
    writer.write(data)
    assert writer.commit(sha(data).replace(":", "-")) == sha(data)
    assert blobs.read_bytes(sha(data)) == data
    assert listing(blobs) == [sha(data).replace(":", "-")]


def test_empty_blob(blobs: BlobStore) -> None:
    writer = blobs.writer()
    digest = writer.commit(sha(b""))
    assert digest == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert blobs.size(digest) == 0


def test_digest_mismatch_message_and_nothing_left(blobs: BlobStore) -> None:
    expected = f"sha256:{HEX}"
    writer = blobs.writer()
    writer.write(b"not what was promised")
    actual = sha(b"not what was promised")
    with pytest.raises(DigestMismatch) as info:
        writer.commit(expected)
    # Ollama CreateBlobHandler: fmt.Sprintf("digest mismatch, expected %q, got %q", param, layer.Digest)
    assert str(info.value) == f'digest mismatch, expected "{expected}", got "{actual}"'
    assert info.value.expected == expected
    assert info.value.actual == actual
    # Deliberately unlike Ollama (which keeps the blob under its actual digest): nothing is kept,
    # neither the blob, nor a blob under the actual digest, nor the temporary file.
    assert listing(blobs) == []
    assert not blobs.exists(actual)


def test_digest_mismatch_keeps_expected_spelling_in_message(blobs: BlobStore) -> None:
    expected = f"sha256-{HEX}"
    writer = blobs.writer()
    writer.write(b"x")
    with pytest.raises(DigestMismatch) as info:
        writer.commit(expected)
    assert str(info.value) == f'digest mismatch, expected "{expected}", got "{sha(b"x")}"'
    assert listing(blobs) == []


def test_digest_mismatch_does_not_disturb_existing_blob(blobs: BlobStore) -> None:
    digest, created = blobs.write_bytes(b"original")
    assert created
    writer = blobs.writer()
    writer.write(b"impostor")
    with pytest.raises(DigestMismatch):
        writer.commit(digest)
    assert listing(blobs) == [digest.replace(":", "-")]
    assert blobs.read_bytes(digest) == b"original"


def test_invalid_expected_digest_raises_and_leaves_nothing(blobs: BlobStore) -> None:
    writer = blobs.writer()
    writer.write(b"data")
    with pytest.raises(InvalidDigest):
        writer.commit("sha256:nothex")
    assert listing(blobs) == []


def test_abort_leaves_nothing(blobs: BlobStore) -> None:
    writer = blobs.writer()
    writer.write(b"partial upload")
    assert len(listing(blobs)) == 1  # the temporary file exists while writing
    assert all(name.startswith(".tmp-") for name in listing(blobs))
    writer.abort()
    assert listing(blobs) == []
    writer.abort()  # idempotent
    assert listing(blobs) == []


def test_exception_mid_write_leaves_nothing(blobs: BlobStore) -> None:
    with pytest.raises(RuntimeError, match="client went away"), blobs.writer() as writer:
        writer.write(b"first chunk")
        raise RuntimeError("client went away")
    assert listing(blobs) == []


def test_context_manager_without_commit_leaves_nothing(blobs: BlobStore) -> None:
    with blobs.writer() as writer:
        writer.write(b"never committed")
    assert listing(blobs) == []


def test_context_manager_after_commit_keeps_blob(blobs: BlobStore) -> None:
    with blobs.writer() as writer:
        writer.write(b"kept")
        digest = writer.commit(sha(b"kept"))
    assert listing(blobs) == [digest.replace(":", "-")]
    assert blobs.read_bytes(digest) == b"kept"


def test_commit_of_existing_blob_keeps_one_file(blobs: BlobStore) -> None:
    data = b"same bytes twice"
    for _ in range(2):
        with blobs.writer() as writer:
            writer.write(data)
            assert writer.commit(sha(data)) == sha(data)
    assert listing(blobs) == [sha(data).replace(":", "-")]
    assert blobs.read_bytes(sha(data)) == data


def test_temp_files_live_in_blobs_dir_with_non_digest_names(blobs: BlobStore) -> None:
    # A crash mid-write leaves a temporary file that startup pruning must treat as garbage:
    # its name must not be a valid digest.
    writer = blobs.writer()
    try:
        (name,) = listing(blobs)
        with pytest.raises(InvalidDigest):
            normalize_digest(name)
        with pytest.raises(InvalidDigest):
            normalize_digest(name.replace("-", ":"))
    finally:
        writer.abort()


def test_writer_creates_blobs_directory(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "models" / "blobs")
    with store.writer() as writer:
        writer.write(b"x")
        writer.commit()
    assert store.root.is_dir()
    assert store.exists(sha(b"x"))


# --- write_bytes / remove / touch ---------------------------------------------------------------------------


def test_write_bytes_dedupes(blobs: BlobStore) -> None:
    data = b'{"temperature":0.7}'
    digest, created = blobs.write_bytes(data)
    assert (digest, created) == (sha(data), True)
    assert blobs.read_bytes(digest) == data
    again, created_again = blobs.write_bytes(data)
    assert (again, created_again) == (digest, False)
    assert listing(blobs) == [digest.replace(":", "-")]


def test_write_bytes_different_content(blobs: BlobStore) -> None:
    first, _ = blobs.write_bytes(b"one")
    second, _ = blobs.write_bytes(b"two")
    assert first != second
    assert listing(blobs) == sorted([first.replace(":", "-"), second.replace(":", "-")])


def test_exists_accepts_both_spellings(blobs: BlobStore) -> None:
    digest, _ = blobs.write_bytes(b"abc")
    assert blobs.exists(digest)
    assert blobs.exists(digest.replace(":", "-"))
    assert not blobs.exists(f"sha256:{HEX}")


def test_remove(blobs: BlobStore) -> None:
    digest, _ = blobs.write_bytes(b"bye")
    blobs.remove(digest)
    assert listing(blobs) == []
    blobs.remove(digest)  # missing is fine


def test_touch_updates_mtime(blobs: BlobStore) -> None:
    digest, _ = blobs.write_bytes(b"old")
    path = blobs.path(digest)
    os.utime(path, (1_000_000, 1_000_000))
    blobs.touch(digest)
    assert path.stat().st_mtime > 1_000_000 + 3600
