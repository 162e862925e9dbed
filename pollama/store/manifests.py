"""Named manifests: ``manifests/<host>/<namespace>/<model>/<tag>``.

Names are matched case-insensitively, as Ollama does: a request for ``Llama3``
finds ``llama3`` and a create of ``LLAMA3`` replaces it rather than adding a
second manifest beside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pollama.store.files import TEMP_PREFIX, TempFile
from pollama.store.layers import CorruptManifest, Manifest
from pollama.store.names import ModelName

__all__ = ["ManifestStore", "StoredManifest"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredManifest:
    name: ModelName
    manifest: Manifest
    modified_ns: int  # the manifest file's mtime: a model's modified_at


class ManifestStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: ModelName) -> Path:
        return self.root.joinpath(*name.parts)

    def read(self, name: ModelName) -> StoredManifest:
        """Raise ``FileNotFoundError`` if absent, ``CorruptManifest`` if unreadable."""
        path = self.path(name)
        raw = path.read_bytes()
        return StoredManifest(name, Manifest.parse(raw), path.stat().st_mtime_ns)

    def layer_digests(self, name: ModelName) -> list[str]:
        """The blobs a name's manifest uses; none if it is missing or unreadable."""
        try:
            return [layer.digest for layer in self.read(name).manifest.all_layers()]
        except (FileNotFoundError, CorruptManifest):
            return []

    def write(self, name: ModelName, manifest: Manifest) -> StoredManifest:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with TempFile(path.parent, "manifest") as temp:
            temp.write(manifest.raw)
            temp.install(path)
        return StoredManifest(name, manifest, path.stat().st_mtime_ns)

    def _scan(self) -> tuple[list[ModelName], list[Path]]:
        names: list[ModelName] = []
        invalid: list[Path] = []
        if not self.root.is_dir():
            return names, invalid
        for path in self.root.glob("*/*/*/*"):
            if not path.is_file() or path.name.startswith(TEMP_PREFIX):
                continue
            name = ModelName.from_parts(path.relative_to(self.root).parts)  # type: ignore[arg-type]
            if name is None:
                invalid.append(path)
            else:
                names.append(name)
        return names, invalid

    def names(self) -> list[ModelName]:
        """Every valid manifest name on disk."""
        return self._scan()[0]

    def invalid_paths(self) -> list[Path]:
        """Files where a manifest would be whose path is not a valid model name."""
        invalid = self._scan()[1]
        for path in invalid:
            log.warning("bad manifest name path=%s", path)
        return invalid

    def list(self) -> tuple[dict[ModelName, StoredManifest], list[ModelName]]:
        """All readable manifests, and the names of the corrupt ones."""
        found: dict[ModelName, StoredManifest] = {}
        corrupt: list[ModelName] = []
        for name in self.names():
            try:
                found[name] = self.read(name)
            except FileNotFoundError:
                continue
            except (CorruptManifest, OSError) as err:
                log.warning("bad manifest name=%s error=%s", name, err)
                corrupt.append(name)
        return found, corrupt

    def resolve(self, name: ModelName) -> ModelName:
        """Replace each part of ``name`` with the casing already used on disk, if any."""
        host, namespace, model, tag = name.parts
        for existing in self.names():
            e_host, e_namespace, e_model, e_tag = existing.parts
            if host.lower() == e_host.lower():
                host = e_host
            if namespace.lower() == e_namespace.lower():
                namespace = e_namespace
            if model.lower() == e_model.lower():
                model = e_model
            if tag.lower() == e_tag.lower():
                tag = e_tag
        return ModelName(host, namespace, model, tag, name.scheme)

    def remove(self, name: ModelName) -> None:
        self.path(name).unlink()
        self.prune_empty_directories()

    def prune_empty_directories(self) -> None:
        if not self.root.is_dir():
            return
        for directory, _subdirs, _files in os.walk(self.root, topdown=False):
            path = Path(directory)
            if path != self.root and not path.is_symlink():
                with contextlib.suppress(OSError):  # not empty
                    path.rmdir()
