"""Hostile packages against a real, memory-capped ``fnworker standalone`` with the
default limits: a 1 MB zip of 1 GiB of zeros, a zip of 20,001 files, a zip whose
module is 300 MB and a zip whose dependency wheel is a bomb each answer 400 at
registration naming the package (or module), its size and the limit; nothing is
stored, the worker keeps running and an ordinary function still processes. The
instances of one package version share one unpacked copy (hard links).

The packages are built in the test's temporary folder, never committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import StandaloneWorker
from tests.e2e.helpers import BASE, call, function_form, running_count, wait_for
from tests.hostile.conftest import assert_nothing_stored, assert_unharmed
from tests.hostile.packages import (
    FUNCTION_SOURCE,
    GIB,
    MIB,
    big_module_zip,
    function_zip,
    many_files_zip,
    nested_wheel_bomb,
    zip_bomb,
)

pytestmark = [pytest.mark.timeout(60)]


def create(worker: StandaloneWorker, name: str, package: Path, class_name: str) -> tuple[int, str]:
    """POST function ``name`` with ``package`` as its data part."""
    config = {"className": class_name, "inputs": [f"{name}-in"], "output": f"{name}-out"}
    reply = call(worker.admin_url, "POST", f"{BASE}/{name}", function_form(config, package))
    return reply.status, reply.reason if reply.status != 200 else ""


def refused(
    worker: StandaloneWorker, name: str, package: Path, class_name: str = "fn.process"
) -> str:
    """The 400's reason; checks that nothing was stored and nothing was harmed."""
    status, reason = create(worker, name, package, class_name)
    assert status == 400, (status, reason)
    assert_nothing_stored(worker, name)
    assert_unharmed(worker)
    return reason


def test_a_zip_bomb_is_refused_at_registration(
    capped_worker: StandaloneWorker, tmp_path: Path
) -> None:
    bomb = zip_bomb(tmp_path / "bomb.zip", unpacked_bytes=GIB)
    assert bomb.stat().st_size < 2 * MIB
    assert refused(capped_worker, "zip-bomb", bomb) == (
        f"package 'bomb.zip' unpacks to {GIB + len(FUNCTION_SOURCE)} bytes, above "
        "maxPackageUnpackedBytes 536870912; expected a package of at most 536870912 bytes "
        "unpacked"
    )


def test_a_zip_of_too_many_files_is_refused(
    capped_worker: StandaloneWorker, tmp_path: Path
) -> None:
    package = many_files_zip(tmp_path / "many.zip", count=20_000)
    assert refused(capped_worker, "many-files", package) == (
        "package 'many.zip' holds 20001 files, above maxPackageFiles 20000; "
        "expected at most 20000 files"
    )


def test_a_module_too_large_to_parse_is_refused(
    capped_worker: StandaloneWorker, tmp_path: Path
) -> None:
    package = big_module_zip(tmp_path / "big-module.zip", module_bytes=300 * MIB)
    assert refused(capped_worker, "big-module", package) == (
        f"module file 'fn.py' is {300 * MIB} bytes, above maxModuleParseBytes 8388608; "
        "expected an entry module of at most 8388608 bytes (move data out of the source)"
    )


def test_a_dependency_wheel_bomb_is_refused(
    capped_worker: StandaloneWorker, tmp_path: Path
) -> None:
    package = nested_wheel_bomb(tmp_path / "deps.zip", unpacked_bytes=600 * MIB)
    reason = refused(capped_worker, "wheel-bomb", package)
    assert reason.startswith("package 'deps.zip' unpacks to ")
    assert reason.endswith(
        "bytes with its dependency wheels, above maxPackageUnpackedBytes 536870912; "
        "expected a package of at most 536870912 bytes unpacked"
    )


def test_instances_of_one_version_share_one_unpacked_copy(
    capped_worker: StandaloneWorker, tmp_path: Path
) -> None:
    package = function_zip(tmp_path / "shared.zip")
    config = {
        "className": "fn.process",
        "inputs": ["shared-in"],
        "output": "shared-out",
        "parallelism": 3,
    }
    reply = call(capped_worker.admin_url, "POST", f"{BASE}/shared", function_form(config, package))
    assert reply.status == 200, reply.body
    wait_for(lambda: running_count(capped_worker.admin_url, "shared") == 3)
    state = capped_worker.state_dir
    unpacked = list(
        (state / "packages" / "public" / "default" / "shared").glob("v1-*/unpacked/fn.py")
    )
    assert len(unpacked) == 1
    linked = list(
        (state / "instances" / "public" / "default" / "shared").glob(
            "*/v1/.shared.zip-shared/fn.py"
        )
    )
    assert len(linked) == 3
    assert {file.stat().st_ino for file in linked} == {unpacked[0].stat().st_ino}
    assert call(capped_worker.admin_url, "DELETE", f"{BASE}/shared").status == 200
