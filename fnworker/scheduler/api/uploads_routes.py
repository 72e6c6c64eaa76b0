"""Pulsar's ``POST /admin/v3/functions/upload`` and ``GET /admin/v3/functions/download
?path=...``: a super user stores a file under a path of its choosing and reads it back.
Does network and disk I/O (disk on worker threads).

Where: ``{stateDirectory}/uploads/{sha256 of the path}``, on the worker that received
the upload (Pulsar keeps it in BookKeeper; fnworker's shared package store is addressed
by function, with no index by path). Naming the file by the hash of its path means no
user path ever reaches the disk (no traversal, no file-versus-folder clash). A write
goes to the scratch folder first, is fsynced, then renamed into place, so a killed
worker leaves either the old file or the new one. The file's size is limited like a
package (``maxPackageSizeBytes``), the path to ``MAX_PATH_CHARS`` characters.
Who: super users only, as in Pulsar (the route has no tenant, so the access policy
asks for a super user; fnworker/scheduler/security/policy.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Final

import anyio.to_thread
from aiohttp import web

from fnworker.scheduler.api.functions_routes import MAX_PACKAGE_BYTES
from fnworker.scheduler.api.multipart import receive_form
from fnworker.scheduler.api.replies import empty_reply
from fnworker.scheduler.api.route_table import BINARY, FormPart, Route
from fnworker.scheduler.model.errors import ApiError, bad_request, unavailable

UPLOADS_DIR = web.AppKey("fnworker_uploads_dir", Path)
"""Where uploaded files are kept (``{stateDirectory}/uploads``; set by the worker)."""
MAX_PATH_CHARS: Final = 1024
MAX_UPLOADED_FILES: Final = 1000
"""How many paths one worker keeps (replacing a stored path is always allowed), so
uploads cannot fill the state directory's disk: at most this many x maxPackageSizeBytes."""
_SEGMENT = r"(?:[^/.\x00-\x1f][^/\x00-\x1f]*|\.[^/.\x00-\x1f][^/\x00-\x1f]*|\.\.[^/\x00-\x1f]+)"
PATH_PATTERN: Final = f"^{_SEGMENT}(?:/{_SEGMENT})*$"
"""A relative path: segments joined by '/', none empty, '.' or '..', no control characters."""
_PATH = re.compile(PATH_PATTERN)
PATH_SCHEMA: Final = {"type": "string", "pattern": PATH_PATTERN, "maxLength": MAX_PATH_CHARS}


def checked_path(raw: str | None) -> str:
    """The path a request names, or a 400 saying what a valid one looks like."""
    if raw is None or raw == "":
        raise bad_request("path is missing or empty; expected a relative path such as a/b/file.py")
    shown = raw[:80]
    if len(raw) > MAX_PATH_CHARS:
        raise bad_request(
            f"path '{shown}...' has {len(raw)} characters; expected at most {MAX_PATH_CHARS}"
        )
    if raw.startswith("/"):
        raise bad_request(f"path '{shown}' is absolute; expected a relative path such as a/b/file")
    if _PATH.fullmatch(raw) is None:
        raise bad_request(
            f"path '{shown}' is not valid; expected segments joined by '/', none empty, "
            "'.' or '..', without control characters"
        )
    return raw


def stored_file(request: web.Request, path: str) -> Path:
    """The file holding ``path``'s content on this worker."""
    root = request.app.get(UPLOADS_DIR)
    if root is None:
        raise unavailable(
            "this worker keeps no uploaded files; expected a worker with a state directory"
        )
    return root / hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def _commit(source: Path, target: Path) -> None:
    """Make ``source`` durable and put it at ``target`` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as stream:
        os.fsync(stream.fileno())
    staged = target.with_name(f".{target.name}.partial")
    shutil.move(source, staged)  # a rename within the state directory
    os.replace(staged, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


async def upload_file(request: web.Request) -> web.Response:
    """Store the ``data`` part under the ``path`` part (200, no body)."""
    async with receive_form(
        request, file_parts=("data",), max_file_bytes=request.app[MAX_PACKAGE_BYTES]
    ) as form:
        path = checked_path(form.text("path"))
        data = form.files.get("data")
        if data is None:
            raise bad_request(f"part 'data' is missing; expected the file to store at '{path}'")
        target = stored_file(request, path)
        await anyio.to_thread.run_sync(_check_room, target)
        await anyio.to_thread.run_sync(_commit, data.path, target)
    return empty_reply()


def _check_room(target: Path) -> None:
    """A 400 when a new path would make the worker keep more than MAX_UPLOADED_FILES."""
    if target.exists() or not target.parent.is_dir():
        return
    kept = sum(1 for entry in os.scandir(target.parent) if not entry.name.startswith("."))
    if kept >= MAX_UPLOADED_FILES:
        raise bad_request(
            f"this worker already keeps {kept} uploaded files, the limit is "
            f"{MAX_UPLOADED_FILES}; expected an upload to a path stored before"
        )


async def download_file(request: web.Request) -> web.StreamResponse:
    """The bytes stored under ``?path=``; 404 when nothing is."""
    path = checked_path(request.query.get("path"))
    target = stored_file(request, path)
    if not await anyio.to_thread.run_sync(target.is_file):
        raise ApiError(
            404, f"no file is stored at path '{path[:80]}'; expected a path uploaded before"
        )
    return web.FileResponse(target, headers={"Content-Type": BINARY})


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/admin/v3/functions/upload",
        handler=upload_file,
        summary="Store a file at a path (super users)",
        form=(
            FormPart(
                name="data",
                schema=bytes,
                required=True,
                description="The file to store (at most maxPackageSizeBytes).",
                file_name="file.bin",
            ),
            FormPart(
                name="path",
                schema=str,
                required=True,
                pattern=PATH_PATTERN,
                max_length=MAX_PATH_CHARS,
                description="Where to store it: a relative path ('/'-separated, no '..').",
            ),
        ),
        errors=(400, 413, 503),
    ),
    Route(
        method="GET",
        path="/admin/v3/functions/download",
        handler=download_file,
        media=BINARY,
        summary="Read a file stored by upload (super users)",
        required_query={"path": PATH_SCHEMA},
        errors=(400, 404, 503),
    ),
]
