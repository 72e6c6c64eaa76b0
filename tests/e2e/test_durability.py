"""Nothing a user gave a worker is lost when it stops or dies, in every user-facing
mode: ``fnworker standalone`` as the README starts it, standalone with a config on
the process and the Kubernetes runtime, and a ``fnworker worker`` of a fleet.

Each test registers functions (one updated to a second version, one stopped), stops
the worker with SIGTERM, starts it again on the same state directory, checks that
every function, its config (the updated version), its package, its stopped or
started state and its assignments are back and that its instances process
messages again; then the same after SIGKILL.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fnworker.coordination.embedded_broker import EmbeddedBroker, start_embedded_broker
from tests.e2e.conftest import StandaloneWorker, launch, stop, wait_ready
from tests.e2e.helpers import BASE, EXAMPLE, call, function_form, register, trigger, wait_for
from tests.fleet.conftest import Fleet, FleetWorker
from tests.harness.kubernetes_kubelet import Kubelet, threaded_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KUBERNETES_FACTORY = "org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntimeFactory"


@dataclass(frozen=True)
class Kept:
    """What a user gave the worker, as its REST API shows it."""

    names: list[str]
    configs: dict[str, Any]
    packages: dict[str, str]
    running: dict[str, list[bool]]
    assigned: list[str]


def observe(base: str) -> Kept:
    """Read every function's config, package, instance states and the assignments."""
    names = sorted(call(base, "GET", BASE).json())
    configs = {name: call(base, "GET", f"{BASE}/{name}").json() for name in names}
    packages = {
        name: hashlib.sha256(call(base, "GET", f"{BASE}/{name}/download").body).hexdigest()
        for name in names
    }
    running = {}
    for name in names:
        status = call(base, "GET", f"{BASE}/{name}/status").json()
        running[name] = [one["status"]["running"] for one in status.get("instances", [])]
    table = call(base, "GET", "/admin/v2/worker/assignments").json()
    assigned = sorted(instance for held in table.values() for instance in held)
    return Kept(names, configs, packages, running, assigned)


def give_functions(base: str) -> Kept:
    """Register ``keep-a`` (parallelism 2, then updated) and ``keep-b`` (then stopped)."""
    assert register(base, "keep-a", parallelism=2).status == 200
    assert register(base, "keep-b").status == 200
    wait_for(lambda: observe(base).running == {"keep-a": [True, True], "keep-b": [True]})
    update = function_form({"userConfig": {"round": 2}}, None)
    assert call(base, "PUT", f"{BASE}/keep-a", update).status == 200
    assert call(base, "POST", f"{BASE}/keep-b/stop").status == 200
    expected = {"keep-a": [True, True], "keep-b": [False]}
    kept: Kept = wait_for(lambda: (seen := observe(base)).running == expected and seen)
    assert kept.configs["keep-a"]["userConfig"] == {"round": 2}
    assert kept.assigned == [
        "public/default/keep-a:0",
        "public/default/keep-a:1",
        "public/default/keep-b:0",
    ]
    example = hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert kept.packages == {"keep-a": example, "keep-b": example}
    return kept


def check_kept(base: str, before: Kept) -> None:
    """Everything is back and the running instances process messages again."""
    wait_for(lambda: observe(base) == before, timeout=90)
    reply = trigger(base, "keep-a", "again")
    assert (reply.status, reply.body) == (200, b"again!"), reply.body
    assert call(base, "POST", f"{BASE}/keep-b/start").status == 200
    wait_for(lambda: observe(base).running["keep-b"] == [True], timeout=60)
    assert trigger(base, "keep-b", "b").body == b"b!"
    assert call(base, "POST", f"{BASE}/keep-b/stop").status == 200
    wait_for(lambda: observe(base).running["keep-b"] == [False], timeout=60)


