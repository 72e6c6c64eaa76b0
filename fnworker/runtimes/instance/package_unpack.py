"""Unpacking a function package (a .zip with its ``deps`` wheels, or a .whl) within its
limits, and the shared tree that lets every instance of one package version use a
single unpacked copy. Does file I/O.

The worker unpacks a package version once, into ``unpacked/`` beside the stored
package (files read-only), and gives each instance start a tree of hard links to it
at ``shared_tree_of(package copy)``: no data is copied, so parallelism N costs one
unpacked copy plus N trees of directory entries. A new version is unpacked into its
own folder, so an update never changes the files of a running instance. When that
tree is absent (a process restart removed it, the disk cannot hard-link, or the
worker could not unpack), the loader unpacks the package itself, within the same
limits.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

from fnworker.runtimes.instance.package_layout import PackageLayout, layout_of, package_kind
from fnworker.runtimes.instance.package_limits import UnpackBudget, extract_bounded
from fnworker.scheduler.model.instances import PackageLimits

DEPS_SITE = ".deps-site"
SHARED_SUFFIX = "-shared"


def shared_tree_of(package_path: Path) -> Path:
    """Where an instance start finds its tree of the package's unpacked files (a name
    the process runtime's clean-up of ``.{name}.*`` leftovers never matches)."""
    return package_path.parent / f".{package_path.name}{SHARED_SUFFIX}"


def extract_package(
    package_path: Path, target: Path, layout: PackageLayout, limits: PackageLimits
) -> None:
    """Extract the archive into ``target`` and its ``deps`` wheels into
    ``target/.deps-site``, all counted against one budget (PackageError past it)."""
    budget = UnpackBudget(limits, package_path.name)
    with zipfile.ZipFile(package_path) as archive:
        extract_bounded(archive, target, budget)
    if layout.deps:
        for wheel in sorted((target / layout.deps).glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                extract_bounded(archive, target / DEPS_SITE, budget)


def make_read_only(tree: Path) -> None:
    """Clear the write bits of every file under ``tree`` (folders stay writable, so the
    tree can still be deleted)."""
    for file in tree.rglob("*"):
        if file.is_file() and not file.is_symlink():
            mode = file.stat().st_mode
            file.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def link_tree(source: Path, target: Path) -> None:
    """Recreate ``source``'s folders under ``target`` with hard links to its files
    (a copy where the disk cannot link)."""
    for folder, _, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            original = Path(folder) / name
            try:
                os.link(original, target / relative / name)
            except OSError:
                shutil.copy2(original, target / relative / name)


def archive_layout(package_path: Path) -> PackageLayout | None:
    """The layout of a .zip or .whl package, None for a single .py file."""
    kind = package_kind(package_path)
    if kind == "py":
        return None
    with zipfile.ZipFile(package_path) as archive:
        return layout_of(kind, archive.namelist())


def unpack_once(package_path: Path, target: Path, limits: PackageLimits) -> bool:
    """Unpack an archive package into ``target`` (read-only files) unless it is there
    already; False for a .py package. Unpacks into a sibling first and renames, so a
    reader never sees half a tree; PackageError (or a zip error) when it cannot."""
    if target.is_dir():
        return True
    layout = archive_layout(package_path)
    if layout is None:
        return False
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}-{id(target)}")
    try:
        extract_package(package_path, partial, layout, limits)
        make_read_only(partial)
        partial.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True
