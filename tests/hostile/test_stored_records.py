"""Records already stored that break a limit (written by an older version or by a
worker with larger limits) never crash or exhaust a worker. They are written onto
the metadata topic of a real pulsar-lite broker with the coordination backend's own
encoding before a memory-capped ``fnworker worker`` starts; the worker comes up,
logs one sentence per record, does not place them, answers their status with failed
instances and the reason (at most maxFunctionParallelism entries), runs an ordinary
function beside them, and runs a record again once an update brings it within the
limits. A stored package that unpacks past maxPackageUnpackedBytes fails its
instance with that reason instead of filling the disk."""

from __future__ import annotations

import hashlib
import resource
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pulsar
import pytest

from fnworker.coordination.embedded_broker import free_loopback_port, start_embedded_broker
from fnworker.coordination.pulsar_backend import ENCODE
from fnworker.coordination.topics import cluster_topics
from fnworker.coordination.wire import FunctionWrite
from fnworker.scheduler.decide.function_validation import complete_function_config
from fnworker.scheduler.model.records import (
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    PackageRef,
    Resources,
)
from fnworker.scheduler.settings.worker_config import WorkerConfig
from tests.e2e.conftest import StandaloneWorker, stop, wait_ready
from tests.e2e.helpers import BASE, EXAMPLE, call, function_form, register, trigger, wait_for
from tests.hostile.conftest import WORKER_MEMORY, cap_memory
from tests.hostile.packages import GIB, zip_bomb
from tests.integration.worker_process import spawn_worker

pytestmark = [pytest.mark.timeout(60)]

BILLION = 1_000_000_000
HUGE_REASON = (
    "not run: parallelism 1000000000 is above maxFunctionParallelism 1000; expected 1 to 1000"
)
CPU_REASON = (
    "not run: resources.cpu 1e+300 is above functionInstanceMaxResources.cpu 64.0; "
    "expected more than 0 and up to 64.0 cores"
)


