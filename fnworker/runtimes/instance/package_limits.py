"""Bounds on what a function package may hold, and bounded unpacking. The listing
check is pure; ``extract_bounded`` writes files.

A zip's headers say how large each entry is, but they can lie, so both layers apply:
``check_listing`` refuses an archive whose listing is over a limit before anything is
written (registration and instance start), and ``extract_bounded`` counts the bytes it
actually writes and stops at the limit, so a forged header cannot fill the disk either.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from fnworker.runtimes.instance.package_layout import PackageError
from fnworker.scheduler.model.instances import PackageLimits

_BLOCK = 1 << 20


class UnpackBudget:
    """What is left of one package's limits while it (and its dependency wheels) unpack."""

    def __init__(self, limits: PackageLimits, display: str) -> None:
        self.limits = limits
        self.display = display
        self.files = 0
        self.written = 0

    def add_file(self) -> None:
        """Count one more entry; PackageError past ``maxPackageFiles``."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise PackageError(too_many_files(self.display, self.files, self.limits))

    def add_bytes(self, count: int) -> None:
        """Count bytes written; PackageError past ``maxPackageUnpackedBytes``."""
        self.written += count
        if self.written > self.limits.max_unpacked_bytes:
            raise PackageError(
                f"package '{self.display}' unpacks to more than maxPackageUnpackedBytes "
                f"{self.limits.max_unpacked_bytes} bytes (counted while unpacking, whatever "
                "its listing declares); expected a smaller package"
            )


def too_many_files(display: str, count: int, limits: PackageLimits) -> str:
    """The sentence for an archive with more entries than ``maxPackageFiles``."""
    return (
        f"package '{display}' holds {count} files, above maxPackageFiles {limits.max_files}; "
        f"expected at most {limits.max_files} files"
    )


def check_listing(infos: Sequence[zipfile.ZipInfo], limits: PackageLimits, display: str) -> None:
    """Refuse an archive whose entry count or declared unpacked size is over a limit."""
    if len(infos) > limits.max_files:
        raise PackageError(too_many_files(display, len(infos), limits))
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_unpacked_bytes:
        raise PackageError(
            f"package '{display}' unpacks to {declared} bytes, above maxPackageUnpackedBytes "
            f"{limits.max_unpacked_bytes}; expected a package of at most "
            f"{limits.max_unpacked_bytes} bytes unpacked"
        )


def check_module_size(info: zipfile.ZipInfo | int, member: str, limits: PackageLimits) -> None:
    """Refuse to parse a module larger than ``maxModuleParseBytes``."""
    size = info if isinstance(info, int) else info.file_size
    if size > limits.max_module_parse_bytes:
        raise PackageError(
            f"module file '{member}' is {size} bytes, above maxModuleParseBytes "
            f"{limits.max_module_parse_bytes}; expected an entry module of at most "
            f"{limits.max_module_parse_bytes} bytes (move data out of the source)"
        )


def read_member_bounded(archive: zipfile.ZipFile, member: str, limits: PackageLimits) -> bytes:
    """One member's bytes, refused if its header or its real content is too large."""
    check_module_size(archive.getinfo(member), member, limits)
    with archive.open(member) as stream:
        data = stream.read(limits.max_module_parse_bytes + 1)
    check_module_size(len(data), member, limits)
    return data


def extract_bounded(archive: zipfile.ZipFile, target: Path, budget: UnpackBudget) -> None:
    """Extract every entry under ``target``, counting real bytes against ``budget``.

    Entry names are made safe the way ``ZipFile.extractall`` does (absolute paths and
    ``..`` parts dropped), so nothing lands outside ``target``.
    """
    infos = archive.infolist()
    check_listing(infos, budget.limits, budget.display)
    for info in infos:
        budget.add_file()
        destination = safe_destination(target, info.filename)
        if destination is None:
            continue
        if info.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        copy_bounded(archive, info, destination, budget)


def copy_bounded(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, budget: UnpackBudget
) -> None:
    """Write one entry in blocks, stopping as soon as the budget is spent."""
    with archive.open(info) as source, destination.open("wb") as sink:
        while block := source.read(_BLOCK):
            budget.add_bytes(len(block))
            sink.write(block)


def safe_destination(target: Path, name: str) -> Path | None:
    """Where an entry goes under ``target``; None for a name with nothing left."""
    parts = [
        part
        for part in PurePosixPath(name.replace("\\", "/")).parts
        if part not in ("", ".", "..", "/") and not part.endswith(":")
    ]
    if not parts:
        return None
    return target.joinpath(*parts)


def remove_tree(folder: Path) -> None:
    """Delete a partly unpacked folder."""
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
