"""A package saved while a delete of the same function prunes its folder is still
stored (found by schemathesis: PUT of a function being deleted answered 500)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fnworker.scheduler.admin.package_store import PackageStore


def test_save_survives_a_prune_between_mkdir_and_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PackageStore(tmp_path / "packages")
    source = tmp_path / "f.py"
    source.write_text("def process(x):\n    return x\n")
    real_copy = shutil.copyfile
    pruned: list[bool] = []

    def copy_after_a_concurrent_prune(src: Path, dst: Path) -> object:
        if not pruned:
            pruned.append(True)
            store.prune("t/n/f", keep=None)  # what a concurrent delete does
        return real_copy(src, dst)

    monkeypatch.setattr(shutil, "copyfile", copy_after_a_concurrent_prune)
    ref = store.save("t/n/f", 2, source, "f.py")
    assert pruned == [True]
    assert store.path_of(ref).read_text() == source.read_text()
