"""The fake kubelet's images (tests/harness/kubelet_pod_spec.py): a pod whose container
image the kubelet has runs from that image's files (its ``python`` on its PATH, its env,
its WORKDIR, no repo on ``PYTHONPATH``); any other image runs with this process's
interpreter and the repo on ``PYTHONPATH``. Pure launches, no process started. These
test the harness, not fnworker."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness.kubelet_pod_spec import REPO, Image, PodConfigError, PodSite, launch_of

IMAGE = "registry.test/fnworker:t"


def pod(image: str, command: list[str]) -> dict[str, Any]:
    container = {
        "name": "c", "image": image, "command": command, "args": ["--name", "$(POD_NAME)"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PYTHONPATH", "value": "/pulsar/instances/deps"},
        ],
    }  # fmt: skip
    return {"metadata": {"name": "p-0", "namespace": "ns"}, "spec": {"containers": [container]}}


def site(tmp_path: Path, image: str, command: list[str], images: dict[str, Image]) -> PodSite:
    return PodSite(
        pod=pod(image, command), ip="127.0.9.9", directory=tmp_path / "pod",
        api_url="http://127.0.0.1:1", secrets=lambda namespace, name: None, images=images,
    )  # fmt: skip


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """An image root with a ``python`` in its venv's bin, and a WORKDIR."""
    bin_dir = tmp_path / "root" / "opt" / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    workdir = tmp_path / "root" / "pulsar"
    workdir.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8"}
    return Image(root=tmp_path / "root", env=env, workdir=workdir)


def test_a_pod_of_a_known_image_runs_from_it_without_the_repo(tmp_path: Path, image: Image) -> None:
    launch = launch_of(site(tmp_path, IMAGE, ["python", "-m", "m"], {IMAGE: image}))
    assert launch.argv == [str(image.root / "opt/venv/bin/python"), "-m", "m", "--name", "p-0"]
    assert launch.env["PATH"] == image.env["PATH"] and launch.env["LANG"] == "C.UTF-8"
    assert launch.env["PYTHONPATH"] == "/pulsar/instances/deps"  # no repo appended
    assert launch.cwd == image.workdir
    assert launch.env["TMPDIR"] == str(tmp_path / "pod" / "tmp")


def test_an_absolute_command_is_taken_under_the_image_root(tmp_path: Path, image: Image) -> None:
    command = ["/opt/venv/bin/python", "-c", "pass"]
    launch = launch_of(site(tmp_path, IMAGE, command, {IMAGE: image}))
    assert launch.argv[0] == str(image.root / "opt/venv/bin/python")


def test_a_program_the_image_lacks_cannot_start(tmp_path: Path, image: Image) -> None:
    with pytest.raises(PodConfigError, match='exec: "fnworker": executable file not found') as err:
        launch_of(site(tmp_path, IMAGE, ["fnworker"], {IMAGE: image}))
    assert err.value.reason == "RunContainerError"


def test_any_other_image_runs_with_this_interpreter_and_the_repo(
    tmp_path: Path, image: Image
) -> None:
    launch = launch_of(site(tmp_path, "other/image:1", ["python3", "-m", "m"], {IMAGE: image}))
    assert launch.argv[0] == sys.executable
    assert launch.env["PYTHONPATH"].split(os.pathsep) == ["/pulsar/instances/deps", str(REPO)]
    assert launch.cwd == tmp_path / "pod"
