"""A real ``fnworker worker`` process against a test's broker, driven over HTTP, and
the produce/consume helpers the containment, progress and soak tests share. Every
process started here is stopped by its PID."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulsar

from fnworker.coordination.embedded_broker import free_loopback_port
from tests.e2e.helpers import BASE, Reply, call, function_form
from tests.e2e.helpers import wait_for as poll

FNWORKER = Path(sys.executable).with_name("fnworker")
FUNCTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "functions"
RUNTIME_CLASSES = {
    "thread": "org.apache.pulsar.functions.runtime.thread.ThreadRuntimeFactory",
    "process": "org.apache.pulsar.functions.runtime.process.ProcessRuntimeFactory",
}
# As the bench and README run pulsar-lite: each worker's consumers in a slot of their own.
CONSUMER_ID_SLOTS = 16


@dataclass
class WorkerProcess:
    """One running worker and where to reach it."""

    process: subprocess.Popen[bytes]
    admin_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self, name: str) -> dict[str, Any]:
        reply = call(self.admin_url, "GET", f"{BASE}/{name}/status")
        assert reply.status == 200, (name, reply.status, reply.body)
        return dict(reply.json())

    def instance_status(self, name: str, index: int = 0) -> dict[str, Any]:
        """Instance ``index``'s status (empty until the worker lists it)."""
        for entry in self.status(name)["instances"]:
            if entry["instanceId"] == index:
                return dict(entry["status"])
        return {}

    def register(self, name: str, package: Path, **config: Any) -> Reply:
        reply = call(self.admin_url, "POST", f"{BASE}/{name}", function_form(config, package))
        assert reply.status in (200, 204), (name, reply.status, reply.body)
        return reply

    def delete(self, name: str) -> None:
        reply = call(self.admin_url, "DELETE", f"{BASE}/{name}")
        assert reply.status in (200, 204), (name, reply.status, reply.body)

    def metrics_text(self) -> str:
        return call(self.admin_url, "GET", "/metrics").body.decode()


def start_worker(
    root: Path,
    broker_url: str,
    runtime: str = "thread",
    factory: dict[str, Any] | None = None,
    **extra: Any,
) -> WorkerProcess:
    """Start ``fnworker worker`` with a config of its own under ``root`` (``extra``
    keys, ``factory`` keys of functionRuntimeFactoryConfigs) and wait until it
    answers ``/initialized``."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_loopback_port()
    settings: dict[str, Any] = {
        "workerId": f"w-{port}",
        "workerHostname": "127.0.0.1",
        "workerPort": port,
        "pulsarServiceUrl": broker_url,
        # A fleet of its own, even on a broker other tests' workers use.
        "pulsarFunctionsNamespace": f"public/functions-{port}",
        "stateDirectory": str(root / "state"),
        "pulsarLiteConsumerIdSlots": CONSUMER_ID_SLOTS,
        "functionRuntimeFactoryClassName": RUNTIME_CLASSES[runtime],
        "functionRuntimeFactoryConfigs": {"logDirectory": str(root / "logs"), **(factory or {})},
        **extra,
    }
    log_path = root / "worker.log"
    process = spawn_worker(settings, root / "worker.yml", log_path)
    worker = WorkerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_for(lambda: ready(worker), 60, "the worker answers /initialized")
    except BaseException:
        stop_worker(worker)
        raise
    return worker


def spawn_worker(
    settings: dict[str, Any],
    config: Path,
    log_path: Path,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Write ``settings`` to ``config`` (one JSON value a line, which YAML reads) and
    start ``fnworker worker`` on it bound to loopback, its output appended to
    ``log_path``; ``preexec_fn`` runs in the child first (e.g. to cap its memory). The
    caller stops the process by PID."""
    config.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items()))
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(FNWORKER), "worker", "--config", str(config), "--bind-address", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=preexec_fn,
        )


def ready(worker: WorkerProcess) -> bool:
    assert worker.process.poll() is None, f"worker exited early:\n{worker.log()[-3000:]}"
    try:
        return call(worker.admin_url, "GET", "/initialized").status == 200
    except OSError:
        return False


def stop_worker(worker: WorkerProcess, timeout: float = 20.0) -> None:
    """SIGTERM the worker by PID; SIGKILL it if it lingers."""
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(worker.process.pid, signal.SIGKILL)
            worker.process.wait()


wait_for = functools.partial(poll, every=0.1)
"""``tests.e2e.helpers.wait_for`` polling every 0.1 s: ``wait_for(check, timeout, what)``."""


def running(worker: WorkerProcess, name: str) -> bool:
    status = worker.instance_status(name)
    return bool(status.get("running"))


def fill(client: pulsar.Client, topic: str, payloads: Iterable[bytes]) -> None:
    """Send with a batching producer (pulsar-lite duplicates unbatched bursts)."""
    producer = client.create_producer(
        topic, batching_enabled=True, batching_max_messages=1000, block_if_queue_full=True
    )
    try:
        for payload in payloads:
            producer.send_async(payload, None)
        producer.flush()
    finally:
        producer.close()


def metric_value(text: str, family: str, name: str) -> float | None:
    """The sample of ``family`` labelled ``name=<name>`` in Prometheus text, if any."""
    for line in text.splitlines():
        if line.startswith(family + "{") and f'name="{name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None
