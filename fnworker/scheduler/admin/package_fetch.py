"""Fetches a function package named by URL (``file://``, ``http://``, ``https://``)
into a local temporary file, within a size limit. Does file and network I/O."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import aiohttp

from fnworker.scheduler.model.errors import ApiError, bad_request

SUPPORTED = "file://, http:// or https://"


def file_name_of(url: str) -> str:
    """The file name a package URL ends with."""
    return Path(unquote(urlparse(url).path)).name


async def fetch_package(url: str, target: Path, max_bytes: int) -> Path:
    """Copy or download the package at ``url`` to ``target`` and return it."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        return copy_local(Path(unquote(urlparse(url).path)), target, max_bytes, url)
    if scheme in ("http", "https"):
        return await download(url, target, max_bytes)
    raise bad_request(f"package url '{url}' is not supported; expected a {SUPPORTED} url")


def copy_local(source: Path, target: Path, max_bytes: int, url: str) -> Path:
    """Copy a package from the worker's own disk."""
    if not source.is_file():
        raise bad_request(f"package url '{url}' names no readable file on the worker")
    if source.stat().st_size > max_bytes:
        raise too_large(url, max_bytes)
    shutil.copyfile(source, target)
    return target


async def download(url: str, target: Path, max_bytes: int) -> Path:
    """Download a package over HTTP(S), refusing more than ``max_bytes``."""
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as reply:
            if reply.status != 200:
                raise bad_request(f"package url '{url}' answered HTTP {reply.status}; expected 200")
            written = 0
            with target.open("wb") as out:
                async for block in reply.content.iter_chunked(1 << 16):
                    written += len(block)
                    if written > max_bytes:
                        raise too_large(url, max_bytes)
                    out.write(block)
    except aiohttp.ClientError as error:
        raise bad_request(f"package url '{url}' could not be fetched: {error}") from error
    return target


def too_large(what: str, max_bytes: int) -> ApiError:
    """413: the package is bigger than the configured limit."""
    return ApiError(413, f"package '{what}' is larger than maxPackageSizeBytes ({max_bytes} bytes)")
