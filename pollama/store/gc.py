"""Removing blobs that no manifest uses any more, and startup maintenance."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pollama.store.blobs import InvalidDigest, normalize_digest
from pollama.store.manifests import StoredManifest

if TYPE_CHECKING:
    from pollama.store import Store

__all__ = ["fix_blob_names", "prune_unreferenced", "remove_unreferenced", "remove_unused"]

log = logging.getLogger(__name__)

# A blob younger than this may belong to a create or pull whose manifest is not written yet.
GRACE_SECONDS = 3600
_LEGACY_NAME = re.compile(r"sha256:[0-9a-fA-F]{64}")


def _key(digest: str) -> str:
    return normalize_digest(digest).lower()


def _used(manifests: Iterable[StoredManifest]) -> set[str]:
    """The normalized digests these manifests reference (malformed ones name no blob)."""
    used: set[str] = set()
    for stored in manifests:
        for layer in stored.manifest.all_layers():
            with contextlib.suppress(InvalidDigest):
                used.add(_key(layer.digest))
    return used


def referenced_digests(store: Store) -> set[str] | None:
    """Digests used by any manifest, or None when a manifest is unreadable (nothing is safe to drop)."""
    manifests, corrupt = store.manifests.list()
    if corrupt or store.manifests.invalid_paths():
        return None
    return _used(manifests.values())


def _remove(store: Store, digests: Iterable[str], used: set[str]) -> list[str]:
    removed = []
    for digest in dict.fromkeys(digests):
        try:
            key = _key(digest)
        except InvalidDigest:
            continue
        if key not in used and store.blobs.exists(digest):
            store.blobs.remove(digest)
            removed.append(digest)
    return removed


def remove_unused(store: Store, digests: Iterable[str]) -> list[str]:
    """Delete those of ``digests`` that no manifest references; return what was deleted."""
    manifests, _corrupt = store.manifests.list()  # a corrupt manifest must not pin freshly orphaned blobs
    return _remove(store, digests, _used(manifests.values()))


def remove_unreferenced(store: Store, digests: Iterable[str]) -> list[str] | None:
    """Like ``remove_unused``, for blobs that may predate every manifest: while any manifest is
    unreadable nothing is deleted (it may be the one using them), and None is returned."""
    used = referenced_digests(store)
    return None if used is None else _remove(store, digests, used)


def fix_blob_names(store: Store) -> None:
    """Rename blobs stored as ``sha256:<hex>`` (old Ollama, or a filesystem that allowed it)."""
    if not store.blobs.root.is_dir():
        return
    for path in store.blobs.root.iterdir():
        if _LEGACY_NAME.fullmatch(path.name):
            path.rename(path.with_name(path.name.replace(":", "-", 1)))


def prune_unreferenced(store: Store, *, now: float | None = None) -> int:
    """Delete old blobs that no manifest uses, and old files that are not blobs at all."""
    used = referenced_digests(store)
    if used is None:
        log.warning("skipping blob pruning: a manifest is corrupt")
        return 0
    if not store.blobs.root.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - GRACE_SECONDS
    removed = 0
    for path in store.blobs.root.iterdir():
        if not path.is_file() or path.stat().st_mtime > cutoff:
            continue
        try:
            key = _key(path.name)
        except InvalidDigest:
            key = None  # abandoned partial download or temporary file
        if key is None or key not in used:
            path.unlink(missing_ok=True)
            removed += 1
    store.manifests.prune_empty_directories()
    log.info("total unused blobs removed: %d", removed)
    return removed
