"""pollama.store.files: a failed store write (a full disk, a failing disk) leaves no temporary file.

The disk is simulated under the real buffered file object, so a small write is accepted into the
buffer and fails later, at the flush or the close, as it does on a full file system.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pollama.server.errors import status_of
from pollama.store import Store, files
from pollama.store.files import WriteFailed
from pollama.store.layers import CONFIG_MEDIA_TYPE, Layer, Manifest
from pollama.store.names import ModelName


class _FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left."""

    room = 0

    def write(self, data: Any, /) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _FullDisk.room -= len(data)
        return super().write(data)


def _open_on_full_disk(fd: int, _mode: str) -> io.BufferedWriter:
    return io.BufferedWriter(_FullDisk(fd, "wb"))


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    def fill(room: int) -> None:
        _FullDisk.room = room
        monkeypatch.setattr(files.os, "fdopen", _open_on_full_disk)

    return fill


@pytest.fixture
def store(tmp_path: Path) -> Store:
    created = Store(tmp_path / "models")
    created.ensure()
    return created


def temporary_files(store: Store) -> list[Path]:
    return [path for path in store.root.rglob("*") if path.name.startswith(files.TEMP_PREFIX)]


def test_a_write_refused_by_a_full_disk_leaves_nothing(store: Store, full_disk: Callable[[int], None]) -> None:
    full_disk(0)
    writer = store.blobs.writer()
    with pytest.raises(WriteFailed) as raised:
        writer.write(b"x" * (1 << 20))  # more than the buffer: straight to the disk
    assert (status_of(raised.value), raised.value.message) == (507, "write blob: no space left on device")
    assert temporary_files(store) == []
    writer.abort()  # what the upload route does next: harmless
    assert list(store.blobs.root.iterdir()) == []


def test_abort_removes_the_file_though_its_final_flush_fails(store: Store, full_disk: Callable[[int], None]) -> None:
    full_disk(0)
    writer = store.blobs.writer()
    writer.write(b"buffered, not yet on the disk")
    assert len(temporary_files(store)) == 1
    writer.abort()  # closing flushes the buffer into the full disk
    assert temporary_files(store) == []


def test_a_commit_whose_flush_fails_leaves_nothing(store: Store, full_disk: Callable[[int], None]) -> None:
    full_disk(10)
    writer = store.blobs.writer()
    writer.write(b"more than ten bytes")
    with pytest.raises(WriteFailed) as raised:
        writer.commit()
    assert status_of(raised.value) == 507
    assert list(store.blobs.root.iterdir()) == []


def test_a_failing_disk_is_a_500_without_a_path(store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken_fsync(_fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(tmp_path / "somewhere"))

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(WriteFailed) as raised:
        store.blobs.write_bytes(b"data")
    assert (status_of(raised.value), raised.value.message) == (500, "write blob: input/output error")
    assert list(store.blobs.root.iterdir()) == []


def test_a_manifest_write_on_a_full_disk_keeps_the_old_manifest(store: Store, full_disk: Callable[[int], None]) -> None:
    name = ModelName.parse("kept")
    old = Manifest.build(Layer(CONFIG_MEDIA_TYPE, "sha256:" + "1" * 64, 1), [])
    store.manifests.write(name, old)
    full_disk(0)
    with pytest.raises(WriteFailed) as raised:
        store.manifests.write(name, Manifest.build(Layer(CONFIG_MEDIA_TYPE, "sha256:" + "2" * 64, 1), []))
    assert (status_of(raised.value), raised.value.message) == (507, "write manifest: no space left on device")
    assert store.manifests.read(name).manifest.raw == old.raw
    assert temporary_files(store) == []
