"""Blob downloads: ranged, parallel, resumable, verified, shared (spec E.5 "Blob download").

A blob is fetched into ``<blob>-partial`` in parts of ``clamp(total/16, 100 MB,
1000 MB)``, each a ``Range`` GET of its own, up to 16 at a time. Each part's
progress lives in ``<blob>-partial-<N>`` (Ollama's JSON, so either program
resumes the other's download). The finished file is hashed and renamed into
place only if its sha256 matches; a mismatch deletes it. Pulls of the same
blob share one ``BlobDownload``; when the last of them goes away it stops,
leaving the partial files for the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pollama.registry.connection import Connection
from pollama.registry.errors import DiskFull, NotFound, RegistryError
from pollama.store.blobs import BlobStore, normalize_digest
from pollama.store.files import fsync_directory

__all__ = ["PROGRESS_INTERVAL", "BlobDownload", "Downloads", "Part", "TransferTuning", "plan_parts", "progress_event"]

log = logging.getLogger(__name__)

MB = 1000 * 1000
_REDIRECTS = (301, 302, 303, 307, 308)
_WRITE_SIZE = 1 << 20  # hand received bytes to the disk in 1 MiB writes
PROGRESS_INTERVAL = 0.06  # Ollama reports a transfer's progress every 60 ms


def progress_event(verb: str, digest: str, total: int, completed: int) -> dict[str, Any]:
    """Ollama's progress line for a blob being pulled or pushed (``completed`` left out while 0)."""
    event: dict[str, Any] = {"status": f"{verb} {digest[7:19]}", "digest": digest, "total": total}
    if completed:
        event["completed"] = completed
    return event


