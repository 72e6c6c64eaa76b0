"""Package limits against real archives: the registration check refuses a package
over maxPackageUnpackedBytes / maxPackageFiles / maxModuleParseBytes from its
listing, and unpacking at instance start (a record stored before the limits) stops
at the limit by counting what it writes, leaving nothing behind."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fnworker.runtimes.instance.loader import (
    PackageError,
    check_package,
    load_function,
    unpack_package,
)
from fnworker.runtimes.instance.package_check import resolve_target
from fnworker.runtimes.instance.package_limits import UnpackBudget, extract_bounded
from fnworker.scheduler.model.instances import PackageLimits
from tests.hostile.packages import (
    FUNCTION_SOURCE,
    MIB,
    Entry,
    big_module_zip,
    function_zip,
    many_files_zip,
    nested_wheel_bomb,
    write_zip,
    zip_bomb,
)

SMALL = PackageLimits(max_unpacked_bytes=4 * MIB, max_files=50, max_module_parse_bytes=64 * 1024)


def reason(path: Path, class_name: str = "fn.process", limits: PackageLimits = SMALL) -> str:
    with pytest.raises(PackageError) as raised:
        check_package(path, class_name, path.name, limits)
    return str(raised.value)


def leftovers(folder: Path) -> list[str]:
    """Files and folders next to the package other than the package itself."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".zip"))


def test_an_ordinary_zip_passes_the_limits(tmp_path: Path) -> None:
    check_package(function_zip(tmp_path / "ok.zip"), "fn.process", "ok.zip", SMALL)


def test_a_zip_bomb_is_refused_from_its_listing(tmp_path: Path) -> None:
    bomb = zip_bomb(tmp_path / "bomb.zip", unpacked_bytes=64 * MIB)
    assert bomb.stat().st_size < MIB
    assert reason(bomb) == (
        f"package 'bomb.zip' unpacks to {64 * MIB + len(FUNCTION_SOURCE)} bytes, above "
        f"maxPackageUnpackedBytes {4 * MIB}; expected a package of at most {4 * MIB} bytes unpacked"
    )


def test_too_many_files(tmp_path: Path) -> None:
    assert reason(many_files_zip(tmp_path / "many.zip", 60)) == (
        "package 'many.zip' holds 61 files, above maxPackageFiles 50; expected at most 50 files"
    )


def test_a_module_too_large_to_parse_names_module_size_and_limit(tmp_path: Path) -> None:
    package = big_module_zip(tmp_path / "big.zip", module_bytes=MIB)
    assert reason(package) == (
        "module file 'fn.py' is 1048576 bytes, above maxModuleParseBytes 65536; expected an "
        "entry module of at most 65536 bytes (move data out of the source)"
    )


def test_a_single_file_module_too_large_to_parse(tmp_path: Path) -> None:
    module = tmp_path / "fn.py"
    module.write_text(FUNCTION_SOURCE + "#" * 70_000 + "\n")
    assert reason(module).startswith(
        f"module file 'fn.py' is {module.stat().st_size} bytes, above maxModuleParseBytes 65536"
    )


def test_a_dependency_wheel_bomb_is_refused_at_registration(tmp_path: Path) -> None:
    package = nested_wheel_bomb(tmp_path / "deps.zip", unpacked_bytes=8 * MIB)
    assert package.stat().st_size < MIB
    refused = reason(package)
    assert refused.startswith("package 'deps.zip' unpacks to ")
    assert "with its dependency wheels, above maxPackageUnpackedBytes 4194304" in refused


def test_unpacking_at_instance_start_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "start").mkdir()
    bomb = zip_bomb(tmp_path / "start" / "bomb.zip", unpacked_bytes=64 * MIB)
    with pytest.raises(PackageError, match="above maxPackageUnpackedBytes 4194304"):
        load_function(bomb, "fn.process", "bomb-start", SMALL)
    assert leftovers(bomb.parent) == []


def test_unpacking_counts_real_bytes_across_the_dependency_wheels(tmp_path: Path) -> None:
    # A record stored by an older version: neither listing alone is over the limit, so
    # only the bytes counted while unpacking (one budget for the package and its wheels)
    # stop it.
    (tmp_path / "start").mkdir()
    package = nested_wheel_bomb(tmp_path / "start" / "deps.zip", unpacked_bytes=3 * MIB)
    limits = PackageLimits(max_unpacked_bytes=3 * MIB + 1024, max_files=50)
    target = resolve_target(package, "fn.process", package.name)  # default limits
    with pytest.raises(PackageError) as raised:
        unpack_package(package, target, limits)
    assert str(raised.value) == (
        "package 'deps.zip' unpacks to more than maxPackageUnpackedBytes 3146752 bytes "
        "(counted while unpacking, whatever its listing declares); expected a smaller package"
    )
    assert leftovers(package.parent) == []


def test_extract_bounded_keeps_entries_inside_the_target(tmp_path: Path) -> None:
    package = tmp_path / "slip.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("../../escaped.txt", "x")
        archive.writestr("/abs/path.txt", "y")
        archive.writestr("ok/inside.txt", "z")
    target = tmp_path / "out"
    with zipfile.ZipFile(package) as archive:
        extract_bounded(archive, target, UnpackBudget(SMALL, "slip.zip"))
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert written == ["abs/path.txt", "escaped.txt", "ok/inside.txt"]
    assert not (tmp_path / "escaped.txt").exists()


def liar_zip(path: Path, name: str) -> Path:
    """A zip whose entry ``name`` declares 40 bytes and holds 1 MiB more."""
    liar = Entry(name, FUNCTION_SOURCE.encode() + b"#" * MIB)
    liar.size = 40
    entries = [liar] if name == "fn.py" else [Entry("fn.py", FUNCTION_SOURCE.encode()), liar]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as target:
        write_zip(target, entries)
    return path


def test_a_module_whose_header_understates_its_size_is_caught(tmp_path: Path) -> None:
    # Reading stops at the declared size and the checksum fails: one sentence, no 500.
    package = liar_zip(tmp_path / "liar.zip", "fn.py")
    assert reason(package, limits=PackageLimits()) == (
        "package 'liar.zip' is not a readable zip archive: Bad CRC-32 for file 'fn.py'"
    )


def test_unpacking_an_entry_whose_header_understates_its_size_fails_cleanly(
    tmp_path: Path,
) -> None:
    package = liar_zip(tmp_path / "start" / "liar.zip", "data/blob.bin")
    check_package(package, "fn.process", package.name)  # the listing looks fine
    with pytest.raises(PackageError) as raised:
        load_function(package, "fn.process", "liar", PackageLimits())
    assert str(raised.value) == (
        "package 'liar.zip' could not be unpacked: Bad CRC-32 for file 'data/blob.bin'"
    )
    assert leftovers(package.parent) == []
