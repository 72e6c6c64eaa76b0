"""Reads multipart/form-data request bodies: small text parts into memory, file parts
streamed to a temporary folder that is removed when the request is done. Does I/O
(network and disk); disk writes run on worker threads, never on the event loop.

A urlencoded form is accepted too (text parts only, within the app's
``client_max_size``), as curl's ``--data-urlencode`` sends it.

Size limits: a text part may hold up to 1 MiB, all text parts together 4 MiB; a
file part up to the limit the route passes (the package limit for packages).
Past a limit the answer is 413 naming the part and the limit.
Parts with other names are skipped; a name outside ``PART_NAME`` is a 400.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
import msgspec
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from fnworker.scheduler.api.route_table import UPLOAD_DIR
from fnworker.scheduler.model.admin_records import UploadedPackage
from fnworker.scheduler.model.errors import ApiError, bad_request

URLENCODED = "application/x-www-form-urlencoded"
PART_NAME = "^[-A-Za-z0-9_.]{1,64}$"
"""What a part may be called (parts with other valid names are skipped)."""
_PART_NAME = re.compile(PART_NAME)
TEXT_PART_LIMIT = 1 << 20
TEXT_PARTS_FACTOR = 4  # all text parts together: 4 MiB, however many parts are sent
_CHUNK = 1 << 16
_FLUSH_AT = 1 << 20


class Form(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of one request: text parts by name, file parts saved to disk."""

    texts: dict[str, bytes]
    files: dict[str, UploadedPackage]

    def text(self, name: str) -> str | None:
        """A text part decoded as UTF-8, or None when absent."""
        raw = self.texts.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request(f"part '{name}' is not valid UTF-8 text; expected UTF-8") from None

    def require(self, name: str, what: str) -> bytes:
        """A text part that must be present."""
        raw = self.texts.get(name)
        if raw is None:
            raise bad_request(f"part '{name}' is missing; expected {what}")
        return raw


@asynccontextmanager
async def receive_form(
    request: web.Request, *, file_parts: Collection[str], max_file_bytes: int
) -> AsyncIterator[Form]:
    """Read the whole form; file parts live in a temporary folder until the block ends."""
    if request.content_type == URLENCODED:
        try:
            posted = await request.post()
        except ValueError as error:  # not UTF-8, or not a form
            raise bad_request(f"request body is not a valid urlencoded form ({error})") from None
        for name in posted:
            check_part_name(name)
        yield Form(texts={k: str(v).encode() for k, v in posted.items()}, files={})
        return
    if not request.content_type.startswith("multipart/"):
        raise bad_request(
            f"request body is {request.content_type or 'missing'}; expected multipart/form-data"
        )
    parent = request.app.get(UPLOAD_DIR)
    folder = Path(
        await anyio.to_thread.run_sync(
            partial(tempfile.mkdtemp, prefix="fnworker-upload-", dir=parent)
        )
    )
    try:
        yield await _read_parts(request, folder, file_parts, max_file_bytes)
    finally:
        await anyio.to_thread.run_sync(partial(shutil.rmtree, folder, ignore_errors=True))


async def _read_parts(
    request: web.Request, folder: Path, file_parts: Collection[str], max_file_bytes: int
) -> Form:
    """Every named part of the body, in order; later parts of the same name win."""
    try:
        reader = await request.multipart()
        return await _collect_parts(reader, folder, file_parts, max_file_bytes)
    except (ValueError, AssertionError, HttpProcessingError) as error:  # broken boundary or header
        reason = getattr(error, "message", None) or str(error)
        raise bad_request(f"request body is not valid multipart/form-data ({reason})") from None


async def _collect_parts(
    reader: MultipartReader, folder: Path, file_parts: Collection[str], max_file_bytes: int
) -> Form:
    """Read the parts of a multipart body (aiohttp raises ValueError for broken ones)."""
    texts: dict[str, bytes] = {}
    files: dict[str, UploadedPackage] = {}
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        check_part_name(part.name)
        if part.name in file_parts:
            files[part.name] = await _save_file(
                part, part.name, folder / str(len(files)), max_file_bytes
            )
        else:
            texts[part.name] = await _read_text(part, part.name)
            if sum(map(len, texts.values())) > TEXT_PART_LIMIT * TEXT_PARTS_FACTOR:
                limit = TEXT_PART_LIMIT * TEXT_PARTS_FACTOR
                raise ApiError(413, f"the text parts hold more than {limit} bytes together")
    return Form(texts=texts, files=files)


def check_part_name(name: str) -> None:
    """A 400 for a part whose name no form of this API could use ('' or odd characters)."""
    if _PART_NAME.fullmatch(name) is None:
        raise bad_request(
            f"part name '{name[:64]}' is not valid; expected letters, digits and - _ . "
            "(at most 64 characters)"
        )


async def _read_text(part: BodyPartReader, name: str) -> bytes:
    """A text part, at most TEXT_PART_LIMIT bytes."""
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > TEXT_PART_LIMIT:
            raise _too_large(name, TEXT_PART_LIMIT)
    return bytes(data)


async def _save_file(part: BodyPartReader, name: str, target: Path, limit: int) -> UploadedPackage:
    """Stream a file part to ``target``, at most ``limit`` bytes."""
    out: BinaryIO = await anyio.to_thread.run_sync(target.open, "wb")
    try:
        await _copy_part(part, out, name, limit)
    finally:
        await anyio.to_thread.run_sync(out.close)
    return UploadedPackage(file_name=part.filename or "", path=target)


async def _copy_part(part: BodyPartReader, out: BinaryIO, name: str, limit: int) -> None:
    """Copy a part into an open file, writing about 1 MiB at a time on a thread."""
    buffer = bytearray()
    written = 0
    while chunk := await part.read_chunk(_CHUNK):
        written += len(chunk)
        if written > limit:
            raise _too_large(name, limit)
        buffer += chunk
        if len(buffer) >= _FLUSH_AT:
            await anyio.to_thread.run_sync(out.write, bytes(buffer))
            buffer.clear()
    await anyio.to_thread.run_sync(out.write, bytes(buffer))


def _too_large(name: str, limit: int) -> ApiError:
    """The 413 for a part over its limit."""
    return ApiError(
        413, f"part '{name}' is larger than {limit} bytes; expected at most {limit} bytes"
    )


async def read_file(upload: UploadedPackage) -> bytes:
    """The content of a saved file part (for small files such as trigger values)."""
    return await anyio.to_thread.run_sync(upload.path.read_bytes)