@dataclass(frozen=True)
class TransferTuning:
    """Ollama's constants; tests shrink them."""

    min_part_size: int = 100 * MB
    max_part_size: int = 1000 * MB
    max_parts: int = 16
    stall_seconds: float = 30.0
    max_retries: int = 6
    retry_base_seconds: float = 1.0  # attempt n waits base * 2**n
    resolve_seconds: float = 30.0  # how long the direct URL is retried for

    def part_size(self, total: int) -> int:
        return min(max(total // self.max_parts, self.min_part_size), self.max_part_size)


@dataclass
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    @property
    def start(self) -> int:
        return self.offset + self.completed

    @property
    def stop(self) -> int:
        return self.offset + self.size

    def to_json(self) -> dict[str, int]:
        return {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}

    @classmethod
    def from_json(cls, data: object) -> Part:
        if not isinstance(data, dict):
            raise ValueError("part state is not an object")
        values = [data.get(key) for key in ("N", "Offset", "Size", "Completed")]
        if not all(type(value) is int and value >= 0 for value in values):
            raise ValueError("part state has invalid numbers")
        part = cls(*values)  # type: ignore[arg-type]
        if part.completed > part.size:
            raise ValueError("part state says more is done than the part holds")
        return part


def plan_parts(total: int, part_size: int) -> list[Part]:
    parts = []
    for n, offset in enumerate(range(0, total, part_size)):
        parts.append(Part(n, offset, min(part_size, total - offset)))
    return parts


def _load_parts(partial: Path) -> list[Part] | None:
    """The saved parts of an interrupted download, if they describe a whole blob."""
    files = sorted(partial.parent.glob(partial.name + "-*"))
    if not files or not partial.is_file():
        return None
    try:
        parts = sorted((Part.from_json(json.loads(path.read_text())) for path in files), key=lambda p: p.offset)
    except (OSError, ValueError) as err:
        log.info("discarding unreadable download state path=%s error=%s", partial, err)
        return None
    expected = 0
    for part in parts:
        if part.offset != expected:
            return None
        expected = part.stop
    return parts


def _is_disk_full(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


class BlobDownload:
    """One blob on its way into the store; ``done`` is set when it is there or has failed."""

    def __init__(
        self, blobs: BlobStore, digest: str, tuning: TransferTuning, on_finished: Callable[[BlobDownload], None]
    ) -> None:
        self.digest = normalize_digest(digest)
        self.path = blobs.path(digest)
        self.partial = self.path.with_name(self.path.name + "-partial")
        self.tuning = tuning
        self.total = 0
        self.parts: list[Part] = []
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self.references = 0
        self._task: asyncio.Task[None] | None = None
        self._on_finished = on_finished
        self._sha = hashlib.sha256()
        self._hashed = 0  # bytes of the partial file already fed to _sha, from its start

    @property
    def completed(self) -> int:
        return sum(part.completed for part in self.parts)

    def start(self, connection: Connection, *, after: BlobDownload | None = None) -> None:
        """Run the download; ``after``: a stopped download of the same blob still saving its parts."""
        self._task = asyncio.create_task(self._run(connection, after), name=f"download {self.digest[7:19]}")

    def acquire(self) -> None:
        self.references += 1

    def release(self) -> None:
        """One waiter less; the last one leaving stops the download (its parts are kept for a resume)."""
        self.references -= 1
        if self.references == 0 and self._task is not None and not self._task.done():
            self._on_finished(self)  # a pull arriving now starts afresh rather than joining a dying download
            self._task.cancel()

    async def _run(self, connection: Connection, after: BlobDownload | None) -> None:
        try:
            if after is not None:
                await after.done.wait()
            blob_url = connection.url("blobs", self.digest)
            await self._prepare(connection, blob_url)
            direct = await self._resolve(connection, blob_url)
            await self._download(connection, direct)
            await asyncio.to_thread(self._finish)
        except asyncio.CancelledError:
            self.error = RegistryError("download cancelled")
            raise
        except DiskFull as err:
            self._discard()
            self.error = err
        except Exception as err:  # noqa: BLE001 - every failure reaches the waiting pulls
            self.error = err
        finally:
            self.done.set()
            self._on_finished(self)

    async def _prepare(self, connection: Connection, blob_url: str) -> None:
        saved = await asyncio.to_thread(_load_parts, self.partial)
        if saved is not None:
            self.parts = saved
            self.total = sum(part.size for part in saved)
            log.info("resuming download digest=%s completed=%d total=%d", self.digest, self.completed, self.total)
            return
        response = await connection.send("HEAD", blob_url, allow=_REDIRECTS)
        if response.status_code in _REDIRECTS and "location" in response.headers:
            target = response.url.join(response.headers["location"])
            response = await connection.send("HEAD", target)
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            raise RegistryError(f"registry gave no size for blob {self.digest}")
        self.total = int(length)
        self.parts = plan_parts(self.total, self.tuning.part_size(self.total))
        await asyncio.to_thread(self._start_fresh)

    def _start_fresh(self) -> None:
        self._remove_part_files()
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        with self.partial.open("wb"):
            pass
        for part in self.parts:
            self._save(part)

    async def _resolve(self, connection: Connection, blob_url: str) -> httpx.URL:
        """Where the bytes are served: the first redirect to another host, else the registry itself.

        A stock registry answers the GET itself with 200 and no ``Location`` (ollama#7244):
        the blob URL is then the direct URL. ``Range: bytes=0-0`` keeps that answer to one byte.
        """
        deadline = time.monotonic() + self.tuning.resolve_seconds
        attempt = 0
        while True:
            try:
                return await self._follow(connection, httpx.URL(blob_url))
            except NotFound:
                raise
            except RegistryError as err:
                attempt += 1
                if time.monotonic() >= deadline:
                    raise
                delay = min(attempt * attempt * 0.01, 10.0)
                log.info("resolving blob url failed, retrying error=%s delay=%.2fs", err, delay)
                await asyncio.sleep(delay)

    async def _follow(self, connection: Connection, url: httpx.URL) -> httpx.URL:
        for _hop in range(10):
            response = await connection.send("GET", url, headers={"Range": "bytes=0-0"}, stream=True, allow=_REDIRECTS)
            await response.aclose()
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS:
                if not location:
                    raise RegistryError(f"{response.status_code}: redirect without a Location")
                target = url.join(location)
                if target.netloc.lower() != url.netloc.lower():
                    return target
                url = target
                continue
            return url.join(location) if location else url
        raise RegistryError("maximum redirects exceeded (10) for directURL")

    async def _download(self, connection: Connection, direct: httpx.URL) -> None:
        fd = await asyncio.to_thread(os.open, self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        hashing: asyncio.Task[None] | None = None
        try:
            await asyncio.to_thread(self._reserve, fd)
            limit = asyncio.Semaphore(self.tuning.max_parts)
            hashing = asyncio.create_task(self._hash_while_downloading())
            try:
                async with asyncio.TaskGroup() as group:
                    for part in self.parts:
                        if part.start < part.stop:
                            group.create_task(self._part_with_retries(connection, direct, part, fd, limit))
                await hashing
            except* Exception as failure:
                # A full disk is the failure to report: the others (cut parts) follow from it.
                errors = failure.exceptions
                raise next((err for err in errors if isinstance(err, DiskFull)), errors[0]) from None
        finally:
            if hashing is not None:
                hashing.cancel()
            os.close(fd)
            for part in self.parts:
                self._save(part)

    def _written_prefix(self) -> int:
        """How many bytes from the start of the blob are on disk without a gap."""
        for part in self.parts:
            if part.start < part.stop:
                return part.start
        return self.total

    async def _hash_while_downloading(self) -> None:
        """Hash the blob's complete prefix as it grows, so little is left to read once the last part lands."""
        # Unbuffered reads at explicit offsets: a buffered reader would read ahead into bytes not yet written.
        with self.partial.open("rb", buffering=0) as handle:
            while self._hashed < self.total:
                ready = self._written_prefix()
                if ready > self._hashed:
                    size = min(ready - self._hashed, 4 << 20)
                    data = await asyncio.to_thread(os.pread, handle.fileno(), size, self._hashed)
                    if not data:
                        raise RegistryError(f"{self.partial} is shorter than its written parts")
                    self._sha.update(data)
                    self._hashed += len(data)
                elif any(part.start < part.stop for part in self.parts):
                    await asyncio.sleep(0.05)
                else:
                    return

    def _reserve(self, fd: int) -> None:
        """Claim the blob's disk space up front, so a full disk fails before any download."""
        try:
            os.posix_fallocate(fd, 0, self.total)
        except OSError as err:
            if _is_disk_full(err):
                raise DiskFull(str(self.partial)) from None
            # A filesystem without fallocate: writes will find out.

    async def _part_with_retries(
        self, connection: Connection, direct: httpx.URL, part: Part, fd: int, limit: asyncio.Semaphore
    ) -> None:
        async with limit:
            failures = 0
            while part.start < part.stop:
                try:
                    await self._fetch(connection, direct, part, fd)
                except (DiskFull, NotFound):
                    raise
                except httpx.TimeoutException:
                    log.info("%s part %d stalled; retrying", self.digest[7:19], part.n)
                except (httpx.HTTPError, RegistryError) as err:
                    failures += 1
                    if failures >= self.tuning.max_retries:
                        raise RegistryError(f"max retries exceeded: {err}") from None
                    delay = self.tuning.retry_base_seconds * 2 ** (failures - 1)
                    log.info("%s part %d attempt %d failed: %s, retrying in %.1fs", self.digest[7:19], part.n,
                             failures, err or err.__class__.__name__, delay)  # fmt: skip
                    await asyncio.sleep(delay)
                finally:
                    self._save(part)

    async def _fetch(self, connection: Connection, direct: httpx.URL, part: Part, fd: int) -> None:
        headers = {"Range": f"bytes={part.start}-{part.stop - 1}", **connection.auth_headers(direct)}
        timeout = httpx.Timeout(self.tuning.stall_seconds, connect=30.0)
        async with connection.http.stream("GET", direct, headers=headers, timeout=timeout) as response:
            if response.status_code == 401 and connection.same_host(direct):
                # A registry token outlived (Docker Hub's last five minutes): renew it, then retry the part.
                await connection.auth.answer(response.headers.get("WWW-Authenticate", ""))
            if response.status_code not in (200, 206):
                body = (await response.aread()).decode(errors="replace").strip()
                raise RegistryError(f"{response.status_code}: {body}")
            skip = part.start if response.status_code == 200 else 0  # the server ignored the range
            pending = bytearray()
            async for chunk in response.aiter_bytes():
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                pending += chunk[: part.stop - part.start - len(pending)]
                if len(pending) >= _WRITE_SIZE or part.start + len(pending) >= part.stop:
                    await self._write(fd, part, bytes(pending))
                    pending.clear()
                    if part.start >= part.stop:
                        return
            if pending:
                await self._write(fd, part, bytes(pending))
        if part.start < part.stop:
            raise RegistryError(f"part {part.n} ended early at {part.start} of {part.stop}")

    async def _write(self, fd: int, part: Part, data: bytes) -> None:
        try:
            await asyncio.to_thread(_write_all, fd, data, part.start)
        except OSError as err:
            if _is_disk_full(err):
                raise DiskFull(str(self.partial)) from None
            raise
        part.completed += len(data)
        self._save(part)  # after every write: a killed server re-fetches at most one write per part

    def _part_file(self, part: Part) -> Path:
        return self.partial.with_name(f"{self.partial.name}-{part.n}")

    def _save(self, part: Part) -> None:
        with contextlib.suppress(OSError):
            self._part_file(part).write_text(json.dumps(part.to_json()))

    def _part_files(self) -> Iterator[Path]:
        return self.partial.parent.glob(self.partial.name + "-*")

    def _remove_part_files(self) -> None:
        for path in self._part_files():
            path.unlink(missing_ok=True)

    def _discard(self) -> None:
        self._remove_part_files()
        self.partial.unlink(missing_ok=True)

    def _finish(self) -> None:
        """Check the sha256 and move the blob into place; a mismatch deletes what was fetched."""
        with self.partial.open("rb") as handle:
            handle.seek(self._hashed)
            while chunk := handle.read(4 << 20):
                self._sha.update(chunk)
            os.fsync(handle.fileno())
        actual = "sha256:" + self._sha.hexdigest()
        if actual != self.digest.lower():
            self._discard()
            raise RegistryError(f"digest mismatch, file must be downloaded again: want {self.digest}, got {actual}")
        self._remove_part_files()
        os.chmod(self.partial, 0o644)
        os.replace(self.partial, self.path)
        fsync_directory(self.path.parent)


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class Downloads:
    """The blob downloads in flight in this server, one per digest, shared by every pull that needs it."""

    def __init__(self, tuning: TransferTuning | None = None) -> None:
        self.tuning = tuning or TransferTuning()
        self._active: dict[str, BlobDownload] = {}
        self._stopping: dict[str, BlobDownload] = {}

    def join(self, blobs: BlobStore, digest: str, connection: Connection) -> BlobDownload:
        """The download of ``digest``, started now unless one is running; call ``release`` when done."""
        key = normalize_digest(digest).lower()
        download = self._active.get(key)
        if download is None:
            download = BlobDownload(blobs, digest, self.tuning, self._forget)
            self._active[key] = download
            download.start(connection, after=self._stopping.get(key))
        download.acquire()
        return download

    def _forget(self, download: BlobDownload) -> None:
        key = download.digest.lower()
        if self._active.get(key) is download:
            del self._active[key]
        if download.done.is_set() or self._stopping.get(key) is download:
            self._stopping.pop(key, None)
        else:
            self._stopping[key] = download
