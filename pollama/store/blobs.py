"""Content-addressed blobs: ``blobs/sha256-<hex>``, written atomically.

A blob becomes visible only under its verified digest: bytes go to a temporary
file in the blobs directory, are flushed to disk, and are renamed into place
(``pollama.store.files``). An interrupted, mismatched or failed write leaves
nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from pollama.store.files import TempFile

__all__ = ["BlobStore", "BlobWriter", "DigestMismatch", "InvalidDigest", "normalize_digest"]

_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")


class InvalidDigest(ValueError):
    def __init__(self) -> None:
        super().__init__("invalid digest format")


class DigestMismatch(ValueError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f'digest mismatch, expected "{expected}", got "{actual}"')
        self.expected = expected
        self.actual = actual


def normalize_digest(digest: str) -> str:
    """``sha256:<hex>`` for either accepted spelling; raise ``InvalidDigest`` otherwise."""
    match = _DIGEST.fullmatch(digest)
    if not match:
        raise InvalidDigest()
    return f"sha256:{match.group(1)}"


def digest_filename(digest: str) -> str:
    # The hex keeps the case it was given, as in Ollama.
    return normalize_digest(digest).replace(":", "-", 1)


class BlobWriter:
    """Receives a blob's bytes, hashing as it goes; ``commit`` makes it visible."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._temp = TempFile(store.root, "blob")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._temp.write(chunk)
        self.size += len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None) -> str:
        """Check the digest and move the blob into place; return its digest."""
        try:
            digest = self.digest
            if expected is not None and normalize_digest(expected).lower() != digest:
                raise DigestMismatch(expected, digest)
            target = self._store.path(expected or digest)
            if target.exists():
                self.abort()
            else:
                self._temp.install(target)
            return digest
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._temp.discard()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest_filename(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def writer(self) -> BlobWriter:
        self.ensure()
        return BlobWriter(self)

    def write_bytes(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; return its digest and whether the blob is new."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest, False
        with self.writer() as writer:
            writer.write(data)
            writer.commit(digest)
        return digest, True

    def read_bytes(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def touch(self, digest: str) -> None:
        os.utime(self.path(digest))