def stored_package(packages: Path, name: str, source: Path) -> PackageRef:
    """Put ``source`` where the worker's package store keeps version 1 of ``name``."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    relative = f"public/default/{name}/v1-{digest[:8]}/{source.name}"
    (packages / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, packages / relative)
    return PackageRef(
        path=relative, original_file_name=source.name, sha256=digest, size=source.stat().st_size
    )


def older_record(name: str, package: PackageRef, class_name: str, **fields: Any) -> FunctionWrite:
    """Version 1 of a function as an older worker without limits would have written it."""
    config = complete_function_config(
        "public",
        "default",
        name,
        FunctionConfig(class_name=class_name, inputs=[f"{name}-in"], output=f"{name}-out"),
    )
    record = FunctionRecord(
        fqfn=Fqfn(f"public/default/{name}"),
        version=1,
        config=msgspec.structs.replace(config, **fields),
        package=package,
    )
    return FunctionWrite(
        fqfn=record.fqfn, version=1, record=record, writer="older-worker", request_id=name
    )


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneWorker]:
    root = tmp_path_factory.mktemp("stored-records")
    broker = start_embedded_broker(root / "broker")
    resource.prlimit(broker.pid, resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    state = root / "state"
    packages = state / "packages"
    example = stored_package(packages, "huge", EXAMPLE)
    bomb = stored_package(packages, "bomb", zip_bomb(root / "bomb.zip", unpacked_bytes=GIB))
    writes = [
        older_record(
            "huge", example, "exclamation_function.ExclamationFunction", parallelism=BILLION
        ),
        older_record(
            "greedy",
            example,
            "exclamation_function.ExclamationFunction",
            parallelism=2,
            resources=Resources(cpu=1e300),
        ),
        older_record("bomb", bomb, "fn.process"),
    ]
    port = free_loopback_port()
    settings = {
        "workerId": "w1",
        "workerHostname": "127.0.0.1",
        "workerPort": port,
        "pulsarServiceUrl": broker.url,
        "stateDirectory": str(state),
    }
    client = pulsar.Client(broker.url, operation_timeout_seconds=10)
    try:
        producer = client.create_producer(
            cluster_topics(WorkerConfig().pulsar_functions_namespace).metadata
        )
        for write in writes:
            producer.send(ENCODE(write))
        producer.close()
    finally:
        client.close()
    log_path = root / "worker.log"
    process = spawn_worker(settings, root / "worker.yml", log_path, preexec_fn=cap_memory)
    started = StandaloneWorker(process, f"http://127.0.0.1:{port}", state, log_path)
    try:
        wait_ready(started)
        yield started
    finally:
        stop(started)
        broker.stop()


def status(worker: StandaloneWorker, name: str) -> dict[str, Any]:
    reply = call(worker.admin_url, "GET", f"{BASE}/{name}/status")
    assert reply.status == 200, (reply.status, reply.body)
    return dict(reply.json())


def errors_of(answer: dict[str, Any]) -> set[tuple[bool, str]]:
    return {(i["status"]["running"], i["status"]["error"]) for i in answer["instances"]}


def test_a_billion_instances_record_is_reported_failed_not_expanded(
    worker: StandaloneWorker,
) -> None:
    answer = status(worker, "huge")
    assert answer["numRunning"] == 0
    assert answer["numInstances"] == len(answer["instances"]) == 1000
    assert errors_of(answer) == {(False, HUGE_REASON)}
    logged = [
        line
        for line in worker.log_path.read_text().splitlines()
        if "function over an admission limit is not run" in line and "public/default/huge" in line
    ]
    assert len(logged) == 1 and HUGE_REASON.removeprefix("not run: ") in logged[0], logged


def test_a_record_over_the_cpu_cap_is_reported_failed(worker: StandaloneWorker) -> None:
    answer = status(worker, "greedy")
    assert (answer["numInstances"], answer["numRunning"]) == (2, 0)
    assert errors_of(answer) == {(False, CPU_REASON)}


def test_records_over_a_limit_are_not_placed(worker: StandaloneWorker) -> None:
    def assigned() -> list[str]:
        reply = call(worker.admin_url, "GET", "/admin/v2/worker/assignments")
        return [i for instances in reply.json().values() for i in instances]

    wait_for(lambda: any(i.startswith("public/default/bomb:") for i in assigned()))
    assert not [
        i for i in assigned() if i.startswith(("public/default/huge", "public/default/greedy"))
    ]


def test_a_stored_zip_bomb_fails_its_instance_without_filling_the_disk(
    worker: StandaloneWorker,
) -> None:
    def failed() -> str:
        instance = status(worker, "bomb")["instances"][0]["status"]
        return "" if instance["running"] else str(instance["error"])

    error = wait_for(lambda: "maxPackageUnpackedBytes" in failed() and failed())
    assert error == (
        f"package 'bomb.zip' unpacks to {GIB + 37} bytes, above maxPackageUnpackedBytes "
        "536870912; expected a package of at most 536870912 bytes unpacked"
    )
    instances = worker.state_dir / "instances"
    written = sum(f.stat().st_size for f in instances.rglob("*") if f.is_file())
    assert written < 10 * 1024 * 1024


def test_an_ordinary_function_runs_beside_them(worker: StandaloneWorker) -> None:
    assert register(worker.admin_url, "ordinary").status == 200
    reply = wait_for(
        lambda: (r := trigger(worker.admin_url, "ordinary", "fine")).status == 200 and r, timeout=30
    )
    assert reply.body == b"fine!"
    assert worker.process.poll() is None


def test_an_update_within_the_limits_runs_the_record_again(worker: StandaloneWorker) -> None:
    form = function_form({"parallelism": 1}, package=None)
    reply = call(worker.admin_url, "PUT", f"{BASE}/huge", form)
    assert reply.status == 200, reply.body
    wait_for(lambda: status(worker, "huge")["numRunning"] == 1, timeout=30)
    answer = status(worker, "huge")
    assert answer["numInstances"] == 1
