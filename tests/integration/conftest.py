"""Fixtures for driving the thread runtime from synchronous tests: a blocking
portal into an event loop, the runtime itself, instance specs with a private
package copy per start, and small produce/consume helpers on the real broker."""

from __future__ import annotations

import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import pulsar
import pytest
from anyio.from_thread import BlockingPortal

from fnworker.coordination.embedded_broker import EmbeddedBroker
from fnworker.runtimes.broker_kind import consumer_id_slots
from fnworker.runtimes.broker_probe import probe_broker
from fnworker.runtimes.thread import ThreadRuntime
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, instance_id_of
from tests.harness.kubernetes_api import kubernetes_api  # noqa: F401 - the fake API server fixture

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FUNCTIONS = ROOT / "tests" / "fixtures" / "functions"

SpecMaker = Callable[..., InstanceSpec]


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    """An event loop on a helper thread, for calling the async runtime from sync tests."""
    with anyio.from_thread.start_blocking_portal() as running:
        yield running


@pytest.fixture
def runtime(portal: BlockingPortal, broker: EmbeddedBroker) -> Iterator[ThreadRuntime]:
    """A thread runtime with a short nack delay, closed after the test."""
    driver = ThreadRuntime(thread_group_name="test-group", nack_redelivery_delay_ms=200)
    yield driver
    portal.call(driver.aclose)


@pytest.fixture
def make_spec(tmp_path: Path, broker: EmbeddedBroker) -> SpecMaker:
    """Build an InstanceSpec whose package is a private copy, as the worker makes it
    (with the consumer-id workaround a worker would decide on for this broker)."""
    slots = consumer_id_slots(probe_broker(broker.url).kind, None)

    def make(
        name: str,
        package: Path,
        *,
        version: int = 1,
        index: int = 0,
        secrets_provider: str = "clear-text",
        **config: Any,
    ) -> InstanceSpec:
        fqfn = Fqfn(f"public/default/{name}")
        folder = tmp_path / "instances" / name / str(index) / f"v{version}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        record = FunctionRecord(
            fqfn=fqfn, version=version, config=FunctionConfig(name=name, **config)
        )
        return InstanceSpec(
            instance=instance_id_of(fqfn, index),
            index=index,
            function=record,
            package_path=Path(shutil.copy(package, folder / package.name)),
            worker_id="worker-1",
            client=ClientSettings(
                service_url=broker.url, operation_timeout_seconds=5, consumer_id_slots=slots
            ),
            secrets_provider=secrets_provider,
        )

    return make


def zip_package(folder: Path, target: Path) -> Path:
    """Zip ``folder`` in Pulsar's layout: ``<target stem>/src/...``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(folder.rglob("*.py")):
            archive.write(file, f"{target.stem}/{file.relative_to(folder).as_posix()}")
    return target


def produce(
    client: pulsar.Client,
    topic: str,
    payloads: list[bytes],
    *,
    key: str | None = None,
    properties: dict[str, str] | None = None,
) -> list[pulsar.MessageId]:
    """Send payloads with a batching producer; returns their ids when sent one by one."""
    producer = client.create_producer(topic, batching_enabled=True, block_if_queue_full=True)
    try:
        if len(payloads) > 20:
            for payload in payloads:
                producer.send_async(payload, None, partition_key=key, properties=properties)
            producer.flush()
            return []
        return [producer.send(p, partition_key=key, properties=properties) for p in payloads]
    finally:
        producer.close()


def subscribe(
    client: pulsar.Client, topic: str, subscription: str = "test-reader"
) -> pulsar.Consumer:
    """A Shared consumer reading ``topic`` from its beginning."""
    return client.subscribe(
        topic,
        subscription,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
    )


def receive(consumer: pulsar.Consumer, count: int, timeout: float = 10.0) -> list[pulsar.Message]:
    """Receive and acknowledge up to ``count`` messages within ``timeout`` seconds."""
    got: list[pulsar.Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            message = consumer.receive(100)
        except pulsar.Timeout:
            continue
        consumer.acknowledge(message)
        got.append(message)
    return got


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 20 ms until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
