"""Files uploaded by path (``POST /admin/v3/functions/upload``, ``GET
/admin/v3/functions/download?path=``), shared by the whole fleet as Pulsar shares them
through BookKeeper. Does disk I/O (on worker threads) and calls the backend.

Storing: the file is fsynced and renamed into this worker's folder, then stored
through the backend (chunks on the packages topic and a record on the uploads index,
coordination/pulsar_uploads.py); only then is the upload answered. Reading: the index
names the latest content of the path; this worker's copy is served when it has that
content, else the content is fetched (its SHA-256 checked), kept as the new copy and
served. A copy is named ``{sha256 of the path}.{sha256 of the content}``, so no user
path ever reaches the disk and a stale copy is never served. A file of the earlier
worker-local store (``{sha256 of the path}`` alone) is still served while the index
has no record of its path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import anyio
import anyio.to_thread

from fnworker.coordination.backend import CoordinationBackend
from fnworker.coordination.uploads import UploadRecord
from fnworker.scheduler.model.errors import ApiError, bad_request, not_found, unavailable

MAX_UPLOADED_PATHS: Final = 1000
"""How many distinct paths the fleet keeps (replacing a stored path is always allowed),
so uploads cannot fill the broker's or a worker's disk: at most this many x
maxPackageSizeBytes per worker."""
INDEX_TIMEOUT: Final = 30.0
"""How long reading the uploads index, or fetching one upload, may take."""


class UploadService:
    """Stores uploaded files for the fleet and finds them again on any worker."""

    def __init__(self, backend: CoordinationBackend, max_paths: int = MAX_UPLOADED_PATHS):
        self.backend = backend
        self.max_paths = max_paths

    async def store(self, root: Path, path: str, data: Path) -> None:
        """Make ``data`` the content of ``path`` for every worker (``root``: this
        worker's copies); 400 past the path limit, 503 when the broker fails."""
        sha256 = await anyio.to_thread.run_sync(file_sha256, data)
        check_room(await self.index(), path, self.max_paths)
        kept = copy_of(root, path, sha256)
        existed = await anyio.to_thread.run_sync(kept.exists)
        await anyio.to_thread.run_sync(commit, data, kept)
        try:
            with anyio.fail_after(INDEX_TIMEOUT):
                await self.backend.store_upload(path, kept, sha256)
        except Exception as error:
            if not existed:
                kept.unlink(missing_ok=True)
            raise unavailable(
                f"the upload to path '{path[:80]}' could not be stored for the fleet "
                f"({describe(error)}); nothing was stored: retry once the broker answers"
            ) from None
        await anyio.to_thread.run_sync(remove_other_copies, root, path, kept)

    async def file_for(self, root: Path, path: str) -> Path:
        """This worker's copy of the latest content of ``path`` (fetched when it has
        none); 404 when nothing was uploaded there."""
        record = (await self.index()).get(path)
        if record is None:
            earlier = root / path_key(path)
            if await anyio.to_thread.run_sync(earlier.is_file):
                return earlier
            raise not_found(
                f"no file is stored at path '{path[:80]}'; expected a path uploaded before"
            )
        kept = copy_of(root, path, record.sha256)
        if not await anyio.to_thread.run_sync(kept.is_file):
            data = await self.fetch(record)
            await anyio.to_thread.run_sync(write_atomically, kept, data)
            await anyio.to_thread.run_sync(remove_other_copies, root, path, kept)
        return kept

    async def index(self) -> Mapping[str, UploadRecord]:
        """The uploads index as the broker holds it now; 503 when it cannot be read."""
        try:
            with anyio.fail_after(INDEX_TIMEOUT):
                return await self.backend.uploads()
        except Exception as error:
            raise unavailable(
                f"the fleet's uploads index could not be read ({describe(error)}); "
                "expected a reachable broker: retry"
            ) from None

    async def fetch(self, record: UploadRecord) -> bytes:
        """The content of one upload, checked against its SHA-256; 503 otherwise."""
        try:
            with anyio.fail_after(INDEX_TIMEOUT):
                data = await self.backend.fetch_upload(record)
        except Exception as error:
            raise unavailable(
                f"the file at path '{record.path[:80]}' could not be read from the broker "
                f"({describe(error)}); retry"
            ) from None
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise unavailable(
                f"the file at path '{record.path[:80]}' read from the broker does not match "
                "its SHA-256; upload it again"
            )
        return data


def check_room(index: Mapping[str, UploadRecord], path: str, max_paths: int) -> None:
    """A 400 when ``path`` is new and the fleet already keeps ``max_paths`` paths."""
    if path not in index and len(index) >= max_paths:
        raise bad_request(
            f"the fleet already keeps {len(index)} uploaded paths, the limit is "
            f"{max_paths}; expected an upload to a path stored before"
        )


def describe(error: Exception) -> str:
    """A short account of a failure for a reason sentence."""
    if isinstance(error, ApiError):
        return error.reason
    if isinstance(error, TimeoutError):
        return f"no answer within {INDEX_TIMEOUT:.0f} s"
    return str(error) or type(error).__name__


def path_key(path: str) -> str:
    """The name a path's files carry on disk: the SHA-256 of the path."""
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def copy_of(root: Path, path: str, sha256: str) -> Path:
    """The file holding content ``sha256`` of ``path`` on this worker."""
    return root / f"{path_key(path)}.{sha256}"


def file_sha256(file: Path) -> str:
    """The SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def commit(source: Path, target: Path) -> None:
    """Make ``source`` durable and put it at ``target`` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as stream:
        os.fsync(stream.fileno())
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        shutil.move(source, staged)  # a rename within the state directory
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    sync_folder(target.parent)


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` durably: a reader sees no file or the whole file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with staged.open("wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    sync_folder(target.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a rename into it survives a crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_other_copies(root: Path, path: str, keep: Path) -> None:
    """Remove this worker's copies of earlier contents of ``path``."""
    key = path_key(path)
    for entry in os.scandir(root):
        if (entry.name == key or entry.name.startswith(f"{key}.")) and entry.name != keep.name:
            Path(entry.path).unlink(missing_ok=True)
