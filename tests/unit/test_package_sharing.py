"""One unpacked copy per package version: the package store unpacks a .zip once and
gives every instance start a tree of hard links to it; the loader uses that tree
(and leaves it for a restart), an update's new version gets its own copy, and a
package over the limits is never unpacked by the store (the instance's loader then
reports why). Real files on disk."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fnworker.runtimes.instance.loader import PackageError, load_function
from fnworker.runtimes.instance.package_unpack import shared_tree_of
from fnworker.scheduler.admin.package_store import PackageStore
from fnworker.scheduler.model.instances import PackageLimits
from fnworker.scheduler.model.records import PackageRef
from tests.hostile.packages import MIB, zip_bomb

LIMITS = PackageLimits(max_unpacked_bytes=4 * MIB, max_files=50)


def function_package(path: Path, answer: str) -> Path:
    """A Pulsar-layout zip whose helper module says ``answer``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "fn/src/shared_fn.py",
            "import shared_helper\n\ndef process(v):\n    return shared_helper.ANSWER\n",
        )
        archive.writestr("fn/src/shared_helper.py", f"ANSWER = {answer!r}\n")
    return path


def stored(store: PackageStore, tmp_path: Path, version: int, answer: str) -> PackageRef:
    (tmp_path / f"upload-{version}").mkdir(parents=True)
    source = function_package(tmp_path / f"upload-{version}" / "fn.zip", answer)
    return store.save("public/default/fn", version, source, "fn.zip")


def instance_copy(store: PackageStore, ref: PackageRef, root: Path, index: int) -> Path:
    copy = store.copy_for_instance(ref, root / "instances" / str(index) / "v1")
    store.share_unpacked(ref, copy, LIMITS)
    return copy


def test_instances_share_one_unpacked_copy(tmp_path: Path) -> None:
    store = PackageStore(tmp_path / "packages")
    ref = stored(store, tmp_path, 1, "one")
    copies = [instance_copy(store, ref, tmp_path, index) for index in range(3)]
    unpacked = store.path_of(ref).parent / "unpacked" / "fn" / "src" / "shared_helper.py"
    linked = [shared_tree_of(copy) / "fn" / "src" / "shared_helper.py" for copy in copies]
    assert {path.stat().st_ino for path in linked} == {unpacked.stat().st_ino}
    assert unpacked.stat().st_nlink == 4
    assert not unpacked.stat().st_mode & 0o222  # read-only


def test_the_loader_uses_the_shared_tree_and_leaves_it_for_a_restart(tmp_path: Path) -> None:
    store = PackageStore(tmp_path / "packages")
    ref = stored(store, tmp_path, 1, "one")
    copy = instance_copy(store, ref, tmp_path, 0)
    loaded = load_function(copy, "shared_fn.process", "share-1", LIMITS)
    try:
        assert loaded.unpack_dir == shared_tree_of(copy)
        assert loaded.handler("x") == "one"
        assert [p.name for p in copy.parent.iterdir() if p.name.startswith(".fn.zip.")] == []
    finally:
        loaded.unload()
    assert shared_tree_of(copy).is_dir()


def test_an_update_gets_its_own_copy_and_leaves_the_running_version_alone(
    tmp_path: Path,
) -> None:
    store = PackageStore(tmp_path / "packages")
    old = stored(store, tmp_path, 1, "one")
    running = instance_copy(store, old, tmp_path, 0)
    new = stored(store, tmp_path, 2, "two")
    store.prune("public/default/fn", keep=new)  # the old version's stored files go
    helper = shared_tree_of(running) / "fn" / "src" / "shared_helper.py"
    assert helper.read_text() == "ANSWER = 'one'\n"
    updated = store.copy_for_instance(new, tmp_path / "instances" / "0" / "v2")
    store.share_unpacked(new, updated, LIMITS)
    assert (shared_tree_of(updated) / "fn" / "src" / "shared_helper.py").read_text() == (
        "ANSWER = 'two'\n"
    )
    assert helper.read_text() == "ANSWER = 'one'\n"


def test_a_package_over_the_limits_is_not_unpacked_by_the_store(tmp_path: Path) -> None:
    store = PackageStore(tmp_path / "packages")
    (tmp_path / "upload").mkdir()
    bomb = zip_bomb(tmp_path / "upload" / "bomb.zip", unpacked_bytes=64 * MIB)
    ref = store.save("public/default/bomb", 1, bomb, "bomb.zip")
    copy = store.copy_for_instance(ref, tmp_path / "instances" / "0" / "v1")
    store.share_unpacked(ref, copy, LIMITS)
    assert not shared_tree_of(copy).exists()
    assert not (store.path_of(ref).parent / "unpacked").exists()
    assert sorted(p.name for p in store.path_of(ref).parent.iterdir()) == ["bomb.zip"]
    with pytest.raises(PackageError, match="above maxPackageUnpackedBytes"):
        load_function(copy, "fn.process", "bomb-1", LIMITS)
