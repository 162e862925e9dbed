"""Writing a store file atomically: a temporary file beside it, flushed to disk, renamed into place.

Whatever fails (a full disk fails a write, the final flush or the close), the temporary file is
removed: nothing half-written outlives the attempt.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
from pathlib import Path

from pollama.errors import Failed, StorageFull, os_error_reason

__all__ = ["TEMP_PREFIX", "DiskFull", "TempFile", "WriteFailed", "fsync_directory"]

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"  # never a valid digest or model name, so pruning and listing treat it as debris
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class WriteFailed(Failed):
    """The store could not be written; the message names no path."""

    def __init__(self, what: str, cause: OSError) -> None:
        super().__init__(f"write {what}: {os_error_reason(cause)}")

    @staticmethod
    def of(what: str, cause: OSError) -> WriteFailed:
        """The failure to write ``what``: ``DiskFull`` when that is why."""
        return (DiskFull if cause.errno in _DISK_FULL else WriteFailed)(what, cause)


class DiskFull(StorageFull, WriteFailed):
    """Writing the store failed for want of space (507, before ``Failed``'s 500)."""


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TempFile:
    """A file being written in ``directory``; ``install`` renames it into place, ``discard`` removes it.

    ``what`` names the file in error messages (``write blob: no space left on device``).
    """

    def __init__(self, directory: Path, what: str) -> None:
        self._what = what
        try:
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
        except OSError as err:
            raise self._failed(err) from None
        self.path = Path(name)
        try:
            self._file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise

    def _failed(self, err: OSError) -> WriteFailed:
        log.warning("couldn't write %s: %s", self._what, err)  # the log may name the path
        return WriteFailed.of(self._what, err)

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as err:
            self.discard()
            raise self._failed(err) from None

    def install(self, target: Path) -> None:
        """Make the bytes durable and rename them to ``target``; on failure nothing is left behind."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self.path, 0o644)
            os.replace(self.path, target)
            fsync_directory(target.parent)
        except OSError as err:
            self.discard()
            raise self._failed(err) from None
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        # The bytes are unwanted, so a close whose final flush fails (a full disk) must not stop the unlink.
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TempFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
