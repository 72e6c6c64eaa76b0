"""Keeps function packages on the worker's disk, under the state directory, and
hands each instance start its own copy. Does file I/O.

Layout: ``{root}/{tenant}/{namespace}/{name}/v{version}-{sha8}/{file}``, and beside
it ``unpacked/`` (a .zip or .whl unpacked once, read-only, shared by every instance
of that version through hard links; fnworker/runtimes/instance/package_unpack.py). Standalone
mode and a single worker need nothing more; a fleet stores packages in Pulsar
(see the coordination backend) and uses this store as each worker's local cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from fnworker.runtimes.instance.package_check import ARCHIVE_ERRORS
from fnworker.runtimes.instance.package_layout import PackageError
from fnworker.runtimes.instance.package_unpack import link_tree, shared_tree_of, unpack_once
from fnworker.scheduler.model.errors import bad_request
from fnworker.scheduler.model.instances import PackageLimits
from fnworker.scheduler.model.names import PACKAGE_SUFFIXES
from fnworker.scheduler.model.records import PackageRef, split_fqfn

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_file_name(file_name: str) -> str:
    """The base name of an uploaded file, reduced to characters safe on any disk."""
    base = _UNSAFE.sub("_", os.path.basename(file_name.replace("\\", "/")))
    if not base.lower().endswith(PACKAGE_SUFFIXES) or base.startswith("."):
        raise bad_request(
            f"package file name '{file_name}' is not valid; expected a .py, .zip or .whl file"
        )
    return base


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SAVE_ATTEMPTS = 3
"""How often ``save`` makes its folder again when a concurrent delete removed it."""


class PackageStore:
    """Function packages under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.unpack_failed: set[str] = set()
        """Packages (by sha256) that could not be unpacked within the limits."""

    def function_dir(self, fqfn: str) -> Path:
        """The folder holding every stored version of one function's package."""
        return self.root.joinpath(*split_fqfn(fqfn))

    def save(self, fqfn: str, version: int, source: Path, file_name: str) -> PackageRef:
        """Copy ``source`` into the store as version ``version`` of the function."""
        name = safe_file_name(file_name)
        digest = sha256_of(source)
        folder = self.function_dir(fqfn) / f"v{version}-{digest[:8]}"
        target = folder / name
        for attempt in range(SAVE_ATTEMPTS):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, target)
                break
            except FileNotFoundError:
                # A delete of the same function pruned the folder between mkdir and
                # copy; make it again (the write that follows then meets the delete's
                # version and is refused as a conflict, not a 500).
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
        relative = target.relative_to(self.root).as_posix()
        return PackageRef(
            path=relative, original_file_name=name, sha256=digest, size=target.stat().st_size
        )

    def path_of(self, ref: PackageRef) -> Path:
        """Where a stored package is on disk."""
        return self.root / ref.path

    def copy_for_instance(self, ref: PackageRef, instance_dir: Path) -> Path:
        """Give one instance start its own copy (a hard link where the disk allows)."""
        if instance_dir.exists():
            shutil.rmtree(instance_dir)
        instance_dir.mkdir(parents=True)
        target = instance_dir / ref.original_file_name
        try:
            os.link(self.path_of(ref), target)
        except OSError:
            shutil.copyfile(self.path_of(ref), target)
        return target

    def share_unpacked(self, ref: PackageRef, package_copy: Path, limits: PackageLimits) -> None:
        """Unpack the package version once (beside the stored package) and give the
        instance's copy a tree of hard links to it, so N instances share one unpacked
        copy. Nothing for a .py package; nothing when the package cannot be unpacked
        within ``limits`` (the instance's own loader then reports why in its status)."""
        if ref.sha256 in self.unpack_failed:
            return
        shared = shared_tree_of(package_copy)
        partial = shared.with_name(shared.name + ".partial")
        try:
            if not unpack_once(self.path_of(ref), self.path_of(ref).parent / "unpacked", limits):
                return
            shutil.rmtree(partial, ignore_errors=True)
            link_tree(self.path_of(ref).parent / "unpacked", partial)
            partial.rename(shared)
        except (PackageError, *ARCHIVE_ERRORS):
            self.unpack_failed.add(ref.sha256)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def prune(self, fqfn: str, keep: PackageRef | None) -> None:
        """Remove every stored version of a function except ``keep``."""
        folder = self.function_dir(fqfn)
        if not folder.exists():
            return
        kept = self.path_of(keep).parent if keep else None
        for version_dir in folder.iterdir():
            if version_dir != kept:
                shutil.rmtree(version_dir, ignore_errors=True)
        if kept is None:
            shutil.rmtree(folder, ignore_errors=True)
