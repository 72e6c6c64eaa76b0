"""The image the Dockerfile builds, without Docker: its contents are built into a scratch
directory by the Dockerfile's own lines (tests/harness/dockerfile_image.py: the same
``python -m venv`` and ``pip install`` of the same copied sources, its ENV, WORKDIR and
HEALTHCHECK), then a standalone worker runs from that image's ``fnworker`` command with the
Kubernetes runtime, and the in-test kubelet runs the function's pod from the image
(its ``python`` on the image's PATH, its env, no repo on ``PYTHONPATH``), so the pod
really uses the installed package. A Dockerfile that no longer installs a working worker
or pod entry point fails here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fnworker.coordination.embedded_broker import free_loopback_port, pid_alive
from fnworker.runtimes.kubernetes.pod_template import POD_MAIN_MODULE
from tests.conftest import quiet_client
from tests.e2e.conftest import StandaloneWorker, stop, wait_ready
from tests.e2e.helpers import BASE, call, register, running_count, wait_for
from tests.e2e.pipe import Pipe
from tests.harness.dockerfile_image import BuiltImage, build_image
from tests.harness.kubelet_pod_spec import Image
from tests.harness.kubernetes_kubelet import Kubelet, threaded_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.test/fnworker/fnworker:under-test"
NS = "functions"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """The Dockerfile's final stage, built into a scratch root (never into .venv)."""
    return build_image(REPO / "Dockerfile", REPO, tmp_path_factory.mktemp("image") / "root")


@pytest.fixture(scope="module")
def cluster(image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelet]:
    """The fake API server and a kubelet that runs IMAGE from the built image's files."""
    images = {IMAGE: Image(root=image.root, env=image.env, workdir=image.workdir)}
    with threaded_cluster(tmp_path_factory.mktemp("kubelet"), images=images) as running:
        yield running


def image_run(image: BuiltImage, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command as a container of the image would: its PATH, env and WORKDIR."""
    program = str(image.which(argv[0]))
    return subprocess.run(
        [program, *argv[1:]], env={**image.env, **env}, cwd=image.workdir,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def launch_from_image(image: BuiltImage, state: Path, config: Path) -> StandaloneWorker:
    """``fnworker standalone`` started from the image (its command, env and WORKDIR)."""
    port = free_loopback_port()
    state.mkdir(parents=True, exist_ok=True)
    log_path = state / "worker.log"
    argv = [str(image.which("fnworker")), "standalone", "--state-dir", str(state)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*argv, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=image.workdir,
            env={**image.env, "FNWORKER_workerPort": str(port)},
        )  # fmt: skip
    return StandaloneWorker(process, f"http://127.0.0.1:{port}", state, log_path)


@pytest.fixture(scope="module")
def worker(
    image: BuiltImage, cluster: Kubelet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StandaloneWorker]:
    """A standalone worker from the image whose runtime is the fake Kubernetes and whose
    function pods run IMAGE."""
    state = tmp_path_factory.mktemp("k8s-image-worker")
    config = state / "worker.yml"
    factory = {"k8Uri": cluster.api.url, "jobNamespace": NS, "pulsarDockerImageName": IMAGE}
    config.write_text(
        yaml.safe_dump(
            {
                "functionRuntimeFactoryClassName": "kubernetes",
                "functionRuntimeFactoryConfigs": factory,
            }
        )
    )
    running = launch_from_image(image, state / "state", config)
    try:
        wait_ready(running, timeout=60)
        yield running
    finally:
        stop(running)


@pytest.fixture
def show_logs(cluster: Kubelet, worker: StandaloneWorker) -> Iterator[None]:
    """Print the pods' and the worker's logs after the test (shown when it fails)."""
    yield
    print(cluster.logs())
    print("===== worker log =====\n" + worker.log_path.read_text(errors="replace")[-8000:])


def proc_cmdline(pid: int) -> list[str]:
    """A live process's argv."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def proc_environ(pid: int) -> dict[str, str]:
    """A live process's environment."""
    pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def test_the_image_runs_a_worker_and_a_function_pod_that_processes_messages(
    image: BuiltImage, cluster: Kubelet, worker: StandaloneWorker, show_logs: None
) -> None:
    """One scenario, so pytest-xdist never builds the image twice for one module."""
    check_contents(image)
    check_pod_processes_messages(image, cluster, worker)
    check_healthcheck(image, worker)


def check_contents(image: BuiltImage) -> None:
    """The venv's python and fnworker on PATH, the pod module installed, no sources."""
    venv_bin = image.inside("/opt/fnworker/bin")
    assert image.which("python").parent == venv_bin  # `python` is the venv's
    assert image.which("fnworker").parent == venv_bin
    script = f"import sys, pulsar, {POD_MAIN_MODULE} as m; print(sys.prefix); print(m.__file__)"
    found = image_run(image, ["python", "-c", script])
    assert found.returncode == 0, found.stderr
    prefix, module = found.stdout.split()
    assert Path(prefix) == image.inside("/opt/fnworker")
    assert Path(module).is_relative_to(image.inside("/opt/fnworker/lib"))
    assert image_run(image, ["fnworker", "--help"]).returncode == 0
    assert not image.inside("/src").exists()  # the builder's sources stay in the builder
    assert image.workdir == image.inside("/pulsar") and image.workdir.is_dir()
    assert image.user.split(":")[0].isdigit() and image.user.split(":")[0] != "0"


def check_pod_processes_messages(
    image: BuiltImage, cluster: Kubelet, worker: StandaloneWorker
) -> None:
    """The worker runs from the image; its function's pod runs the image's python (no
    repo on PYTHONPATH) and processes messages."""
    base, name = worker.admin_url, "k8simage"
    assert proc_cmdline(worker.process.pid)[:2] == [
        str(image.which("python")),
        str(image.which("fnworker")),
    ]
    assert register(base, name).status == 200
    pod = f"pf-public-default-{name}-0"
    pid = wait_for(lambda: cluster.pid_of(NS, pod), timeout=60, what="the pod's process")
    statefulset = cluster.api.get("statefulsets", NS, f"pf-public-default-{name}")
    assert statefulset is not None
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    argv, environ = proc_cmdline(pid), proc_environ(pid)
    assert argv[:3] == [str(image.which("python")), "-m", POD_MAIN_MODULE]
    assert str(REPO) not in environ.get("PYTHONPATH", "").split(os.pathsep)
    assert environ["PATH"] == image.env["PATH"]
    wait_for(lambda: running_count(base, name) == 1, timeout=120, what="the pod running")
    with quiet_client(worker.broker_url, "e2e-k8s-image") as client:
        pipe = Pipe(client, name, shared=True)
        pipe.probe("probe")
        values = [f"m{i}" for i in range(20)]
        pipe.send(values)
        expected = {f"{value}!" for value in values}
        assert pipe.receive_all(expected) - {"probe!"} == expected
        pipe.close()
    assert cluster.pid_of(NS, pod) == pid  # the same image process did the work
    assert call(base, "DELETE", f"{BASE}/{name}").status in (200, 204)
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the pod's process stopped")


def check_healthcheck(image: BuiltImage, worker: StandaloneWorker) -> None:
    """The HEALTHCHECK command passes on the ready worker, fails where none listens."""
    assert image.healthcheck is not None
    port = worker.admin_url.rsplit(":", 1)[1]
    healthy = image_run(image, image.healthcheck.command, FNWORKER_workerPort=port)
    assert healthy.returncode == 0, healthy.stderr
    nobody = str(free_loopback_port())
    assert image_run(image, image.healthcheck.command, FNWORKER_workerPort=nobody).returncode != 0
