"""The on-disk model store, laid out exactly as Ollama lays out ``~/.ollama/models``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pollama.store import gc
from pollama.store.blobs import BlobStore, DigestMismatch, InvalidDigest, normalize_digest
from pollama.store.layers import CorruptManifest, Layer, Manifest, MediaType, ModelConfig
from pollama.store.manifests import ManifestStore, StoredManifest
from pollama.store.uploads import Uploads

__all__ = [
    "CorruptManifest",
    "DigestMismatch",
    "InvalidDigest",
    "Layer",
    "Manifest",
    "MediaType",
    "ModelConfig",
    "Store",
    "StoredManifest",
    "normalize_digest",
]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = BlobStore(root / "blobs")
        self.manifests = ManifestStore(root / "manifests")
        # Held while manifests change, so a delete never removes a blob a create is about to use.
        self.lock = asyncio.Lock()
        self.uploads = Uploads()

    def ensure(self) -> None:
        self.blobs.ensure()
        self.manifests.root.mkdir(parents=True, exist_ok=True)

    def startup(self, *, prune: bool) -> None:
        """Ollama's maintenance at server start: fix legacy blob names, prune unused blobs."""
        self.ensure()
        gc.fix_blob_names(self)
        if prune:
            gc.prune_unreferenced(self)