def end(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum``; the worker must be gone within its 10 s stop bound."""
    started = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=15)
    if signum == signal.SIGTERM:
        assert time.monotonic() - started < 11, "a stopped worker outlived its stop bound"


def survive_restarts(start: Callable[[], tuple[str, subprocess.Popen[bytes]]]) -> None:
    """Give functions, then for SIGTERM and SIGKILL: end the worker, start it again, check."""
    base, process = start()
    before = give_functions(base)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        end(process, signum)
        base, process = start()
        check_kept(base, before)


# -- standalone ------------------------------------------------------------------------


class Standalone:
    """Starts ``fnworker standalone`` on one state directory, again and again."""

    def __init__(self, state: Path, *extra: str) -> None:
        self.state, self.extra = state, extra
        self.current: StandaloneWorker | None = None

    def start(self) -> tuple[str, subprocess.Popen[bytes]]:
        self.current = launch(self.state, *self.extra)
        wait_ready(self.current)
        return self.current.admin_url, self.current.process

    def close(self) -> None:
        if self.current is not None:
            stop(self.current)


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Callable[..., Standalone]]:
    made: list[Standalone] = []

    def make(*extra: str) -> Standalone:
        made.append(Standalone(tmp_path / "state", *extra))
        return made[-1]

    yield make
    for one in made:
        one.close()


def write_config(path: Path, settings: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def test_standalone_as_the_readme_starts_it_keeps_everything(
    standalone: Callable[..., Standalone],
) -> None:
    survive_restarts(standalone().start)


def test_standalone_on_the_process_runtime_keeps_everything(
    standalone: Callable[..., Standalone], tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "process.yml",
        {
            "functionRuntimeFactoryClassName": "process",
            "functionRuntimeFactoryConfigs": {"logDirectory": str(tmp_path / "logs")},
        },
    )
    survive_restarts(standalone("--config", config).start)


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[Kubelet]:
    with threaded_cluster(tmp_path / "kubelet") as running:
        yield running


def test_standalone_on_kubernetes_keeps_everything(
    standalone: Callable[..., Standalone], kubelet: Kubelet, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "kubernetes.yml",
        {
            "functionRuntimeFactoryClassName": KUBERNETES_FACTORY,
            "functionRuntimeFactoryConfigs": {"k8Uri": kubelet.api.url, "jobNamespace": "kept"},
        },
    )
    survive_restarts(standalone("--config", config).start)


# -- a worker of a fleet ---------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with start_embedded_broker(tmp_path / "broker") as running:
        yield running


def test_a_fleet_worker_keeps_everything(broker: EmbeddedBroker, tmp_path: Path) -> None:
    fleet = Fleet(broker_url=broker.url, root=tmp_path)

    def start() -> tuple[str, subprocess.Popen[bytes]]:
        worker: FleetWorker = fleet.start("kept-1")
        wait_for(lambda: ready(worker), timeout=30)
        return worker.admin_url, worker.process

    try:
        survive_restarts(start)
    finally:
        fleet.stop_all()


def ready(worker: FleetWorker) -> bool:
    """True once the worker answers and sees itself as the leader."""
    if worker.process.poll() is not None:
        raise AssertionError(f"worker exited:\n{worker.log()[-3000:]}")
    try:
        reply = worker.get("/admin/v2/worker/cluster/leader")
    except OSError:
        return False
    return reply.status == 200 and reply.json()["workerId"] == worker.name


def test_killed_worker_leaves_no_upload_or_instance_files(
    standalone: Callable[..., Standalone], tmp_path: Path
) -> None:
    """Files of a killed run (an upload being read, instance copies) are gone after a
    restart, and a deleted function's instance folders go with it."""
    worker = standalone()
    base, process = worker.start()
    scratch, instances = tmp_path / "state" / "scratch", tmp_path / "state" / "instances"
    assert register(base, "tidy").status == 200
    wait_for(lambda: any(instances.rglob("*.py")))
    (scratch / "fnworker-upload-left").mkdir()
    (scratch / "fnworker-upload-left" / "0").write_bytes(b"half an upload")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    base, process = worker.start()
    assert not (scratch / "fnworker-upload-left").exists()
    wait_for(lambda: any(instances.rglob("*.py")))
    assert call(base, "DELETE", f"{BASE}/tidy").status in (200, 204)
    wait_for(lambda: not any(instances.iterdir()), timeout=30)
