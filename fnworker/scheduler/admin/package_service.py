"""The admin's package work: fetch or take the request's package, check it without
running it, store it locally and through the backend, and find a stored one again.
Blocking file work runs in worker threads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio

from fnworker.coordination.backend import CoordinationBackend
from fnworker.runtimes.instance.loader import PackageError, check_package
from fnworker.scheduler.admin.package_fetch import fetch_package, file_name_of
from fnworker.scheduler.admin.package_store import PackageStore
from fnworker.scheduler.model.admin_records import PackageSource
from fnworker.scheduler.model.errors import bad_request, conflict, not_found
from fnworker.scheduler.model.instances import PackageLimits
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, PackageRef


class PackageService:
    """Stores the packages requests bring and hands stored ones back."""

    def __init__(
        self,
        *,
        backend: CoordinationBackend,
        store: PackageStore,
        scratch_dir: Path,
        max_package_bytes: int,
        limits: PackageLimits,
    ) -> None:
        self.backend = backend
        self.store = store
        self.scratch_dir = scratch_dir
        self.max_package_bytes = max_package_bytes
        self.limits = limits

    async def store_package(
        self, fqfn: Fqfn, version: int, source: PackageSource, config: FunctionConfig
    ) -> PackageRef | None:
        """Fetch the request's package, check the class is in it, and store it."""
        with tempfile.TemporaryDirectory(dir=self.scratch_dir) as scratch:
            located = await self.locate(source, config, Path(scratch))
            if located is None:
                return None
            path, file_name = located
            await anyio.to_thread.run_sync(
                check_stored, path, config.class_name, file_name, self.limits
            )
            ref = await anyio.to_thread.run_sync(self.store.save, fqfn, version, path, file_name)
            return await self.backend.store_package(ref, self.store.path_of(ref))

    async def locate(
        self, source: PackageSource, config: FunctionConfig, scratch: Path
    ) -> tuple[Path, str] | None:
        """The local file holding the request's package and its original name."""
        if source.upload is not None:
            return source.upload.path, source.upload.file_name
        url = source.url or (config.py if config.py and "://" in config.py else None)
        if url is None:
            return None
        name = file_name_of(url)
        return await fetch_package(url, scratch / "package", self.max_package_bytes), name

    async def check_kept(self, record: FunctionRecord, class_name: str | None) -> None:
        """For an update without a package: make sure this worker holds the record's
        stored package and that it defines ``class_name`` (400 otherwise)."""
        assert record.package is not None
        stored = record.package
        await self.hold_stored(record)
        await anyio.to_thread.run_sync(
            check_stored,
            self.store.path_of(stored),
            class_name,
            stored.original_file_name,
            self.limits,
        )

    async def hold_stored(self, record: FunctionRecord) -> None:
        """Make sure this worker has the record's stored package: fetch it when another
        worker stored it; 409 when it is gone (a concurrent update replaced it)."""
        assert record.package is not None
        path = self.store.path_of(record.package)
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            await self.backend.fetch_package(record.package, path)
        except Exception as error:
            raise conflict(
                f"the package of {record.fqfn} version {record.version} is no longer stored "
                f"({error}); a concurrent update replaced it: reload the function and retry, "
                "or send the package with the update"
            ) from None

    def package_path(self, record: FunctionRecord) -> tuple[Path, str]:
        """The stored package of a function and its original file name (404 without one)."""
        if record.package is None:
            raise not_found(f"Function {record.fqfn} has no stored package")
        return self.store.path_of(record.package), record.package.original_file_name

    def prune(self, fqfn: Fqfn) -> None:
        """Remove every stored package of a deleted function."""
        self.store.prune(fqfn, keep=None)


PACKAGE_MANAGEMENT_SCHEMES = ("function", "sink", "source")
"""URL schemes of Pulsar's packages service (``function://tenant/ns/name@version``)."""


def package_name(source: PackageSource, config: FunctionConfig) -> str | None:
    """The file name of the package a request brings, if any; a package-management URL
    (Pulsar's packages service, which fnworker does not use) is a 400."""
    for url in (source.url, config.py):
        check_not_package_management(url)
    if source.upload is not None:
        return source.upload.file_name
    if source.url:
        return file_name_of(source.url)
    return file_name_of(config.py) if config.py else None


def check_not_package_management(url: str | None) -> None:
    """400 for a ``function://``, ``sink://`` or ``source://`` package URL."""
    scheme, separator, _ = (url or "").partition("://")
    if separator and scheme.lower() in PACKAGE_MANAGEMENT_SCHEMES:
        raise bad_request(
            f"package url '{url}' is a package-management url, which needs Pulsar's packages "
            "service; fnworker does not use that service, so expected a data file part or a "
            "file://, http:// or https:// url of a .py, .zip or .whl file"
        )


def brings_package(source: PackageSource, config: FunctionConfig) -> bool:
    """Whether a request carries a new package (an upload, a url part, or a url in py)."""
    return source.upload is not None or bool(source.url) or "://" in (config.py or "")


def existing_name(record: FunctionRecord) -> str | None:
    """The file name of a function's stored package."""
    return record.package.original_file_name if record.package else None


def check_stored(path: Path, class_name: str | None, file_name: str, limits: PackageLimits) -> None:
    """Answer 400 when the package is over a limit or does not define ``class_name``
    (without running it)."""
    try:
        check_package(path, class_name or "", file_name, limits)
    except PackageError as error:
        raise bad_request(str(error)) from error
