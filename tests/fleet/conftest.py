"""A fleet of real ``fnworker worker`` processes sharing one pulsar-lite broker,
with the pulsar coordination backend. Every process is stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pulsar
import pytest

from fnworker.coordination.embedded_broker import free_loopback_port, start_embedded_broker
from fnworker.coordination.topics import cluster_topics
from tests.conftest import quiet_client
from tests.e2e.helpers import BASE, CLASS, EXAMPLE, Reply, call, function_form
from tests.integration.worker_process import spawn_worker

# pulsar-lite clashes consumers of one subscription across processes; the workers
# find out at start that the broker is pulsar-lite and spread their consumer ids over
# 16 slots by themselves (no pulsarLiteConsumerIdSlots in their configs). The worker
# ids the tests use (w1-w3; e1, e2) fall into distinct slots of 16.


@dataclass
class FleetWorker:
    """One worker process of the fleet."""

    name: str
    process: subprocess.Popen[bytes]
    admin_url: str
    log_path: Path

    def get(self, path: str) -> Reply:
        return call(self.admin_url, "GET", path)

    def json(self, path: str) -> Any:
        reply = self.get(path)
        assert reply.status == 200, (path, reply.status, reply.body)
        return reply.json()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Fleet:
    """Workers started against one broker, by cluster namespace."""

    broker_url: str
    root: Path
    workers: dict[str, FleetWorker] = field(default_factory=dict)

    def start(
        self,
        name: str,
        namespace: str = "public/functions",
        cluster: str = "standalone",
        **extra: Any,
    ) -> FleetWorker:
        """Start ``fnworker worker`` with its own config and state directory."""
        port = free_loopback_port()
        settings = {
            "workerId": name,
            "workerHostname": "127.0.0.1",
            "workerPort": port,
            "pulsarServiceUrl": self.broker_url,
            "pulsarFunctionsNamespace": namespace,
            "pulsarFunctionsCluster": cluster,
            "stateDirectory": str(self.root / name),
            **extra,
        }
        log_path = self.root / f"{name}.log"
        process = spawn_worker(settings, self.root / f"{name}.yml", log_path)
        worker = FleetWorker(name, process, f"http://127.0.0.1:{port}", log_path)
        self.workers[name] = worker
        return worker

    def signal(self, name: str, signum: int) -> None:
        """Send a signal to one worker process by its PID."""
        os.kill(self.workers[name].process.pid, signum)

    def kill(self, name: str) -> None:
        """SIGKILL a worker and reap it."""
        worker = self.workers.pop(name)
        worker.process.kill()
        worker.process.wait()

    def alive(self) -> list[FleetWorker]:
        return [w for w in self.workers.values() if w.process.poll() is None]

    def stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                os.kill(worker.process.pid, signal.SIGCONT)
                worker.process.terminate()
        for worker in self.workers.values():
            try:
                worker.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except (AssertionError, OSError) as error:
            last = error
        time.sleep(0.2)
    raise AssertionError(f"not true within {timeout} s: {what or check} (last: {last!r})")


def leader_seen_by_all(workers: list[FleetWorker]) -> str | None:
    """The leader's id when every given worker names the same one and sees them all."""
    names = set()
    for worker in workers:
        reply = worker.get("/admin/v2/worker/cluster/leader")
        if reply.status != 200:
            return None
        names.add(reply.json()["workerId"])
        members = {m["workerId"] for m in worker.json("/admin/v2/worker/cluster")}
        if members != {w.name for w in workers}:
            return None
    return names.pop() if len(names) == 1 else None


def register(worker: FleetWorker, name: str, **extra: Any) -> None:
    """Register the exclamation example as ``public/default/{name}`` through ``worker``."""
    config = {"className": CLASS, "inputs": [f"{name}-in"], "output": f"{name}-out", **extra}
    reply = call(worker.admin_url, "POST", f"{BASE}/{name}", function_form(config, EXAMPLE))
    assert reply.status == 200, reply.body


def holders(workers: list[FleetWorker]) -> dict[str, list[str]]:
    """Instance id -> the workers whose runtime runs it right now."""
    running: dict[str, list[str]] = {}
    for worker in workers:
        for held in worker.json("/admin/v2/worker-stats/functionsmetrics"):
            if held["running"]:
                running.setdefault(held["name"], []).append(worker.name)
    return running


def wire_records(broker_url: str, topic: str) -> list[dict[str, Any]]:
    """Every record written so far on a coordination topic, decoded from msgpack into
    plain dicts: what the fleet said on the wire, whatever the classes that wrote it."""
    with quiet_client(broker_url, "fleet-wire-reader") as connection:
        reader = connection.create_reader(topic, pulsar.MessageId.earliest)
        try:
            found = []
            while reader.has_message_available():
                found.append(msgspec.msgpack.decode(reader.read_next(timeout_millis=10_000).data()))
            return found
        finally:
            reader.close()


def sessions_of(fleet: Fleet, worker: str, namespace: str = "public/functions") -> set[str]:
    """The sessions ``worker`` has heartbeated under: a new one each time it starts or
    fences itself after a freeze."""
    topic = cluster_topics(namespace).heartbeats
    return {
        r["session"]
        for r in wire_records(fleet.broker_url, topic)
        if r.get("type") == "heartbeat" and r["worker"]["workerId"] == worker
    }


def claims_by(fleet: Fleet, worker: str, namespace: str = "public/functions") -> list[int]:
    """The leadership terms ``worker`` has claimed on the coordinate topic."""
    topic = cluster_topics(namespace).coordinate
    return [
        r["term"]
        for r in wire_records(fleet.broker_url, topic)
        if r.get("type") == "claim" and r["candidate"]["workerId"] == worker
    ]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A broker of the test's own (or FNWORKER_REAL_PULSAR_URL) plus the test's workers."""
    real = os.environ.get("FNWORKER_REAL_PULSAR_URL")
    broker = None if real else start_embedded_broker(tmp_path / "broker")
    running = Fleet(broker_url=real or broker.url, root=tmp_path)  # type: ignore[union-attr]
    try:
        yield running
    finally:
        running.stop_all()
        if broker is not None:
            broker.stop()


@pytest.fixture
def client(fleet: Fleet) -> Iterator[pulsar.Client]:
    with quiet_client(fleet.broker_url, "fleet-test-client") as connection:
        yield connection
