"""Pulsar's ``POST /admin/v3/functions/upload`` and ``GET /admin/v3/functions/download``:
a super user stores a file under a path of its choosing and any worker of the fleet
reads it back (``?path=``); ``?tenant=&namespace=&function=`` answers a function's
stored package, as ``.../{tenant}/{namespace}/{function}/download`` does. Does network
I/O (the request); the admin's UploadService does the storing
(fnworker/scheduler/admin/upload_service.py, docs/rest-api.md).

Who: an upload needs a super user, as in Pulsar. A download is authorized as Pulsar's
ComponentImpl does (fnworker/scheduler/security/policy.py ``download_scope``): the
function form like the function's other endpoints, a path of four segments
(``tenant/namespace/function/file``, where Pulsar keeps packages) for that namespace,
any other path for super users. Limits: the file as a package (``maxPackageSizeBytes``),
the path ``MAX_PATH_CHARS`` characters, the fleet ``MAX_UPLOADED_PATHS`` paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from aiohttp import hdrs, web

from fnworker.scheduler.admin.upload_service import MAX_UPLOADED_PATHS
from fnworker.scheduler.api.functions_routes import MAX_PACKAGE_BYTES
from fnworker.scheduler.api.multipart import receive_form
from fnworker.scheduler.api.replies import empty_reply
from fnworker.scheduler.api.route_table import ADMIN, BINARY, FormPart, Route
from fnworker.scheduler.model.errors import bad_request, unavailable
from fnworker.scheduler.model.names import check_function_name

__all__ = ["MAX_UPLOADED_PATHS", "ROUTES", "UPLOADS_DIR"]

UPLOADS_DIR = web.AppKey("fnworker_uploads_dir", Path)
"""Where this worker keeps its copies of uploaded files (``{stateDirectory}/uploads``)."""
MAX_PATH_CHARS: Final = 1024
_SEGMENT = r"(?:[^/.\x00-\x1f][^/\x00-\x1f]*|\.[^/.\x00-\x1f][^/\x00-\x1f]*|\.\.[^/\x00-\x1f]+)"
PATH_PATTERN: Final = f"^{_SEGMENT}(?:/{_SEGMENT})*$"
"""A relative path: segments joined by '/', none empty, '.' or '..', no control characters."""
_PATH = re.compile(PATH_PATTERN)
PATH_SCHEMA: Final = {"type": "string", "pattern": PATH_PATTERN, "maxLength": MAX_PATH_CHARS}
FUNCTION_QUERY: Final = ("tenant", "namespace", "function")


def checked_path(raw: str | None) -> str:
    """The path a request names, or a 400 saying what a valid one looks like."""
    if raw is None or raw == "":
        raise bad_request(
            "path is missing or empty; expected a relative path such as a/b/file.py "
            "(or tenant, namespace and function to download a function's package)"
        )
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


def uploads_root(request: web.Request) -> Path:
    """Where this worker keeps its copies; 503 on a worker without a state directory."""
    root = request.app.get(UPLOADS_DIR)
    if root is None:
        raise unavailable(
            "this worker keeps no uploaded files; expected a worker with a state directory"
        )
    return root


async def upload_file(request: web.Request) -> web.Response:
    """Store the ``data`` part under the ``path`` part for the fleet (200, no body)."""
    root = uploads_root(request)
    async with receive_form(
        request, file_parts=("data",), max_file_bytes=request.app[MAX_PACKAGE_BYTES]
    ) as form:
        path = checked_path(form.text("path"))
        data = form.files.get("data")
        if data is None:
            raise bad_request(f"part 'data' is missing; expected the file to store at '{path}'")
        await request.app[ADMIN].store_upload(root, path, data.path)
    return empty_reply()


async def download_file(request: web.Request) -> web.StreamResponse:
    """The bytes stored under ``?path=`` (404 when nothing is), or the package of the
    function ``?tenant=&namespace=&function=`` names."""
    query = request.query
    if "path" not in query and any(name in query for name in FUNCTION_QUERY):
        return await function_package(request, *function_names(query))
    path = checked_path(query.get("path"))
    file = await request.app[ADMIN].uploaded_file(uploads_root(request), path)
    return web.FileResponse(file, headers={hdrs.CONTENT_TYPE: BINARY})


def function_names(query: Mapping[str, str]) -> tuple[str, str, str]:
    """tenant, namespace and function from the query, checked."""
    missing = [name for name in FUNCTION_QUERY if not query.get(name)]
    if missing:
        raise bad_request(
            f"query parameter '{missing[0]}' is missing or empty; expected tenant, namespace "
            "and function to download a function's package (or path for an uploaded file)"
        )
    tenant, namespace, name = (query[name] for name in FUNCTION_QUERY)
    check_function_name(tenant, namespace, name)
    return tenant, namespace, name


async def function_package(
    request: web.Request, tenant: str, namespace: str, name: str
) -> web.StreamResponse:
    """The function's stored package file, as ``.../{function}/download`` answers it
    (fetched from the broker when this worker holds no copy)."""
    path, file_name = await request.app[ADMIN].package_file(tenant, namespace, name)
    disposition = f'attachment; filename="{file_name}"'
    return web.FileResponse(
        path, headers={hdrs.CONTENT_DISPOSITION: disposition, hdrs.CONTENT_TYPE: BINARY}
    )


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/admin/v3/functions/upload",
        handler=upload_file,
        summary="Store a file at a path for the fleet (super users)",
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
        summary=(
            "Read a file stored by upload (?path=), or a function's package "
            "(?tenant=&namespace=&function=)"
        ),
        query=("path", *FUNCTION_QUERY),
        errors=(400, 404, 503),
    ),
]
